/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
#include <stddef.h>
#include <stdint.h>
/* Returns the node's 32-byte machine secret. On first use (no blob file in platform_dir) it makes
 * 32 random bytes (from the TPM's RNG mixed with OpenSSL RAND_bytes, or just RAND_bytes), seals them
 * under a primary storage key created deterministically from the TPM's owner hierarchy (fixed template,
 * ECC P-256 or RSA2048 SRK template, so the same TPM always yields the same primary), and writes the
 * sealed public+private blobs to <platform_dir>/machine-secret.tpm2 (mode 0600, O_EXCL|O_NOFOLLOW on
 * a temp file, fsync, rename, fsync dir). On later uses it loads the blob and unseals it.
 * tcti: a TCTI configuration string for Tss2_TctiLdr_Initialize, e.g. "swtpm:host=127.0.0.1,port=2321"
 * or "device:/dev/tpmrm0"; NULL means "device:/dev/tpmrm0".
 * Returns 0 and fills out[32], or a negative errno and writes a human-readable message into err
 * that names the file / TCTI and says what to do. In particular, a blob sealed by ANOTHER TPM must be
 * refused clearly ("... was sealed by a different TPM (or the TPM was cleared); ...") and a corrupt
 * blob file refused clearly; never overwritten. Secrets wiped (explicit_bzero / OPENSSL_cleanse /
 * Esys_Free of sensitive buffers after wiping) on every path. */
int custos_tpm2_machine_secret(const char *platform_dir, const char *tcti, uint8_t out[32], char *err, size_t errlen);
