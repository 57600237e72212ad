/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the machine-secret.tpm2 codec (platform/tpm2_blob.c): a file written by the TPM
 * backend against swtpm still parses and re-serializes byte for byte, every truncation and every
 * malformed part is refused with a reason that names it, and the committed fuzz seeds parse. The
 * TPM itself is exercised by tests/integration/test_tpm2_seal.py (swtpm). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "custos.h"
#include "tpm2_blob.h"
#include "tpm2_blob_sample.h"

#ifndef CORPUS_DIR
#error "CORPUS_DIR must name fuzz/corpus"
#endif

/* machine-secret.tpm2 as tpm2_seal.c wrote it (commit ad2af4c, before the codec moved to
 * tpm2_blob.c) on swtpm 0.7: the format on disk must not change. */
static const uint8_t SWTPM_V1[] =
    {0x43, 0x54, 0x50, 0x4d, 0x32, 0x76, 0x31, 0x0a, 0x01, 0x00, 0x22, 0x00, 0x0b, 0x31, 0xc4, 0x56, 0xf9, 0x27, 0x9f,
     0xf2, 0x6b, 0x34, 0x69, 0x96, 0x2f, 0x91, 0x78, 0xe8, 0x13, 0x61, 0xed, 0xde, 0x73, 0xde, 0xd3, 0xa6, 0x3b, 0x8e,
     0xd5, 0xb7, 0x9c, 0x5c, 0xd3, 0x62, 0xba, 0x00, 0x00, 0x00, 0x30, 0x00, 0x2e, 0x00, 0x08, 0x00, 0x0b, 0x00, 0x00,
     0x04, 0x52, 0x00, 0x00, 0x00, 0x10, 0x00, 0x20, 0x59, 0x25, 0xbe, 0xa6, 0x96, 0xe5, 0x0e, 0x3a, 0xe1, 0x86, 0x20,
     0xb3, 0x64, 0xbb, 0xe2, 0x1f, 0x9f, 0xfa, 0xb1, 0x0b, 0xdd, 0xdd, 0xca, 0x5f, 0xd2, 0xe3, 0x90, 0xbf, 0x2b, 0xe1,
     0x9e, 0xdc, 0x00, 0x00, 0x00, 0xa0, 0x00, 0x9e, 0x00, 0x20, 0x34, 0x35, 0xca, 0x73, 0xca, 0x23, 0xc5, 0x82, 0x08,
     0x18, 0x1e, 0x37, 0xa3, 0x6e, 0xe4, 0xf3, 0x1f, 0x99, 0x3a, 0x57, 0xd5, 0x67, 0xa7, 0xd0, 0xcd, 0x9c, 0x94, 0x6f,
     0x62, 0xaa, 0xb4, 0x33, 0x00, 0x10, 0x19, 0x8f, 0x1b, 0xed, 0xd1, 0x5a, 0xc0, 0x34, 0x7b, 0x2e, 0x3b, 0x88, 0x02,
     0x37, 0xf1, 0x15, 0xe6, 0xfa, 0xaa, 0x72, 0x47, 0x93, 0x48, 0x8e, 0x8c, 0xe6, 0x9d, 0x9a, 0x21, 0x34, 0xd1, 0xd8,
     0xe2, 0x45, 0x87, 0xad, 0x46, 0x04, 0xa0, 0x93, 0x52, 0x99, 0x90, 0xa7, 0x29, 0x18, 0x4e, 0xad, 0x09, 0x8a, 0x70,
     0xbe, 0x23, 0x7c, 0x2d, 0x2f, 0x0a, 0x64, 0xdf, 0x6d, 0x22, 0x90, 0xc4, 0xcf, 0x5c, 0x02, 0x42, 0xea, 0x43, 0x6b,
     0x52, 0xb8, 0xb6, 0x42, 0x2c, 0xd1, 0x5d, 0x5a, 0x93, 0x55, 0x43, 0x13, 0x5e, 0x7b, 0x45, 0x4b, 0x66, 0xdc, 0x0e,
     0x70, 0x43, 0x8d, 0xee, 0x95, 0x48, 0x02, 0x10, 0x4f, 0xa2, 0x09, 0xbd, 0xe7, 0x0e, 0xa5, 0x3f, 0x89, 0x0a, 0xe7,
     0xeb, 0x2b, 0xc3, 0x62, 0xe6, 0x07, 0x9c, 0x0f, 0x01, 0x56, 0x15, 0x3d, 0x4d, 0xd0, 0x2d, 0x5c, 0xcd, 0x5a, 0x53,
     0x83, 0x99, 0x78, 0x70, 0x8a, 0x90, 0x04, 0x55, 0x4e, 0xe7, 0x9f, 0xae, 0x8a, 0x2a, 0x6d, 0x62, 0x4a, 0x6f, 0x04,
     0xc7, 0xdc, 0x38, 0x3c, 0xa8, 0xb5, 0x8c, 0x3d};

