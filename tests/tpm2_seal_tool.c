/* SPDX-License-Identifier: Apache-2.0 */
/* tpm2_seal_tool PLATFORM_DIR TCTI: prints the SHA-256 (hex) of the TPM-sealed machine secret,
 * never the secret itself; on error prints the message on stderr and exits 1. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tpm2_seal.h"

int main(int argc, char **argv)
{
    uint8_t secret[32], md[32];
    unsigned int mdlen = 0;
    char err[1024];

    if (argc != 3) {
        fprintf(stderr, "usage: %s PLATFORM_DIR TCTI\n", argc > 0 ? argv[0] : "tpm2_seal_tool");
        return 2;
    }
    int r = custos_tpm2_machine_secret(argv[1], argv[2], secret, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "error (%d, %s): %s\n", r, strerror(-r), err);
        return 1;
    }
    int ok = EVP_Digest(secret, sizeof(secret), md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == sizeof(md);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (!ok) {
        fprintf(stderr, "error: SHA-256 failed\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof(md); i++)
        printf("%02x", md[i]);
    printf("\n");
    return fflush(stdout) == 0 ? 0 : 1;
}
