/* SPDX-License-Identifier: Apache-2.0 */
/* cas register-backup BACKUP_ADDR; cas backups list | remove | prune | check */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "cli.h"

/* A message relayed from one side to the other: {"name": <object>} -> JSON text. */
static char *relay(const char *name, json_t *value)
{
    json_t *j = json_pack("{s:O}", name, value);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* Whether the primary lists the platform and casd measurement that quoted `request` as registered at
 * or after the request's time (a registration another relay finished). */
static bool registered_since(struct cli_context *ctx, const json_t *request)
{
    struct custos_quote q;
    char err[256], id[CUSTOS_PLATFORM_ID_LEN + 1];
    struct cli_response r = {0};
    bool found = false;
    json_int_t created = json_integer_value(json_object_get(request, "created_at"));
    if (custos_quote_from_json(json_object_get(request, "quote"), &q, err, sizeof(err)) < 0)
        return false;
    custos_platform_id(q.platform_pub, id);
    char m[2 * CUSTOS_MEASUREMENT_SIZE + 1];
    custos_hex_encode(q.measurement, sizeof(q.measurement), m, false);
    if (cli_https(ctx->url, "GET", "/v1/backups", NULL, ctx->key_hash, &ctx->id, &r, err, sizeof(err)) == 0 &&
        r.status == 200) {
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(r.body, "backups"), i, b)
            found |= !strcmp(json_string_value(json_object_get(b, "platform_id")) ?: "", id) &&
                     !strcmp(json_string_value(json_object_get(b, "measurement")) ?: "", m) &&
                     json_integer_value(json_object_get(b, "registered_at")) >= created;
    }
    cli_response_free(&r);
    return found;
}

