/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run's side of POST /v1/run: the request R it makes, and CAS's answer opened into its
 * configuration. The binding (report data, salt) and the encryption are lib/run_proto.c's, shared
 * with casd (docs/design.md "cas-run: the attested launcher"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

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

int run_open_config(const json_t *answer, const uint8_t priv[32], const uint8_t salt[32], json_t **out, char *err,
                    size_t err_size)
{
    uint8_t *plain = NULL;
    size_t size = 0;
    char perr[256];
    int ret = custos_run_open(priv, salt, answer, &plain, &size, err, err_size);
    if (ret < 0)
        return ret;
    json_t *j = NULL;
    snprintf(perr, sizeof(perr), "not an object");
    if (custos_json_parse((const char *)plain, size, &j, perr, sizeof(perr)) < 0 || !json_is_object(j)) {
        snprintf(err, err_size, "CAS's configuration is not a JSON object: %s", perr);
        json_decref(j);
        ret = -EPROTO;
    } else {
        *out = j;
    }
    custos_wipe(plain, size);
    free(plain);
    return ret;
}
