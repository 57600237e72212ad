/* SPDX-License-Identifier: Apache-2.0 */
/* cas session create FILE | update FILE | read NAME | list: sessions (policies) in CAS. CAS checks
 * the document; the CLI reads the file, sends its text and prints the session's hash. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SESSION_TEXT_MAX ((1u << 20) - 4096) /* the body bound, less the JSON around the text */

static bool name_ok(const char *n)
{
    size_t len = n ? strlen(n) : 0;
    if (len == 0 || len > 128 || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
        return false;
    return strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

/* create and update: read FILE, send it, print the hash (and only the hash on stdout, so that
 * `H=$(cas session create f.yaml)` gives the next update's predecessor). */
static int session_send(int argc, char **argv, bool update)
{
    const char *cli_config = NULL, *cas = NULL;
    struct custos_strlist pos = {0};
    struct custos_option opts[] = {
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = cli_parse(argv[0],
                        update ? "Update a session: FILE (YAML, - for stdin) must name the current version's hash as "
                                 "predecessor. Prints the new hash."
                               : "Create a session from FILE (YAML, - for stdin; owner only). Prints its hash.",
                        opts, 2, argc, argv, &pos, 1, "one session FILE");
    char *text = NULL, *body = NULL, err[512], path[160];
    size_t size = 0;
    json_t *doc = NULL, *req = NULL;
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    if (ret >= 0)
        goto out;
    ret = 1;
    const char *file = pos.items[0];
    int r = cli_read_input(file, SESSION_TEXT_MAX, &text, &size);
    if (r < 0) {
        fprintf(stderr, "%s: cannot read %s: %s\n", argv[0], strcmp(file, "-") ? file : "stdin",
                r == -EFBIG ? "larger than 1 MiB (the most a session may hold)" : strerror(-r));
        goto out;
    }
    /* The name is needed for the update's URL; CAS checks everything else. */
    const char *name = NULL;
    if (update) {
        if (custos_yaml_parse(text, size, &doc, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s: %s: %s\n", argv[0], file, err);
            goto out;
        }
        name = json_string_value(json_object_get(doc, "name"));
        if (!name_ok(name)) {
            fprintf(stderr, "%s: %s: name: missing or not a session name (1 to 128 of A-Z a-z 0-9 . _ -)\n", argv[0],
                    file);
            goto out;
        }
        snprintf(path, sizeof(path), "/v1/sessions/%s", name);
    }
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    req = json_pack("{s:s%}", "session", text, size);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!body) {
        fprintf(stderr, "%s: %s is not UTF-8 text\n", argv[0], file);
        goto out;
    }
    ret = cli_owner_call(argv[0], &ctx, update ? "PUT" : "POST", update ? path : "/v1/sessions", body, &resp);
    if (ret == 0) {
        fprintf(stderr, "%s session %s (version %lld)\n", update ? "Updated" : "Created",
                json_string_value(json_object_get(resp.body, "name")),
                (long long)json_integer_value(json_object_get(resp.body, "version")));
        printf("%s\n", json_string_value(json_object_get(resp.body, "hash")));
    }
out:
    if (text) {
        custos_wipe(text, size); /* a session may hold given secret values */
        free(text);
    }
    if (body) {
        custos_wipe(body, strlen(body));
        free(body);
    }
    json_decref(req);
    json_decref(doc);
    cli_response_free(&resp);
    cli_context_free(&ctx);
    custos_strlist_free(&pos);
    return ret;
}

static int session_create(int argc, char **argv)
{
    return session_send(argc, argv, false);
}

static int session_update(int argc, char **argv)
{
    return session_send(argc, argv, true);
}

static int session_read(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL;
    bool hash_only = false;
    struct custos_strlist pos = {0};
    struct custos_option opts[] = {
        {"hash", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL, "print only the current hash (an update's predecessor)",
         &hash_only},
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = cli_parse(argv[0],
                        "Print session NAME as CAS holds it (JSON: name, hash, version, session). Generated secret "
                        "values are never shown.",
                        opts, 3, argc, argv, &pos, 1, "one session NAME");
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    char path[160];
    if (ret >= 0)
        goto out;
    ret = 1;
    if (!name_ok(pos.items[0])) {
        fprintf(stderr, "%s: '%s' is not a session name (1 to 128 of A-Z a-z 0-9 . _ -)\n", argv[0], pos.items[0]);
        ret = 2;
        goto out;
    }
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    snprintf(path, sizeof(path), "/v1/sessions/%s", pos.items[0]);
    ret = cli_owner_call(argv[0], &ctx, "GET", path, NULL, &resp);
    if (ret == 0 && hash_only) {
        printf("%s\n", json_string_value(json_object_get(resp.body, "hash")));
    } else if (ret == 0) {
        char *out = json_dumps(resp.body, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", out ? out : "{}");
        free(out);
    }
out:
    cli_response_free(&resp);
    cli_context_free(&ctx);
    custos_strlist_free(&pos);
    return ret;
}

static int session_list(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL;
    bool as_json = false;
    struct custos_option opts[] = {
        {"json", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL, "print JSON", &as_json},
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = cli_parse(argv[0], "List the sessions this identity may read: NAME VERSION HASH per line.", opts, 3, argc,
                        argv, NULL, 0, NULL);
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    if (ret >= 0)
        return ret;
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        return 1;
    ret = cli_owner_call(argv[0], &ctx, "GET", "/v1/sessions", NULL, &resp);
    json_t *list = json_object_get(resp.body, "sessions"), *s;
    size_t i;
    if (ret == 0 && as_json) {
        char *out = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", out ? out : "[]");
        free(out);
    } else if (ret == 0) {
        json_array_foreach(list, i, s)
            printf("%s %lld %s\n", json_string_value(json_object_get(s, "name")),
                   (long long)json_integer_value(json_object_get(s, "version")),
                   json_string_value(json_object_get(s, "hash")));
    }
    cli_response_free(&resp);
    cli_context_free(&ctx);
    return ret;
}

int cmd_session(int argc, char **argv)
{
    static const struct cli_command cmds[] = {
        {"create", session_create, "create a session from a YAML file (owner only); prints its hash"},
        {"update", session_update, "replace a session (predecessor: the current hash); prints the new hash"},
        {"read", session_read, "print a session as CAS holds it"},
        {"list", session_list, "list the sessions this identity may read"},
    };
    return cli_dispatch(argv[0], cmds, sizeof(cmds) / sizeof(cmds[0]), argc, argv);
}
