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

/* The CAS entry of the CLI configuration. */
static json_t *cas_entry(const char *url, const char *key_hash, const char *cert, json_t *evidence, bool owner)
{
    return json_pack("{s:s, s:s, s:s, s:O, s:b}", "url", url, "key_hash", key_hash, "certificate", cert, "evidence",
                     evidence, "owner", owner);
}

/* The name a CAS at url is recorded under: --name, else (with reuse) the name it already has, else
 * fallback. Fails (named) when the name is not valid or names another CAS. */
static const char *cas_name_for(const char *prog, json_t *cfg, const char *given, const char *url, const char *fallback,
                                bool reuse)
{
    const char *name = given;
    if (!name && reuse) {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(cfg, "cas"), k, v)
            if (!name && !strcmp(json_string_value(json_object_get(v, "url")) ?: "", url))
                name = k;
    }
    if (!name)
        name = fallback;
    if (!cli_cas_name_valid(name)) {
        fprintf(stderr, "%s: '%.100s' is not a CAS name (1 to 64 of A-Z a-z 0-9 . - _)%s\n", prog, name ?: "",
                given ? "" : "; give one with --name NAME");
        return NULL;
    }
    const char *other = cli_name_taken(cfg, name, url);
    if (other) {
        fprintf(stderr,
                "%s: the CLI configuration already names another CAS '%s' (%s); choose another name with --name "
                "NAME\n",
                prog, name, other);
        return NULL;
    }
    return name;
}

int cmd_attest(int argc, char **argv)
{
    struct cli_trust t = {0};
    struct custos_strlist pos = {0};
    const char *key_hash = NULL, *cli_config = NULL, *name = NULL;
    bool make_default = false;
    struct custos_option opts[] = {
        {"cas-key-hash", 'c', NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "KEYHASH",
         "expected key hash of the CAS (from its log)", &key_hash},
        {"name", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "NAME",
         "record the CAS under NAME (default: the name it has, else its host)", &name},
        {"default", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,
         "make it the default CAS (it becomes the default anyway when none is set)", &make_default},
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
    if (cli_config_load(path, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        goto out;
    }
    if (!(name = cas_name_for(argv[0], cfg, name, url, host, true)))
        goto out;
    if (cli_attest_cas(url, key_hash, &t, &evidence, &cert, got_hash, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        goto out;
    }
    /* the owner mark stays while the CAS is the same one (its URL and key hash), renamed or not */
    const char *k;
    json_t *old;
    bool owner = false;
    json_object_foreach(json_object_get(cfg, "cas"), k, old)
        owner |= json_is_true(json_object_get(old, "owner")) &&
                 !strcmp(json_string_value(json_object_get(old, "url")) ?: "", url) &&
                 !strcmp(json_string_value(json_object_get(old, "key_hash")) ?: "", got_hash);
    cli_record_cas(cfg, name, cas_entry(url, got_hash, cert, evidence, owner), make_default);
    if (cli_config_save(path, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        goto out;
    }
    printf("CAS %s at %s/ is trustworthy (key hash %s, platform %s)\n", host, url, got_hash,
           json_string_value(json_object_get(evidence, "platform_id")));
    printf("recorded as CAS '%s'%s in %s\n", name,
           !strcmp(json_string_value(json_object_get(cfg, "default_cas")) ?: "", name) ? " (the default CAS)" : "",
           path);
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
    const char *key_hash, *token, *token_file, *config_file, *cli_config, *identity, *name;
    bool make_default;
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
        {"name", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "NAME",
         "record the CAS under NAME in the CLI configuration (default: the owner configuration's "
         "[api_identity] common_name)",
         &p->name},
        {"default", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,
         "make it the default CAS (it becomes the default anyway when none is set)", &p->make_default},
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

/* The name the CAS gets in the CLI configuration, checked before anything is sent. */
static int provision_name(struct provision *p)
{
    /* without a common_name CAS refuses the owner configuration, naming the problem */
    const char *cn = json_string_value(json_object_get(json_object_get(p->owner_cfg, "api_identity"), "common_name"));
    if (!p->name && cn && !cli_cas_name_valid(cn)) {
        fprintf(stderr,
                "%s: [api_identity] common_name '%.100s' cannot name the CAS in the CLI configuration (1 to 64 of "
                "A-Z a-z 0-9 . - _); give a name with --name NAME\n",
                p->prog, cn);
        return -EINVAL;
    }
    p->name = cas_name_for(p->prog, p->cfg, p->name, p->url, cn ? cn : p->host, false);
    return p->name ? 0 : -EINVAL;
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

/* The CAS, as its owner, under its name; the default CAS when none is set or --default is given. */
static int provision_record(struct provision *p)
{
    char err[2048];
    cli_record_cas(p->cfg, p->name, cas_entry(p->url, p->got_hash, p->cert, p->evidence, true), p->make_default);
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
    if (provision_read_token(&p) < 0 || provision_read_owner_config(&p) < 0 || provision_load_identity(&p) < 0 ||
        provision_name(&p) < 0)
        goto out;
    provision_announce(&p);
    if (provision_attest(&p) < 0 || provision_send(&p) < 0 || provision_record(&p) < 0)
        goto out;
    printf("Done, CAS configuration was successfully provisioned. You are now the owner of the CAS.\n");
    printf("CAS recorded as '%s'%s in %s\n", p.name,
           !strcmp(json_string_value(json_object_get(p.cfg, "default_cas")) ?: "", p.name) ? " (the default CAS)" : "",
           p.path);
    ret = 0;
out:
    provision_free(&p);
    return ret;
}
