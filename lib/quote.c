/* SPDX-License-Identifier: Apache-2.0 */
/* Quotes: what lasd signs for a local program, and how any party checks one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <assert.h>

#include "custos.h"

static_assert(sizeof(CUSTOS_QUOTE_MAGIC) == 16, "quote magic is 16 bytes with its NUL");
static_assert(CUSTOS_QUOTE_BODY_SIZE == 155, "the signed body is 155 bytes (docs/design.md)");

const char *custos_platform_kind_name(int kind)
{
    switch (kind) {
    case CUSTOS_PLATFORM_SIM:
        return "sim";
    case CUSTOS_PLATFORM_TPM2:
        return "tpm2";
    case CUSTOS_PLATFORM_SGX:
        return "sgx";
    }
    return NULL;
}

int custos_platform_kind_parse(const char *name)
{
    for (int k = CUSTOS_PLATFORM_SIM; k <= CUSTOS_PLATFORM_SGX; k++)
        if (name && !strcmp(name, custos_platform_kind_name(k)))
            return k;
    return -EINVAL;
}

void custos_quote_body(const struct custos_quote *q, uint8_t out[CUSTOS_QUOTE_BODY_SIZE])
{
    struct custos_buf b;
    custos_buf_init(&b, out, CUSTOS_QUOTE_BODY_SIZE);
    custos_buf_put(&b, CUSTOS_QUOTE_MAGIC, sizeof(CUSTOS_QUOTE_MAGIC));
    custos_buf_put(&b, q->platform_pub, sizeof(q->platform_pub));
    custos_buf_put_u8(&b, q->kind);
    custos_buf_put(&b, q->measurement, sizeof(q->measurement));
    custos_buf_put_u32(&b, q->tcb);
    custos_buf_put_u8(&b, q->debug);
    custos_buf_put(&b, q->report_data, sizeof(q->report_data));
    custos_buf_put_u32(&b, q->uid);
    /* The fields fill the body exactly: a field added without CUSTOS_QUOTE_BODY_SIZE fails here. */
    assert(custos_buf_ok(&b) && custos_buf_left(&b) == 0);
}

int custos_quote_body_parse(const uint8_t *body, size_t size, struct custos_quote *q, char *err, size_t err_size)
{
    struct custos_quote t;
    struct custos_buf r;
    uint8_t magic[sizeof(CUSTOS_QUOTE_MAGIC)];
    memset(&t, 0, sizeof(t));
    if (size != CUSTOS_QUOTE_BODY_SIZE) {
        snprintf(err, err_size, "malformed quote: body is %zu bytes, expected %d", size, CUSTOS_QUOTE_BODY_SIZE);
        return -EINVAL;
    }
    custos_buf_reader(&r, body, size);
    custos_buf_get(&r, magic, sizeof(magic));
    custos_buf_get(&r, t.platform_pub, sizeof(t.platform_pub));
    custos_buf_get_u8(&r, &t.kind);
    custos_buf_get(&r, t.measurement, sizeof(t.measurement));
    custos_buf_get_u32(&r, &t.tcb);
    custos_buf_get_u8(&r, &t.debug);
    custos_buf_get(&r, t.report_data, sizeof(t.report_data));
    custos_buf_get_u32(&r, &t.uid);
    assert(custos_buf_done(&r)); /* the size was checked above */
    if (memcmp(magic, CUSTOS_QUOTE_MAGIC, sizeof(magic)) != 0) {
        snprintf(err, err_size, "malformed quote: not a %s quote", CUSTOS_QUOTE_MAGIC);
        return -EINVAL;
    }
    if (t.platform_pub[0] != 2 && t.platform_pub[0] != 3) {
        snprintf(err, err_size, "malformed quote: platform key is not a compressed P-256 point");
        return -EINVAL;
    }
    if (!custos_platform_kind_name(t.kind)) {
        snprintf(err, err_size, "malformed quote: unknown platform kind %u", t.kind);
        return -EINVAL;
    }
    if (t.debug > 1) {
        snprintf(err, err_size, "malformed quote: debug flag is %u, expected 0 or 1", t.debug);
        return -EINVAL;
    }
    *q = t;
    return 0;
}

json_t *custos_quote_to_json(const struct custos_quote *q)
{
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE];
    custos_quote_body(q, body);
    char *b = custos_base64_encode(body, sizeof(body));
    char *s = custos_base64_encode(q->sig, q->sig_size);
    json_t *j = NULL;
    if (b && s)
        j = json_pack("{s:s, s:s, s:s}", "format", "custos-quote-v1", "body", b, "signature", s);
    free(b);
    free(s);
    return j;
}