static struct tpm2_blob g_blob;
static uint8_t g_buf[TPM2_BLOB_MAX + 64];
static char g_why[256];

/* Recomputes the trailing checksum after a test changed the body. */
static void resum(uint8_t *data, size_t size)
{
    assert_int_equal(custos_sha256(data, size - TPM2_BLOB_SUM_SIZE, data + size - TPM2_BLOB_SUM_SIZE), 0);
}

static size_t sample(uint8_t srk)
{
    struct tpm2_blob b;
    size_t size = 0;
    tpm2_blob_sample(srk, &b);
    assert_int_equal(tpm2_blob_build(&b, g_buf, sizeof(g_buf), &size), 0);
    return size;
}

/* Refused with -EBADMSG, the output zeroed, and the reason containing want. */
static void refused(const uint8_t *data, size_t size, const char *want)
{
    static const struct tpm2_blob zero;
    memset(&g_blob, 0xA5, sizeof(g_blob));
    g_why[0] = '\0';
    assert_int_equal(tpm2_blob_parse(data, size, &g_blob, g_why, sizeof(g_why)), -EBADMSG);
    assert_memory_equal(&g_blob, &zero, sizeof(g_blob));
    if (!strstr(g_why, want))
        fail_msg("reason '%s' does not contain '%s'", g_why, want);
}

static void test_swtpm_blob_parses_and_round_trips(void **state)
{
    (void)state;
    size_t size = 0;
    assert_int_equal(tpm2_blob_parse(SWTPM_V1, sizeof(SWTPM_V1), &g_blob, g_why, sizeof(g_why)), 0);
    assert_int_equal(g_blob.srk, TPM2_SRK_ECC_P256);
    assert_int_equal(g_blob.primary_name.size, 34);
    assert_int_equal(g_blob.primary_name.name[0] << 8 | g_blob.primary_name.name[1], TPM2_ALG_SHA256);
    assert_int_equal(g_blob.pub.publicArea.type, TPM2_ALG_KEYEDHASH);
    assert_int_equal(g_blob.pub.publicArea.objectAttributes,
                     TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA);
    assert_true(g_blob.priv.size > 0);
    assert_int_equal(tpm2_blob_build(&g_blob, g_buf, sizeof(g_buf), &size), 0);
    assert_int_equal(size, sizeof(SWTPM_V1));
    assert_memory_equal(g_buf, SWTPM_V1, size);
}

static void test_every_truncation_refused(void **state)
{
    (void)state;
    uint8_t copy[sizeof(SWTPM_V1)];
    for (size_t n = 0; n < sizeof(SWTPM_V1); n++) {
        memcpy(copy, SWTPM_V1, n);
        refused(copy, n, "");
        assert_true(g_why[0] != '\0');
        /* also with the checksum made right for the shorter file: the structure is refused */
        if (n >= 8 + 1 + TPM2_BLOB_SUM_SIZE) {
            resum(copy, n);
            refused(copy, n, "");
        }
    }
    refused(NULL, 0, "no data");
}

