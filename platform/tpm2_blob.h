/* SPDX-License-Identifier: Apache-2.0 */
/* The sealed machine secret's file, <platform-dir>/machine-secret.tpm2: one codec, used by the TPM
 * backend (tpm2_seal.c), its fuzzer and its tests.
 *
 * Format (integers big-endian), at most TPM2_BLOB_MAX bytes:
 *   "CTPM2v1\n"                      8-byte magic and version
 *   u8   srk                         primary template: 1 = ECC NIST P-256, 2 = RSA 2048
 *   u16  name_len, name[name_len]    TPM Name of the primary the blob was sealed under (2..sizeof(TPMU_NAME))
 *   u32  pub_len,  pub[pub_len]      Tss2_MU-marshalled TPM2B_PUBLIC of the sealed object
 *   u32  priv_len, priv[priv_len]    Tss2_MU-marshalled TPM2B_PRIVATE of the sealed object
 *   u8   sha256[32]                  SHA-256 of every preceding byte (detects corruption)
 * The file is untrusted: every length is checked before use, each part must be consumed exactly by
 * its unmarshaller, the whole file must be consumed, and the public part must describe a sealed-data
 * object (keyed hash, SHA-256 name, no scheme). The primary's Name lets a blob of another TPM (or of
 * before a TPM clear) be told apart from a damaged file. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#define TPM2_BLOB_FILE "machine-secret.tpm2"
#define TPM2_BLOB_MAGIC "CTPM2v1\n"     /* written without its NUL */
#define TPM2_BLOB_MAGIC_FAMILY "CTPM2v" /* the same format family, any version */
#define TPM2_BLOB_SUM_SIZE 32
enum tpm2_srk { TPM2_SRK_ECC_P256 = 1, TPM2_SRK_RSA_2048 = 2 };
#define TPM2_BLOB_MAX                                                                                                  \
    (sizeof(TPM2_BLOB_MAGIC) - 1 + 1 + 2 + sizeof(TPMU_NAME) + 4 + sizeof(TPM2B_PUBLIC) + 4 + sizeof(TPM2B_PRIVATE) +  \
     TPM2_BLOB_SUM_SIZE)

struct tpm2_blob {
    uint8_t srk; /* enum tpm2_srk */
    TPM2B_NAME primary_name;
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv; /* sealed (encrypted by the TPM), still wiped after use */
};

/* Serialises blob into out[0..cap) (TPM2_BLOB_MAX is always enough); *out_size is the file's size.
 * -EINVAL when a part cannot be marshalled, -ENOBUFS when cap is too small. */
int tpm2_blob_build(const struct tpm2_blob *blob, uint8_t *out, size_t cap, size_t *out_size);

/* Parses untrusted bytes. 0, or -EBADMSG with the reason (which part, which check, the lengths
 * involved) in why, e.g. "truncated private part (2000 bytes announced, 90 left)". out is zeroed
 * on failure. */
int tpm2_blob_parse(const uint8_t *data, size_t size, struct tpm2_blob *out, char *why, size_t why_size);
