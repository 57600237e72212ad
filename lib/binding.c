/* SPDX-License-Identifier: Apache-2.0 */
/* What a quote's report data binds, for each use: one definition shared by the side that asks for
 * the quote and the side that checks it. */
#include <string.h>

#include "custos.h"

#define ATTESTATION_LABEL "custos-attestation-v1"

int custos_attestation_report_data(const uint8_t key_hash[32], const uint8_t *nonce, size_t nonce_size,
                                   uint8_t out[CUSTOS_REPORT_DATA_SIZE])
{
    uint8_t buf[sizeof(ATTESTATION_LABEL) - 1 + CUSTOS_ATTESTATION_NONCE_MAX];
    if (!key_hash || !nonce || nonce_size == 0 || nonce_size > CUSTOS_ATTESTATION_NONCE_MAX)
        return -1;
    memcpy(out, key_hash, 32);
    memcpy(buf, ATTESTATION_LABEL, sizeof(ATTESTATION_LABEL) - 1);
    memcpy(buf + sizeof(ATTESTATION_LABEL) - 1, nonce, nonce_size);
    custos_sha256(buf, sizeof(ATTESTATION_LABEL) - 1 + nonce_size, out + 32);
    return 0;
}

int custos_measurements_decode(const char *const *hex, size_t count, uint8_t (*out)[CUSTOS_MEASUREMENT_SIZE],
                               size_t *bad)
{
    for (size_t i = 0; i < count; i++) {
        if (!hex[i] || strlen(hex[i]) != 2 * CUSTOS_MEASUREMENT_SIZE ||
            custos_hex_decode(hex[i], out[i], CUSTOS_MEASUREMENT_SIZE) < 0) {
            if (bad)
                *bad = i;
            return -1;
        }
    }
    return 0;
}
