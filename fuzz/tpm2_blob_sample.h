/* SPDX-License-Identifier: Apache-2.0 */
/* A well-formed sealed blob's parts for seeds and tests (fuzz/seedgen_tpm2.c, test_tpm2_blob.c):
 * the sealed-data public part tpm2_seal.c asks the TPM for, a SHA-256 primary Name and an opaque
 * private part. Deterministic: the same srk gives the same bytes. */
#pragma once
#include <string.h>

#include "tpm2_blob.h"

static inline void tpm2_blob_sample(uint8_t srk, struct tpm2_blob *b)
{
    memset(b, 0, sizeof(*b));
    b->srk = srk;
    b->primary_name.size = 2 + 32;
    b->primary_name.name[0] = (uint8_t)(TPM2_ALG_SHA256 >> 8);
    b->primary_name.name[1] = (uint8_t)TPM2_ALG_SHA256;
    memset(b->primary_name.name + 2, 0x30 + srk, 32);
    TPMT_PUBLIC *p = &b->pub.publicArea;
    p->type = TPM2_ALG_KEYEDHASH;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA;
    p->parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    p->unique.keyedHash.size = 32;
    memset(p->unique.keyedHash.buffer, 0x5a, 32);
    b->priv.size = 158; /* integrity HMAC and encrypted sensitive area, as swtpm makes them */
    for (unsigned i = 0; i < b->priv.size; i++)
        b->priv.buffer[i] = (uint8_t)(i * 7 + srk);
}
