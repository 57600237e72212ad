/* SPDX-License-Identifier: Apache-2.0 */
/* Writes the TPM2 blob fuzzer's "gen-*" seeds (fuzz/corpus/tpm2_blob) from the real serializer,
 * tpm2_blob_build: a blob under the ECC primary template and one under the RSA template, both with
 * a sealed-data public part shaped like the one tpm2_seal.c creates (the private part is opaque
 * bytes: only a TPM can tell). Every seed is accepted by tpm2_blob_parse, which
 * tests/unit/test_tpm2_blob.c checks on the committed files. Built only with tpm2-tss.
 *
 * Usage: seedgen_tpm2 CORPUS_DIR   (e.g. build/tests/seedgen_tpm2 fuzz/corpus, then commit) */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "custos.h"
#include "tpm2_blob.h"
#include "tpm2_blob_sample.h"

static int write_seed(const char *dir, const char *name, const void *data, size_t size)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tpm2_blob/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) {
        fprintf(stderr, "seedgen_tpm2: cannot write %s\n", path);
        if (f)
            fclose(f);
        return -EIO;
    }
    if (fclose(f) != 0)
        return -EIO;
    printf("%s (%zu bytes)\n", path, size);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        uint8_t srk;
    } seeds[] = {{"gen-ecc.bin", TPM2_SRK_ECC_P256}, {"gen-rsa.bin", TPM2_SRK_RSA_2048}};
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR (writes the gen-* seeds into CORPUS_DIR/tpm2_blob)\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        struct tpm2_blob blob;
        uint8_t out[TPM2_BLOB_MAX];
        size_t size = 0;
        tpm2_blob_sample(seeds[i].srk, &blob);
        int ret = tpm2_blob_build(&blob, out, sizeof(out), &size);
        if (ret == 0)
            ret = write_seed(argv[1], seeds[i].name, out, size);
        if (ret < 0) {
            fprintf(stderr, "seedgen_tpm2: %s: %s\n", seeds[i].name, strerror(-ret));
            return 1;
        }
    }
    return 0;
}
