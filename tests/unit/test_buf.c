/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the bounded byte builder and reader (buf.c): every put and get, exact sizes, and
 * the sticky failure flag on both sides. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "custos.h"

/* Every put, byte for byte, into a buffer of exactly the right size. */
static void test_put_all(void **state)
{
    (void)state;
    static const uint8_t want[] = {
        0xa5,                                           /* u8 */
        0x12, 0x34,                                     /* u16 */
        0xde, 0xad, 0xbe, 0xef,                         /* u32 */
        0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, /* u64 */
        'r',  'a',  'w',                                /* raw */
        0x00, 0x02, 'h',  'i',                          /* u16-prefixed */
        0x00, 0x00, 0x00, 0x03, 'a',  'b',  'c',        /* u32-prefixed */
        's',  't',  'r',  0x00,                         /* str0 */
        0x00, 0x00,                                     /* empty u16-prefixed */
        0x00,                                           /* empty str0 */
    };
    uint8_t out[sizeof(want)];
    struct custos_buf b;
    memset(out, 0xee, sizeof(out));
    custos_buf_init(&b, out, sizeof(out));
    assert_int_equal(custos_buf_put_u8(&b, 0xa5), 0);
    assert_int_equal(custos_buf_put_u16(&b, 0x1234), 0);
    assert_int_equal(custos_buf_put_u32(&b, 0xdeadbeef), 0);
    assert_int_equal(custos_buf_put_u64(&b, 0x0123456789abcdefULL), 0);
    assert_int_equal(custos_buf_put(&b, "raw", 3), 0);
    assert_int_equal(custos_buf_put_bytes_u16(&b, "hi", 2), 0);
    assert_int_equal(custos_buf_put_bytes_u32(&b, "abc", 3), 0);
    assert_int_equal(custos_buf_put_str0(&b, "str"), 0);
    assert_int_equal(custos_buf_put_bytes_u16(&b, NULL, 0), 0);
    assert_int_equal(custos_buf_put(&b, NULL, 0), 0);
    assert_int_equal(custos_buf_left(&b), 1);
    assert_int_equal(custos_buf_put_str0(&b, ""), 0);
    assert_true(custos_buf_ok(&b));
    assert_int_equal(custos_buf_len(&b), sizeof(want));
    assert_int_equal(custos_buf_left(&b), 0);
    assert_memory_equal(out, want, sizeof(want));
    /* Full: even one byte more fails. */
    assert_int_equal(custos_buf_put_u8(&b, 0), -ENOBUFS);
    assert_false(custos_buf_ok(&b));
    assert_int_equal(custos_buf_len(&b), sizeof(want));
}

