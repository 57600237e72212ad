/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for quotes (quote.c): body and JSON forms, signatures and the trust policy. */
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

_Static_assert(CUSTOS_QUOTE_BODY_SIZE == 155, "the quote body is 155 bytes");

struct fixture {
    custos_p256 *key;
    struct custos_quote q;
    char id[CUSTOS_PLATFORM_ID_LEN + 1];
};

static void sign(struct fixture *f, struct custos_quote *q)
{
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE];
    custos_quote_body(q, body);
    assert_int_equal(custos_p256_sign(f->key, body, sizeof(body), q->sig, &q->sig_size), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || custos_p256_from_seed((const uint8_t *)"platform seed", 13, &f->key) < 0)
        return -1;
    struct custos_quote *q = &f->q;
    if (custos_p256_public(f->key, q->platform_pub) < 0)
        return -1;
    q->kind = CUSTOS_PLATFORM_SIM;
    for (int i = 0; i < CUSTOS_MEASUREMENT_SIZE; i++)
        q->measurement[i] = (uint8_t)(0xa0 + i);
    q->tcb = 0x01020304;
    q->debug = 0;
    for (int i = 0; i < CUSTOS_REPORT_DATA_SIZE; i++)
        q->report_data[i] = (uint8_t)(3 * i);
    custos_platform_id(q->platform_pub, f->id);
    *state = f;
    sign(f, q);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    custos_p256_free(f->key);
    free(f);
    return 0;
}

static void assert_contains(const char *err, const char *needle)
{
    if (!strstr(err, needle))
        fail_msg("message '%s' lacks '%s'", err, needle);
}

static void test_body_layout(void **state)
{
    struct fixture *f = *state;
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE];
    f->q.uid = 0x0a0b0c0d;
    custos_quote_body(&f->q, body);
    static const uint8_t uid_be[4] = {0x0a, 0x0b, 0x0c, 0x0d};
    assert_memory_equal(body + 151, uid_be, 4);
    assert_memory_equal(body, "CUSTOS-QUOTE-V1", 16);
    assert_memory_equal(body + 16, f->q.platform_pub, CUSTOS_P256_PUB_SIZE);
    assert_int_equal(body[49], CUSTOS_PLATFORM_SIM);
    assert_memory_equal(body + 50, f->q.measurement, CUSTOS_MEASUREMENT_SIZE);
    static const uint8_t tcb_be[4] = {1, 2, 3, 4};
    assert_memory_equal(body + 82, tcb_be, 4);
    assert_int_equal(body[86], 0);
    assert_memory_equal(body + 87, f->q.report_data, CUSTOS_REPORT_DATA_SIZE);

    struct custos_quote p;
    char err[256] = "";
    memset(&p, 0x55, sizeof(p));
    assert_int_equal(custos_quote_body_parse(body, sizeof(body), &p, err, sizeof(err)), 0);
    assert_memory_equal(p.platform_pub, f->q.platform_pub, CUSTOS_P256_PUB_SIZE);
    assert_int_equal(p.kind, f->q.kind);
    assert_memory_equal(p.measurement, f->q.measurement, CUSTOS_MEASUREMENT_SIZE);
    assert_int_equal(p.tcb, f->q.tcb);
    assert_int_equal(p.debug, 0);
    assert_memory_equal(p.report_data, f->q.report_data, CUSTOS_REPORT_DATA_SIZE);
    assert_int_equal(p.uid, 0x0a0b0c0d);
}

static void test_body_parse_refusals(void **state)
{
    struct fixture *f = *state;
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE], b[CUSTOS_QUOTE_BODY_SIZE + 1];
    struct custos_quote p;
    char err[256];
    custos_quote_body(&f->q, body);
#define BAD(mutate, size, needle)                                                                                      \
    do {                                                                                                               \
        memcpy(b, body, sizeof(body));                                                                                 \
        mutate;                                                                                                        \
        err[0] = '\0';                                                                                                 \
        assert_int_equal(custos_quote_body_parse(b, size, &p, err, sizeof(err)), -EINVAL);                             \
        assert_contains(err, needle);                                                                                  \
    } while (0)
    BAD((void)0, sizeof(body) - 1, "body is 154 bytes");
    BAD(b[sizeof(body)] = 0, sizeof(body) + 1, "body is 156 bytes");
    BAD(b[0] = 'X', sizeof(body), "not a CUSTOS-QUOTE-V1 quote");
    BAD(b[15] = 1, sizeof(body), "not a CUSTOS-QUOTE-V1 quote");
    BAD(b[16] = 4, sizeof(body), "platform key");
    BAD(b[49] = 0, sizeof(body), "platform kind 0");
    BAD(b[49] = 4, sizeof(body), "platform kind 4");
    BAD(b[86] = 2, sizeof(body), "debug flag is 2");
