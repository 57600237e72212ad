/* SPDX-License-Identifier: Apache-2.0 */
/* cas provision ADDR -c KEYHASH --token TOKEN --config-file owner.toml with-attestation [flags]
 * cas attest ADDR [-c KEYHASH] [flags] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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

static void trust_free(struct cli_trust *t)
{
    custos_strlist_free(&t->platforms);
    custos_strlist_free(&t->measurements);
}

/* Records a CAS under its host name in the configuration and makes it the default. */
static void record_cas(json_t *cfg, const char *name, const char *url, const char *key_hash,
                       const char *cert, json_t *evidence, bool owner)
{
    json_t *entry = json_pack("{s:s, s:s, s:s, s:O, s:b}", "url", url, "key_hash", key_hash, "certificate",
                              cert, "evidence", evidence, "owner", owner);
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
    int ret = custos_options_parse(argv[0], "Attest a CAS at ADDR (host, host:port or URL) and record it in "
                                   "the CLI configuration.", opts, sizeof(opts) / sizeof(opts[0]), argc,
                                   argv, &pos);
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

int cmd_provision(int argc, char **argv)
{
    struct cli_trust t = {0};
    struct custos_strlist pos = {0};
    const char *key_hash = NULL, *token = NULL, *token_file = NULL, *config_file = NULL, *cli_config = NULL,
               *identity = NULL;
    struct custos_option opts[] = {
        {"cas-key-hash", 'c', NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "KEYHASH",
         "key hash of the CAS, from its log ('CAS key hash')", &key_hash},
        {"token", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "TOKEN",
         "provisioning token, from its log ('CAS provisioning token'); visible to other local users while "
         "the command runs: prefer --token-file", &token},
        {"token-file", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "FILE",
         "read the provisioning token from FILE (- for stdin)", &token_file},
        {"config-file", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "FILE", "owner configuration (TOML)",
         &config_file},
        {"identity", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "FILE",
         "owner identity to use (PKCS#8 PEM private key); default: the CLI configuration's", &identity},
        CLI_OPT_CLI_CONFIG(cli_config),
        TRUST_OPTIONS(t),
    };
    json_t *cfg = NULL, *evidence = NULL, *owner_cfg = NULL, *req = NULL;
    struct cli_identity id = {0};
    struct cli_response resp = {0};
    char *cert = NULL, *toml = NULL, *body = NULL, *token_buf = NULL, err[2048], url[512], host[300],
         path_buf[4096];
    char got_hash[65];
    size_t toml_size = 0;
    int ret = custos_options_parse(argv[0],
                                   "Attest the CAS at ADDR, then provision it with the token and the owner "
                                   "configuration and claim ownership for this CLI's identity.\n"
                                   "Usage: cas provision ADDR -c KEYHASH --token TOKEN --config-file FILE "
                                   "with-attestation [flags]",
                                   opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &pos);
    if (ret) {
        ret = ret > 0 ? 0 : 2;
        goto out;
    }
    ret = 2;
    if (pos.count != 2 || strcmp(pos.items[1], "with-attestation") != 0) {
        fprintf(stderr, "%s: expected ADDR with-attestation (provisioning without attestation is not "
                "offered)\n", argv[0]);
        goto out;
    }
    if (cli_normalize_address(pos.items[0], url, sizeof(url), host, sizeof(host)) < 0) {
        fprintf(stderr, "%s: '%s' is not a CAS address (host, host:port or https://host:port)\n", argv[0],
                pos.items[0]);
        goto out;
    }
    if (!key_hash || (!token == !token_file) || !config_file) {
        fprintf(stderr, "%s: -c KEYHASH, one of --token TOKEN or --token-file FILE, and --config-file FILE are "
                "required\n", argv[0]);
        goto out;
    }
    ret = 1;
    if (token_file) {
        size_t n = 0;
        int rr = cli_read_input(token_file, 4096, &token_buf, &n);
        if (rr < 0) {
            fprintf(stderr, "%s: cannot read token file %s: %s\n", argv[0], token_file, strerror(-rr));
            goto out;
        }
        while (n && (token_buf[n - 1] == '\n' || token_buf[n - 1] == '\r' || token_buf[n - 1] == ' '))
            token_buf[--n] = '\0';
        token = token_buf;
    }
    int r = cli_read_input(config_file, 1u << 20, &toml, &toml_size);
    if (r < 0) {
        fprintf(stderr, "%s: cannot read owner configuration %s: %s\n", argv[0], config_file, strerror(-r));
        goto out;
    }
    if (custos_toml_parse(toml, toml_size, &owner_cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: owner configuration %s: %s\n", argv[0], config_file, err);
        goto out;
    }
    const char *path = cli_config_path(cli_config, path_buf, sizeof(path_buf));
    if (cli_config_load(path, &cfg, err, sizeof(err)) < 0 ||
        cli_identity(cfg, identity, &id, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        goto out;
    }
    /* The identity is saved before anything is sent: if CAS records the owner and the answer is
     * lost, the owner key must still exist. */
    if (id.changed && cli_config_save(path, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        goto out;
    }
    printf("This command will provision and claim ownership of a CAS.\n"
           "    The ownership is bound to the cryptographic identity used now (key hash %s).\n"
           "    Holding it is needed to change CAS settings and register backups: keep %s safe.\n",
           id.key_hash, path);
    const char *section;
    json_t *v;
    json_object_foreach(owner_cfg, section, v) {
        if (strcmp(section, "api_identity") != 0)
            printf("CAS owner configuration section [%s] is not used by this platform; it is stored as "
                   "given.\n", section);
    }
    if (cli_attest_cas(url, key_hash, &t, &evidence, &cert, got_hash, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        goto out;
    }
    printf("CAS %s at %s/ is trustworthy\n", host, url);
    /* The relaxations used now are also the CAS's trust policy for its backups. */
    json_t *plist = json_array();
    for (size_t i = 0; i < t.platforms.count; i++)
        json_array_append_new(plist, json_string(t.platforms.items[i]));
    req = json_pack("{s:s, s:s, s:{s:b, s:b, s:o}}", "token", token, "owner_config", toml, "policy",
                    "trust_any_platform", t.trust_any, "allow_debug", t.debug, "platforms", plist);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!body || cli_https(url, "POST", "/v1/provision", body, got_hash, &id, &resp, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], body ? err : "out of memory");
        goto out;
    }
    if (resp.status != 200) {
        fprintf(stderr, "%s: CAS refused the provisioning (status %ld): %s\n", argv[0], resp.status,
                cli_error_message(&resp));
        goto out;
    }
    record_cas(cfg, host, url, got_hash, cert, evidence, true);
    if (cli_config_save(path, cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n(CAS IS provisioned and you are its owner; the identity above must be "
                "kept)\n", argv[0], err);
        goto out;
    }
    printf("Done, CAS configuration was successfully provisioned. You are now the owner of the CAS.\n");
    ret = 0;
out:
    if (body) {
        custos_wipe(body, strlen(body));
        free(body);
    }
    json_decref(req);
    json_decref(cfg);
    json_decref(evidence);
    json_decref(owner_cfg);
    cli_response_free(&resp);
    cli_identity_free(&id);
    free(cert);
    free(toml);
    if (token_buf) {
        custos_wipe(token_buf, strlen(token_buf));
        free(token_buf);
    }
    trust_free(&t);
    custos_strlist_free(&pos);
    return ret;
}
