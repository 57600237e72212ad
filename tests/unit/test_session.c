/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for casd/session.c and casd/session_secrets.c: every refusal of the parser (each names
 * its path), the normal form, the hash, secret generation and its stability across updates, x509
 * chains, expansion of references and the matching of a launcher's command. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "custos.h"
#include "session.h"

#define HDR "name: s\nversion: \"0.3\"\n"
#define M64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define PLATFORM "02" M64
/* A service with what is required, to which a test appends fields. */
#define SVC "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: prog a b\n"

static json_t *parse_ok(const char *text)
{
    char err[512] = "";
    json_t *s = NULL;
    int ret = cas_session_parse(text, strlen(text), &s, err, sizeof(err));
    if (ret != 0)
        fail_msg("refused: %s\n--- text:\n%s", err, text);
    assert_non_null(s);
    return s;
}

/* The text is refused with exactly want. */
static void refused(const char *text, const char *want)
{
    char err[512] = "";
    json_t *s = (json_t *)1;
    int ret = cas_session_parse(text, strlen(text), &s, err, sizeof(err));
    if (ret != -EINVAL)
        fail_msg("accepted (%d), expected: %s\n--- text:\n%s", ret, want, text);
    assert_null(s);
    if (strcmp(err, want))
        fail_msg("error '%s'\n  expected '%s'\n--- text:\n%s", err, want, text);
}

/* The text is refused with an error starting with want. */
static void refused_prefix(const char *text, const char *want)
{
    char err[512] = "";
    json_t *s = NULL;
    int ret = cas_session_parse(text, strlen(text), &s, err, sizeof(err));
    if (ret != -EINVAL || strncmp(err, want, strlen(want)))
        fail_msg("ret %d error '%s'\n  expected prefix '%s'\n--- text:\n%s", ret, err, want, text);
}

static char *repeat(const char *prefix, const char *item, size_t count, const char *suffix)
{
    size_t n = strlen(prefix) + strlen(item) * count + strlen(suffix) + 1;
    char *s = malloc(n);
    assert_non_null(s);
    strcpy(s, prefix);
    for (size_t i = 0; i < count; i++)
        strcat(s, item);
    strcat(s, suffix);
    return s;
}

/* ---- normal form -------------------------------------------------------------------------------- */

static const char QUICKSTART[] = HDR "\n"
                                     "security:\n"
                                     "  attestation:\n"
                                     "    tolerate: [debug-mode, hyperthreading, outdated-tcb, "
                                     "software-hardening-needed]\n"
                                     "    ignore_advisories: \"*\"\n"
                                     "    mode: hardware\n"
                                     "services:\n"
                                     "  - name: register\n"
                                     "    image_name: cli\n"
                                     "    mrenclaves: [" M64 "]\n"
                                     "    command: \"cas register-backup @@2\"\n"
                                     "    environment:\n"
                                     "      SCONE_MODE: hw\n"
                                     "      SCONE_LOG: error\n"
                                     "      SCONE_CLI_CONFIG: /etc/owner-identity.json\n"
                                     "      \"@@SCONE_LAS_ADDR\": \"\"\n"
                                     "    pwd: /\n"
                                     "images:\n"
                                     "  - name: cli\n"
                                     "    injection_files:\n"
                                     "      - path: /etc/owner-identity.json\n"
                                     "        content: |\n"
                                     "          {\"owner\": true}\n";

static void test_quickstart_normal_form(void **state)
{
    (void)state;
    json_t *s = parse_ok(QUICKSTART);
    const json_t *svc = cas_session_service(s, "register");
    assert_non_null(svc);
    assert_null(cas_session_service(s, "other"));
    assert_null(cas_session_service(s, NULL));
    json_t *want = json_pack("[s, s, s]", "cas", "register-backup", "@@2");
    assert_true(json_equal(json_object_get(svc, "command"), want));
    json_decref(want);
    assert_string_equal(json_string_value(json_object_get(json_object_get(svc, "environment"), "@@SCONE_LAS_ADDR")),
                        "");
    assert_string_equal(json_string_value(json_object_get(svc, "pwd")), "/");
    const json_t *img = cas_session_image(s, json_string_value(json_object_get(svc, "image_name")));
    assert_non_null(img);
    assert_string_equal(json_string_value(
                            json_object_get(json_array_get(json_object_get(img, "injection_files"), 0), "content")),
                        "{\"owner\": true}\n");
    assert_null(cas_session_image(s, "nope"));
    assert_null(cas_session_image(s, NULL));
    const json_t *att = json_object_get(json_object_get(s, "security"), "attestation");
    assert_string_equal(json_string_value(json_object_get(att, "ignore_advisories")), "*");
    assert_int_equal(json_array_size(json_object_get(att, "tolerate")), 4);
    assert_null(json_object_get(att, "mode")); /* accepted, ignored */
    json_decref(s);
}

static void test_defaults(void **state)
{
    (void)state;
    json_t *s = parse_ok(HDR "secrets:\n  - name: a\n  - name: x\n    kind: x509\n"
                             "  - name: h\n    kind: hex\n    value: ABCD\n" SVC);
    const json_t *ap = json_object_get(s, "access_policy");
    assert_string_equal(json_string_value(json_array_get(json_object_get(ap, "read"), 0)), "CREATOR");
    assert_string_equal(json_string_value(json_array_get(json_object_get(ap, "update"), 0)), "CREATOR");
    const json_t *a = cas_session_secret(s, "a"), *x = cas_session_secret(s, "x"), *h = cas_session_secret(s, "h");
    assert_string_equal(json_string_value(json_object_get(a, "kind")), "ascii");
    assert_int_equal(json_integer_value(json_object_get(a, "size")), 32);
    assert_null(json_object_get(x, "size"));
    assert_string_equal(json_string_value(json_object_get(x, "common_name")), "x");
    assert_string_equal(json_string_value(json_object_get(h, "value")), "abcd"); /* lowercased */
    assert_int_equal(json_integer_value(json_object_get(h, "size")), 2);
    assert_null(cas_session_secret(s, "none"));
    assert_null(cas_session_secret(s, NULL));
    const json_t *svc = cas_session_service(s, "svc");
    assert_string_equal(json_string_value(json_object_get(svc, "pwd")), "/");
    assert_null(json_object_get(svc, "platforms"));
    assert_int_equal(json_object_size(json_object_get(svc, "environment")), 0);
    assert_int_equal(json_array_size(json_object_get(svc, "protected_files")), 0);
    assert_int_equal(json_array_size(json_object_get(s, "images")), 0);

    /* set_creator replaces CREATOR, keeps the others */
    json_decref(s);
    s = parse_ok(HDR "access_policy:\n  read: [CREATOR, " B64 "]\n");
    cas_session_set_creator(s, M64);
    ap = json_object_get(s, "access_policy");
    assert_string_equal(json_string_value(json_array_get(json_object_get(ap, "read"), 0)), M64);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ap, "read"), 1)), B64);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ap, "update"), 0)), M64);
    json_decref(s);
}

