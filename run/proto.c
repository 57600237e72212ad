/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run's side of POST /v1/run: the request R, the report data that binds it into the quote, and
 * the opening of CAS's encrypted answer (docs/design.md "cas-run: the attested launcher"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

static const char g_rd_label[] = "custos-run-v1";    /* its NUL is part of the hashed prefix */
static const char g_info[] = "custos-run-config-v1"; /* no NUL */

json_t *run_request(const struct run_measured *m, char *const *words, const uint8_t pub[32], const char *cas_key_hash,
                    long long now)
{
    char hex[65];
    char *key = custos_base64_encode(pub, 32);
    json_t *argv = json_array(), *files = json_array();
    custos_hex_encode(m->program_hash, 32, hex, false);
    json_t *r = key && argv && files
                    ? json_pack("{s:I, s:s, s:s, s:s, s:O, s:O}", "time", (json_int_t)now, "key", key, "cas_key_hash",
                                cas_key_hash, "program", hex, "argv", argv, "files", files)
                    : NULL;
    for (size_t i = 0; r && i < m->word_count; i++) {
        if (json_array_append_new(argv, json_string(words[i])) < 0) {
            json_decref(r);
            r = NULL;
            break;
        }
        if (m->file_fd[i] < 0)
            continue;
        custos_hex_encode(m->file_hash[i], 32, hex, false);
        if (json_array_append_new(files, json_pack("{s:I, s:s}", "arg", (json_int_t)i, "sha256", hex)) < 0) {
            json_decref(r);
            r = NULL;
        }
    }
    json_decref(argv);
    json_decref(files);
    free(key);
    return r;
}

char *run_request_canonical(const json_t *request)
{
    return json_dumps(request, JSON_SORT_KEYS | JSON_COMPACT);
}

void run_report_data(const char *canonical, uint8_t out[CUSTOS_REPORT_DATA_SIZE])
{
    size_t n = strlen(canonical);
    uint8_t *msg = malloc(sizeof(g_rd_label) + n);
    memset(out, 0, CUSTOS_REPORT_DATA_SIZE);
    if (!msg)
        return; /* all zeros: binds nothing, CAS refuses it */
    memcpy(msg, g_rd_label, sizeof(g_rd_label));
    memcpy(msg + sizeof(g_rd_label), canonical, n);
    custos_sha256(msg, sizeof(g_rd_label) + n, out);
    free(msg);
}

int run_open_config(const json_t *answer, const uint8_t priv[32], const char *canonical, json_t **out, char *err,
                    size_t err_size)
{
    uint8_t peer[32], nonce[12], shared[32], key[32], salt[32];
    uint8_t *sealed = NULL, *plain = NULL;
    size_t sealed_size = 0;
    char ferr[256];
    int ret = -EPROTO;
    if (custos_json_b64_bytes(answer, "key", peer, 32, 32, NULL, ferr, sizeof(ferr)) < 0 ||
        custos_json_b64_bytes(answer, "nonce", nonce, 12, 12, NULL, ferr, sizeof(ferr)) < 0) {
        snprintf(err, err_size, "CAS's answer: %s", ferr);
        return -EPROTO;
    }
    const char *cfg = json_string_value(json_object_get(answer, "config"));
    if (!cfg || custos_base64_decode(cfg, &sealed, &sealed_size) < 0 || sealed_size < CUSTOS_AEAD_TAG_SIZE) {
        snprintf(err, err_size, "CAS's answer: config is not base64 of an AES-256-GCM ciphertext");
        goto out;
    }
    custos_sha256(canonical, strlen(canonical), salt);
    if (custos_x25519(priv, peer, shared) < 0 ||
        custos_hkdf_sha256(shared, sizeof(shared), salt, sizeof(salt), (const uint8_t *)g_info, sizeof(g_info) - 1, key,
                           sizeof(key)) < 0) {
        snprintf(err, err_size, "CAS's answer: its key does not agree with the request's");
        goto out;
    }
    plain = malloc(sealed_size - CUSTOS_AEAD_TAG_SIZE + 1);
    if (!plain) {
        ret = -ENOMEM;
        goto out;
    }
    if (custos_aead_open(key, nonce, salt, sizeof(salt), sealed, sealed_size, plain) < 0) {
        snprintf(err, err_size, "CAS's answer does not open with this request's key (not made for this request)");
        goto out;
    }
    size_t plain_size = sealed_size - CUSTOS_AEAD_TAG_SIZE;
    plain[plain_size] = '\0';
    json_t *j = NULL;
    snprintf(ferr, sizeof(ferr), "not an object");
    if (custos_json_parse((const char *)plain, plain_size, &j, ferr, sizeof(ferr)) < 0 || !json_is_object(j)) {
        snprintf(err, err_size, "CAS's configuration is not a JSON object: %s", ferr);
        json_decref(j);
        goto out;
    }
    *out = j;
    ret = 0;
out:
    if (plain) {
        custos_wipe(plain, sealed_size - CUSTOS_AEAD_TAG_SIZE + 1);
        free(plain);
    }
    free(sealed);
    custos_wipe(shared, sizeof(shared));
    custos_wipe(key, sizeof(key));
    return ret;
}
