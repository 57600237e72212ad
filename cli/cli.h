/* SPDX-License-Identifier: Apache-2.0 */
/* The cas command-line tool: a table of subcommands, one cmd_*.c file per group. */
#pragma once

#include "custos.h"
#include "toml.h"

struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

/* Dispatches argv[1] over a table; prints the table on --help or a bad name. */
int cli_dispatch(const char *prog, const struct cli_command *cmds, size_t count, int argc, char **argv);

/* Parses a command's options and exactly `want` positional arguments (described by `what` in the
 * error). Returns -1 when the command goes on, else its exit status (0 after --help, 2 on bad usage). */
int cli_parse(const char *prog, const char *summary, struct custos_option *opts, size_t count, int argc, char **argv,
              struct custos_strlist *pos, size_t want, const char *what);

/* Reads a whole file ("-" for stdin) of at most max_size bytes; caller frees. */
int cli_read_input(const char *path, size_t max_size, char **out, size_t *out_size);

int cmd_las(int argc, char **argv);

/* ---- configuration (config.c) ---- */
struct cli_identity {
    EVP_PKEY *key;
    char *key_pem; /* secret: wiped by cli_identity_free */
    char *cert_pem;
    char key_hash[65];
    bool changed; /* created or imported now: the configuration must be saved */
};
/* --cli-config, else CAS_CLI_CONFIG, else SCONE_CLI_CONFIG, else ~/.cas/config (else an existing
 * ~/.cas/config.json of earlier versions, while ~/.cas/config does not exist). */
const char *cli_config_path(const char *override, char *buf, size_t size);
/* Checks the form of a configuration file's text (fuzzed). */
int cli_config_parse(const char *text, size_t size, json_t **out, char *err, size_t err_size);
/* A missing file gives an empty configuration. */
int cli_config_load(const char *path, json_t **out, char *err, size_t err_size);
int cli_config_save(const char *path, json_t *cfg, char *err, size_t err_size);
/* The identity from the configuration, imported from import_file (PKCS#8 PEM), or created. */
int cli_identity(json_t *cfg, const char *import_file, struct cli_identity *out, char *err, size_t err_size);
void cli_identity_free(struct cli_identity *id);

/* ---- HTTPS client (https.c) ---- */
struct cli_response {
    long status;
    json_t *body;           /* parsed JSON answer, or NULL */
    char peer_key_hash[65]; /* key hash of the server's certificate */
};
/* Normalizes host, host:port or URL into "https://host:port" (default port 8081). */
int cli_normalize_address(const char *addr, char *url, size_t url_size, char *host, size_t host_size);
/* One request. pin: expected server key hash (hex) or NULL to accept any server key (its hash is
 * returned in resp->peer_key_hash). id: client identity or NULL. body: JSON text or NULL. */
int cli_https(const char *url, const char *method, const char *path, const char *body, const char *pin,
              const struct cli_identity *id, struct cli_response *resp, char *err, size_t err_size);
void cli_response_free(struct cli_response *resp);
/* The message of an error answer {"error":{"message":...}}, or a generic text. */
const char *cli_error_message(const struct cli_response *resp);

int cmd_provision(int argc, char **argv);
int cmd_attest(int argc, char **argv);
int cmd_owner(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_session(int argc, char **argv);
int cmd_register_backup(int argc, char **argv);
int cmd_backups(int argc, char **argv);

/* ---- attestation of a CAS (attest.c) ---- */
struct cli_trust {
    struct custos_strlist platforms;    /* --platform ID */
    struct custos_strlist measurements; /* --measurement HEX */
    bool trust_any, debug, ignore_signer;
    bool tolerate_g, tolerate_c, tolerate_s; /* -G -C -S: SGX advisories, no effect on sim/tpm2 */
};
/* Attests the CAS at url. expected_key_hash (hex) pins its TLS key, or NULL to learn it. On success
 * returns the evidence (caller json_decref's), its certificate (caller frees) and key hash. */
int cli_attest_cas(const char *url, const char *expected_key_hash, const struct cli_trust *trust, json_t **evidence,
                   char **cert_pem, char key_hash[65], char *err, size_t err_size);
/* The CAS named (or addressed) by which, else the default one, from the configuration. A name is
 * looked up first, then an address; the error lists the known names. */
int cli_find_cas(json_t *cfg, const char *which, const char **url, const char **key_hash, char *err, size_t err_size);
/* A CAS name: 1 to 64 of A-Z a-z 0-9 . - _ */
bool cli_cas_name_valid(const char *name);
/* Records entry (taken) under name; another name of the same URL is dropped (a rename). default_cas
 * becomes name when make_default, or when it names no recorded CAS (none set, or the dropped name). */
void cli_record_cas(json_t *cfg, const char *name, json_t *entry, bool make_default);
/* The URL of another CAS already recorded under name (NULL when name is free or names url). */
const char *cli_name_taken(json_t *cfg, const char *name, const char *url);

/* ---- owner commands (cmd_owner.c) ---- */
struct cli_context {
    char path_buf[4096];
    const char *path;
    json_t *cfg;
    const char *url, *key_hash;
    struct cli_identity id;
};
int cli_owner_context(const char *prog, const char *cli_config, const char *cas, struct cli_context *ctx);
void cli_context_free(struct cli_context *ctx);
int cli_owner_call(const char *prog, struct cli_context *ctx, const char *method, const char *path, const char *body,
                   struct cli_response *resp);

/* The option rows every command that talks to a CAS shares (one place, so they cannot drift). */
// clang-format off
#define CLI_OPT_CAS(var)                                                                                      \
    {"cas", 0, "SCONE_CAS_ADDR", CUSTOS_OPT_STRING, NULL, 0, 0, "NAME|ADDR",                               \
     "which CAS (default: the CLI configuration's default CAS)", &(var)}
#define CLI_OPT_CLI_CONFIG(var)                                                                               \
    {"cli-config", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "FILE",                                          \
     "CLI configuration [env: CAS_CLI_CONFIG, SCONE_CLI_CONFIG; default ~/.cas/config]", &(var)}
// clang-format on