static void test_lowercase_uppercase(void **state)
{
    (void)state;
    char text[2048];
    snprintf(text, sizeof(text),
             HDR "predecessor: %s\naccess_policy:\n  update: [%s]\nservices:\n  - name: svc\n    mrenclaves: [%s]\n"
                 "    platforms: [\"02%s\"]\n    command: [prog, /data/x]\n"
                 "    protected_files:\n      - {path: /data/x, sha256: %s}\n",
             "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
             "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
             "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC", M64,
             "DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD");
    json_t *s = parse_ok(text);
    assert_string_equal(json_string_value(json_object_get(s, "predecessor")),
                        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_string_equal(json_string_value(
                            json_array_get(json_object_get(json_object_get(s, "access_policy"), "update"), 0)),
                        B64);
    const json_t *svc = cas_session_service(s, "svc");
    assert_string_equal(json_string_value(json_array_get(json_object_get(svc, "mrenclaves"), 0)),
                        "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
    assert_string_equal(json_string_value(json_array_get(json_object_get(svc, "platforms"), 0)),
                        "02AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_string_equal(json_string_value(
                            json_object_get(json_array_get(json_object_get(svc, "protected_files"), 0), "sha256")),
                        "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
    json_decref(s);
}

/* The normal form is itself a session text, and parses to itself. */
static void test_normal_form_fixed_point(void **state)
{
    (void)state;
    const char *texts[] = {
        QUICKSTART,
        HDR "predecessor: " M64 "\naccess_policy: {read: [CREATOR, " B64 "]}\nsecrets:\n  - name: a\n"
            "    export: [o]\n  - name: h\n    kind: hex\n    value: AB00\n  - name: x\n    kind: x509\n"
            "    issuer: r\n  - name: r\n    kind: x509\n    export: \"*\"\n  - name: i\n"
            "    import: {session: o, secret: z}\n" SVC "    platforms: [\"" PLATFORM "\"]\n"
            "    protected_files: [{path: a, sha256: " B64 "}]\n    environment: {T: \"\\t\\u00e9 $$CAS::a$$\"}\n",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_t *a = parse_ok(texts[i]);
        char *dump = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
        json_t *b = parse_ok(dump);
        assert_true(json_equal(a, b));
        free(dump);
        json_decref(a);
        json_decref(b);
    }
}

static void test_json_text(void **state)
{
    (void)state;
    const char *json = "{\"name\": \"s\", \"version\": \"0.3\", \"services\": [{\"name\": \"svc\", \"mrenclaves\": "
                       "[\"" M64 "\"], \"command\": [\"prog\", \"a\", \"b\"]}]}";
    json_t *a = parse_ok(json), *b = parse_ok(HDR SVC);
    char ha[65], hb[65];
    assert_int_equal(cas_session_hash(a, ha), 0);
    assert_int_equal(cas_session_hash(b, hb), 0);
    assert_string_equal(ha, hb);
    json_decref(a);
    json_decref(b);
}

/* ---- refusals ----------------------------------------------------------------------------------- */

static void test_refuse_document(void **state)
{
    (void)state;
    char *big = repeat("name: s\nversion: \"0.3\"\n#", "x", CAS_SESSION_MAX_TEXT, "\n");
    refused(big, "the session text is over 1048576 bytes");
    free(big);
    refused_prefix("name: [", "not a YAML document: line ");
    refused("- a\n- b\n", "a session is a map (name, version, services, ...)");
    refused("", "not a YAML document: empty YAML document");
    refused("42", "a session is a map (name, version, services, ...)");
    refused(HDR "nmae: x\n", "nmae: unknown field");
    refused("version: \"0.3\"\n", "name: missing");
    refused("name: [a]\nversion: \"0.3\"\n", "name: must be a string");
    refused("name: ..\nversion: \"0.3\"\n",
            "name: '..' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or '..')");
    refused("name: a/b\nversion: \"0.3\"\n",
            "name: 'a/b' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or '..')");
    char *long_name = repeat("name: ", "n", 129, "\nversion: \"0.3\"\n");
    refused_prefix(long_name, "name: 'nnnn");
    free(long_name);
    refused("name: s\n", "version: missing");
    refused("name: s\nversion: 0.3\n", "version: must be a string");
    refused("name: s\nversion: \"0.2\"\n", "version: '0.2' is not supported (write version: \"0.3\")");
    refused(HDR "predecessor: abc\n", "predecessor: 'abc' is not 64 hex digits");
    refused(HDR "predecessor: " M64 "0\n", "predecessor: '" M64 "0' is not 64 hex digits");
    refused(HDR "predecessor: 5\n", "predecessor: must be a string");
}

static void test_refuse_access_security(void **state)
{
    (void)state;
    refused(HDR "access_policy: [a]\n", "access_policy: must be a map");
    refused(HDR "access_policy:\n  write: []\n", "access_policy.write: unknown field");
    refused(HDR "access_policy:\n  read: x\n", "access_policy.read: must be a list");
    refused(HDR "access_policy:\n  update: [1]\n", "access_policy.update[0]: must be a string");
    refused(HDR "access_policy:\n  read: [CREATOR, creator]\n",
            "access_policy.read[1]: 'creator' is neither CREATOR nor a key hash (64 hex digits)");
    char *many = repeat(HDR "access_policy:\n  read: [", "CREATOR, ", 64, "CREATOR]\n");
    refused(many, "access_policy.read: at most 64 entries");
    free(many);

    refused(HDR "security: 1\n", "security: must be a map");
    refused(HDR "security:\n  attest: {}\n", "security.attest: unknown field");
    refused(HDR "security:\n  attestation:\n    tolerated: []\n", "security.attestation.tolerated: unknown field");
    refused(HDR "security:\n  attestation:\n    mode: [1]\n", "security.attestation.mode: must be a string");
    refused(HDR "security:\n  attestation:\n    tolerate: debug-mode\n",
            "security.attestation.tolerate: must be a list");
    refused(HDR "security:\n  attestation:\n    tolerate: [5]\n", "security.attestation.tolerate[0]: must be a string");
    refused(HDR "security:\n  attestation:\n    tolerate: [debug-mode, sgx-debug]\n",
            "security.attestation.tolerate[1]: 'sgx-debug' cannot be tolerated (debug-mode, outdated-tcb, "
            "software-hardening-needed, hyperthreading, insecure-igpu, insecure-configuration, aepic-leak)");
    refused(HDR "security:\n  attestation:\n    ignore_advisories: all\n",
            "security.attestation.ignore_advisories: must be \"*\" or a list of advisory names");
    refused(HDR "security:\n  attestation:\n    ignore_advisories: 1\n",
            "security.attestation.ignore_advisories: must be \"*\" or a list of advisory names");
    char *adv = repeat(HDR "security:\n  attestation:\n    ignore_advisories: [", "A, ", 64, "A]\n");
    refused(adv, "security.attestation.ignore_advisories: at most 64 entries");
    free(adv);
    char *tol = repeat(HDR "security:\n  attestation:\n    tolerate: [", "aepic-leak, ", 64, "aepic-leak]\n");
    refused(tol, "security.attestation.tolerate: at most 64 entries");
    free(tol);
    refused(HDR "security:\n  attestation:\n    ignore_advisories: [1]\n",
            "security.attestation.ignore_advisories[0]: must be a string");
    refused(HDR "security:\n  attestation:\n    ignore_advisories: [INTEL-SA-00334, \"\"]\n",
            "security.attestation.ignore_advisories[1]: an advisory name is 1..128 characters");
    json_t *s = parse_ok(HDR "security:\n  attestation:\n    ignore_advisories: [INTEL-SA-00334]\n"
                             "    tolerate: [insecure-igpu, aepic-leak, insecure-configuration]\n");
    json_decref(s);
}

static void test_refuse_secrets(void **state)
{
    (void)state;
    refused(HDR "secrets: {}\n", "secrets: must be a list");
    char *many = repeat(HDR "secrets:\n", "  - name: a\n", CAS_SESSION_MAX_SECRETS + 1, "");
    refused(many, "secrets: at most 256 entries");
    free(many);
    refused(HDR "secrets:\n  - a\n", "secrets[0]: must be a map");
    refused(HDR "secrets:\n  - name: a\n    sise: 3\n", "secrets[0].sise: unknown field");
    refused(HDR "secrets:\n  - kind: ascii\n", "secrets[0].name: missing");
    refused(HDR "secrets:\n  - name: a b\n",
            "secrets[0].name: 'a b' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or '..')");
    refused(HDR "secrets:\n  - name: a\n  - name: b\n  - name: a\n",
            "secrets[2].name: duplicate name 'a' (also secrets[0])");
    refused(HDR "secrets:\n  - name: a\n    kind: text\n",
            "secrets[0].kind: 'text' is not a kind (ascii, binary, hex, key, x509)");
    refused(HDR "secrets:\n  - name: a\n    kind: 1\n", "secrets[0].kind: must be a string");
    refused(HDR "secrets:\n  - name: a\n    kind: key\n    size: 3\n", "secrets[0].size: not for key secrets");
    refused(HDR "secrets:\n  - name: a\n    kind: x509\n    size: 3\n", "secrets[0].size: not for x509 secrets");
    refused(HDR "secrets:\n  - name: a\n    size: \"3\"\n", "secrets[0].size: must be an integer");
    refused(HDR "secrets:\n  - name: a\n    size: 0\n", "secrets[0].size: must be 1..65536");
    refused(HDR "secrets:\n  - name: a\n    size: 65537\n", "secrets[0].size: must be 1..65536");
    refused(HDR "secrets:\n  - name: a\n    value: 3\n", "secrets[0].value: must be a string");
    refused(HDR "secrets:\n  - name: a\n    kind: key\n    value: x\n",
            "secrets[0].value: not for key secrets (they are generated)");
    refused(HDR "secrets:\n  - name: a\n    kind: x509\n    value: x\n",
            "secrets[0].value: not for x509 secrets (they are generated)");
    refused(HDR "secrets:\n  - name: a\n    value: \"caf\\u00e9\"\n",
            "secrets[0].value: an ascii value is printable ASCII, tab and newline (use kind binary)");
    refused(HDR "secrets:\n  - name: a\n    value: \"\\x01\"\n",
            "secrets[0].value: an ascii value is printable ASCII, tab and newline (use kind binary)");
    refused(HDR "secrets:\n  - name: a\n    value: \"\"\n", "secrets[0].value: must hold 1..65536 bytes (it holds 0)");
    refused(HDR "secrets:\n  - name: a\n    kind: hex\n    value: abc\n",
            "secrets[0].value: not hex digits (an even number of 0-9 a-f)");
    refused(HDR "secrets:\n  - name: a\n    kind: hex\n    value: abcg\n",
            "secrets[0].value: not hex digits (an even number of 0-9 a-f)");
    refused(HDR "secrets:\n  - name: a\n    kind: binary\n    value: abc\n",
            "secrets[0].value: not base64 (a binary value is given in strict base64, with padding)");
    refused(HDR "secrets:\n  - name: a\n    size: 4\n    value: abc\n",
            "secrets[0].value: holds 3 bytes, but size says 4");
    char *big = repeat(HDR "secrets:\n  - name: a\n    kind: hex\n    value: \"", "00", 65537, "\"\n");
    refused(big, "secrets[0].value: must hold 1..65536 bytes (it holds 65537)");
    free(big);
    refused(HDR "secrets:\n  - name: a\n    issuer: b\n", "secrets[0].issuer: only x509 secrets have an issuer");
    refused(HDR "secrets:\n  - name: a\n    kind: x509\n    issuer: b/c\n",
            "secrets[0].issuer: 'b/c' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or '..')");
    refused(HDR "secrets:\n  - name: a\n    kind: x509\n    issuer: [b]\n", "secrets[0].issuer: must be a string");
    refused(HDR "secrets:\n  - name: a\n    common_name: b\n",
            "secrets[0].common_name: only x509 secrets have a common_name");
    refused(HDR "secrets:\n  - name: a\n    kind: x509\n    common_name: \"\"\n",
            "secrets[0].common_name: must be 1..64 characters");
    char *cn = repeat(HDR "secrets:\n  - name: a\n    kind: x509\n    common_name: ", "c", 65, "\n");
    refused(cn, "secrets[0].common_name: must be 1..64 characters");
    free(cn);
    refused(HDR "secrets:\n  - name: a\n    export: all\n",
            "secrets[0].export: must be \"*\" or a list of session names");
    refused(HDR "secrets:\n  - name: a\n    export: 3\n",
            "secrets[0].export: must be \"*\" or a list of at most 64 session names");
    refused(HDR "secrets:\n  - name: a\n    export: [ok, \"no/t\"]\n",
            "secrets[0].export[1]: 'no/t' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or '..')");
    refused(HDR "secrets:\n  - name: a\n    export: [1]\n", "secrets[0].export[0]: must be a string");
    char *exp = repeat(HDR "secrets:\n  - name: a\n    export: [", "x, ", 64, "x]\n");
    refused(exp, "secrets[0].export: must be \"*\" or a list of at most 64 session names");
    free(exp);

    /* imports */
    refused(HDR "secrets:\n  - name: a\n    kind: ascii\n    import: {session: o, secret: b}\n",
            "secrets[0].kind: not with import (an imported secret is defined by the session it comes from)");
    refused(HDR "secrets:\n  - name: a\n    export: \"*\"\n    import: {session: o, secret: b}\n",
            "secrets[0].export: not with import (an imported secret is defined by the session it comes from)");
    refused(HDR "secrets:\n  - name: a\n    import: o/b\n", "secrets[0].import: must be a map");
    refused(HDR "secrets:\n  - name: a\n    import: {session: o, secret: b, kind: x}\n",
            "secrets[0].import.kind: unknown field");
    refused(HDR "secrets:\n  - name: a\n    import: {secret: b}\n", "secrets[0].import.session: missing");
    refused(HDR "secrets:\n  - name: a\n    import: {session: o}\n", "secrets[0].import.secret: missing");
    refused(HDR "secrets:\n  - name: a\n    import: {session: \"..\", secret: b}\n",
            "secrets[0].import.session: '..' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or "
            "'..')");
    refused(HDR "secrets:\n  - name: a\n    import: {session: o, secret: \"b c\"}\n",
            "secrets[0].import.secret: 'b c' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or "
            "'..')");
    refused(HDR "secrets:\n  - name: a\n    import: {session: s, secret: b}\n",
            "secrets[0].import.session: a session cannot import from itself");

    /* issuers */
    refused(HDR "secrets:\n  - name: a\n    kind: x509\n    issuer: b\n",
            "secrets[0].issuer: no secret 'b' in this session");
    refused(HDR "secrets:\n  - name: b\n  - name: a\n    kind: x509\n    issuer: b\n",
            "secrets[1].issuer: 'b' is not an x509 secret of this session");
    refused(HDR "secrets:\n  - name: a\n    kind: x509\n    issuer: a\n",
            "secrets[0].issuer: the issuer chain of 'a' loops");
    refused(HDR "secrets:\n  - name: a\n    kind: x509\n    issuer: b\n  - name: b\n    kind: x509\n    issuer: a\n",
            "secrets[0].issuer: the issuer chain of 'a' loops");
    json_t *s = parse_ok(HDR "secrets:\n  - name: c\n    kind: x509\n    issuer: b\n  - name: b\n    kind: x509\n"
                             "    issuer: a\n  - name: a\n    kind: x509\n");
    json_decref(s);
}

static void test_refuse_images(void **state)
{
    (void)state;
    refused(HDR "images: x\n", "images: must be a list");
    char *many = repeat(HDR "images:\n", "  - name: i\n", CAS_SESSION_MAX_IMAGES + 1, "");
    refused(many, "images: at most 64 entries");
    free(many);
    refused(HDR "images:\n  - name: i\n    files: []\n", "images[0].files: unknown field");
    refused(HDR "images:\n  - injection_files: []\n", "images[0].name: missing");
    refused(HDR "images:\n  - name: \".\"\n",
            "images[0].name: '.' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or '..')");
    refused(HDR "images:\n  - name: i\n  - name: i\n", "images[1].name: duplicate name 'i' (also images[0])");
    refused(HDR "images:\n  - name: i\n    injection_files: {}\n", "images[0].injection_files: must be a list");
    char *files = repeat(HDR "images:\n  - name: i\n    injection_files:\n", "      - {path: /a, content: x}\n",
                         CAS_SESSION_MAX_FILES + 1, "");
    refused(files, "images[0].injection_files: at most 64 entries");
    free(files);
    refused(HDR "images:\n  - name: i\n    injection_files:\n      - {path: /a, content: x, mode: 1}\n",
            "images[0].injection_files[0].mode: unknown field");
    refused(HDR "images:\n  - name: i\n    injection_files:\n      - {content: x}\n",
            "images[0].injection_files[0].path: missing");
    refused(HDR "images:\n  - name: i\n    injection_files:\n      - {path: /a}\n",
            "images[0].injection_files[0].content: missing");
    refused(HDR "images:\n  - name: i\n    injection_files:\n      - {path: a, content: x}\n",
            "images[0].injection_files[0].path: 'a' is not an absolute path");
    const char *not_file = "' is not a file's path (no empty, '.' or '..' component, no '/' at the end)";
    const char *bad_paths[] = {"/a/../b", "/a/./b", "/a//b", "/a/", "/", "/..", "/a/.."};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        char text[256], want[256];
        snprintf(text, sizeof(text),
                 HDR "images:\n  - name: i\n    injection_files:\n      - {path: \"%s\", content: x}\n", bad_paths[i]);
        snprintf(want, sizeof(want), "images[0].injection_files[0].path: '%s%s", bad_paths[i], not_file);
        refused(text, want);
    }
    json_t *ok = parse_ok(HDR "images:\n  - name: i\n    injection_files:\n      - {path: /a/.b/..c, content: x}\n");
    json_decref(ok);
    char *longp = repeat(HDR "images:\n  - name: i\n    injection_files:\n      - {path: /", "p", CAS_SESSION_MAX_PATH,
                         ", content: x}\n");
    refused(longp, "images[0].injection_files[0].path: longer than 4095 bytes");
    free(longp);
    refused(HDR "images:\n  - name: i\n    injection_files:\n      - {path: /a, content: x}\n"
                "      - {path: /a, content: y}\n",
            "images[0].injection_files[1].path: '/a' is injected twice");
    refused(HDR "images:\n  - name: i\n    injection_files:\n      - {path: /a, content: \"k=$$CAS::nope$$\"}\n",
            "images[0].injection_files[0].content: $$CAS::nope$$: no secret 'nope' in this session");
    refused(HDR "images:\n  - name: i\n    injection_files:\n      - {path: /a, content: \"k=$$CAS::nope\"}\n",
            "images[0].injection_files[0].content: unclosed secret reference ('$$CAS::' at byte 2 has no closing "
            "'$$')");
    refused(HDR "images:\n  - name: i\n    injection_files:\n      - {path: /a, content: \"$$CAS::a b$$\"}\n",
            "images[0].injection_files[0].content: malformed secret reference at byte 0 (write $$CAS::NAME$$ or "
            "$$CAS::NAME:FORMAT$$, FORMAT hex, base64, crt or key)");
    refused(HDR "images:\n  - name: i\n    injection_files:\n      - {path: /a, content: \"$$CAS::a:pem$$\"}\n",
            "images[0].injection_files[0].content: malformed secret reference at byte 0 (write $$CAS::NAME$$ or "
            "$$CAS::NAME:FORMAT$$, FORMAT hex, base64, crt or key)");
    /* binary raw is fine in a file */
    json_t *s =
        parse_ok(HDR "secrets:\n  - name: b\n    kind: binary\n"
                     "images:\n  - name: i\n    injection_files:\n      - {path: /a, content: \"$$CAS::b$$\"}\n");
    json_decref(s);
}

static void test_refuse_services(void **state)
{
    (void)state;
    refused(HDR "services: x\n", "services: must be a list");
    char *many = repeat(HDR "services:\n", "  - name: s\n", CAS_SESSION_MAX_SERVICES + 1, "");
    refused(many, "services: at most 64 entries");
    free(many);
    refused(HDR SVC "    enviroment: {}\n", "services[0].enviroment: unknown field");
    refused(HDR SVC "  - name: svc\n    mrenclaves: [" M64 "]\n    command: prog\n",
            "services[1].name: duplicate name 'svc' (also services[0])");
    refused(HDR "services:\n  - mrenclaves: []\n", "services[0].name: missing");
    refused(HDR "services:\n  - name: \"a:b\"\n",
            "services[0].name: 'a:b' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or '..')");
    refused(HDR SVC "    image_name: [img]\n", "services[0].image_name: must be a string");
    refused(HDR SVC "    platforms: " PLATFORM "\n", "services[0].platforms: must be a list");
    refused(HDR SVC "    image_name: img\n", "services[0].image_name: no image 'img' in this session's images");
    refused(HDR "services:\n  - name: svc\n    command: prog\n", "services[0].mrenclaves: missing");
    refused(HDR "services:\n  - name: svc\n    mrenclaves: []\n    command: prog\n",
            "services[0].mrenclaves: must list 1..64 measurements");
    refused(HDR "services:\n  - name: svc\n    mrenclaves: [abc]\n    command: prog\n",
            "services[0].mrenclaves[0]: 'abc' is not 64 hex digits");
    refused(HDR "services:\n  - name: svc\n    mrenclaves: [1]\n    command: prog\n",
            "services[0].mrenclaves[0]: must be a string");
    char *mr = repeat(HDR "services:\n  - name: svc\n    command: prog\n    mrenclaves: [", M64 ", ", 64, M64 "]\n");
    refused(mr, "services[0].mrenclaves: at most 64 entries");
    free(mr);
    refused(HDR SVC "    platforms: []\n",
            "services[0].platforms: must list 1..64 platform IDs (leave it out for every platform this CAS trusts)");
    refused(HDR SVC "    platforms: [\"04" M64 "\"]\n",
            "services[0].platforms[0]: '04" M64 "' is not a platform ID (66 hex digits, starting 02 or 03)");
    refused(HDR SVC "    platforms: [" M64 "]\n",
            "services[0].platforms[0]: '" M64 "' is not a platform ID (66 hex digits, starting 02 or 03)");
    refused(HDR SVC "    platforms: [1]\n", "services[0].platforms[0]: must be a string");

    /* command */
    refused(HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n", "services[0].command: missing");
    refused(HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: {a: 1}\n",
            "services[0].command: must be a string or a list of words");
    refused(HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: \"   \"\n",
            "services[0].command: has no program (word 0)");
    refused(HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: [\"\", a]\n",
            "services[0].command: has no program (word 0)");
    refused(HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: [prog, 1]\n",
            "services[0].command[1]: must be a string");
    char *words = repeat(HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: \"", "w ", 65, "\"\n");
    refused(words, "services[0].command: at most 64 words");
    free(words);
    words = repeat(HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: [", "w, ", 64, "w]\n");
    refused(words, "services[0].command: at most 64 words");
    free(words);
    words = repeat(HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: \"", "w  ", 64, "\"\n");
    json_t *s = parse_ok(words); /* 64 words, runs of spaces */
    assert_int_equal(json_array_size(json_object_get(cas_session_service(s, "svc"), "command")), 64);
    json_decref(s);
    free(words);
    const char *cmd_head = HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: ";
    struct {
        const char *cmd, *want;
    } cmds[] = {
        {"\"prog @@0\"", "services[0].command[1]: '@@0' is not @@N with N = 1..63"},
        {"\"prog @@x\"", "services[0].command[1]: '@@x' is not @@N with N = 1..63"},
        {"\"prog @@01\"", "services[0].command[1]: '@@01' is not @@N with N = 1..63"},
        {"\"prog @@64\"", "services[0].command[1]: '@@64' is not @@N with N = 1..63"},
        {"\"prog @@\"", "services[0].command[1]: '@@' is not @@N with N = 1..63"},
        {"\"prog @@1x\"", "services[0].command[1]: '@@1x' is not @@N with N = 1..63"},
        {"\"prog @@2\"",
         "services[0].command[1]: '@@2' must stand at word 2 (the caller's word N takes the place of @@N)"},
        {"\"@@1 a\"",
         "services[0].command[0]: '@@1' must stand at word 1 (the caller's word N takes the place of @@N)"},
        {"\"prog $$CAS::x$$\"", "services[0].command[1]: $$CAS::x$$: no secret 'x' in this session"},
        {"\"prog $$CAS::x\"",
         "services[0].command[1]: unclosed secret reference ('$$CAS::' at byte 0 has no closing '$$')"},
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "%s%s\n", cmd_head, cmds[i].cmd);
        refused(text, cmds[i].want);
    }
    s = parse_ok(HDR "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: \"p @@1 x @@3\"\n");
    json_decref(s);

    /* reference formats by kind */
    const char *kinds = HDR "secrets:\n  - name: b\n    kind: binary\n  - name: a\n  - name: x\n    kind: x509\n"
                            "  - name: k\n    kind: key\n  - name: i\n    import: {session: o, secret: z}\n"
                            "services:\n  - name: svc\n    mrenclaves: [" M64 "]\n    command: ";
    struct {
        const char *cmd, *want; /* want NULL: accepted */
    } refs[] = {
        {"\"p $$CAS::b$$\"", "services[0].command[1]: $$CAS::b$$: a binary secret needs :hex or :base64 here (raw "
                             "bytes only in injection files)"},
        {"\"p $$CAS::a:crt$$\"", "services[0].command[1]: $$CAS::a:crt$$: :crt and :key are only for x509 secrets"},
        {"\"p $$CAS::k:key$$\"", "services[0].command[1]: $$CAS::k:key$$: :crt and :key are only for x509 secrets"},
        {"\"p $$CAS::x:hex$$\"",
         "services[0].command[1]: $$CAS::x:hex$$: :hex and :base64 do not apply to x509 secrets (use :crt or :key)"},
        {"\"p $$CAS::b:hex$$ $$CAS::b:base64$$ $$CAS::a$$ $$CAS::x$$ $$CAS::x:crt$$ $$CAS::x:key$$ $$CAS::k$$ "
         "$$CAS::k:hex$$ $$CAS::i$$ $$CAS::i:crt$$\"",
         NULL},
    };
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text), "%s%s\n", kinds, refs[i].cmd);
        if (refs[i].want) {
            refused(text, refs[i].want);
        } else {
            s = parse_ok(text);
            json_decref(s);
        }
    }

    /* environment */
    refused(HDR SVC "    environment: [A]\n", "services[0].environment: must be a map");
    {
        size_t cap = 64 * 1024, n = 0;
        char *t = malloc(cap);
        assert_non_null(t);
        n += (size_t)snprintf(t + n, cap - n, HDR SVC "    environment:\n");
        for (int i = 0; i <= CAS_SESSION_MAX_ENV; i++)
            n += (size_t)snprintf(t + n, cap - n, "      V%d: x\n", i);
        refused(t, "services[0].environment: at most 256 entries");
        free(t);
    }
    refused(HDR SVC "    environment:\n      1A: x\n",
            "services[0].environment.1A: '1A' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at "
            "most 255)");
    refused(HDR SVC "    environment:\n      A-B: x\n",
            "services[0].environment.A-B: 'A-B' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at "
            "most 255)");
    refused(HDR SVC "    environment:\n      \"@@A=B\": \"\"\n",
            "services[0].environment.@@A=B: 'A=B' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at "
            "most 255)");
    refused(HDR SVC "    environment:\n      \"@@\": \"\"\n",
            "services[0].environment.@@: '' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at "
            "most 255)");
    char *longenv = repeat(HDR SVC "    environment:\n      ", "E", 256, ": x\n");
    refused_prefix(longenv, "services[0].environment.EEEE");
    free(longenv);
    refused(HDR SVC "    environment:\n      PORT: 8080\n",
            "services[0].environment.PORT: must be a string (quote numbers and booleans)");
    refused(HDR SVC "    environment:\n      \"@@HOME\": x\n",
            "services[0].environment.@@HOME: a pass-through (@@HOME) has the value \"\"");
    refused(HDR SVC "    environment:\n      HOME: /x\n      \"@@HOME\": \"\"\n",
            "services[0].environment.@@HOME: both HOME and @@HOME are set");
    refused(HDR SVC "    environment:\n      K: \"$$CAS::k$$\"\n",
            "services[0].environment.K: $$CAS::k$$: no secret 'k' in this session");
    refused(HDR "secrets:\n  - name: b\n    kind: binary\n" SVC "    environment:\n      K: \"$$CAS::b$$\"\n",
            "services[0].environment.K: $$CAS::b$$: a binary secret needs :hex or :base64 here (raw bytes only in "
            "injection files)");
    s = parse_ok(HDR SVC "    environment:\n      _a9: \"\"\n      \"@@PATH\": \"\"\n");
    json_decref(s);

    /* pwd */
    refused(HDR SVC "    pwd: tmp\n", "services[0].pwd: 'tmp' is not an absolute path");
    refused(HDR SVC "    pwd: [1]\n", "services[0].pwd: must be a string");
    char *longpwd = repeat(HDR SVC "    pwd: /", "d", CAS_SESSION_MAX_PATH, "\n");
    refused(longpwd, "services[0].pwd: longer than 4095 bytes");
    free(longpwd);

    /* protected files */
    struct {
        const char *entry, *want;
    } pfs[] = {
        {"{path: /y, sha256: " M64 "}",
         "services[0].protected_files[0].path: '/y' is not a literal word of the command (words 1..)"},
        {"{path: /bin/p, sha256: " M64 "}",
         "services[0].protected_files[0].path: '/bin/p' is not a literal word of the command (words 1..)"},
        {"{path: \"@@2\", sha256: " M64 "}",
         "services[0].protected_files[0].path: '@@2' is not a literal word of the command (words 1..)"},
        {"{path: \"$$CAS::s$$\", sha256: " M64 "}",
         "services[0].protected_files[0].path: '$$CAS::s$$' is not a literal word of the command (words 1..)"},
        {"{path: /x, sha256: abc}", "services[0].protected_files[0].sha256: 'abc' is not 64 hex digits"},
        {"{path: /x}", "services[0].protected_files[0].sha256: missing"},
        {"{sha256: " M64 "}", "services[0].protected_files[0].path: missing"},
        {"{path: /x, sha256: " M64 ", size: 1}", "services[0].protected_files[0].size: unknown field"},
        {"/x", "services[0].protected_files[0]: must be a map"},
    };
    for (size_t i = 0; i < sizeof(pfs) / sizeof(pfs[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 HDR "secrets:\n  - name: s\nservices:\n  - name: svc\n    mrenclaves: [" M64 "]\n"
                     "    command: [/bin/p, /x, \"@@2\", \"$$CAS::s$$\"]\n    protected_files:\n      - %s\n",
                 pfs[i].entry);
        refused(text, pfs[i].want);
    }
    refused(HDR SVC "    protected_files:\n      - {path: a, sha256: " M64 "}\n      - {path: a, sha256: " B64 "}\n",
            "services[0].protected_files[1].path: 'a' is listed twice");
    refused(HDR SVC "    protected_files: {}\n", "services[0].protected_files: must be a list");
}

/* ---- hash --------------------------------------------------------------------------------------- */

static void test_hash(void **state)
{
    (void)state;
    char h1[65], h2[65];
    json_t *s = parse_ok(HDR);
    assert_int_equal(cas_session_hash(s, h1), 0);
    /* SHA-256 of {"access_policy":{"read":["CREATOR"],"update":["CREATOR"]},"images":[],"name":"s",
     * "secrets":[],"security":{"attestation":{"ignore_advisories":[],"tolerate":[]}},"services":[],
     * "version":"0.3"} */
    assert_string_equal(h1, "d0d3187a75acc2682e09515c7d1e3dcc79d9fdabc0795eb057babcbcefe3d013");
    json_decref(s);

    /* stable: the same document written differently (key order, flow style, spacing) */
    json_t *a = parse_ok(QUICKSTART);
    json_t *b =
        parse_ok("version: \"0.3\"\nname: s\nimages: [{name: cli, injection_files: [{content: \"{\\\"owner\\\": "
                 "true}\\n\", path: /etc/owner-identity.json}]}]\n"
                 "services: [{name: register, command: [cas, register-backup, \"@@2\"], image_name: cli, "
                 "mrenclaves: [" M64 "], environment: {SCONE_LOG: error, SCONE_MODE: hw, \"@@SCONE_LAS_ADDR\": "
                 "\"\", SCONE_CLI_CONFIG: /etc/owner-identity.json}}]\n"
                 "security: {attestation: {ignore_advisories: \"*\", tolerate: [debug-mode, hyperthreading, "
                 "outdated-tcb, software-hardening-needed]}}\n");
    assert_int_equal(cas_session_hash(a, h1), 0);
    assert_int_equal(cas_session_hash(b, h2), 0);
    assert_string_equal(h1, h2);
    json_decref(b);

    /* sensitive: any change of the normal form changes it */
    const char *changes[] = {"SCONE_LOG: error",     "SCONE_LOG: errors", "register-backup @@2",
                             "register-backup2 @@2", "hyperthreading,",   "insecure-igpu,"};
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i += 2) {
        char text[4096], *at;
        snprintf(text, sizeof(text), "%s", QUICKSTART);
        at = strstr(text, changes[i]);
        assert_non_null(at);
        char rest[4096];
        snprintf(rest, sizeof(rest), "%s", at + strlen(changes[i]));
        snprintf(at, sizeof(text) - (size_t)(at - text), "%s%s", changes[i + 1], rest);
        b = parse_ok(text);
        assert_int_equal(cas_session_hash(b, h2), 0);
        assert_string_not_equal(h1, h2);
        json_decref(b);
    }
    /* the creator and the predecessor are part of it */
    cas_session_set_creator(a, M64);
    assert_int_equal(cas_session_hash(a, h2), 0);
    assert_string_not_equal(h1, h2);
    json_object_set_new(a, "predecessor", json_string(B64));
    assert_int_equal(cas_session_hash(a, h1), 0);
    assert_string_not_equal(h1, h2);
    json_decref(a);
}

