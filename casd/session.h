/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions (policies): the YAML document's checks and normal form, its hash, its secrets (generated,
 * kept across updates, exported and imported), secret references ($$CAS::NAME$$) and the matching of
 * a launcher's command against a service. Pure functions over jansson trees: no database, no locks
 * (casd/sessions.c stores them; docs/design.md "Sessions (policies) and secrets" is the contract). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CAS_SESSION_MAX_TEXT (1u << 20)
#define CAS_SESSION_MAX_SERVICES 64
#define CAS_SESSION_MAX_IMAGES 64
#define CAS_SESSION_MAX_SECRETS 256
#define CAS_SESSION_MAX_ENV 256
#define CAS_SESSION_MAX_FILES 64
#define CAS_SESSION_MAX_WORDS 64
#define CAS_SESSION_MAX_SECRET_SIZE 65536

/* A session or service name: [A-Za-z0-9._-]{1,128}, not "." or "..". */
bool cas_session_name_valid(const char *name);

/* Parses and checks a session's YAML (or JSON) text into its normal form (caller json_decref's):
 *   {"name", "version": "0.3", "predecessor"?: hex,
 *    "access_policy": {"read": [hex|"CREATOR"], "update": [...]},
 *    "security": {"attestation": {"tolerate": [..], "ignore_advisories": "*"|[..]}},
 *    "services": [{"name", "image_name"?, "mrenclaves": [hex], "platforms"?: [ID],
 *                  "command": [words], "environment": {NAME: value}, "pwd",
 *                  "protected_files": [{"path", "sha256"}]}],
 *    "images": [{"name", "injection_files": [{"path", "content"}]}],
 *    "secrets": [{"name", "kind", "size"?, "value"?, "issuer"?, "common_name"?, "export"?: "*"|[..],
 *                 "import"?: {"session", "secret"}}]}
 * Defaults are filled in (access_policy [CREATOR], pwd "/", kind ascii, size 32 for
 * ascii/binary/hex or the given value's size, common_name = name for x509, security's lists []),
 * hex is lowercase, platform IDs uppercase, a command string is split at runs of spaces. An imported
 * secret is {"name", "import"} only (no kind). A field whose value is null (empty in YAML) counts as
 * absent. security.attestation.mode is accepted and dropped. The normal form parses to itself.
 * Every check of the design is applied here, references and @@N included; err names the path
 * ("services[0].enviroment: unknown field"). -EINVAL on a bad document. */
int cas_session_parse(const char *text, size_t size, json_t **out, char *err, size_t err_size);

/* Replaces "CREATOR" in access_policy by creator (64 hex). */
void cas_session_set_creator(json_t *session, const char *creator);

/* SHA-256 of the normal form dumped with sorted keys, compact: 64 lowercase hex. */
int cas_session_hash(const json_t *session, char out[65]);

/* The service named name (NULL when absent); the image named by a service's image_name (or NULL). */
const json_t *cas_session_service(const json_t *session, const char *name);
const json_t *cas_session_image(const json_t *session, const char *name);

/* Secrets of a session: {NAME: {"def": hex, "kind", "value": base64} | {"def": hex, "kind": "x509",
 * "key": PEM, "crt": PEM}} ("value" holds the bytes: ascii text, hex's bytes, key's PEM).
 * Imports are not stored (they are read from the exporting session at use). New values are made for
 * the secrets whose definition (export aside) differs from old's (old: the previous version's
 * secrets, or NULL at create); others keep old's value. def = SHA-256 (hex) of the secret's normal
 * form without "export", dumped as cas_session_hash does; an x509 with an issuer adds
 * "issuer_def": the issuer's def, so a new issuer key re-issues what it signed. Given values are
 * stored as given (decoded). Issuers are made before their subjects. -EINVAL with err (never a value)
 * for a session that did not come from cas_session_parse or a damaged old record.
 * Caller json_decref's *out (its values are wiped on free: custos_json_wipe_init). */
