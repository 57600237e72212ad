/* SPDX-License-Identifier: Apache-2.0 */
/* cas provision ADDR -c KEYHASH --token TOKEN --config-file owner.toml with-attestation [flags]
 * cas attest ADDR [-c KEYHASH] [flags] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A table: one option per row. */
// clang-format off
#define TRUST_OPTIONS(t)                                                                              \
    {"platform", 0, NULL, CUSTOS_OPT_LIST, NULL, 0, 0, "ID", "allowed platform ID of the CAS's node",   \
     &(t).platforms},                                                                                 \
    {"measurement", 0, NULL, CUSTOS_OPT_LIST, NULL, 0, 0, "HEX",                                       \
     "allowed CAS measurement (SHA-256 of casd)", &(t).measurements},                                 \
    {"only_for_testing-trust-any", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,                         \
     "accept any platform, simulated ones included (testing only)", &(t).trust_any},                  \
    {"only_for_testing-debug", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,                             \
     "accept a CAS in debug mode (testing only)", &(t).debug},                                        \
    {"only_for_testing-ignore-signer", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,                     \
     "accept any CAS measurement (testing only)", &(t).ignore_signer},                                \
    {"outdated-tcb", 'G', NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,                                     \
     "tolerate an outdated TCB (SGX; no effect on sim/tpm2)", &(t).tolerate_g},                       \
    {"config-needed", 'C', NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,                                    \
     "tolerate platform configuration needed (SGX; no effect on sim/tpm2)", &(t).tolerate_c},         \
    {"sw-hardening-needed", 'S', NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,                              \
     "tolerate software hardening needed (SGX; no effect on sim/tpm2)", &(t).tolerate_s}
// clang-format on

static void trust_free(struct cli_trust *t)
{
    custos_strlist_free(&t->platforms);
    custos_strlist_free(&t->measurements);
}

/* Records a CAS under its host name in the configuration and makes it the default. */
static void record_cas(json_t *cfg, const char *name, const char *url, const char *key_hash, const char *cert,
                       json_t *evidence, bool owner)
{
    json_t *entry = json_pack("{s:s, s:s, s:s, s:O, s:b}", "url", url, "key_hash", key_hash, "certificate", cert,
                              "evidence", evidence, "owner", owner);
    json_object_set_new(json_object_get(cfg, "cas"), name, entry);
    json_object_set_new(cfg, "default_cas", json_string(name));
}