/* ---- secrets ------------------------------------------------------------------------------------ */

static json_t *secrets_ok(const json_t *session, const json_t *old)
{
    char err[512] = "";
    json_t *out = NULL;
    if (cas_session_secrets(session, old, &out, err, sizeof(err)) != 0)
        fail_msg("secrets refused: %s", err);
    assert_non_null(out);
    return out;
}

static uint8_t *value_of(const json_t *secrets, const char *name, size_t *size)
{
    uint8_t *b = NULL;
    const char *v = json_string_value(json_object_get(json_object_get(secrets, name), "value"));
    assert_non_null(v);
    assert_int_equal(custos_base64_decode(v, &b, size), 0);
    return b;
}

static const char *field_of(const json_t *secrets, const char *name, const char *key)
{
    return json_string_value(json_object_get(json_object_get(secrets, name), key));
}

static void test_secret_generation(void **state)
{
    (void)state;
    json_t *s = parse_ok(HDR "secrets:\n  - name: a\n    size: 65536\n  - name: b\n    kind: binary\n    size: 16\n"
                             "  - name: h\n    kind: hex\n    size: 8\n  - name: k\n    kind: key\n"
                             "  - name: d\n  - name: ga\n    value: \"pass word\"\n"
                             "  - name: gh\n    kind: hex\n    value: 00FF\n"
                             "  - name: gb\n    kind: binary\n    value: AAEC\n"
                             "  - name: i\n    import: {session: o, secret: z}\n");
    json_t *sec = secrets_ok(s, NULL);
    size_t size;
    uint8_t *v = value_of(sec, "a", &size);
    assert_int_equal(size, 65536);
    size_t seen[256] = {0};
    for (size_t i = 0; i < size; i++) {
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", v[i]));
        assert_true(v[i] != 0);
        seen[v[i]]++;
    }
    /* Uniform: each of the 62 characters about 65536 / 62 = 1057 times (sigma 32). A byte taken
     * modulo 62 without rejection would give the first 8 characters 5/256 each (1280 times). */
    size_t distinct = 0;
    for (size_t i = 0; i < 256; i++) {
        if (!seen[i])
            continue;
        distinct++;
        if (seen[i] < 1057 - 170 || seen[i] > 1057 + 170)
            fail_msg("character '%c' drawn %zu times of 65536 (expected about 1057)", (int)i, seen[i]);
    }
    assert_int_equal(distinct, 62);
    free(v);
    v = value_of(sec, "b", &size);
    assert_int_equal(size, 16);
    free(v);
    v = value_of(sec, "h", &size);
    assert_int_equal(size, 8);
    free(v);
    v = value_of(sec, "d", &size);
    assert_int_equal(size, 32);
    free(v);
    v = value_of(sec, "ga", &size);
    assert_int_equal(size, 9);
    assert_memory_equal(v, "pass word", 9);
    free(v);
    v = value_of(sec, "gh", &size);
    assert_int_equal(size, 2);
    assert_memory_equal(v, "\x00\xff", 2);
    free(v);
    v = value_of(sec, "gb", &size);
    assert_int_equal(size, 3);
    assert_memory_equal(v, "\x00\x01\x02", 3);
    free(v);
    assert_string_equal(field_of(sec, "b", "kind"), "binary");
    assert_int_equal(strlen(field_of(sec, "b", "def")), 64);
    /* key: a P-256 private key in PEM */
    v = value_of(sec, "k", &size);
    EVP_PKEY *key = NULL;
    char err[256];
    assert_int_equal(custos_key_from_pem((const char *)v, size, &key, err, sizeof(err)), 0);
    assert_int_equal(EVP_PKEY_get_bits(key), 256);
    EVP_PKEY_free(key);
    free(v);
    assert_null(json_object_get(sec, "i")); /* imports are not stored */
    /* two secrets of the same definition but different names get different values */
    assert_string_not_equal(field_of(sec, "a", "value"), field_of(sec, "d", "value"));
    json_decref(sec);
    json_decref(s);
}