#undef BAD
    for (int k = CUSTOS_PLATFORM_SIM; k <= CUSTOS_PLATFORM_SGX; k++) {
        memcpy(b, body, sizeof(body));
        b[49] = (uint8_t)k;
        assert_int_equal(custos_quote_body_parse(b, sizeof(body), &p, err, sizeof(err)), 0);
        assert_int_equal(p.kind, k);
    }
}

static void test_json_round_trip(void **state)
{
    struct fixture *f = *state;
    json_t *j = custos_quote_to_json(&f->q);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "format")), "custos-quote-v1");
    assert_int_equal(json_object_size(j), 3);

    /* Through text and the strict parser, as a verifier receives it. */
    char *text = json_dumps(j, JSON_COMPACT);
    json_t *k = NULL;
    char err[256] = "";
    assert_int_equal(custos_json_parse(text, strlen(text), &k, err, sizeof(err)), 0);
    struct custos_quote p;
    memset(&p, 0, sizeof(p));
    assert_int_equal(custos_quote_from_json(k, &p, err, sizeof(err)), 0);
    assert_memory_equal(p.platform_pub, f->q.platform_pub, CUSTOS_P256_PUB_SIZE);
    assert_int_equal(p.kind, f->q.kind);
    assert_memory_equal(p.measurement, f->q.measurement, CUSTOS_MEASUREMENT_SIZE);
    assert_int_equal(p.tcb, f->q.tcb);
    assert_int_equal(p.debug, f->q.debug);
    assert_memory_equal(p.report_data, f->q.report_data, CUSTOS_REPORT_DATA_SIZE);
    assert_int_equal(p.sig_size, f->q.sig_size);
    assert_memory_equal(p.sig, f->q.sig, p.sig_size);
    assert_int_equal(custos_quote_verify_signature(&p), 0);

    /* Same JSON again. */
    json_t *again = custos_quote_to_json(&p);
    assert_true(json_equal(j, again));
    json_decref(again);
    json_decref(k);
    json_decref(j);
    free(text);
}

static void test_check_platform(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    const char *listed[] = {"03"
                            "0000000000000000000000000000000000000000000000000000000000000000",
                            f->id};
    struct custos_quote_policy pol = {.platforms = listed, .platform_count = 2};
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), 0);

    /* IDs are hex, compared without regard to case. */
    char lower[CUSTOS_PLATFORM_ID_LEN + 1];
    for (size_t i = 0; i <= CUSTOS_PLATFORM_ID_LEN; i++)
        lower[i] = (char)(f->id[i] >= 'A' && f->id[i] <= 'F' ? f->id[i] + 32 : f->id[i]);
    const char *lower_list[] = {lower};
    pol = (struct custos_quote_policy){.platforms = lower_list, .platform_count = 1};
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), 0);

    /* Not listed. */
    pol = (struct custos_quote_policy){.platforms = listed, .platform_count = 1};
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), -EPERM);
    assert_contains(err, "unknown platform");
    assert_contains(err, f->id);
    assert_contains(err, listed[0]);
    pol = (struct custos_quote_policy){0};
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), -EPERM);
    assert_contains(err, "unknown platform");
    assert_contains(err, "none given");

    /* Trusted without a list only when asked to. */
    pol.trust_any_platform = true;
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), 0);

    /* A small buffer truncates the message but is not overrun. */
    char tiny[12];
    memset(tiny, 'x', sizeof(tiny));
    pol = (struct custos_quote_policy){.platforms = listed, .platform_count = 1};
    assert_int_equal(custos_quote_check(&f->q, &pol, tiny, sizeof(tiny)), -EPERM);
    assert_non_null(memchr(tiny, '\0', sizeof(tiny)));
}

static void test_check_signature(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    struct custos_quote_policy pol = {.trust_any_platform = true};

    /* Signed by another key than the one in the quote. */
    custos_p256 *other = NULL;
    assert_int_equal(custos_p256_from_seed((const uint8_t *)"other", 5, &other), 0);
    struct custos_quote q = f->q;
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE];
    custos_quote_body(&q, body);
    assert_int_equal(custos_p256_sign(other, body, sizeof(body), q.sig, &q.sig_size), 0);
    assert_int_equal(custos_quote_check(&q, &pol, err, sizeof(err)), -EBADMSG);
    assert_contains(err, "bad signature");
    assert_contains(err, f->id);
    custos_p256_free(other);

    /* A changed field under the original signature. */
    q = f->q;
    q.tcb++;
    assert_int_equal(custos_quote_check(&q, &pol, err, sizeof(err)), -EBADMSG);
    q = f->q;
    q.sig[q.sig_size - 1] ^= 1;
    assert_int_equal(custos_quote_check(&q, &pol, err, sizeof(err)), -EBADMSG);
    q = f->q;
    q.sig_size--;
    assert_int_equal(custos_quote_check(&q, &pol, err, sizeof(err)), -EBADMSG);
}