/* Every get, from the same bytes, then the end. */
static void test_get_all(void **state)
{
    (void)state;
    uint8_t in[64], u8 = 0, raw[3];
    uint16_t u16 = 0;
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    const uint8_t *p = NULL, *q = NULL;
    const char *s = NULL;
    size_t n = 0;
    struct custos_buf b, r;
    custos_buf_init(&b, in, sizeof(in));
    custos_buf_put_u8(&b, 0xa5);
    custos_buf_put_u16(&b, 0xfffe);
    custos_buf_put_u32(&b, 0x80000001);
    custos_buf_put_u64(&b, 0xfedcba9876543210ULL);
    custos_buf_put(&b, "xyz", 3);
    custos_buf_put_bytes_u16(&b, "hello", 5);
    custos_buf_put_bytes_u32(&b, "w", 1);
    custos_buf_put_str0(&b, "name");
    custos_buf_put(&b, "tail", 4);
    assert_true(custos_buf_ok(&b));

    custos_buf_reader(&r, in, custos_buf_len(&b));
    assert_int_equal(custos_buf_get_u8(&r, &u8), 0);
    assert_int_equal(u8, 0xa5);
    assert_int_equal(custos_buf_get_u16(&r, &u16), 0);
    assert_int_equal(u16, 0xfffe);
    assert_int_equal(custos_buf_get_u32(&r, &u32), 0);
    assert_int_equal(u32, 0x80000001);
    assert_int_equal(custos_buf_get_u64(&r, &u64), 0);
    assert_true(u64 == 0xfedcba9876543210ULL);
    assert_int_equal(custos_buf_get(&r, raw, 3), 0);
    assert_memory_equal(raw, "xyz", 3);
    assert_int_equal(custos_buf_get_bytes_u16(&r, &p, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    assert_ptr_equal(p, in + 1 + 2 + 4 + 8 + 3 + 2); /* points into the input, no copy */
    assert_int_equal(custos_buf_get_bytes_u32(&r, &p, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(p, "w", 1);
    assert_int_equal(custos_buf_get_str0(&r, &s), 0);
    assert_string_equal(s, "name");
    assert_false(custos_buf_done(&r)); /* "tail" is left */
    assert_int_equal(custos_buf_left(&r), 4);
    assert_int_equal(custos_buf_get_ptr(&r, 4, &q), 0);
    assert_memory_equal(q, "tail", 4);
    assert_true(custos_buf_done(&r));
    assert_int_equal(custos_buf_len(&r), custos_buf_len(&b));
    /* A get of nothing at the end succeeds; one byte more does not. */
    assert_int_equal(custos_buf_get(&r, raw, 0), 0);
    assert_true(custos_buf_done(&r));
    assert_int_equal(custos_buf_get_u8(&r, &u8), -EBADMSG);
    assert_int_equal(u8, 0);
    assert_false(custos_buf_done(&r));
}

/* An overflowing put writes nothing, and every later put fails too, even one that would fit. */
static void test_overflow_sticks(void **state)
{
    (void)state;
    uint8_t out[6];
    uint8_t *slot = (uint8_t *)"";
    struct custos_buf b;
    memset(out, 0xee, sizeof(out));
    custos_buf_init(&b, out, sizeof(out));
    assert_int_equal(custos_buf_put_u32(&b, 0x01020304), 0);
    assert_int_equal(custos_buf_put_u32(&b, 0x05060708), -ENOBUFS); /* 2 bytes of room */
    assert_false(custos_buf_ok(&b));
    assert_int_equal(out[4], 0xee); /* nothing of it written */
    assert_int_equal(custos_buf_put_u8(&b, 9), -ENOBUFS);
    assert_int_equal(custos_buf_put(&b, "", 0), -ENOBUFS);
    assert_int_equal(custos_buf_put_str0(&b, ""), -ENOBUFS);
    assert_int_equal(custos_buf_reserve(&b, 1, &slot), -ENOBUFS);
    assert_null(slot);
    assert_int_equal(out[4], 0xee);
    assert_int_equal(custos_buf_len(&b), 4);
    assert_int_equal(custos_buf_left(&b), 0);
    assert_false(custos_buf_ok(&b));

    /* Each kind of put overflows on its own. */
    static const size_t sizes[] = {0, 1, 2, 3, 7, 8, 2, 5}; /* each one byte short */
    for (int kind = 0; kind < 8; kind++) {
        custos_buf_init(&b, out, sizes[kind]);
        int ret = 0;
        switch (kind) {
        case 0:
            ret = custos_buf_put_u8(&b, 1);
            break;
        case 1:
            ret = custos_buf_put_u16(&b, 1);
            break;
        case 2:
            ret = custos_buf_put_u32(&b, 1);
            break;
        case 3:
            ret = custos_buf_put_u64(&b, 1);
            break;
        case 4:
            ret = custos_buf_put(&b, "12345678", 8);
            break;
        case 5:
            ret = custos_buf_put_str0(&b, "12345678");
            break;
        case 6:
            ret = custos_buf_put_bytes_u16(&b, "x", 1);
            break; /* needs 3 */
        case 7:
            ret = custos_buf_put_bytes_u32(&b, "xx", 2);
            break; /* needs 6 */
        }
        assert_int_equal(ret, -ENOBUFS);
        assert_false(custos_buf_ok(&b));
        assert_int_equal(custos_buf_len(&b), 0); /* not even the length prefix */
    }
    /* A length that does not fit its prefix. */
    static uint8_t big[70000];
    static uint8_t store[sizeof(big) + 4];
    custos_buf_init(&b, store, sizeof(store));
    assert_int_equal(custos_buf_put_bytes_u16(&b, big, 65536), -ENOBUFS);
    assert_int_equal(custos_buf_len(&b), 0);
    custos_buf_init(&b, store, sizeof(store));
    assert_int_equal(custos_buf_put_bytes_u16(&b, big, 65535), 0);
    assert_int_equal(custos_buf_len(&b), 65537);
    /* A reader is not a writer. */
    custos_buf_reader(&b, out, sizeof(out));
    assert_int_equal(custos_buf_put_u8(&b, 1), -ENOBUFS);
}

/* An underflowing get yields zeros / NULL, and every later get fails, even one that would fit. */
static void test_underflow_sticks(void **state)
{
    (void)state;
    static const uint8_t in[] = {0x00, 0x05, 'a', 'b', 0x00, 0x10, 0x11};
    uint8_t u8 = 1, raw[4] = {1, 1, 1, 1};
    uint16_t u16 = 1;
    uint32_t u32 = 1;
    uint64_t u64 = 1;
    const uint8_t *p = in;
    const char *s = "x";
    size_t n = 1;
    struct custos_buf r;

    /* The u16 length says 5, only 5 bytes follow... and that is exactly enough. */
    custos_buf_reader(&r, in, sizeof(in));
    assert_int_equal(custos_buf_get_bytes_u16(&r, &p, &n), 0);
    assert_true(custos_buf_done(&r));
    /* One byte short: the string is refused and the cursor stays. */
    custos_buf_reader(&r, in, sizeof(in) - 1);
    assert_int_equal(custos_buf_get_bytes_u16(&r, &p, &n), -EBADMSG);
    assert_null(p);
    assert_int_equal(n, 0);
    assert_false(custos_buf_ok(&r));
    assert_int_equal(custos_buf_len(&r), 0);
    assert_int_equal(custos_buf_left(&r), 0);
    assert_int_equal(custos_buf_get_u8(&r, &u8), -EBADMSG); /* would fit, but the flag sticks */
    assert_int_equal(u8, 0);
    assert_int_equal(custos_buf_get_u16(&r, &u16), -EBADMSG);
    assert_int_equal(u16, 0);
    assert_int_equal(custos_buf_get_u32(&r, &u32), -EBADMSG);
    assert_int_equal(u32, 0);
    assert_int_equal(custos_buf_get_u64(&r, &u64), -EBADMSG);
    assert_true(u64 == 0);
    assert_int_equal(custos_buf_get(&r, raw, sizeof(raw)), -EBADMSG);
    assert_int_equal(raw[0] | raw[1] | raw[2] | raw[3], 0);
    assert_int_equal(custos_buf_get_ptr(&r, 0, &p), -EBADMSG);
    assert_null(p);
    assert_int_equal(custos_buf_get_str0(&r, &s), -EBADMSG);
    assert_null(s);
    assert_false(custos_buf_done(&r));

    /* Each integer size is refused one byte short, and accepted at exactly its size. */
    static const uint8_t ints[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (unsigned size = 1; size <= 8; size *= 2) {
        for (unsigned have = size - 1; have <= size; have++) {
            int ret = 0;
            custos_buf_reader(&r, ints, have);
            switch (size) {
            case 1:
                ret = custos_buf_get_u8(&r, &u8);
                break;
            case 2:
                ret = custos_buf_get_u16(&r, &u16);
                break;
            case 4:
                ret = custos_buf_get_u32(&r, &u32);
                break;
            case 8:
                ret = custos_buf_get_u64(&r, &u64);
                break;
            }
            assert_int_equal(ret, have == size ? 0 : -EBADMSG);
            assert_int_equal(custos_buf_done(&r), have == size);
        }
    }
    /* A u32 length larger than the input (and larger than any size_t arithmetic would like). */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a'};
    custos_buf_reader(&r, huge, sizeof(huge));
    assert_int_equal(custos_buf_get_bytes_u32(&r, &p, &n), -EBADMSG);
    /* A string without its NUL. */
    custos_buf_reader(&r, "abc", 3);
    assert_int_equal(custos_buf_get_str0(&r, &s), -EBADMSG);
    assert_false(custos_buf_ok(&r));
    custos_buf_reader(&r, "abc", 4);
    assert_int_equal(custos_buf_get_str0(&r, &s), 0);
    assert_string_equal(s, "abc");
    assert_true(custos_buf_done(&r));
    /* No input at all. */
    custos_buf_reader(&r, NULL, 0);
    assert_int_equal(custos_buf_get(&r, raw, 0), 0);
    assert_true(custos_buf_done(&r));
    assert_int_equal(custos_buf_get_str0(&r, &s), -EBADMSG);
}

/* reserve: room to fill in later, zeroed, counted in the length. */
static void test_reserve(void **state)
{
    (void)state;
    uint8_t out[8], *len = NULL;
    struct custos_buf b;
    memset(out, 0xee, sizeof(out));
    custos_buf_init(&b, out, sizeof(out));
    assert_int_equal(custos_buf_reserve(&b, 4, &len), 0);
    assert_ptr_equal(len, out);
    assert_int_equal(out[0] | out[1] | out[2] | out[3], 0);
    custos_buf_put(&b, "abcd", 4);
    custos_put_be(len, custos_buf_len(&b) - 4, 4);
    assert_true(custos_buf_ok(&b));
    assert_memory_equal(out, "\0\0\0\4abcd", 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_all),          cmocka_unit_test(test_get_all), cmocka_unit_test(test_overflow_sticks),
        cmocka_unit_test(test_underflow_sticks), cmocka_unit_test(test_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