static void test_secrets_across_updates(void **state)
{
    (void)state;
    json_t *v1 = parse_ok(HDR "secrets:\n  - name: a\n  - name: b\n    kind: binary\n  - name: x\n    kind: x509\n"
                              "  - name: k\n    kind: key\n");
    json_t *s1 = secrets_ok(v1, NULL);
    /* same definitions, exports added, another secret added: every value kept */
    json_t *v2 = parse_ok(HDR "secrets:\n  - name: n\n  - name: a\n    export: \"*\"\n  - name: b\n    kind: binary\n"
                              "    export: [o]\n  - name: x\n    kind: x509\n  - name: k\n    kind: key\n");
    json_t *s2 = secrets_ok(v2, s1);
    const char *names[] = {"a", "b", "k"};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(field_of(s1, names[i], "value"), field_of(s2, names[i], "value"));
        assert_string_equal(field_of(s1, names[i], "def"), field_of(s2, names[i], "def"));
    }
    assert_string_equal(field_of(s1, "x", "crt"), field_of(s2, "x", "crt"));
    assert_string_equal(field_of(s1, "x", "key"), field_of(s2, "x", "key"));
    assert_non_null(field_of(s2, "n", "value"));
    /* changed definitions: new values */
    json_t *v3 = parse_ok(HDR "secrets:\n  - name: a\n    size: 31\n  - name: b\n    kind: hex\n  - name: x\n"
                              "    kind: x509\n    common_name: other\n  - name: k\n    kind: key\n");
    json_t *s3 = secrets_ok(v3, s2);
    assert_string_not_equal(field_of(s2, "a", "value"), field_of(s3, "a", "value"));
    assert_string_not_equal(field_of(s2, "a", "def"), field_of(s3, "a", "def"));
    assert_string_not_equal(field_of(s2, "b", "value"), field_of(s3, "b", "value"));
    assert_string_not_equal(field_of(s2, "x", "crt"), field_of(s3, "x", "crt"));
    assert_string_not_equal(field_of(s2, "x", "key"), field_of(s3, "x", "key"));
    assert_string_equal(field_of(s2, "k", "value"), field_of(s3, "k", "value"));
    /* a given value that changes is a new definition */
    json_t *g1 = parse_ok(HDR "secrets:\n  - name: a\n    value: one\n");
    json_t *g2 = parse_ok(HDR "secrets:\n  - name: a\n    value: two\n");
    json_t *gs1 = secrets_ok(g1, NULL), *gs2 = secrets_ok(g2, gs1);
    assert_string_not_equal(field_of(gs1, "a", "def"), field_of(gs2, "a", "def"));
    assert_string_equal(field_of(gs2, "a", "value"), "dHdv"); /* "two" */
    /* an old record holding an entry of the same name but another def is not reused */
    json_t *forged = json_pack("{s:{s:s, s:s}}", "a", "def", "00", "value", "AAAA");
    json_t *gs3 = secrets_ok(g2, forged);
    assert_string_equal(field_of(gs3, "a", "value"), "dHdv");
    json_t *all[] = {v1, s1, v2, s2, v3, s3, g1, g2, gs1, gs2, gs3, forged};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        json_decref(all[i]);
}