static void test_magic_and_template(void **state)
{
    (void)state;
    uint8_t copy[sizeof(SWTPM_V1)];
    memcpy(copy, SWTPM_V1, sizeof(copy));
    copy[0] = 'X';
    refused(copy, sizeof(copy), "bad magic");
    memcpy(copy, "CTPM2v9\n", 8);
    refused(copy, sizeof(copy), "unsupported blob format version");
    memcpy(copy, SWTPM_V1, sizeof(copy));
    for (int srk = 0; srk < 256; srk++) {
        copy[8] = (uint8_t)srk;
        resum(copy, sizeof(copy));
        if (srk == TPM2_SRK_ECC_P256 || srk == TPM2_SRK_RSA_2048)
            assert_int_equal(tpm2_blob_parse(copy, sizeof(copy), &g_blob, g_why, sizeof(g_why)), 0);
        else
            refused(copy, sizeof(copy), "unknown storage key template");
    }
}

static void test_lengths_named(void **state)
{
    (void)state;
    size_t size = sample(TPM2_SRK_RSA_2048);
    size_t pub_at = 8 + 1 + 2 + 34, priv_at = pub_at + 4 + custos_get_be(g_buf + pub_at, 4);
    assert_int_equal(tpm2_blob_parse(g_buf, size, &g_blob, g_why, sizeof(g_why)), 0);
    assert_int_equal(g_blob.srk, TPM2_SRK_RSA_2048);

    custos_put_be(g_buf + 9, 1, 2); /* a Name is at least its algorithm */
    resum(g_buf, size);
    refused(g_buf, size, "bad primary key name length 1");
    custos_put_be(g_buf + 9, sizeof(TPMU_NAME) + 1, 2);
    resum(g_buf, size);
    refused(g_buf, size, "bad primary key name length");

    size = sample(TPM2_SRK_ECC_P256);
    custos_put_be(g_buf + pub_at, 0xffffffff, 4);
    resum(g_buf, size);
    refused(g_buf, size, "bad public part length 4294967295");
    size = sample(TPM2_SRK_ECC_P256);
    uint32_t pub_size = (uint32_t)custos_get_be(g_buf + pub_at, 4);
    custos_put_be(g_buf + pub_at, pub_size - 1, 4); /* one byte short for its TPM2B */
    resum(g_buf, size);
    refused(g_buf, size, "");
    /* the TPM2B_PUBLIC's own size field smaller than its structure (found by fuzz_tpm2_blob: Tss2_MU
     * does not check it, so the blob was accepted and serialized back differently) */
    size = sample(TPM2_SRK_ECC_P256);
    custos_put_be(g_buf + pub_at + 4, pub_size - 2 - 8, 2);
    resum(g_buf, size);
    refused(g_buf, size, "its size field says");
    /* one byte more in the part than its TPM2B_PUBLIC uses */
    size = sample(TPM2_SRK_ECC_P256);
    size_t end = pub_at + 4 + pub_size;
    memmove(g_buf + end + 1, g_buf + end, size - end);
    g_buf[end] = 0;
    custos_put_be(g_buf + pub_at, pub_size + 1, 4);
    resum(g_buf, size + 1);
    char want[80];
    snprintf(want, sizeof(want), "malformed public part (%u bytes, %u of them", pub_size + 1, pub_size);
    refused(g_buf, size + 1, want);

    size = sample(TPM2_SRK_ECC_P256);
    uint32_t priv_size = (uint32_t)custos_get_be(g_buf + priv_at, 4);
    custos_put_be(g_buf + priv_at, priv_size + 1, 4);
    resum(g_buf, size);
    refused(g_buf, size, "truncated private part");
    custos_put_be(g_buf + priv_at, priv_size - 1, 4); /* the TPM2B's own size disagrees */
    resum(g_buf, size);
    refused(g_buf, size, "");
    /* one byte more in the part than its TPM2B_PRIVATE uses */
    size = sample(TPM2_SRK_ECC_P256);
    end = priv_at + 4 + priv_size;
    memmove(g_buf + end + 1, g_buf + end, size - end);
    g_buf[end] = 0;
    custos_put_be(g_buf + priv_at, priv_size + 1, 4);
    resum(g_buf, size + 1);
    snprintf(want, sizeof(want), "malformed private part (%u bytes, %u of them", priv_size + 1, priv_size);
    refused(g_buf, size + 1, want);

    /* one byte inserted before the checksum */
    size = sample(TPM2_SRK_ECC_P256);
    memmove(g_buf + size - TPM2_BLOB_SUM_SIZE + 1, g_buf + size - TPM2_BLOB_SUM_SIZE, TPM2_BLOB_SUM_SIZE);
    g_buf[size - TPM2_BLOB_SUM_SIZE] = 0;
    resum(g_buf, size + 1);
    refused(g_buf, size + 1, "1 unexpected bytes after the private part");
    /* over the maximum size */
    memset(g_buf, 0, sizeof(g_buf));
    memcpy(g_buf, TPM2_BLOB_MAGIC, 8);
    refused(g_buf, TPM2_BLOB_MAX + 1, "file too large");
}

