/* SPDX-License-Identifier: Apache-2.0 */
/* cas owner show | allow-measurement | allow-platform | allow-launcher | allow-registrar | deny-registrar |
 * make-registrar */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "cli.h"

/* Loads the configuration and identity and finds the CAS; the common start of owner commands. */
int cli_owner_context(const char *prog, const char *cli_config, const char *cas, struct cli_context *ctx)
{
    char err[1024];
    memset(ctx, 0, sizeof(*ctx));
    const char *path = cli_config_path(cli_config, ctx->path_buf, sizeof(ctx->path_buf));
    ctx->path = path;
    if (cli_config_load(path, &ctx->cfg, err, sizeof(err)) < 0 ||
        cli_find_cas(ctx->cfg, cas, &ctx->url, &ctx->key_hash, err, sizeof(err)) < 0 ||
        cli_identity(ctx->cfg, NULL, &ctx->id, err, sizeof(err)) < 0 ||
        (ctx->id.changed && cli_config_save(path, ctx->cfg, err, sizeof(err)) < 0)) {
        fprintf(stderr, "%s: %s\n", prog, err);
        cli_context_free(ctx);
        return -EINVAL;
    }
    /* an identity made now is kept: a session's access_policy names it by its key hash */
    return 0;
}

void cli_context_free(struct cli_context *ctx)
{
    json_decref(ctx->cfg);
    ctx->cfg = NULL;
    cli_identity_free(&ctx->id);
}