static X509 *crt_of(const json_t *secrets, const char *name)
{
    const char *pem = field_of(secrets, name, "crt");
    assert_non_null(pem);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *c = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(c);
    return c;
}

static EVP_PKEY *key_of(const json_t *secrets, const char *name)
{
    const char *pem = field_of(secrets, name, "key");
    char err[256];
    EVP_PKEY *k = NULL;
    assert_non_null(pem);
    assert_int_equal(custos_key_from_pem(pem, strlen(pem), &k, err, sizeof(err)), 0);
    return k;
}

static void test_x509_chain(void **state)
{
    (void)state;
    /* subjects listed before their issuers: generation orders them */
    const char *text = HDR "secrets:\n  - name: leaf\n    kind: x509\n    issuer: mid\n    common_name: svc.example\n"
                           "  - name: mid\n    kind: x509\n    issuer: root\n  - name: root\n    kind: x509\n";
    json_t *s = parse_ok(text);
    json_t *sec = secrets_ok(s, NULL);
    X509 *leaf = crt_of(sec, "leaf"), *mid = crt_of(sec, "mid"), *root = crt_of(sec, "root");
    EVP_PKEY *kroot = key_of(sec, "root"), *kmid = key_of(sec, "mid"), *kleaf = key_of(sec, "leaf");
    assert_int_equal(X509_verify(root, kroot), 1); /* self-signed */
    assert_int_equal(X509_verify(mid, kroot), 1);
    assert_int_equal(X509_verify(leaf, kmid), 1);
    assert_int_not_equal(X509_verify(leaf, kroot), 1);
    assert_int_equal(X509_check_private_key(leaf, kleaf), 1);
    assert_int_equal(X509_check_issued(root, mid), X509_V_OK);
    assert_int_equal(X509_check_issued(mid, leaf), X509_V_OK);
    assert_true(X509_check_ca(root) > 0);
    assert_true(X509_check_ca(mid) > 0);
    assert_int_equal(X509_check_ca(leaf), 0);
    char cn[128];
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "svc.example");
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(root), NID_commonName, cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "root");
    /* one year */
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
    assert_int_equal(days, 365);
    /* the whole chain verifies with a store holding the root */
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    sk_X509_push(untrusted, mid);
    X509_STORE_add_cert(store, root);
    X509_STORE_CTX_init(ctx, store, leaf, untrusted);
    if (X509_verify_cert(ctx) != 1)
        fail_msg("chain: %s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_free(untrusted);

    /* a new root re-issues what it signed, transitively */
    json_t *s2 =
        parse_ok(HDR "secrets:\n  - name: leaf\n    kind: x509\n    issuer: mid\n    common_name: svc.example\n"
                     "  - name: mid\n    kind: x509\n    issuer: root\n  - name: root\n    kind: x509\n"
                     "    common_name: new-root\n");
    json_t *sec2 = secrets_ok(s2, sec);
    assert_string_not_equal(field_of(sec, "root", "crt"), field_of(sec2, "root", "crt"));
    assert_string_not_equal(field_of(sec, "mid", "crt"), field_of(sec2, "mid", "crt"));
    assert_string_not_equal(field_of(sec, "leaf", "crt"), field_of(sec2, "leaf", "crt"));
    X509 *mid2 = crt_of(sec2, "mid");
    EVP_PKEY *kroot2 = key_of(sec2, "root");
    assert_int_equal(X509_verify(mid2, kroot2), 1);
    X509_free(mid2);
    EVP_PKEY_free(kroot2);

    X509_free(leaf);
    X509_free(mid);
    X509_free(root);
    EVP_PKEY_free(kroot);
    EVP_PKEY_free(kmid);
    EVP_PKEY_free(kleaf);
    json_decref(sec);
    json_decref(sec2);
    json_decref(s);
    json_decref(s2);
}

