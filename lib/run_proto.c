/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run <-> CAS: the attestation request's checks, its binding into the quote, and the answer
 * encrypted to the launcher's ephemeral key (docs/design.md, "cas-run: the attested launcher"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"

#define RUN_TAG "custos-run-v1"
#define RUN_INFO "custos-run-config-v1"
#define RUN_MAX_CONFIG (4u << 20)

/* A name of [A-Za-z0-9._-]{1,128}, not "." or "..". */
static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

static int hex32(const json_t *v, uint8_t out[32], char *hex_out)
{
    const char *s = json_string_value(v);
    if (!s || custos_hex_decode(s, out, 32) < 0)
        return -1;
    if (hex_out)
        custos_hex_encode(out, 32, hex_out, false);
    return 0;
}

static int fail(char *err, size_t err_size, const char *fmt, const char *field)
{
    snprintf(err, err_size, fmt, field);
    return -EINVAL;
}

static int parse_argv(const json_t *argv, char *err, size_t err_size)
{
    size_t i;
    json_t *w;
    if (!json_is_array(argv) || json_array_size(argv) < 1 || json_array_size(argv) > CUSTOS_RUN_MAX_WORDS) {
        snprintf(err, err_size, "request.argv: must be an array of 1 to %d words", CUSTOS_RUN_MAX_WORDS);
        return -EINVAL;
    }
    json_array_foreach(argv, i, w) {
        size_t n = json_string_length(w);
        if (!json_is_string(w) || n > CUSTOS_RUN_MAX_WORD || memchr(json_string_value(w), '\0', n)) {
            snprintf(err, err_size, "request.argv[%zu]: must be a string of at most %d bytes without NUL", i,
                     CUSTOS_RUN_MAX_WORD);
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_files(const json_t *files, size_t argc, struct custos_run_request *out, char *err, size_t err_size)
{
    size_t i;
    json_t *f;
    if (!json_is_array(files) || json_array_size(files) > CUSTOS_RUN_MAX_FILES) {
        snprintf(err, err_size, "request.files: must be an array of at most %d entries", CUSTOS_RUN_MAX_FILES);
        return -EINVAL;
    }
    json_array_foreach(files, i, f) {
        json_int_t arg = 0;
        json_t *sha = NULL;
        json_error_t e;
        if (json_unpack_ex(f, &e, JSON_STRICT, "{s:I, s:o}", "arg", &arg, "sha256", &sha) < 0) {
            snprintf(err, err_size, "request.files[%zu]: %s (expected arg and sha256)", i, e.text);
            return -EINVAL;
        }
        if (arg < 1 || (size_t)arg >= argc) {
            snprintf(err, err_size, "request.files[%zu].arg: must name a word of argv (1..%zu)", i, argc - 1);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (out->files[j].arg == (unsigned)arg) {
                snprintf(err, err_size, "request.files[%zu].arg: word %lld is measured twice", i, (long long)arg);
                return -EINVAL;
            }
        if (hex32(sha, out->files[i].sha256, NULL) < 0) {
            snprintf(err, err_size, "request.files[%zu].sha256: must be 64 hex digits", i);
            return -EINVAL;
        }
        out->files[i].arg = (unsigned)arg;
    }
    out->file_count = json_array_size(files);
    return 0;
}

int custos_run_request_parse(const json_t *body, struct custos_run_request *out, char *err, size_t err_size)
{
    const char *service = NULL;
    json_t *req = NULL, *quote = NULL, *key = NULL, *hash = NULL, *program = NULL, *argv = NULL, *files = NULL;
    json_int_t t = 0;
    json_error_t e;
    memset(out, 0, sizeof(*out));
    if (json_unpack_ex((json_t *)body, &e, JSON_STRICT, "{s:s, s:o, s:o}", "service", &service, "request", &req,
                       "quote", &quote) < 0) {
        snprintf(err, err_size, "%s (expected service, request and quote)", e.text);
        return -EINVAL;
    }
    const char *slash = strchr(service, '/');
    if (!slash || !name_ok(service, (size_t)(slash - service)) || !name_ok(slash + 1, strlen(slash + 1)))
        return fail(err, err_size, "%s: must be SESSION/SERVICE (each 1 to 128 of A-Z a-z 0-9 . _ -)", "service");
    memcpy(out->session, service, (size_t)(slash - service));
    snprintf(out->service, sizeof(out->service), "%s", slash + 1);
    if (json_unpack_ex(req, &e, JSON_STRICT, "{s:I, s:o, s:o, s:o, s:o, s:o}", "time", &t, "key", &key, "cas_key_hash",
                       &hash, "program", &program, "argv", &argv, "files", &files) < 0) {
        snprintf(err, err_size, "request: %s (expected time, key, cas_key_hash, program, argv and files)", e.text);
        return -EINVAL;
    }
    out->request = req;
    out->time = t;
    if (custos_json_b64_bytes(req, "key", out->key, 32, 32, NULL, err, err_size) < 0)
        return -EINVAL;
    if (hex32(hash, (uint8_t[32]){0}, out->cas_key_hash) < 0)
        return fail(err, err_size, "request.%s: must be 64 hex digits", "cas_key_hash");
    if (hex32(program, out->program, NULL) < 0)
        return fail(err, err_size, "request.%s: must be 64 hex digits", "program");
    if (parse_argv(argv, err, err_size) < 0)
        return -EINVAL;
    out->argv = argv;
    if (parse_files(files, json_array_size(argv), out, err, err_size) < 0)
        return -EINVAL;
    char qerr[200];
    if (custos_quote_from_json(quote, &out->quote, qerr, sizeof(qerr)) < 0) {
        snprintf(err, err_size, "quote: %s", qerr);
        return -EINVAL;
    }
    return 0;
}

int custos_run_binding(const json_t *request, uint8_t salt[CUSTOS_SHA256_SIZE],
                       uint8_t report_data[CUSTOS_REPORT_DATA_SIZE])
{
    char *text = json_dumps(request, JSON_SORT_KEYS | JSON_COMPACT);
    if (!text)
        return -ENOMEM;
    size_t n = strlen(text), tag = sizeof(RUN_TAG); /* the tag and its NUL */
    uint8_t *buf = malloc(tag + n);
    int ret = -ENOMEM;
    if (buf) {
        memcpy(buf, RUN_TAG, tag);
        memcpy(buf + tag, text, n);
        memset(report_data, 0, CUSTOS_REPORT_DATA_SIZE);
        ret = custos_sha256(text, n, salt) < 0 || custos_sha256(buf, tag + n, report_data) < 0 ? -EIO : 0;
        free(buf);
    }
    free(text);
    return ret;
}

static int config_key(const uint8_t shared[32], const uint8_t salt[32], uint8_t key[32])
{
    return custos_hkdf_sha256(shared, 32, salt, 32, (const uint8_t *)RUN_INFO, strlen(RUN_INFO), key, 32) < 0 ? -EIO
                                                                                                              : 0;
}

int custos_run_seal(const uint8_t launcher_pub[32], const uint8_t salt[CUSTOS_SHA256_SIZE], const void *config,
                    size_t size, json_t **answer)
{
    uint8_t shared[32], pub[32], key[32], nonce[12];
    uint8_t *ct = malloc(size + 16);
    char *b_key = NULL, *b_nonce = NULL, *b_ct = NULL;
    int ret = -EIO;
    *answer = NULL;
    if (!ct)
        return -ENOMEM;
    if (custos_x25519_process(launcher_pub, pub, shared) == 0 && config_key(shared, salt, key) == 0 &&
        custos_random(nonce, sizeof(nonce)) == 0 && custos_aead_seal(key, nonce, salt, 32, config, size, ct) == 0) {
        b_key = custos_base64_encode(pub, 32);
        b_nonce = custos_base64_encode(nonce, 12);
        b_ct = custos_base64_encode(ct, size + 16);
        *answer = b_key && b_nonce && b_ct
                      ? json_pack("{s:s, s:s, s:s}", "key", b_key, "nonce", b_nonce, "config", b_ct)
                      : NULL;
        ret = *answer ? 0 : -ENOMEM;
    }
    custos_wipe(shared, sizeof(shared));
    custos_wipe(key, sizeof(key));
    free(b_key);
    free(b_nonce);
    free(b_ct);
    free(ct);
    return ret;
}

int custos_run_open(const uint8_t launcher_priv[32], const uint8_t salt[CUSTOS_SHA256_SIZE], const json_t *answer,
                    uint8_t **config, size_t *size, char *err, size_t err_size)
{
    uint8_t pub[32], nonce[12], key[32], *ct = NULL;
    size_t ct_size = 0;
    const char *b_ct = NULL;
    json_error_t e;
    *config = NULL;
    *size = 0;
    if (json_unpack_ex((json_t *)answer, &e, JSON_STRICT, "{s:s, s:s, s:s}", "key", &(const char *){0}, "nonce",
                       &(const char *){0}, "config", &b_ct) < 0) {
        snprintf(err, err_size, "CAS's answer: %s (expected key, nonce and config)", e.text);
        return -EINVAL;
    }
    if (custos_json_b64_bytes(answer, "key", pub, 32, 32, NULL, err, err_size) < 0 ||
        custos_json_b64_bytes(answer, "nonce", nonce, 12, 12, NULL, err, err_size) < 0)
        return -EINVAL;
    if (strlen(b_ct) > (RUN_MAX_CONFIG / 3 + 1) * 4 || custos_base64_decode(b_ct, &ct, &ct_size) < 0 || ct_size < 16) {
        free(ct);
        snprintf(err, err_size, "CAS's answer: config is not base64 of an encrypted configuration");
        return -EINVAL;
    }
    uint8_t *pt = malloc(ct_size - 16 + 1);
    int ret = -ENOMEM;
    uint8_t shared[32];
    if (pt && custos_x25519(launcher_priv, pub, shared) == 0 && config_key(shared, salt, key) == 0) {
        ret = custos_aead_open(key, nonce, salt, 32, ct, ct_size, pt);
        if (ret == 0) {
            pt[ct_size - 16] = '\0';
            *config = pt;
            *size = ct_size - 16;
            pt = NULL;
        } else {
            snprintf(err, err_size, "CAS's answer does not open with this launcher's key (not for this request)");
            ret = -EBADMSG;
        }
    }
    custos_wipe(shared, sizeof(shared));
    custos_wipe(key, sizeof(key));
    free(pt);
    free(ct);
    return ret;
}
