/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the lasd socket protocol: the input is a byte stream as lasd reads it from a
 * connection, cut into frames (u32 big-endian length, payload) the way lasd does; every complete
 * frame is parsed as a request (as lasd's handler does) and as an answer to each request type (as
 * the client library does). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(int ret, const char *err, size_t err_size)
{
    if (ret == 0)
        return;
    if (!memchr(err, '\0', err_size) || err[0] == '\0')
        abort();
}

static void parse_request(const uint8_t *p, size_t n)
{
    struct custos_las_request req;
    char err[256];
    memset(&req, 0xa5, sizeof(req));
    int ret = custos_las_request_parse(p, n, &req, err, sizeof(err));
    check_message(ret, err, sizeof(err));
    if (ret != 0) {
        if (ret != -EINVAL)
            abort();
        return;
    }
    if (req.data != p + 1 || req.data_size != n - 1)
        abort();
    switch (req.op) {
    case CUSTOS_LAS_OP_QUOTE:
        if (req.data_size != CUSTOS_REPORT_DATA_SIZE)
            abort();
        break;
    case CUSTOS_LAS_OP_SEAL_KEY:
        if (req.data_size < 1 || req.data_size > 64)
            abort();
        for (size_t i = 0; i < req.data_size; i++)
            if (req.data[i] < 0x21 || req.data[i] > 0x7e)
                abort();
        break;
    case CUSTOS_LAS_OP_INFO:
        if (req.data_size != 0)
            abort();
        break;
    default:
        abort();
    }
}

static void parse_answer(const uint8_t *p, size_t n)
{
    const uint8_t *a = NULL;
    size_t an = 0;
    char err[512];
    int ret = custos_las_answer_parse(p, n, &a, &an, err, sizeof(err));
    check_message(ret, err, sizeof(err));
    if (ret != 0) {
        if (ret != -EPROTO)
            abort();
        /* lasd's message is shown with its unprintable bytes replaced */
        for (const char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
                abort();
        return;
    }
    if (a != p + 1 || an != n - 1)
        abort();
    struct custos_quote q;
    memset(&q, 0, sizeof(q));
    ret = custos_las_answer_quote(a, an, &q, err, sizeof(err));
    check_message(ret, err, sizeof(err));
    if (ret == 0 && (q.sig_size == 0 || q.sig_size > sizeof(q.sig) || an != CUSTOS_QUOTE_BODY_SIZE + q.sig_size))
        abort();
    uint8_t key[CUSTOS_SEAL_KEY_SIZE];
    ret = custos_las_answer_seal_key(a, an, key, err, sizeof(err));
    check_message(ret, err, sizeof(err));
    if ((ret == 0) != (an == CUSTOS_SEAL_KEY_SIZE))
        abort();
    json_t *j = NULL;
    ret = custos_las_answer_info(a, an, &j, err, sizeof(err));
    check_message(ret, err, sizeof(err));
    if ((ret == 0) != (j != NULL))
        abort();
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t at = 0;
    for (;;) {
        long len = custos_frame_split(data + at, size - at);
        if (len == CUSTOS_FRAME_INCOMPLETE || len == CUSTOS_FRAME_OVERSIZE)
            break;
        if (len < 0 || (size_t)len > CUSTOS_LAS_MAX_MSG || 4 + (size_t)len > size - at)
            abort();
        parse_request(data + at + 4, (size_t)len);
        parse_answer(data + at + 4, (size_t)len);
        at += 4 + (size_t)len;
    }
    return 0;
}