static void test_secrets_refuse_unparsed(void **state)
{
    (void)state;
    char err[256] = "";
    json_t *out = (json_t *)1;
    /* an issuer kept from a damaged record cannot sign: said, not crashed */
    json_t *v1 = parse_ok(HDR "secrets:\n  - name: root\n    kind: x509\n");
    json_t *s1 = secrets_ok(v1, NULL);
    json_object_set_new(json_object_get(s1, "root"), "crt", json_string("junk"));
    json_t *v2 = parse_ok(HDR "secrets:\n  - name: root\n    kind: x509\n  - name: leaf\n    kind: x509\n"
                              "    issuer: root\n");
    assert_int_equal(cas_session_secrets(v2, s1, &out, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "secret 'leaf': cannot make its value (Invalid argument)");
    assert_null(out);
    json_decref(v1);
    json_decref(s1);
    json_decref(v2);
    out = (json_t *)1;
    /* a loop that did not go through the parser: refused, not a stack overflow */
    json_t *s = json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}", "secrets", "name", "a", "kind", "x509", "issuer",
                          "b", "name", "b", "kind", "x509", "issuer", "a");
    assert_int_equal(cas_session_secrets(s, NULL, &out, err, sizeof(err)), -EINVAL);
    assert_null(out);
    json_decref(s);
    s = json_pack("{s:[{s:s}]}", "secrets", "name", "a"); /* no kind */
    assert_int_equal(cas_session_secrets(s, NULL, &out, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "secret 'a': not a parsed session's secret");
    json_decref(s);
    s = json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s, s:i}]}", "secrets", "name", "a", "kind", "x509", "issuer", "b",
                  "name", "b", "kind", "ascii", "size", 4);
    assert_int_equal(cas_session_secrets(s, NULL, &out, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "secret 'a': issuer 'b' is not an x509 secret of this session");
    json_decref(s);
}

static void test_exports(void **state)
{
    (void)state;
    json_t *s = parse_ok(HDR "secrets:\n  - name: all\n    export: \"*\"\n  - name: some\n    export: [o1, o2]\n"
                             "  - name: none\n  - name: imp\n    import: {session: o, secret: z}\n");
    assert_true(cas_session_exports(s, "all", "anyone"));
    assert_true(cas_session_exports(s, "some", "o2"));
    assert_false(cas_session_exports(s, "some", "o3"));
    assert_false(cas_session_exports(s, "none", "o1"));
    assert_false(cas_session_exports(s, "missing", "o1"));
    assert_false(cas_session_exports(s, "imp", "o1"));
    assert_false(cas_session_exports(s, "all", NULL));
    json_decref(s);
    /* an import is never re-exported, even by a record that says so */
    s = json_pack("{s:[{s:s, s:s, s:{s:s, s:s}}]}", "secrets", "name", "imp", "export", "*", "import", "session", "o",
                  "secret", "z");
    assert_false(cas_session_exports(s, "imp", "o1"));
    json_decref(s);
}

/* ---- expansion ---------------------------------------------------------------------------------- */

struct imports {
    json_t *entry; /* what the exporting session gives, or NULL */
    char last[300];
};

static const json_t *fake_import(void *ctx, const char *session, const char *secret, char *err, size_t err_size)
{
    struct imports *im = ctx;
    snprintf(im->last, sizeof(im->last), "%s/%s", session, secret);
    if (!im->entry)
        snprintf(err, err_size, "not exported to this session");
    return im->entry;
}

struct expand_fixture {
    json_t *session, *secrets;
    struct imports im;
    struct cas_secret_source src;
};