int cmd_register_backup(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL;
    struct custos_strlist pos = {0};
    struct custos_option opts[] = {
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = cli_parse(argv[0],
                        "Register the backup CAS at BACKUP_ADDR (casd --backup on another node) with the "
                        "primary CAS, so that CAS can move to that node.",
                        opts, 2, argc, argv, &pos, 1, "one backup CAS address");
    struct cli_context ctx = {0};
    struct cli_response r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    char url[512], host[300], err[1024];
    char *m2 = NULL, *m3 = NULL, *m4 = NULL;
    if (ret >= 0)
        goto out;
    ret = 2;
    if (cli_normalize_address(pos.items[0], url, sizeof(url), host, sizeof(host)) < 0) {
        fprintf(stderr, "%s: expected one backup CAS address (host, host:port or https://host:port)\n", argv[0]);
        goto out;
    }
    ret = 1;
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    /* 1. the backup's request: its quote binds its ephemeral key; no trust in its TLS key is needed */
    if (cli_https(url, "GET", "/v1/backup/request", NULL, NULL, NULL, &r1, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: backup CAS: %s\n", argv[0], err);
        goto out;
    }
    if (r1.status != 200 || !r1.body) {
        fprintf(stderr, "%s: backup CAS at %s refused (status %ld): %s\n", argv[0], url, r1.status,
                cli_error_message(&r1));
        goto out;
    }
    /* 2. the primary checks it and offers the wrapped key */
    m2 = relay("request", r1.body);
    if (!m2 || cli_owner_call(argv[0], &ctx, "POST", "/v1/backups/register", m2, &r2) != 0)
        goto out;
    /* 3. the backup unwraps, seals for its node and proves it */
    m3 = relay("offer", json_object_get(r2.body, "offer"));
    if (!m3 || cli_https(url, "POST", "/v1/backup/complete", m3, NULL, NULL, &r3, err, sizeof(err)) < 0) {
        /* gone since it gave its request: a concurrent run may have finished this registration */
        if (m3 && registered_since(&ctx, r1.body)) {
            printf("Backup CAS registered (by another run of this command)\n");
            ret = 0;
            goto out;
        }
        fprintf(stderr, "%s: backup CAS: %s\n", argv[0], m3 ? err : "the primary's offer is missing");
        goto out;
    }
    if (r3.status != 200 || !r3.body) {
        fprintf(stderr, "%s: backup CAS at %s refused (status %ld): %s\n", argv[0], url, r3.status,
                cli_error_message(&r3));
        goto out;
    }
    /* 4. the primary checks the proof and adds the entry to its key-store. Confirming twice is
     * harmless (a committed confirmation is answered "already"), so a lost answer is asked again. */
    m4 = relay("completion", json_object_get(r3.body, "completion"));
    if (!m4)
        goto out;
    for (int attempt = 0;; attempt++) {
        cli_response_free(&r4);
        if (cli_https(ctx.url, "POST", "/v1/backups/confirm", m4, ctx.key_hash, &ctx.id, &r4, err, sizeof(err)) == 0)
            break;
        if (attempt == 3) {
            fprintf(stderr,
                    "%s: the CAS did not answer the confirmation (%s): the registration may or may not be "
                    "committed. `cas backups list` shows it if it is; otherwise run `cas register-backup %s` again "
                    "while the backup CAS still runs (it finishes this same registration)\n",
                    argv[0], err, pos.items[0]);
            goto out;
        }
        usleep(250000u << attempt);
    }
    if (r4.status < 200 || r4.status > 299) {
        fprintf(stderr, "%s: CAS refused the confirmation (status %ld): %s\n", argv[0], r4.status,
                cli_error_message(&r4));
        goto out;
    }
    /* the backup may exit now (best effort: it also exits on its own after a while) */
    struct cli_response r5 = {0};
    (void)cli_https(url, "POST", "/v1/backup/finish", "{}", NULL, NULL, &r5, err, sizeof(err));
    cli_response_free(&r5);
    printf("Backup CAS registered%s\n",
           json_is_true(json_object_get(r4.body, "already")) ? " (its confirmation had already been committed)" : "");
    fprintf(stderr, "node %s, platform %s, TCB %lld\n", json_string_value(json_object_get(r4.body, "node")),
            json_string_value(json_object_get(r4.body, "registered")),
            json_integer_value(json_object_get(r4.body, "tcb")));
    ret = 0;
out:
    free(m2);
    free(m3);
    free(m4);
    cli_response_free(&r1);
    cli_response_free(&r2);
    cli_response_free(&r3);
    cli_response_free(&r4);
    cli_context_free(&ctx);
    custos_strlist_free(&pos);
    return ret;
}

/* GET /v1/backups through the owner's context. */
static int fetch_backups(const char *prog, const char *cli_config, const char *cas, struct cli_response *resp)
{
    struct cli_context ctx;
    if (cli_owner_context(prog, cli_config, cas, &ctx) < 0)
        return 1;
    int ret = cli_owner_call(prog, &ctx, "GET", "/v1/backups", NULL, resp);
    cli_context_free(&ctx);
    return ret;
}

static int backups_list(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL;
    bool as_json = false;
    struct custos_option opts[] = {
        {"json", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL, "print JSON", &as_json},
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = custos_options_parse(argv[0],
                                   "List the platforms that can open the CAS database (its own and every "
                                   "registered backup).",
                                   opts, 3, argc, argv, NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    struct cli_response resp = {0};
    ret = fetch_backups(argv[0], cli_config, cas, &resp);
    if (ret == 0 && as_json) {
        json_dumpf(json_object_get(resp.body, "backups"), stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else if (ret == 0) {
        printf("%-66s  %-5s  %-24s  %5s  %-20s  %-64s\n", "PLATFORM ID", "KIND", "NODE", "TCB", "REGISTERED",
               "MEASUREMENT");
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(resp.body, "backups"), i, b) {
            time_t t = (time_t)json_integer_value(json_object_get(b, "registered_at"));
            char when[32];
            struct tm tm;
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
            const char *m = json_string_value(json_object_get(b, "measurement"));
            printf("%-66s  %-5s  %-24s  %5lld  %-20s  %-64s%s\n", json_string_value(json_object_get(b, "platform_id")),
                   json_string_value(json_object_get(b, "platform_kind")),
                   json_string_value(json_object_get(b, "node")), json_integer_value(json_object_get(b, "tcb")), when,
                   m ? m : "any",
                   json_is_true(json_object_get(b, "current"))   ? "  (primary, current)"
                   : json_is_true(json_object_get(b, "primary")) ? "  (primary's platform)"
                                                                 : "");
        }
    }
    cli_response_free(&resp);
    return ret;
}

/* A casd measurement: 64 hex digits, or "any" (entries of a key-store from before measurements). */
static bool measurement_ok(const char *m)
{
    return m && ((strlen(m) == 64 && strspn(m, "0123456789abcdefABCDEF") == 64) || strcmp(m, "any") == 0);
}

static int backups_remove(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL, *measurement = NULL;
    struct custos_strlist pos = {0};
    struct custos_option opts[] = {
        {"measurement", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "HEX",
         "remove only the entry of this casd measurement (an old build's, after an upgrade; \"any\": the entry "
         "without one, from before measurements)",
         &measurement},
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = cli_parse(argv[0],
                        "Remove every key-store entry of PLATFORM-ID (revoking the node), or with --measurement only "
                        "the entry of that casd build. The primary's own current entry cannot be removed. Rotates "
                        "the database key.",
                        opts, 3, argc, argv, &pos, 1, "one PLATFORM-ID");
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    char path[256];
    if (ret >= 0)
        goto out;
    ret = 2;
    uint8_t pub[CUSTOS_P256_PUB_SIZE];
    if (custos_platform_id_parse(pos.items[0], pub) < 0) {
        fprintf(stderr, "%s: expected one PLATFORM-ID (66 hex digits)\n", argv[0]);
        goto out;
    }
    if (measurement && !measurement_ok(measurement)) {
        fprintf(stderr, "%s: --measurement '%.80s' is not 64 hex digits (or \"any\")\n", argv[0], measurement);
        goto out;
    }
    ret = 1;
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    snprintf(path, sizeof(path), "/v1/backups/%s%s%s", pos.items[0], measurement ? "?measurement=" : "",
             measurement ? measurement : "");
    ret = cli_owner_call(argv[0], &ctx, "DELETE", path, NULL, &resp);
    if (ret == 0 && measurement)
        printf("backup of platform %s for measurement %s removed\n",
               json_string_value(json_object_get(resp.body, "removed")),
               json_string_value(json_object_get(resp.body, "measurement")));
    else if (ret == 0)
        printf("backup of platform %s removed (%lld entr%s)\n",
               json_string_value(json_object_get(resp.body, "removed")),
               json_integer_value(json_object_get(resp.body, "count")),
               json_integer_value(json_object_get(resp.body, "count")) == 1 ? "y" : "ies");
out:
    cli_response_free(&resp);
    cli_context_free(&ctx);
    custos_strlist_free(&pos);
    return ret;
}

static int backups_prune(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL, *measurement = NULL;
    struct custos_option opts[] = {
        {"measurement", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "HEX",
         "the casd measurement whose entries go (\"any\": the entries without one, from before measurements)",
         &measurement},
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = custos_options_parse(argv[0],
                                   "Remove every key-store entry of one casd measurement (an old build's, after an "
                                   "upgrade) except the primary's own current one, with one key rotation.",
                                   opts, 3, argc, argv, NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    if (!measurement_ok(measurement)) {
        fprintf(stderr, "%s: --measurement HEX (64 hex digits, or \"any\") is required\n", argv[0]);
        return 2;
    }
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    char path[128];
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        return 1;
    snprintf(path, sizeof(path), "/v1/backups?measurement=%s", measurement);
    ret = cli_owner_call(argv[0], &ctx, "DELETE", path, NULL, &resp);
    if (ret == 0)
        printf("%lld entr%s of measurement %s removed; database key rotated (generation %lld)\n",
               json_integer_value(json_object_get(resp.body, "count")),
               json_integer_value(json_object_get(resp.body, "count")) == 1 ? "y" : "ies",
               json_string_value(json_object_get(resp.body, "measurement")),
               json_integer_value(json_object_get(resp.body, "generation")));
    cli_response_free(&resp);
    cli_context_free(&ctx);
    return ret;
}

static int backups_check(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL, *nodes = NULL;
    struct custos_option opts[] = {
        {"nodes", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "N1,N2,...",
         "nodes CAS may come back on (e.g. the servers of a restarted cluster)", &nodes},
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = custos_options_parse(argv[0],
                                   "Check that at least one of the given nodes can open the CAS database "
                                   "(holds a registered backup or is the primary's node).",
                                   opts, 3, argc, argv, NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    if (!nodes || !*nodes) {
        fprintf(stderr, "%s: --nodes N1,N2,... is required\n", argv[0]);
        return 2;
    }
    struct cli_response resp = {0};
    if ((ret = fetch_backups(argv[0], cli_config, cas, &resp)) != 0)
        return ret;
    char *copy = strdup(nodes), *save = NULL;
    int covered = 0, given = 0;
    for (char *n = strtok_r(copy, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        given++;
        size_t i;
        json_t *b;
        bool found = false;
        json_array_foreach(json_object_get(resp.body, "backups"), i, b)
            found |= strcmp(json_string_value(json_object_get(b, "node")), n) == 0;
        printf("%-32s %s\n", n, found ? "can open the CAS database" : "NO registered backup");
        covered += found;
    }
    free(copy);
    cli_response_free(&resp);
    if (covered == 0) {
        fprintf(stderr,
                "warning: none of the %d given nodes holds a registered backup: if CAS comes back only on "
                "these nodes, its database cannot be opened. Register a backup on one of them first.\n",
                given);
        return 1;
    }
    printf("%d of %d given nodes can open the CAS database\n", covered, given);
    return 0;
}

int cmd_backups(int argc, char **argv)
{
    static const struct cli_command cmds[] = {
        {"list", backups_list, "list the platforms that can open the CAS database"},
        {"remove", backups_remove, "remove a registered backup (or one casd measurement's entry of it)"},
        {"prune", backups_prune, "remove every entry of an old casd measurement (after an upgrade)"},
        {"check", backups_check, "check that some of the given nodes can open the database"},
    };
    return cli_dispatch(argv[0], cmds, sizeof(cmds) / sizeof(cmds[0]), argc, argv);
}
