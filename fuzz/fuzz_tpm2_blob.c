/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the machine-secret.tpm2 parser (platform/tpm2_blob.c). Each input is parsed
 * twice: as it is, and with its last 32 bytes replaced by the SHA-256 of the rest (the fuzzer cannot
 * forge the checksum, so this lets it reach the checks behind it). Refusals must explain themselves
 * and leave the output zeroed; an accepted blob must serialize back to exactly the input. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"
#include "tpm2_blob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size)
{
    static struct tpm2_blob blob, zero;
    static uint8_t back[TPM2_BLOB_MAX];
    char why[256];
    size_t back_size = 0;
    memset(&blob, 0xA5, sizeof(blob));
    memset(why, 0, sizeof(why));
    int ret = tpm2_blob_parse(data, size, &blob, why, sizeof(why));
    if (ret < 0) {
        if (ret != -EBADMSG || !why[0] || !memchr(why, '\0', sizeof(why)) || memcmp(&blob, &zero, sizeof(blob)))
            abort();
        return;
    }
    if (ret != 0 || (blob.srk != TPM2_SRK_ECC_P256 && blob.srk != TPM2_SRK_RSA_2048) ||
        blob.pub.publicArea.type != TPM2_ALG_KEYEDHASH)
        abort();
    if (tpm2_blob_build(&blob, back, sizeof(back), &back_size) != 0 || back_size != size ||
        memcmp(back, data, size) != 0)
        abort(); /* accepted bytes that are not what the serializer writes */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size);
    if (size < TPM2_BLOB_SUM_SIZE || size > TPM2_BLOB_MAX)
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (custos_sha256(copy, size - TPM2_BLOB_SUM_SIZE, copy + size - TPM2_BLOB_SUM_SIZE) == 0)
        check(copy, size);
    free(copy);
    return 0;
}