/* Every single changed byte of the body is caught, through the JSON a verifier receives. */
static void test_every_body_byte(void **state)
{
    struct fixture *f = *state;
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE];
    struct custos_quote_policy pol = {.trust_any_platform = true, .allow_debug = true};
    custos_quote_body(&f->q, body);
    char *sig = custos_base64_encode(f->q.sig, f->q.sig_size);
    assert_non_null(sig);
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    int parse_errors = 0, sig_errors = 0;
    for (size_t m = 0; m < sizeof(masks); m++) {
        for (size_t i = 0; i < sizeof(body); i++) {
            body[i] ^= masks[m];
            char *b64 = custos_base64_encode(body, sizeof(body));
            json_t *j = json_pack("{s:s, s:s, s:s}", "format", "custos-quote-v1", "body", b64, "signature", sig);
            assert_non_null(j);
            struct custos_quote q;
            char err[512] = "";
            int ret = custos_quote_from_json(j, &q, err, sizeof(err));
            if (ret == 0) {
                ret = custos_quote_check(&q, &pol, err, sizeof(err));
                if (ret != -EBADMSG)
                    fail_msg("byte %zu ^ 0x%02x: check gave %d (%s)", i, masks[m], ret, err);
                sig_errors++;
            } else {
                if (ret != -EINVAL || !strstr(err, "malformed quote"))
                    fail_msg("byte %zu ^ 0x%02x: parse gave %d (%s)", i, masks[m], ret, err);
                parse_errors++;
            }
            json_decref(j);
            free(b64);
            body[i] ^= masks[m];
        }
    }
    free(sig);
    /* Both paths were exercised: magic bytes fail parsing, measurement bytes the signature. */
    assert_true(parse_errors >= 3 * 16);
    assert_true(sig_errors >= 3 * (CUSTOS_MEASUREMENT_SIZE + 4 + CUSTOS_REPORT_DATA_SIZE));
}

static void test_check_measurement(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    uint8_t ms[2][CUSTOS_MEASUREMENT_SIZE];
    memset(ms[0], 0x11, sizeof(ms[0]));
    memcpy(ms[1], f->q.measurement, sizeof(ms[1]));
    struct custos_quote_policy pol = {.trust_any_platform = true, .measurements = ms, .measurement_count = 1};
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), -EPERM);
    assert_contains(err, "measurement mismatch");
    char want[2 * CUSTOS_MEASUREMENT_SIZE + 1], got[2 * CUSTOS_MEASUREMENT_SIZE + 1];
    custos_hex_encode(ms[0], CUSTOS_MEASUREMENT_SIZE, want, false);
    custos_hex_encode(f->q.measurement, CUSTOS_MEASUREMENT_SIZE, got, false);
    assert_contains(err, want);
    assert_contains(err, got);
    /* One of several allowed. */
    pol.measurement_count = 2;
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), 0);
    pol.measurements = &ms[1];
    pol.measurement_count = 1;
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), 0);
}

static void test_check_debug_tcb_report_data(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    struct custos_quote q = f->q;
    q.debug = 1;
    sign(f, &q);
    struct custos_quote_policy pol = {.trust_any_platform = true};
    assert_int_equal(custos_quote_check(&q, &pol, err, sizeof(err)), -EPERM);
    assert_contains(err, "debug");
    pol.allow_debug = true;
    assert_int_equal(custos_quote_check(&q, &pol, err, sizeof(err)), 0);

    pol = (struct custos_quote_policy){.trust_any_platform = true, .min_tcb = f->q.tcb};
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), 0);
    pol.min_tcb = f->q.tcb + 1;
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), -EPERM);
    assert_contains(err, "TCB too old");
    assert_contains(err, "16909060"); /* 0x01020304 */
    assert_contains(err, "16909061");

    uint8_t rd[CUSTOS_REPORT_DATA_SIZE];
    memcpy(rd, f->q.report_data, sizeof(rd));
    pol = (struct custos_quote_policy){.trust_any_platform = true, .report_data = rd};
    assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(rd); i += 21) {
        rd[i] ^= 1;
        assert_int_equal(custos_quote_check(&f->q, &pol, err, sizeof(err)), -EPERM);
        assert_contains(err, "report data mismatch");
        rd[i] ^= 1;
    }
}