int cmd_attest(int argc, char **argv)
{
    struct cli_trust t = {0};
    struct custos_strlist pos = {0};
    const char *key_hash = NULL, *cli_config = NULL;
    struct custos_option opts[] = {
        {"cas-key-hash", 'c', NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "KEYHASH",
         "expected key hash of the CAS (from its log)", &key_hash},
        CLI_OPT_CLI_CONFIG(cli_config),
        TRUST_OPTIONS(t),
    };
    json_t *cfg = NULL, *evidence = NULL;
    char *cert = NULL, err[2048], url[512], host[300], path_buf[4096], got_hash[65];
    int ret = custos_options_parse(argv[0],
                                   "Attest a CAS at ADDR (host, host:port or URL) and record it in "
                                   "the CLI configuration.",
                                   opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &pos);
    if (ret) {
        ret = ret > 0 ? 0 : 2;
        goto out;
    }
    ret = 2;
    if (pos.count != 1 || cli_normalize_address(pos.items[0], url, sizeof(url), host, sizeof(host)) < 0) {
        fprintf(stderr, "%s: expected one CAS address (host, host:port or https://host:port)\n", argv[0]);
        goto out;
    }
    ret = 1;
    const char *path = cli_config_path(cli_config, path_buf, sizeof(path_buf));
    if (cli_config_load(path, &cfg, err, sizeof(err)) < 0 ||
        cli_attest_cas(url, key_hash, &t, &evidence, &cert, got_hash, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        goto out;
    }
    json_t *old = json_object_get(json_object_get(cfg, "cas"), host);
    record_cas(cfg, host, url, got_hash, cert, evidence, json_is_true(json_object_get(old, "owner")));
    if (cli_config_save(path, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        goto out;
    }
    printf("CAS %s at %s/ is trustworthy (key hash %s, platform %s)\n", host, url, got_hash,
           json_string_value(json_object_get(evidence, "platform_id")));
    ret = 0;
out:
    json_decref(cfg);
    json_decref(evidence);
    free(cert);
    trust_free(&t);
    custos_strlist_free(&pos);
    return ret;
}

/* What `cas provision` works with, gathered step by step. Freed (secrets wiped) by provision_free. */
struct provision {
    const char *prog;
    struct cli_trust trust;
    struct custos_strlist pos;
    const char *key_hash, *token, *token_file, *config_file, *cli_config, *identity;
    char url[512], host[300], path_buf[4096];
    const char *path; /* the CLI configuration file */
    char *token_buf;  /* the token read from --token-file (secret) */
    char *toml;       /* the owner configuration as given */
    size_t toml_size;
    json_t *owner_cfg; /* ... and parsed */
    json_t *cfg;       /* the CLI configuration */
    struct cli_identity id;
    json_t *evidence; /* of the attested CAS */
    char *cert;
    char got_hash[65];
};

static void provision_free(struct provision *p)
{
    json_decref(p->cfg);
    json_decref(p->evidence);
    json_decref(p->owner_cfg);
    cli_identity_free(&p->id);
    free(p->cert);
    free(p->toml);
    if (p->token_buf) {
        custos_wipe(p->token_buf, strlen(p->token_buf));
        free(p->token_buf);
    }
    trust_free(&p->trust);
    custos_strlist_free(&p->pos);
}

/* Options and positional arguments. Returns -1 to go on, or the exit status (0 after --help, 2 for a
 * usage error, named). */
static int provision_args(struct provision *p, int argc, char **argv)
{
    struct custos_option opts[] = {
        {"cas-key-hash", 'c', NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "KEYHASH",
         "key hash of the CAS, from its log ('CAS key hash')", &p->key_hash},
        {"token", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "TOKEN",
         "provisioning token, from its log ('CAS provisioning token'); visible to other local users while "
         "the command runs: prefer --token-file",
         &p->token},
        {"token-file", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "FILE",
         "read the provisioning token from FILE (- for stdin)", &p->token_file},
        {"config-file", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "FILE", "owner configuration (TOML)", &p->config_file},
        {"identity", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "FILE",
         "owner identity to use (PKCS#8 PEM private key); default: the CLI configuration's", &p->identity},
        CLI_OPT_CLI_CONFIG(p->cli_config),
        TRUST_OPTIONS(p->trust),
    };
    int ret = custos_options_parse(argv[0],
                                   "Attest the CAS at ADDR, then provision it with the token and the owner "
                                   "configuration and claim ownership for this CLI's identity.\n"
                                   "Usage: cas provision ADDR -c KEYHASH --token TOKEN --config-file FILE "
                                   "with-attestation [flags]",
                                   opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &p->pos);
    if (ret)
        return ret > 0 ? 0 : 2;
    if (p->pos.count != 2 || strcmp(p->pos.items[1], "with-attestation") != 0) {
        fprintf(stderr,
                "%s: expected ADDR with-attestation (provisioning without attestation is not "
                "offered)\n",
                p->prog);
        return 2;
    }
    if (cli_normalize_address(p->pos.items[0], p->url, sizeof(p->url), p->host, sizeof(p->host)) < 0) {
        fprintf(stderr, "%s: '%s' is not a CAS address (host, host:port or https://host:port)\n", p->prog,
                p->pos.items[0]);
        return 2;
    }
    if (!p->key_hash || (!p->token == !p->token_file) || !p->config_file) {
        fprintf(stderr,
                "%s: -c KEYHASH, one of --token TOKEN or --token-file FILE, and --config-file FILE are "
                "required\n",
                p->prog);
        return 2;
    }
    return -1;
}

/* --token-file: the token without trailing newlines and spaces. */
static int provision_read_token(struct provision *p)
{
    size_t n = 0;
    if (!p->token_file)
        return 0;
    int ret = cli_read_input(p->token_file, 4096, &p->token_buf, &n);
    if (ret < 0) {
        fprintf(stderr, "%s: cannot read token file %s: %s\n", p->prog, p->token_file, strerror(-ret));
        return ret;
    }
    while (n && (p->token_buf[n - 1] == '\n' || p->token_buf[n - 1] == '\r' || p->token_buf[n - 1] == ' '))
        p->token_buf[--n] = '\0';
    p->token = p->token_buf;
    return 0;
}

static int provision_read_owner_config(struct provision *p)
{
    char err[2048];
    int ret = cli_read_input(p->config_file, 1u << 20, &p->toml, &p->toml_size);
    if (ret < 0) {
        fprintf(stderr, "%s: cannot read owner configuration %s: %s\n", p->prog, p->config_file, strerror(-ret));
        return ret;
    }
    if ((ret = custos_toml_parse(p->toml, p->toml_size, &p->owner_cfg, err, sizeof(err))) < 0) {
        fprintf(stderr, "%s: owner configuration %s: %s\n", p->prog, p->config_file, err);
        return ret;
    }
    return 0;
}

/* The CLI configuration and the owner identity, saved before anything is sent: if CAS records the
 * owner and the answer is lost, the owner key must still exist. */
static int provision_load_identity(struct provision *p)
{
    char err[2048];
    int ret;
    p->path = cli_config_path(p->cli_config, p->path_buf, sizeof(p->path_buf));
    if ((ret = cli_config_load(p->path, &p->cfg, err, sizeof(err))) < 0 ||
        (ret = cli_identity(p->cfg, p->identity, &p->id, err, sizeof(err))) < 0 ||
        (p->id.changed && (ret = cli_config_save(p->path, p->cfg, err, sizeof(err))) < 0)) {
        fprintf(stderr, "%s: %s\n", p->prog, err);
        return ret;
    }
    return 0;
}

/* What is about to happen, and which owner configuration sections this platform does not use. */
static void provision_announce(const struct provision *p)
{
    const char *section;
    json_t *v;
    printf("This command will provision and claim ownership of a CAS.\n"
           "    The ownership is bound to the cryptographic identity used now (key hash %s).\n"
           "    Holding it is needed to change CAS settings and register backups: keep %s safe.\n",
           p->id.key_hash, p->path);
    json_object_foreach(p->owner_cfg, section, v) {
        if (strcmp(section, "api_identity") != 0)
            printf("CAS owner configuration section [%s] is not used by this platform; it is stored as "
                   "given.\n",
                   section);
    }
}

static int provision_attest(struct provision *p)
{
    char err[2048];
    int ret = cli_attest_cas(p->url, p->key_hash, &p->trust, &p->evidence, &p->cert, p->got_hash, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "%s: %s\n", p->prog, err);
        return ret;
    }
    printf("CAS %s at %s/ is trustworthy\n", p->host, p->url);
    return 0;
}

/* POST /v1/provision to the attested CAS: the token, the owner configuration and, as the CAS's trust
 * policy for its backups, the relaxations used now. */
static int provision_send(struct provision *p)
{
    struct cli_response resp = {0};
    char err[2048];
    char *body = NULL;
    int ret = -EIO;
    json_t *plist = json_array();
    for (size_t i = 0; plist && i < p->trust.platforms.count; i++)
        json_array_append_new(plist, json_string(p->trust.platforms.items[i]));
    json_t *req =
        json_pack("{s:s, s:s, s:{s:b, s:b, s:o}}", "token", p->token, "owner_config", p->toml, "policy",
                  "trust_any_platform", p->trust.trust_any, "allow_debug", p->trust.debug, "platforms", plist);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!body || cli_https(p->url, "POST", "/v1/provision", body, p->got_hash, &p->id, &resp, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", p->prog, body ? err : "out of memory");
        goto out;
    }
    if (resp.status != 200) {
        fprintf(stderr, "%s: CAS refused the provisioning (status %ld): %s\n", p->prog, resp.status,
                cli_error_message(&resp));
        goto out;
    }
    ret = 0;
out:
    if (body) {
        custos_wipe(body, strlen(body));
        free(body);
    }
    json_decref(req);
    cli_response_free(&resp);
    return ret;
}

/* The CAS, as its owner, becomes the CLI configuration's default. */
static int provision_record(struct provision *p)
{
    char err[2048];
    record_cas(p->cfg, p->host, p->url, p->got_hash, p->cert, p->evidence, true);
    int ret = cli_config_save(p->path, p->cfg, err, sizeof(err));
    if (ret < 0)
        fprintf(stderr,
                "%s: %s\n(CAS IS provisioned and you are its owner; the identity above must be "
                "kept)\n",
                p->prog, err);
    return ret;
}

int cmd_provision(int argc, char **argv)
{
    struct provision p = {.prog = argv[0]};
    int ret = provision_args(&p, argc, argv);
    if (ret >= 0)
        goto out;
    ret = 1;
    if (provision_read_token(&p) < 0 || provision_read_owner_config(&p) < 0 || provision_load_identity(&p) < 0)
        goto out;
    provision_announce(&p);
    if (provision_attest(&p) < 0 || provision_send(&p) < 0 || provision_record(&p) < 0)
        goto out;
    printf("Done, CAS configuration was successfully provisioned. You are now the owner of the CAS.\n");
    ret = 0;
out:
    provision_free(&p);
    return ret;
}