static int expand_setup(void **state)
{
    struct expand_fixture *f = calloc(1, sizeof(*f));
    char err[256];
    const char *text = HDR "secrets:\n  - name: pw\n    value: s3cret\n  - name: h\n    kind: hex\n    value: 00ff10\n"
                           "  - name: b\n    kind: binary\n    value: AGFi\n  - name: x\n    kind: x509\n"
                           "  - name: k\n    kind: key\n  - name: big\n    kind: binary\n    size: 65536\n"
                           "  - name: imp\n    import: {session: other, secret: theirs}\n";
    if (!f || cas_session_parse(text, strlen(text), &f->session, err, sizeof(err)) < 0 ||
        cas_session_secrets(f->session, NULL, &f->secrets, err, sizeof(err)) < 0)
        return -1;
    f->src = (struct cas_secret_source){f->session, f->secrets, fake_import, &f->im};
    *state = f;
    return 0;
}

static int expand_teardown(void **state)
{
    struct expand_fixture *f = *state;
    json_decref(f->session);
    json_decref(f->secrets);
    json_decref(f->im.entry);
    free(f);
    return 0;
}

static void expands(const struct expand_fixture *f, const char *in, size_t in_size, bool text, const void *want,
                    size_t want_size)
{
    char err[512] = "";
    uint8_t *out = NULL;
    size_t size = 0;
    if (cas_session_expand(&f->src, in, in_size, text, &out, &size, err, sizeof(err)) != 0)
        fail_msg("expand '%s' refused: %s", in, err);
    assert_int_equal(size, want_size);
    assert_memory_equal(out, want, want_size);
    assert_int_equal(out[size], '\0');
    free(out);
}

static void expand_refused(const struct expand_fixture *f, const char *in, size_t in_size, bool text, int want_ret,
                           const char *want)
{
    char err[512] = "";
    uint8_t *out = (uint8_t *)1;
    size_t size = 7;
    int ret = cas_session_expand(&f->src, in, in_size, text, &out, &size, err, sizeof(err));
    if (ret != want_ret || strcmp(err, want))
        fail_msg("expand '%.100s': %d '%s'\n  expected %d '%s'", in, ret, err, want_ret, want);
    assert_null(out);
    assert_int_equal(size, 0);
    assert_null(strstr(err, "s3cret")); /* never a value in a message */
}

static void test_expand_formats(void **state)
{
    struct expand_fixture *f = *state;
    const char *in;
#define EXPANDS(in_, text_, want_) expands(f, in_, strlen(in_), text_, want_, sizeof(want_) - 1)
    EXPANDS("", true, "");
    EXPANDS("no refs $$ $CAS:: $$CAS:", true, "no refs $$ $CAS:: $$CAS:");
    EXPANDS("pw=$$CAS::pw$$!", true, "pw=s3cret!");
    EXPANDS("$$CAS::pw$$$$CAS::pw$$", true, "s3crets3cret");
    EXPANDS("$$CAS::pw:hex$$", true, "733363726574");
    EXPANDS("$$CAS::pw:base64$$", true, "czNjcmV0");
    EXPANDS("$$CAS::h$$", true, "00ff10");
    EXPANDS("$$CAS::h:hex$$", true, "00ff10");
    EXPANDS("$$CAS::h:base64$$", true, "AP8Q");
    EXPANDS("[$$CAS::b:hex$$]", true, "[006162]");
    EXPANDS("$$CAS::b:base64$$", true, "AGFi");
    EXPANDS("<$$CAS::b$$>", false, "<\0ab>"); /* raw in a file */
    /* x509 and key */
    in = "$$CAS::x$$|$$CAS::x:crt$$|$$CAS::x:key$$";
    char want[8192];
    int n = snprintf(want, sizeof(want), "%s|%s|%s", field_of(f->secrets, "x", "crt"), field_of(f->secrets, "x", "crt"),
                     field_of(f->secrets, "x", "key"));
    expands(f, in, strlen(in), true, want, (size_t)n);
    size_t ksize;
    uint8_t *k = value_of(f->secrets, "k", &ksize);
    assert_memory_equal(k, "-----BEGIN PRIVATE KEY-----", 27);
    expands(f, "$$CAS::k$$", 10, true, k, ksize);
    free(k);
    /* the input is bytes, not a C string */
    expands(f, "ab$$CAS::pw$$cd", 4, true, "ab$$", 4);
    expands(f, "a\0b$$CAS::pw$$", 14, false, "a\0bs3cret", 9);
#undef EXPANDS
}

static void test_expand_imports(void **state)
{
    struct expand_fixture *f = *state;
    expand_refused(f, "$$CAS::imp$$", 12, true, -EINVAL,
                   "$$CAS::imp$$: cannot import other/theirs: not exported to this session");
    assert_string_equal(f->im.last, "other/theirs");
    f->im.entry = json_pack("{s:s, s:s, s:s}", "def", "00", "kind", "ascii", "value", "dGhlaXJz");
    expands(f, "<$$CAS::imp$$>", 14, true, "<theirs>", 8);
    expands(f, "$$CAS::imp:hex$$", 16, true, "746865697273", 12);
    expand_refused(f, "$$CAS::imp:crt$$", 16, true, -EINVAL,
                   "$$CAS::imp:crt$$: :crt and :key are only for x509 secrets");
    json_decref(f->im.entry);
    /* without a kind: binary (raw only in files) */
    f->im.entry = json_pack("{s:s, s:s}", "def", "00", "value", "AAE=");
    expand_refused(f, "$$CAS::imp$$", 12, true, -EINVAL,
                   "$$CAS::imp$$: a binary secret needs :hex or :base64 here (raw bytes only in injection files)");
    expands(f, "$$CAS::imp$$", 12, false, "\0\1", 2);
    json_decref(f->im.entry);
    /* an ascii entry holding NUL (a bad record): refused in a text */
    f->im.entry = json_pack("{s:s, s:s, s:s}", "def", "00", "kind", "ascii", "value", "AAE=");
    expand_refused(f, "x$$CAS::imp$$", 13, true, -EINVAL,
                   "$$CAS::imp$$: its value holds a NUL byte (not allowed here)");
    json_decref(f->im.entry);
    f->im.entry = json_pack("{s:s, s:s}", "def", "00", "value", "not base64");
    expand_refused(f, "$$CAS::imp$$", 12, false, -EINVAL, "$$CAS::imp$$: its stored value is not base64");
    json_decref(f->im.entry);
    f->im.entry = json_pack("{s:s, s:s, s:s}", "def", "00", "kind", "x509", "key", "K");
    expand_refused(f, "$$CAS::imp$$", 12, false, -EINVAL, "$$CAS::imp$$: the x509 secret has no crt");
    json_decref(f->im.entry);
    f->im.entry = NULL;
    /* no import callback */
    struct cas_secret_source src = f->src;
    f->src.import = NULL;
    expand_refused(f, "$$CAS::imp$$", 12, true, -EINVAL, "$$CAS::imp$$: cannot import other/theirs: no import source");
    f->src = src;
}

static void test_expand_refusals(void **state)
{
    struct expand_fixture *f = *state;
    expand_refused(f, "$$CAS::nope$$", 13, true, -EINVAL, "$$CAS::nope$$: no secret 'nope' in this session");
    expand_refused(f, "a $$CAS::pw", 11, true, -EINVAL,
                   "unclosed secret reference ('$$CAS::' at byte 2 has no closing '$$')");
    expand_refused(f, "$$CAS::pw$ $", 12, true, -EINVAL,
                   "unclosed secret reference ('$$CAS::' at byte 0 has no closing '$$')");
    const char *malformed = "malformed secret reference at byte 0 (write $$CAS::NAME$$ or $$CAS::NAME:FORMAT$$, "
                            "FORMAT hex, base64, crt or key)";
    expand_refused(f, "$$CAS::$$", 9, true, -EINVAL, malformed);
    expand_refused(f, "$$CAS::pw:$$", 12, true, -EINVAL, malformed);
    expand_refused(f, "$$CAS::pw:hexx$$", 16, true, -EINVAL, malformed);
    expand_refused(f, "$$CAS::pw:hex:hex$$", 19, true, -EINVAL, malformed);
    expand_refused(f, "$$CAS::p\0w$$", 12, true, -EINVAL, malformed);
    expand_refused(f, "$$CAS::pw:he\0$$", 15, true, -EINVAL, malformed);
    char longname[200];
    snprintf(longname, sizeof(longname), "$$CAS::%0129d$$", 0);
    expand_refused(f, longname, strlen(longname), true, -EINVAL, malformed);
    expand_refused(f, "$$CAS::b$$", 10, true, -EINVAL,
                   "$$CAS::b$$: a binary secret needs :hex or :base64 here (raw bytes only in injection files)");
    expand_refused(f, "$$CAS::pw:key$$", 15, true, -EINVAL, "$$CAS::pw:key$$: :crt and :key are only for x509 secrets");
    expand_refused(f, "$$CAS::x:base64$$", 17, true, -EINVAL,
                   "$$CAS::x:base64$$: :hex and :base64 do not apply to x509 secrets (use :crt or :key)");
    uint8_t *none = (uint8_t *)1;
    size_t none_size = 1;
    char nerr[64];
    assert_int_equal(cas_session_expand(&f->src, NULL, 1, true, &none, &none_size, nerr, sizeof(nerr)), -EINVAL);
    assert_string_equal(nerr, "no input");
    assert_null(none);
    assert_int_equal(cas_session_expand(&f->src, NULL, 0, true, &none, &none_size, nerr, sizeof(nerr)), 0);
    assert_int_equal(none_size, 0);
    free(none);
    /* NUL: in a text, refused wherever it comes from */
    expand_refused(f, "a\0b", 3, true, -EINVAL, "the text holds a NUL byte");
    /* secrets missing for this version */
    struct cas_secret_source src = f->src;
    json_t *empty = json_object();
    f->src.secrets = empty;
    expand_refused(f, "$$CAS::pw$$", 11, true, -EINVAL,
                   "$$CAS::pw$$: secret 'pw' has no value (secrets not made for this version)");
    f->src = src;
    json_decref(empty);
    /* bounded at 1 MiB: 65536 bytes as hex are 128 KiB, 9 of them are over */
    char nine[200] = "";
    for (int i = 0; i < 9; i++)
        strcat(nine, "$$CAS::big:hex$$");
    expand_refused(f, nine, strlen(nine), true, -E2BIG, "$$CAS::big:hex$$: the expansion is over 1048576 bytes");
    char eight[200] = "";
    for (int i = 0; i < 8; i++)
        strcat(eight, "$$CAS::big:hex$$");
    char err[256];
    uint8_t *out = NULL;
    size_t size = 0;
    assert_int_equal(cas_session_expand(&f->src, eight, strlen(eight), true, &out, &size, err, sizeof(err)), 0);
    assert_int_equal(size, 1u << 20);
    free(out);
    char *huge = malloc(CAS_SESSION_MAX_EXPAND + 32);
    assert_non_null(huge);
    memset(huge, 'x', CAS_SESSION_MAX_EXPAND + 32);
    expand_refused(f, huge, CAS_SESSION_MAX_EXPAND + 1, true, -E2BIG, "the expansion is over 1048576 bytes");
    memcpy(huge + CAS_SESSION_MAX_EXPAND + 1, "$$CAS::pw$$", 11); /* the literal before a reference */
    expand_refused(f, huge, CAS_SESSION_MAX_EXPAND + 12, true, -E2BIG, "the expansion is over 1048576 bytes");
    memcpy(huge + CAS_SESSION_MAX_EXPAND - 20, "$$CAS::big:hex$$", 16); /* the reference itself */
    expand_refused(f, huge, CAS_SESSION_MAX_EXPAND - 4, true, -E2BIG,
                   "$$CAS::big:hex$$: the expansion is over 1048576 bytes");
    free(huge);
}

