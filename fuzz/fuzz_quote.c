/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for quotes as a verifier receives them: strict JSON, the quote's JSON form,
 * the binary body, and the full check (signature first) with any platform trusted. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(const char *err, size_t err_size, const char *prefix)
{
    if (!memchr(err, '\0', err_size) || strncmp(err, prefix, strlen(prefix)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct custos_quote q;

    /* The raw bytes as a body: parse, and a parsed body serializes back to the same bytes. */
    memset(&q, 0, sizeof(q));
    if (custos_quote_body_parse(data, size, &q, err, sizeof(err)) == 0) {
        uint8_t again[CUSTOS_QUOTE_BODY_SIZE];
        custos_quote_body(&q, again);
        if (size != sizeof(again) || memcmp(again, data, size) != 0)
            abort();
    } else {
        check_message(err, sizeof(err), "malformed quote: ");
    }

    json_t *j = NULL;
    int ret = custos_json_parse((const char *)data, size, &j, err, sizeof(err));
    if (ret < 0) {
        if (j || (ret != -EINVAL && ret != -E2BIG))
            abort();
        return 0;
    }
    memset(&q, 0xa5, sizeof(q));
    ret = custos_quote_from_json(j, &q, err, sizeof(err));
    if (ret < 0) {
        if (ret != -EINVAL)
            abort();
        check_message(err, sizeof(err), "malformed quote: ");
        json_decref(j);
        return 0;
    }
    if (q.sig_size == 0 || q.sig_size > sizeof(q.sig) || !custos_platform_kind_name(q.kind) || q.debug > 1)
        abort();

    /* A parsed quote encodes back to JSON that parses to the same quote. */
    json_t *back = custos_quote_to_json(&q);
    struct custos_quote q2;
    if (!back || custos_quote_from_json(back, &q2, err, sizeof(err)) != 0 || q2.sig_size != q.sig_size ||
        memcmp(q2.sig, q.sig, q.sig_size) != 0)
        abort();
    uint8_t b1[CUSTOS_QUOTE_BODY_SIZE], b2[CUSTOS_QUOTE_BODY_SIZE];
    custos_quote_body(&q, b1);
    custos_quote_body(&q2, b2);
    if (memcmp(b1, b2, sizeof(b1)) != 0)
        abort();
    json_decref(back);

    struct custos_quote_policy pol = {.trust_any_platform = true, .allow_debug = true};
    ret = custos_quote_check(&q, &pol, err, sizeof(err));
    if (ret != 0 && ret != -EBADMSG && ret != -EPERM)
        abort();
    if (ret != 0 && !memchr(err, '\0', sizeof(err)))
        abort();
    /* With no platform listed and trust_any off, nothing passes. */
    struct custos_quote_policy strict = {0};
    if (custos_quote_check(&q, &strict, err, sizeof(err)) == 0)
        abort();
    json_decref(j);
    return 0;
}
