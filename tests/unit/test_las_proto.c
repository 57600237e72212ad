/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the lasd protocol codec (las_proto.c): frames, requests, answers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "custos.h"

static void test_frame_split(void **state)
{
    (void)state;
    uint8_t buf[8 + CUSTOS_LAS_MAX_MSG] = {0, 0, 0, 2, 'a', 'b', 'c'};
    assert_int_equal(custos_frame_split(buf, 0), CUSTOS_FRAME_INCOMPLETE);
    assert_int_equal(custos_frame_split(buf, 3), CUSTOS_FRAME_INCOMPLETE);
    assert_int_equal(custos_frame_split(buf, 5), CUSTOS_FRAME_INCOMPLETE);
    assert_int_equal(custos_frame_split(buf, 6), 2);
    assert_int_equal(custos_frame_split(buf, 7), 2); /* the next frame's first byte is not counted */
    custos_put_be(buf, CUSTOS_LAS_MAX_MSG, 4);
    assert_int_equal(custos_frame_split(buf, 4), CUSTOS_FRAME_INCOMPLETE);
    assert_int_equal(custos_frame_split(buf, 4 + CUSTOS_LAS_MAX_MSG), CUSTOS_LAS_MAX_MSG);
    custos_put_be(buf, CUSTOS_LAS_MAX_MSG + 1, 4);
    assert_int_equal(custos_frame_split(buf, 4), CUSTOS_FRAME_OVERSIZE);
    custos_put_be(buf, 0xffffffffu, 4);
    assert_int_equal(custos_frame_split(buf, 4), CUSTOS_FRAME_OVERSIZE);
}

static void test_requests(void **state)
{
    (void)state;
    struct custos_las_request r;
    char err[256];
    uint8_t req[1 + 65] = {CUSTOS_LAS_OP_QUOTE};
    assert_int_equal(custos_las_request_parse(req, 1 + 64, &r, err, sizeof(err)), 0);
    assert_int_equal(r.op, CUSTOS_LAS_OP_QUOTE);
    assert_ptr_equal(r.data, req + 1);
    assert_int_equal(r.data_size, 64);
    assert_int_equal(custos_las_request_parse(req, 1 + 10, &r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "quote request must carry 64 bytes of report data, got 10");
    assert_int_equal(custos_las_request_parse(req, 0, &r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "empty request");

    static const uint8_t seal[] = {CUSTOS_LAS_OP_SEAL_KEY, 'c', 'a', 's', '-', 'd', 'b'};
    assert_int_equal(custos_las_request_parse(seal, sizeof(seal), &r, err, sizeof(err)), 0);
    assert_int_equal(r.data_size, 6);
    assert_int_equal(custos_las_request_parse(seal, 1, &r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "seal key label must be 1..64 bytes, got 0");
    memset(req, 'x', sizeof(req));
    req[0] = CUSTOS_LAS_OP_SEAL_KEY;
    assert_int_equal(custos_las_request_parse(req, 1 + 64, &r, err, sizeof(err)), 0);
    assert_int_equal(custos_las_request_parse(req, 1 + 65, &r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "seal key label must be 1..64 bytes, got 65");
    static const uint8_t spaced[] = {CUSTOS_LAS_OP_SEAL_KEY, 'a', ' ', 'b'};
    assert_int_equal(custos_las_request_parse(spaced, sizeof(spaced), &r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "seal key label must be printable ASCII without spaces (byte 1 is 0x20)");

    static const uint8_t info[] = {CUSTOS_LAS_OP_INFO, 0};
    assert_int_equal(custos_las_request_parse(info, 1, &r, err, sizeof(err)), 0);
    assert_int_equal(r.data_size, 0);
    assert_int_equal(custos_las_request_parse(info, 2, &r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "info request carries no data, got 1 bytes");
    static const uint8_t unknown[] = {99};
    assert_int_equal(custos_las_request_parse(unknown, 1, &r, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "unknown request type 99");
}

static void test_answers(void **state)
{
    (void)state;
    const uint8_t *a = NULL;
    size_t n = 0;
    char err[512];
    static const uint8_t ok[] = {0, 'x', 'y'};
    assert_int_equal(custos_las_answer_parse(ok, sizeof(ok), &a, &n, err, sizeof(err)), 0);
    assert_ptr_equal(a, ok + 1);
    assert_int_equal(n, 2);
    assert_int_equal(custos_las_answer_parse(ok, 0, &a, &n, err, sizeof(err)), -EPROTO);
    assert_string_equal(err, "LAS sent an empty answer");
    static const uint8_t odd[] = {7};
    assert_int_equal(custos_las_answer_parse(odd, 1, &a, &n, err, sizeof(err)), -EPROTO);
    assert_string_equal(err, "LAS answered with unknown status 7");
    /* lasd's message never brings control characters along */
    static const uint8_t refused[] = {1, 'n', 'o', '\n', '\x1b', '[', '2', 'J', 0, '!'};
    assert_int_equal(custos_las_answer_parse(refused, sizeof(refused), &a, &n, err, sizeof(err)), -EPROTO);
    assert_string_equal(err, "LAS refused: no??[2J?!");

    uint8_t key[CUSTOS_SEAL_KEY_SIZE], raw[CUSTOS_SEAL_KEY_SIZE + 1] = {0};
    assert_int_equal(custos_las_answer_seal_key(raw, CUSTOS_SEAL_KEY_SIZE, key, err, sizeof(err)), 0);
    assert_int_equal(custos_las_answer_seal_key(raw, sizeof(raw), key, err, sizeof(err)), -EPROTO);
    assert_string_equal(err, "LAS answered a seal key of unexpected size 33");

    struct custos_quote q;
    uint8_t quote[CUSTOS_QUOTE_BODY_SIZE + 80];
    memset(&q, 0, sizeof(q));
    q.platform_pub[0] = 2;
    q.kind = 1;
    custos_quote_body(&q, quote);
    memset(quote + CUSTOS_QUOTE_BODY_SIZE, 0x30, 80);
    assert_int_equal(custos_las_answer_quote(quote, CUSTOS_QUOTE_BODY_SIZE + 70, &q, err, sizeof(err)), 0);
    assert_int_equal(q.sig_size, 70);
    assert_int_equal(custos_las_answer_quote(quote, CUSTOS_QUOTE_BODY_SIZE + 7, &q, err, sizeof(err)), -EPROTO);
    assert_string_equal(err, "LAS answered a quote of unexpected size 162");
    quote[0] ^= 1;
    assert_int_equal(custos_las_answer_quote(quote, CUSTOS_QUOTE_BODY_SIZE + 70, &q, err, sizeof(err)), -EINVAL);

    json_t *j = NULL;
    static const char info[] = "{\"tcb\":1}";
    assert_int_equal(custos_las_answer_info((const uint8_t *)info, strlen(info), &j, err, sizeof(err)), 0);
    assert_non_null(j);
    json_decref(j);
    j = NULL;
    assert_int_equal(custos_las_answer_info((const uint8_t *)"{", 1, &j, err, sizeof(err)), -EINVAL);
    assert_null(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_split),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