/* ---- command matching --------------------------------------------------------------------------- */

static json_t *words(const char *first, ...)
{
    json_t *a = json_array();
    va_list ap;
    va_start(ap, first);
    for (const char *w = first; w; w = va_arg(ap, const char *))
        json_array_append_new(a, json_string(w));
    va_end(ap);
    return a;
}

static void test_match_command(void **state)
{
    (void)state;
    json_t *s = parse_ok(QUICKSTART);
    const json_t *svc = cas_session_service(s, "register");
    json_t *errors = json_array(), *filled = NULL;
    json_t *argv = words("cas", "register-backup", "node-1.json", NULL);
    assert_true(cas_service_match_command(svc, argv, errors, &filled));
    assert_true(json_equal(filled, argv));
    assert_int_equal(json_array_size(errors), 0);
    json_decref(filled);
    json_decref(argv);

    argv = words("cas", "register-backup", NULL);
    assert_false(cas_service_match_command(svc, argv, errors, &filled));
    assert_null(filled);
    assert_string_equal(json_string_value(json_array_get(errors, 0)), "Command has 2 words - Expected 3");
    json_decref(argv);

    json_array_clear(errors);
    argv = words("scone", "cas", "x", "register-backup", NULL);
    assert_false(cas_service_match_command(svc, argv, errors, &filled));
    assert_string_equal(json_string_value(json_array_get(errors, 0)), "Command has 4 words - Expected 3");
    json_decref(argv);

    /* word 0 is the program: a path to it is fine (its measurement is what counts), and the
     * program gets the session's word 0 */
    json_array_clear(errors);
    argv = words("/usr/bin/cas", "register-backup", "x", NULL);
    assert_true(cas_service_match_command(svc, argv, errors, &filled));
    assert_string_equal(json_string_value(json_array_get(filled, 0)), "cas");
    assert_string_equal(json_string_value(json_array_get(filled, 2)), "x");
    json_decref(filled);
    json_decref(argv);
    argv = words("/usr/bin/cas", "register", "x", NULL);
    assert_false(cas_service_match_command(svc, argv, errors, &filled));
    assert_null(filled);
    assert_int_equal(json_array_size(errors), 1);
    assert_string_equal(json_string_value(json_array_get(errors, 0)),
                        "Command word 1 is 'register' - Expected 'register-backup'");
    json_decref(argv);

    /* long and unprintable words are cut and masked */
    json_array_clear(errors);
    char longw[200];
    memset(longw, 'w', sizeof(longw) - 1);
    longw[sizeof(longw) - 1] = '\0';
    argv = words("cas", longw, "x", NULL);
    assert_false(cas_service_match_command(svc, argv, errors, &filled));
    char want[300];
    snprintf(want, sizeof(want), "Command word 1 is '%.80s...' - Expected 'register-backup'", longw);
    assert_string_equal(json_string_value(json_array_get(errors, 0)), want);
    json_decref(argv);
    json_array_clear(errors);
    argv = words("cas", "a\tb", "x", NULL);
    assert_false(cas_service_match_command(svc, argv, errors, &filled));
    assert_string_equal(json_string_value(json_array_get(errors, 0)),
                        "Command word 1 is 'a?b' - Expected 'register-backup'");
    json_decref(argv);

    /* not strings, not an array */
    json_array_clear(errors);
    argv = json_pack("[s, s, i]", "cas", "register-backup", 3);
    assert_false(cas_service_match_command(svc, argv, errors, &filled));
    assert_string_equal(json_string_value(json_array_get(errors, 0)), "Command word 2 is not a string");
    json_decref(argv);
    json_array_clear(errors);
    argv = json_string("cas register-backup x");
    assert_false(cas_service_match_command(svc, argv, errors, &filled));
    assert_string_equal(json_string_value(json_array_get(errors, 0)), "Command has 0 words - Expected 3");
    json_decref(argv);
    json_decref(s);

    /* @@N in the middle, literal references, a service without command */
    s = parse_ok(HDR "secrets:\n  - name: t\n" SVC "  - name: two\n    mrenclaves: [" M64 "]\n"
                     "    command: [p, \"@@1\", \"--t=$$CAS::t$$\", \"@@3\"]\n");
    svc = cas_session_service(s, "two");
    json_array_clear(errors);
    argv = words("p", "any thing", "--t=$$CAS::t$$", "", NULL);
    assert_true(cas_service_match_command(svc, argv, errors, &filled));
    assert_true(json_equal(filled, argv));
    json_decref(filled);
    json_decref(argv);
    argv = words("p", "x", "--t=guess", "y", NULL);
    assert_false(cas_service_match_command(svc, argv, errors, &filled));
    assert_string_equal(json_string_value(json_array_get(errors, 0)),
                        "Command word 2 is '--t=guess' - Expected '--t=$$CAS::t$$'");
    json_decref(argv);
    json_array_clear(errors);
    json_t *bare = json_object();
    argv = words("p", NULL);
    assert_false(cas_service_match_command(bare, argv, errors, &filled));
    assert_string_equal(json_string_value(json_array_get(errors, 0)), "The service has no command");
    assert_false(cas_service_match_command(bare, argv, NULL, &filled)); /* errors may be NULL */
    json_decref(bare);
    json_decref(argv);
    json_decref(errors);
    json_decref(s);
}

/* ---- the fuzzer's seeds ------------------------------------------------------------------------- */

#ifndef CORPUS_DIR
#error "CORPUS_DIR must name fuzz/corpus"
#endif

static void test_session_seeds(void **state)
{
    (void)state;
    const char *names[] = {"quickstart.yaml", "hello-world.yaml", "tls.yaml", "json.json"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[4096], err[512] = "";
        uint8_t *text = NULL;
        size_t size = 0;
        json_t *s = NULL, *sec = NULL;
        snprintf(path, sizeof(path), "%s/session/%s", CORPUS_DIR, names[i]);
        assert_int_equal(custos_read_file(path, CAS_SESSION_MAX_TEXT, &text, &size), 0);
        if (cas_session_parse((const char *)text, size, &s, err, sizeof(err)) != 0)
            fail_msg("seed %s refused: %s", names[i], err);
        sec = secrets_ok(s, NULL);
        json_decref(sec);
        json_decref(s);
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quickstart_normal_form),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_lowercase_uppercase),
        cmocka_unit_test(test_json_text),
        cmocka_unit_test(test_normal_form_fixed_point),
        cmocka_unit_test(test_refuse_document),
        cmocka_unit_test(test_refuse_access_security),
        cmocka_unit_test(test_refuse_secrets),
        cmocka_unit_test(test_refuse_images),
        cmocka_unit_test(test_refuse_services),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_secret_generation),
        cmocka_unit_test(test_secrets_across_updates),
        cmocka_unit_test(test_x509_chain),
        cmocka_unit_test(test_secrets_refuse_unparsed),
        cmocka_unit_test(test_exports),
        cmocka_unit_test_setup_teardown(test_expand_formats, expand_setup, expand_teardown),
        cmocka_unit_test_setup_teardown(test_expand_imports, expand_setup, expand_teardown),
        cmocka_unit_test_setup_teardown(test_expand_refusals, expand_setup, expand_teardown),
        cmocka_unit_test(test_match_command),
        cmocka_unit_test(test_session_seeds),
    };
    custos_json_wipe_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