static void test_checksum_and_object_kind(void **state)
{
    (void)state;
    uint8_t copy[sizeof(SWTPM_V1)];
    for (size_t i = 0; i < sizeof(copy); i += 7) { /* any flipped bit is caught */
        memcpy(copy, SWTPM_V1, sizeof(copy));
        copy[i] ^= 0x10;
        refused(copy, sizeof(copy), "");
    }
    memcpy(copy, SWTPM_V1, sizeof(copy));
    copy[sizeof(copy) - 1] ^= 1;
    refused(copy, sizeof(copy), "checksum mismatch");

    /* a public part that is not a sealed-data object, correctly serialized and summed */
    struct tpm2_blob b;
    size_t size = 0;
    tpm2_blob_sample(TPM2_SRK_ECC_P256, &b);
    b.pub.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_HMAC;
    b.pub.publicArea.parameters.keyedHashDetail.scheme.details.hmac.hashAlg = TPM2_ALG_SHA256;
    assert_int_equal(tpm2_blob_build(&b, g_buf, sizeof(g_buf), &size), 0);
    refused(g_buf, size, "not a sealed-data object");
    tpm2_blob_sample(TPM2_SRK_ECC_P256, &b);
    b.pub.publicArea.nameAlg = TPM2_ALG_SHA1;
    assert_int_equal(tpm2_blob_build(&b, g_buf, sizeof(g_buf), &size), 0);
    refused(g_buf, size, "name algorithm 0x0004");
}

static void test_build_bounds(void **state)
{
    (void)state;
    struct tpm2_blob b;
    size_t size = 0, want = sample(TPM2_SRK_ECC_P256);
    tpm2_blob_sample(TPM2_SRK_ECC_P256, &b);
    assert_int_equal(tpm2_blob_build(&b, g_buf, want - 1, &size), -ENOBUFS);
    assert_int_equal(tpm2_blob_build(&b, g_buf, want, &size), 0);
    assert_int_equal(size, want);
    b.primary_name.size = sizeof(b.primary_name.name) + 1;
    assert_int_equal(tpm2_blob_build(&b, g_buf, sizeof(g_buf), &size), -EINVAL);
}

static void test_committed_seeds_parse(void **state)
{
    (void)state;
    static const char *const names[] = {"gen-ecc.bin", "gen-rsa.bin", "swtpm-v1.bin"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[4096];
        uint8_t *data = NULL;
        size_t size = 0;
        snprintf(path, sizeof(path), "%s/tpm2_blob/%s", CORPUS_DIR, names[i]);
        if (custos_read_file(path, TPM2_BLOB_MAX, &data, &size) < 0)
            fail_msg("cannot read seed %s", path);
        if (tpm2_blob_parse(data, size, &g_blob, g_why, sizeof(g_why)) != 0)
            fail_msg("seed %s refused: %s (regenerate with build/tests/seedgen_tpm2 fuzz/corpus)", path, g_why);
        free(data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swtpm_blob_parses_and_round_trips),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_magic_and_template),
        cmocka_unit_test(test_lengths_named),
        cmocka_unit_test(test_checksum_and_object_kind),
        cmocka_unit_test(test_build_bounds),
        cmocka_unit_test(test_committed_seeds_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