int custos_quote_from_json(const json_t *j, struct custos_quote *q, char *err, size_t err_size)
{
    const char *format = NULL, *body_b64 = NULL, *sig_b64 = NULL;
    json_error_t e;
    uint8_t *body = NULL, *sig = NULL;
    size_t body_size = 0, sig_size = 0;
    int ret = -EINVAL;
    if (!json_is_object(j)) {
        snprintf(err, err_size, "malformed quote: not a JSON object");
        return -EINVAL;
    }
    static const char *const fields[] = {"format", "body", "signature"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(j, fields[i]);
        if (v && !json_is_string(v)) {
            snprintf(err, err_size, "malformed quote: field '%s' must be a string", fields[i]);
            return -EINVAL;
        }
    }
    if (json_unpack_ex((json_t *)j, &e, JSON_STRICT, "{s:s, s:s, s:s}", "format", &format, "body", &body_b64,
                       "signature", &sig_b64) < 0) {
        snprintf(err, err_size, "malformed quote: %s", e.text);
        return -EINVAL;
    }
    if (strcmp(format, "custos-quote-v1") != 0) {
        snprintf(err, err_size, "malformed quote: unknown format '%.40s'", format);
        return -EINVAL;
    }
    if (custos_base64_decode(body_b64, &body, &body_size) < 0) {
        snprintf(err, err_size, "malformed quote: field 'body' is not valid base64");
        goto out;
    }
    if (custos_base64_decode(sig_b64, &sig, &sig_size) < 0 || sig_size == 0 || sig_size > sizeof(q->sig)) {
        snprintf(err, err_size, "malformed quote: field 'signature' is not a base64 ECDSA signature");
        goto out;
    }
    if ((ret = custos_quote_body_parse(body, body_size, q, err, err_size)) < 0)
        goto out;
    memcpy(q->sig, sig, sig_size);
    q->sig_size = sig_size;
    ret = 0;
out:
    free(body);
    free(sig);
    return ret;
}

int custos_quote_verify_signature(const struct custos_quote *q)
{
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE];
    custos_quote_body(q, body);
    return custos_p256_verify_public(q->platform_pub, body, sizeof(body), q->sig, q->sig_size) < 0 ? -EBADMSG : 0;
}

void custos_platform_id(const uint8_t pub[CUSTOS_P256_PUB_SIZE], char out[CUSTOS_PLATFORM_ID_LEN + 1])
{
    custos_hex_encode(pub, CUSTOS_P256_PUB_SIZE, out, true);
}

int custos_platform_id_parse(const char *id, uint8_t pub[CUSTOS_P256_PUB_SIZE])
{
    if (custos_hex_decode(id, pub, CUSTOS_P256_PUB_SIZE) < 0 || (pub[0] != 2 && pub[0] != 3))
        return -EINVAL;
    return 0;
}

int custos_quote_check(const struct custos_quote *q, const struct custos_quote_policy *pol, char *err, size_t err_size)
{
    char id[CUSTOS_PLATFORM_ID_LEN + 1];
    char got[2 * CUSTOS_MEASUREMENT_SIZE + 1];
    custos_platform_id(q->platform_pub, id);
    if (custos_quote_verify_signature(q) < 0) {
        snprintf(err, err_size, "bad signature: the quote is not signed by platform %s", id);
        return -EBADMSG;
    }
    if (!pol->trust_any_platform) {
        bool found = false;
        for (size_t i = 0; i < pol->platform_count && !found; i++)
            found = strcasecmp(pol->platforms[i], id) == 0;
        if (!found) {
            int n = snprintf(err, err_size, "unknown platform: %s %s is not an allowed platform (",
                             custos_platform_kind_name(q->kind), id);
            for (size_t i = 0; i < pol->platform_count && n > 0 && (size_t)n < err_size; i++)
                n += snprintf(err + n, err_size - (size_t)n, "%s%s", i ? ", " : "", pol->platforms[i]);
            if (n > 0 && (size_t)n < err_size)
                snprintf(err + n, err_size - (size_t)n, "%s)%s", pol->platform_count ? "" : "none given",
                         q->kind == CUSTOS_PLATFORM_SIM
                             ? "; a simulated platform is only trusted when listed with --platform or "
                               "with --only_for_testing-trust-any"
                             : "");
            return -EPERM;
        }
    }
    custos_hex_encode(q->measurement, CUSTOS_MEASUREMENT_SIZE, got, false);
    if (pol->measurement_count) {
        bool found = false;
        for (size_t i = 0; i < pol->measurement_count && !found; i++)
            found = memcmp(pol->measurements[i], q->measurement, CUSTOS_MEASUREMENT_SIZE) == 0;
        if (!found) {
            char want[2 * CUSTOS_MEASUREMENT_SIZE + 1];
            custos_hex_encode(pol->measurements[0], CUSTOS_MEASUREMENT_SIZE, want, false);
            snprintf(err, err_size, "measurement mismatch: quote has %s, expected %s%s", got, want,
                     pol->measurement_count > 1 ? " (or another allowed one)" : "");
            return -EPERM;
        }
    }
    if (q->debug && !pol->allow_debug) {
        snprintf(err, err_size,
                 "debug mode: the quoted program runs in debug mode (allow only for testing with "
                 "--only_for_testing-debug)");
        return -EPERM;
    }
    if (q->tcb < pol->min_tcb) {
        snprintf(err, err_size, "TCB too old: quote has TCB %u, at least %u required", q->tcb, pol->min_tcb);
        return -EPERM;
    }
    if (pol->report_data && !custos_ct_equal(pol->report_data, q->report_data, CUSTOS_REPORT_DATA_SIZE)) {
        snprintf(err, err_size, "report data mismatch: the quote does not bind the expected data");
        return -EPERM;
    }
    return 0;
}