/* One request to the context's CAS; prints the CAS's reason and returns 1 on a non-2xx answer. */
int cli_owner_call(const char *prog, struct cli_context *ctx, const char *method, const char *path, const char *body,
                   struct cli_response *resp)
{
    char err[1024];
    if (cli_https(ctx->url, method, path, body, ctx->key_hash, &ctx->id, resp, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    if (resp->status < 200 || resp->status > 299) {
        fprintf(stderr, "%s: CAS refused (status %ld): %s\n", prog, resp->status, cli_error_message(resp));
        return 1;
    }
    return 0;
}

static int owner_show(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL;
    struct custos_option opts[] = {
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = custos_options_parse(argv[0], "Show the owner identity and owner configuration of a CAS.", opts, 2, argc,
                                   argv, NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    struct cli_context ctx;
    struct cli_response resp = {0};
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        return 1;
    ret = cli_owner_call(argv[0], &ctx, "GET", "/v1/owner", NULL, &resp);
    if (ret == 0) {
        json_dumpf(resp.body, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
    }
    cli_response_free(&resp);
    cli_context_free(&ctx);
    return ret;
}

/* cas owner allow-measurement HEX | allow-platform ID */
static int owner_allow(int argc, char **argv, const char *what, const char *path, const char *field)
{
    const char *cli_config = NULL, *cas = NULL;
    struct custos_strlist pos = {0};
    struct custos_option opts[] = {
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    char summary[160];
    if (strcmp(what, "launcher") == 0)
        snprintf(summary, sizeof(summary),
                 "Allow a launcher with this measurement (SCONE_HASH=1 cas-run) besides this CAS's own cas-run "
                 "(owner only).");
    else
        snprintf(summary, sizeof(summary), "Allow a backup CAS with this %s to register (owner only).", what);
    char expected[64];
    snprintf(expected, sizeof(expected), "one %s", what);
    int ret = cli_parse(argv[0], summary, opts, 2, argc, argv, &pos, 1, expected);
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    json_t *req = NULL;
    char *body = NULL;
    if (ret >= 0)
        goto out;
    ret = 1;
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    req = json_pack("{s:s}", field, pos.items[0]);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    ret = body ? cli_owner_call(argv[0], &ctx, "POST", path, body, &resp) : 1;
    if (ret == 0)
        printf("%s %s allowed\n", what, pos.items[0]);
out:
    free(body);
    json_decref(req);
    cli_response_free(&resp);
    cli_context_free(&ctx);
    custos_strlist_free(&pos);
    return ret;
}

static int owner_allow_measurement(int argc, char **argv)
{
    return owner_allow(argc, argv, "measurement", "/v1/owner/allowed-measurements", "measurement");
}

static int owner_allow_launcher(int argc, char **argv)
{
    return owner_allow(argc, argv, "launcher", "/v1/owner/allowed-launchers", "measurement");
}

static int owner_allow_platform(int argc, char **argv)
{
    return owner_allow(argc, argv, "platform", "/v1/owner/allowed-platforms", "platform_id");
}

/* ---- registrars: identities allowed to register and list backups, nothing else ------------------ */

/* The key hash of what identifies a registrar: a key hash (64 hex digits), or a file holding a
 * certificate, a private key (PKCS#8 PEM; read, never printed) or a CLI configuration. */
static int registrar_key_hash(const char *prog, const char *arg, char out[65])
{
    uint8_t h[32];
    size_t n = strlen(arg);
    if (n == 64 && custos_hex_decode(arg, h, 32) == 0) {
        custos_hex_encode(h, 32, out, false);
        return 0;
    }
    char *text = NULL, err[512] = "";
    size_t size = 0;
    int ret = cli_read_input(arg, 1u << 20, &text, &size);
    if (ret < 0) {
        fprintf(stderr, "%s: '%.100s' is not a key hash (64 hex digits), and as a file it cannot be read: %s\n", prog,
                arg, strerror(-ret));
        return ret;
    }
    json_t *cfg = NULL;
    const char *cert = NULL;
    if (cli_config_parse(text, size, &cfg, err, sizeof(err)) == 0)
        cert = json_string_value(json_object_get(json_object_get(cfg, "identity"), "certificate"));
    if (cfg && !cert) {
        snprintf(err, sizeof(err), "it is a CLI configuration without an identity");
        ret = -EINVAL;
    } else if (cert || strstr(text, "-----BEGIN CERTIFICATE-----")) {
        ret = custos_cert_pem_key_hash(cert ? cert : text, h);
        if (ret < 0)
            snprintf(err, sizeof(err), "its certificate cannot be read");
    } else if (strstr(text, "PRIVATE KEY-----")) {
        EVP_PKEY *key = NULL;
        ret = custos_key_from_pem(text, size, &key, err, sizeof(err));
        if (ret == 0 && (ret = custos_key_hash(key, h)) < 0)
            snprintf(err, sizeof(err), "cannot hash its public key");
        EVP_PKEY_free(key);
    } else {
        snprintf(err, sizeof(err), "it holds no certificate, private key or CLI configuration");
        ret = -EINVAL;
    }
    json_decref(cfg);
    custos_wipe(text, size);
    free(text);
    if (ret < 0) {
        fprintf(stderr, "%s: identity file %s: %s\n", prog, arg, err);
        return ret;
    }
    custos_hex_encode(h, 32, out, false);
    return 0;
}

/* cas owner allow-registrar KEYHASH|FILE, deny-registrar KEYHASH|FILE */
static int owner_registrar(int argc, char **argv, bool allow)
{
    const char *cli_config = NULL, *cas = NULL;
    struct custos_strlist pos = {0};
    struct custos_option opts[] = {
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = cli_parse(argv[0],
                        allow ? "Allow the identity KEYHASH|FILE to register backups and list them, and nothing else "
                                "(owner only). FILE: a certificate, a private key or a CLI configuration."
                              : "Take the registrar role from the identity KEYHASH|FILE, at once (owner only).",
                        opts, 2, argc, argv, &pos, 1, "one KEYHASH (64 hex digits) or identity FILE");
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    char hash[65], path[128], *body = NULL;
    json_t *req = NULL;
    if (ret >= 0)
        goto out;
    ret = 2;
    if (registrar_key_hash(argv[0], pos.items[0], hash) < 0)
        goto out;
    ret = 1;
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    if (allow) {
        req = json_pack("{s:s}", "key_hash", hash);
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        ret = body ? cli_owner_call(argv[0], &ctx, "POST", "/v1/owner/registrars", body, &resp) : 1;
    } else {
        snprintf(path, sizeof(path), "/v1/owner/registrars/%s", hash);
        ret = cli_owner_call(argv[0], &ctx, "DELETE", path, NULL, &resp);
    }
    if (ret == 0)
        printf("registrar %s %s\n", hash,
               !allow                                                ? "denied"
               : json_is_true(json_object_get(resp.body, "already")) ? "was already allowed"
                                                                     : "allowed");
out:
    free(body);
    json_decref(req);
    cli_response_free(&resp);
    cli_context_free(&ctx);
    custos_strlist_free(&pos);
    return ret;
}

static int owner_allow_registrar(int argc, char **argv)
{
    return owner_registrar(argc, argv, true);
}

static int owner_deny_registrar(int argc, char **argv)
{
    return owner_registrar(argc, argv, false);
}

/* The name and entry of the context's CAS in its configuration (a copy, without the owner mark). */
static json_t *context_cas_entry(struct cli_context *ctx, const char **name)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(ctx->cfg, "cas"), k, v) {
        if (!strcmp(json_string_value(json_object_get(v, "url")) ?: "", ctx->url)) {
            json_t *e = json_deep_copy(v);
            json_object_set_new(e, "owner", json_false());
            *name = k;
            return e;
        }
    }
    return NULL;
}

/* cas owner make-registrar --out FILE: a fresh identity, allowed as registrar, in a CLI configuration
 * of its own (the CAS pinned, the default), without the owner's identity. */
static int owner_make_registrar(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL, *out_path = NULL;
    struct custos_option opts[] = {
        {"out", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "FILE",
         "write the registrar's CLI configuration to FILE (0600; never replaces a file)", &out_path},
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = custos_options_parse(argv[0],
                                   "Create a registrar: a new identity that may register backups and list them and "
                                   "nothing else, allowed now, and written with the CAS into a CLI configuration of "
                                   "its own (for cas register-backup; the owner's identity is not in it).",
                                   opts, 3, argc, argv, NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    if (!out_path || !*out_path) {
        fprintf(stderr, "%s: --out FILE is required\n", argv[0]);
        return 2;
    }
    struct cli_context ctx = {0};
    struct cli_identity rid = {0};
    struct cli_response resp = {0};
    json_t *rcfg = NULL, *req = NULL;
    char err[1024], dir[4096], *text = NULL, *body = NULL;
    const char *name = NULL;
    struct stat sb;
    ret = 1;
    if (lstat(out_path, &sb) == 0) {
        fprintf(stderr, "%s: %s exists; it is not replaced (it may hold an identity): choose another --out\n", argv[0],
                out_path);
        goto out;
    }
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    json_t *entry = context_cas_entry(&ctx, &name);
    rcfg = entry ? json_pack("{s:i, s:{s:o}, s:s}", "version", 1, "cas", name, entry, "default_cas", name) : NULL;
    if (!rcfg || cli_identity(rcfg, NULL, &rid, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], rcfg ? err : "the CAS entry cannot be copied");
        goto out;
    }
    /* The file first (crash-safe, never over another): a registrar is only allowed once its key is kept. */
    snprintf(dir, sizeof(dir), "%s", out_path);
    text = json_dumps(rcfg, JSON_INDENT(2) | JSON_SORT_KEYS);
    int wret = custos_mkdirs(dirname(dir), 0700);
    if (wret == 0)
        wret = text ? custos_write_file_new(out_path, text, strlen(text), 0600) : -ENOMEM;
    if (wret < 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", argv[0], out_path, strerror(-wret));
        goto out;
    }
    req = json_pack("{s:s}", "key_hash", rid.key_hash);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!body || cli_owner_call(argv[0], &ctx, "POST", "/v1/owner/registrars", body, &resp) != 0) {
        fprintf(stderr,
                "%s: the new identity (key hash %s) in %s is NOT allowed as registrar; allow it with: cas owner "
                "allow-registrar %s, or delete the file\n",
                argv[0], rid.key_hash, out_path, out_path);
        goto out;
    }
    printf("registrar %s allowed on CAS '%s' (%s)\n", rid.key_hash, name, ctx.url);
    printf("its CLI configuration: %s (use it with SCONE_CLI_CONFIG=%s cas register-backup ADDR)\n", out_path,
           out_path);
    ret = 0;
out:
    if (text) {
        custos_wipe(text, strlen(text));
        free(text);
    }
    free(body);
    json_decref(req);
    json_decref(rcfg);
    cli_response_free(&resp);
    cli_identity_free(&rid);
    cli_context_free(&ctx);
    return ret;
}

int cmd_owner(int argc, char **argv)
{
    static const struct cli_command cmds[] = {
        {"show", owner_show, "show the owner identity and configuration of a CAS"},
        {"allow-measurement", owner_allow_measurement, "allow backups running this CAS measurement"},
        {"allow-platform", owner_allow_platform, "allow backups on this platform ID"},
        {"allow-launcher", owner_allow_launcher, "allow another cas-run build (by its measurement) to attest"},
        {"allow-registrar", owner_allow_registrar, "allow an identity to register and list backups, nothing else"},
        {"deny-registrar", owner_deny_registrar, "take the registrar role from an identity"},
        {"make-registrar", owner_make_registrar, "create a registrar identity and its CLI configuration"},
    };
    return cli_dispatch(argv[0], cmds, sizeof(cmds) / sizeof(cmds[0]), argc, argv);
}