static void from_json_bad(const char *text, const char *needle)
{
    char err[512] = "";
    json_t *j = NULL;
    assert_int_equal(custos_json_parse(text, strlen(text), &j, err, sizeof(err)), 0);
    struct custos_quote q;
    int ret = custos_quote_from_json(j, &q, err, sizeof(err));
    if (ret != -EINVAL || !strstr(err, needle))
        fail_msg("input %s: got %d '%s', want -EINVAL with '%s'", text, ret, err, needle);
    json_decref(j);
}

static void test_from_json_malformed(void **state)
{
    struct fixture *f = *state;
    json_t *j = custos_quote_to_json(&f->q);
    const char *body = json_string_value(json_object_get(j, "body"));
    const char *sig = json_string_value(json_object_get(j, "signature"));
    char text[1024];
#define FMT(...) (snprintf(text, sizeof(text), __VA_ARGS__) < (int)sizeof(text) ? text : NULL)
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"body\":\"%s\"}", body), "signature");
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"signature\":\"%s\"}", sig), "body");
    from_json_bad(FMT("{\"body\":\"%s\",\"signature\":\"%s\"}", body, sig), "format");
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"body\":\"%s\",\"signature\":\"%s\",\"extra\":1}", body, sig),
                  "extra");
    from_json_bad(FMT("{\"format\":\"custos-quote-v2\",\"body\":\"%s\",\"signature\":\"%s\"}", body, sig),
                  "unknown format 'custos-quote-v2'");
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"body\":\"%.*s\",\"signature\":\"%s\"}", (int)strlen(body) - 1,
                      body, sig),
                  "field 'body' is not valid base64");
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"body\":\"%s!\",\"signature\":\"%s\"}", body, sig),
                  "field 'body' is not valid base64");
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"body\":\"%s\",\"signature\":\"%s=\"}", body, sig),
                  "field 'signature'");
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"body\":\"%s\",\"signature\":\"\"}", body),
                  "field 'signature'");
    /* A signature longer than any ECDSA P-256 DER signature (81 bytes). */
    uint8_t long_sig[81] = {0x30};
    char *ls = custos_base64_encode(long_sig, sizeof(long_sig));
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"body\":\"%s\",\"signature\":\"%s\"}", body, ls),
                  "field 'signature'");
    free(ls);
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"body\":\"Zm9v\",\"signature\":\"%s\"}", sig),
                  "body is 3 bytes");
    /* Wrong type: the message names the field. */
    from_json_bad(FMT("{\"format\":\"custos-quote-v1\",\"body\":5,\"signature\":\"%s\"}", sig),
                  "field 'body' must be a string");
    from_json_bad("[]", "not a JSON object");
    from_json_bad("{}", "malformed quote");
#undef FMT
    json_decref(j);
}

static void test_platform_ids_and_kinds(void **state)
{
    struct fixture *f = *state;
    uint8_t pub[CUSTOS_P256_PUB_SIZE];
    assert_int_equal(strlen(f->id), CUSTOS_PLATFORM_ID_LEN);
    assert_int_equal(custos_platform_id_parse(f->id, pub), 0);
    assert_memory_equal(pub, f->q.platform_pub, sizeof(pub));
    char bad[CUSTOS_PLATFORM_ID_LEN + 2];
    memcpy(bad, f->id, sizeof(f->id));
    bad[0] = '0';
    bad[1] = '4';
    assert_int_equal(custos_platform_id_parse(bad, pub), -EINVAL);
    memcpy(bad, f->id, sizeof(f->id));
    bad[CUSTOS_PLATFORM_ID_LEN - 1] = '\0';
    assert_int_equal(custos_platform_id_parse(bad, pub), -EINVAL);
    memcpy(bad, f->id, sizeof(f->id));
    bad[10] = 'g';
    assert_int_equal(custos_platform_id_parse(bad, pub), -EINVAL);

    assert_string_equal(custos_platform_kind_name(CUSTOS_PLATFORM_SIM), "sim");
    assert_string_equal(custos_platform_kind_name(CUSTOS_PLATFORM_TPM2), "tpm2");
    assert_string_equal(custos_platform_kind_name(CUSTOS_PLATFORM_SGX), "sgx");
    assert_null(custos_platform_kind_name(0));
    assert_null(custos_platform_kind_name(4));
    assert_int_equal(custos_platform_kind_parse("tpm2"), CUSTOS_PLATFORM_TPM2);
    assert_int_equal(custos_platform_kind_parse("sgx"), CUSTOS_PLATFORM_SGX);
    assert_int_equal(custos_platform_kind_parse("SIM"), -EINVAL);
    assert_int_equal(custos_platform_kind_parse(NULL), -EINVAL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_body_layout),         T(test_body_parse_refusals),
        T(test_json_round_trip),     T(test_check_platform),
        T(test_check_signature),     T(test_every_body_byte),
        T(test_check_measurement),   T(test_check_debug_tcb_report_data),
        T(test_from_json_malformed), T(test_platform_ids_and_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