int cas_session_secrets(const json_t *session, const json_t *old, json_t **out, char *err, size_t err_size);

/* Does the session's secret `secret` export to session `to`? (false when absent or not exported) */
bool cas_session_exports(const json_t *session, const char *secret, const char *to);

/* Where the secrets of an expansion come from: the session, its secrets, and a lookup of imported
 * ones (returns the exporting session's secret entry, or NULL with err set: not exported, gone). An
 * entry without "kind" counts as x509 when it has "crt", else as binary. */
struct cas_secret_source {
    const json_t *session;
    const json_t *secrets;
    const json_t *(*import)(void *ctx, const char *session, const char *secret, char *err, size_t err_size);
    void *ctx;
};

/* Replaces every $$CAS::NAME[:FORMAT]$$ of in[0..size) by the secret's value. text: the result must
 * be text without NUL (environment values, command words). *out is NUL-terminated (not counted in
 * *out_size); the caller wipes and frees it. -EINVAL with err naming the reference
 * ("$$CAS::NAME:FORMAT$$: why"), -E2BIG when the result would be over CAS_SESSION_MAX_EXPAND bytes.
 * Plain: ascii and key as their bytes, hex as lowercase hex digits, binary raw (files only), x509 its
 * certificate; :hex and :base64 of the bytes (not x509); :crt and :key of x509 only. */
int cas_session_expand(const struct cas_secret_source *src, const char *in, size_t size, bool text, uint8_t **out,
                       size_t *out_size, char *err, size_t err_size);

/* Matches a launcher's words (argv, word 0 the program as the caller typed it) against service's
 * command: same count, literal words 1.. equal, @@N accepted whatever it holds. Word 0 is not
 * compared (the program is judged by its measurement, and a caller may name it by a path); the
 * program gets the session's word 0 as its argv[0]. Appends one line per
 * mismatch to errors (a JSON array of strings, may be NULL) and returns false:
 *   "Command has 2 words - Expected 3" (then nothing else), "Command word 1 is 'foo' - Expected 'bar'"
 *   (words cut at 80 bytes, unprintable bytes as '?'), "Command word 2 is not a string".
 * On success *filled (caller json_decref's) is the command with @@N replaced by the caller's word N
 * (references not yet expanded). */
bool cas_service_match_command(const json_t *service, const json_t *argv, json_t *errors, json_t **filled);

/* ---- helpers shared by session.c and session_secrets.c ---------------------------------------- */
#define CAS_SESSION_MAX_LIST 64           /* mrenclaves, platforms, access lists, export lists, ... */
#define CAS_SESSION_MAX_PATH 4095         /* pwd and injection file paths */
#define CAS_SESSION_MAX_EXPAND (1u << 20) /* an expansion's result */

/* The secret definition named name in a session's normal form (NULL when absent). */
const json_t *cas_session_secret(const json_t *session, const char *name);

/* One $$CAS::NAME[:FORMAT]$$ reference: bytes [start, end) of the text, format "" when plain. */
struct cas_secret_ref {
    size_t start, end;
    char name[129];
    char format[8];
};
/* Finds the next reference in s[*pos..size) (s need not be NUL-terminated): 1 with *ref filled and
 * *pos = ref->end, 0 when there is none, -EINVAL with err when a "$$CAS::" does not close or what it
 * holds is not NAME or NAME:FORMAT (FORMAT hex, base64, crt, key). err quotes no input but the
 * reference's offset. */
int cas_ref_next(const char *s, size_t size, size_t *pos, struct cas_secret_ref *ref, char *err, size_t err_size);
/* NULL when a secret of kind (NULL: not known yet, an import) may be referenced with format ("" for
 * plain) in a text (environment value, command word) or an injection file; else why not. */
const char *cas_ref_format_problem(const char *kind, const char *format, bool text);
