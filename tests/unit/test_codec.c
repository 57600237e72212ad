/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for hex and base64 (codec.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "custos.h"

static void test_hex_round_trip(void **state)
{
    (void)state;
    uint8_t in[256], out[256];
    char hex[2 * sizeof(in) + 1];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    for (int upper = 0; upper < 2; upper++) {
        memset(out, 0xaa, sizeof(out));
        custos_hex_encode(in, sizeof(in), hex, upper);
        assert_int_equal(strlen(hex), 2 * sizeof(in));
        assert_int_equal(custos_hex_decode(hex, out, sizeof(out)), 0);
        assert_memory_equal(in, out, sizeof(in));
    }
    /* Zero bytes: empty string. */
    hex[0] = 'x';
    custos_hex_encode(in, 0, hex, false);
    assert_string_equal(hex, "");
    assert_int_equal(custos_hex_decode("", out, 0), 0);
}

static void test_hex_case(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x01, 0xab, 0xcd, 0xef, 0x9f, 0x00};
    char hex[2 * sizeof(in) + 1];
    uint8_t out[sizeof(in)];
    custos_hex_encode(in, sizeof(in), hex, false);
    assert_string_equal(hex, "01abcdef9f00");
    custos_hex_encode(in, sizeof(in), hex, true);
    assert_string_equal(hex, "01ABCDEF9F00");
    /* Decoding accepts either case, and mixed case. */
    assert_int_equal(custos_hex_decode("01ABCDEF9F00", out, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));
    assert_int_equal(custos_hex_decode("01aBcDeF9f00", out, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));
}

static void test_hex_refused(void **state)
{
    (void)state;
    uint8_t out[4];
    static const char *const bad[] = {
        "0g000000", "000000G0", "zz000000", "0000000 ", " 0000000", "00-00000", "0x000000", "0000000\xff",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(custos_hex_decode(bad[i], out, sizeof(out)), -EINVAL);
    /* Odd and wrong lengths. */
    assert_int_equal(custos_hex_decode("0000000", out, 4), -EINVAL);
    assert_int_equal(custos_hex_decode("000000000", out, 4), -EINVAL);
    assert_int_equal(custos_hex_decode("000000", out, 4), -EINVAL);
    assert_int_equal(custos_hex_decode("0000000000", out, 4), -EINVAL);
    assert_int_equal(custos_hex_decode("a", out, 0), -EINVAL);
    assert_int_equal(custos_hex_decode(NULL, out, 4), -EINVAL);
}

/* RFC 4648 section 10. */
static const struct {
    const char *plain, *b64;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_base64_rfc4648(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        size_t n = strlen(rfc4648[i].plain);
        char *enc = custos_base64_encode((const uint8_t *)rfc4648[i].plain, n);
        assert_non_null(enc);
        assert_string_equal(enc, rfc4648[i].b64);
        free(enc);
        uint8_t *dec = NULL;
        size_t dec_size = 99;
        assert_int_equal(custos_base64_decode(rfc4648[i].b64, &dec, &dec_size), 0);
        assert_non_null(dec);
        assert_int_equal(dec_size, n);
        assert_memory_equal(dec, rfc4648[i].plain, n);
        free(dec);
    }
}

static void test_base64_binary_round_trip(void **state)
{
    (void)state;
    uint8_t in[300];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n += 1 + n / 8) {
        char *enc = custos_base64_encode(in, n);
        assert_non_null(enc);
        assert_int_equal(strlen(enc), 4 * ((n + 2) / 3));
        uint8_t *dec = NULL;
        size_t dec_size = 0;
        assert_int_equal(custos_base64_decode(enc, &dec, &dec_size), 0);
        assert_int_equal(dec_size, n);
        assert_memory_equal(dec, in, n);
        free(dec);
        free(enc);
    }
    /* All of the alphabet, including + and /. */
    static const uint8_t hi[] = {0xfb, 0xff, 0xbf, 0xf8};
    char *enc = custos_base64_encode(hi, sizeof(hi));
    assert_string_equal(enc, "+/+/+A==");
    free(enc);
}

static void test_base64_noncanonical(void **state)
{
    (void)state;
    uint8_t *dec = NULL;
    size_t dec_size = 0;
    /* "Zg==" is canonical for "f"; Zh.. Zv set bits under the padding. */
    static const char *const bad[] = {"Zh==", "Zi==", "Zv==", "Zm9=", "Zm+=", "Zm/=", "Zm9vYh==", "Zm9vYmF="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dec = NULL;
        assert_int_equal(custos_base64_decode(bad[i], &dec, &dec_size), -EINVAL);
        assert_null(dec);
    }
    /* The canonical neighbours are accepted. */
    assert_int_equal(custos_base64_decode("Zm8=", &dec, &dec_size), 0);
    assert_int_equal(dec_size, 2);
    free(dec);
    assert_int_equal(custos_base64_decode("Zg==", &dec, &dec_size), 0);
    assert_int_equal(dec_size, 1);
    free(dec);
}

static void test_base64_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg",       /* missing padding */
        "Zg=",      /* short padding */
        "Zm9",      /* length not a multiple of 4 */
        "Zg==Zg==", /* padding in the middle */
        "Z===",     /* three pad characters */
        "====",     /* only padding */
        "Z=g=",     /* data after padding */
        "Zm9v\n",   /* whitespace */
        "Zm 9",     /* space */
        "Zm9-",     /* base64url alphabet */
        "Zm9_",     /* base64url alphabet */
        "Zm.v",     /* stray character */
        "Zm9\x80",  /* non-ASCII */
        "=Zm9",     /* leading pad */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *dec = NULL;
        size_t dec_size = 0;
        int ret = custos_base64_decode(bad[i], &dec, &dec_size);
        if (ret != -EINVAL)
            fail_msg("'%s' was not refused (%d)", bad[i], ret);
        assert_null(dec);
    }
    uint8_t *dec = NULL;
    size_t dec_size = 0;
    assert_int_equal(custos_base64_decode(NULL, &dec, &dec_size), -EINVAL);
}

static void test_big_endian(void **state)
{
    (void)state;
    uint8_t buf[16] = {0};
    static const uint8_t four[4] = {0x01, 0x02, 0x03, 0x04};
    static const uint8_t eight[8] = {0x00, 0x00, 0x01, 0x9b, 0xf0, 0x0d, 0xbe, 0xef};
    assert_ptr_equal(custos_put_be(buf, 0x01020304, 4), buf + 4);
    assert_memory_equal(buf, four, 4);
    assert_int_equal(custos_get_be(buf, 4), 0x01020304);
    assert_ptr_equal(custos_put_be(buf + 4, 0x19bf00dbeefULL, 8), buf + 12);
    assert_memory_equal(buf + 4, eight, 8);
    assert_true(custos_get_be(buf + 4, 8) == 0x19bf00dbeefULL);
    custos_put_be(buf, 0xffffffffffffffffULL, 2); /* only the low bytes */
    assert_int_equal(buf[0], 0xff);
    assert_int_equal(buf[1], 0xff);
    assert_int_equal(buf[2], 0x03);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_endian),
        cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_hex_case),
        cmocka_unit_test(test_hex_refused),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64_binary_round_trip),
        cmocka_unit_test(test_base64_noncanonical),
        cmocka_unit_test(test_base64_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
