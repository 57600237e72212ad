/* SPDX-License-Identifier: Apache-2.0 */
/* The committed fuzz seeds (fuzz/corpus) still parse: every "gen-*" seed (written by fuzz/seedgen.c
 * from the real code) must be accepted by the parser its fuzzer starts from, and get past the
 * checks that guard the deep code (signatures, bindings, MACs). A format change that makes a seed
 * stale fails here; regenerate with `build/tests/seedgen fuzz/corpus`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backup_proto.h"
#include "custos.h"
#include "keystore.h"
#include "toml.h"
#include "validate.h"

#ifndef CORPUS_DIR
#error "CORPUS_DIR must name fuzz/corpus"
#endif

static const uint8_t FUZZ_KS_KEY[32] = {0x42}; /* fuzz/fuzz_keystore.c */

static uint8_t *seed(const char *sub, const char *name, size_t *size)
{
    char path[4096];
    uint8_t *buf = NULL;
    snprintf(path, sizeof(path), "%s/%s/%s", CORPUS_DIR, sub, name);
    int ret = custos_read_file(path, 1 << 20, &buf, size);
    if (ret < 0)
        fail_msg("cannot read seed %s: %s", path, strerror(-ret));
    return buf;
}

static json_t *seed_json(const char *sub, const char *name)
{
    size_t size = 0;
    char err[256];
    json_t *j = NULL;
    uint8_t *buf = seed(sub, name, &size);
    if (custos_json_parse((const char *)buf, size, &j, err, sizeof(err)) < 0)
        fail_msg("%s/%s: not JSON: %s", sub, name, err);
    free(buf);
    return j;
}

static void check_quote_json(const char *name, bool debug)
{
    char err[512];
    struct custos_quote q;
    json_t *j = seed_json("quote", name);
    if (custos_quote_from_json(j, &q, err, sizeof(err)) < 0)
        fail_msg("quote/%s refused: %s", name, err);
    struct custos_quote_policy pol = {.trust_any_platform = true, .allow_debug = debug};
    if (custos_quote_check(&q, &pol, err, sizeof(err)) != 0)
        fail_msg("quote/%s fails the full check: %s", name, err);
    assert_int_equal(q.debug, debug);
    json_decref(j);
}

static void test_quote_seeds(void **state)
{
    (void)state;
    char err[256];
    size_t size = 0;
    struct custos_quote q;
    check_quote_json("gen-valid.json", false);
    check_quote_json("gen-debug-tpm2.json", true);
    uint8_t *body = seed("quote", "gen-body.bin", &size);
    assert_int_equal(size, CUSTOS_QUOTE_BODY_SIZE);
    if (custos_quote_body_parse(body, size, &q, err, sizeof(err)) < 0)
        fail_msg("quote/gen-body.bin refused: %s", err);
    free(body);
}

/* cas-run's attestation request: parses, and its quote verifies and binds the request. */
static void test_run_request_seed(void **state)
{
    (void)state;
    char err[512];
    struct custos_run_request rq;
    uint8_t salt[32], rd[CUSTOS_REPORT_DATA_SIZE];
    json_t *j = seed_json("run_request", "gen-request.json");
    if (custos_run_request_parse(j, &rq, err, sizeof(err)) < 0)
        fail_msg("run_request/gen-request.json refused: %s", err);
    assert_int_equal(custos_quote_verify_signature(&rq.quote), 0);
    assert_int_equal(custos_run_binding(rq.request, salt, rd), 0);
    assert_memory_equal(rd, rq.quote.report_data, sizeof(rd));
    assert_int_equal(rq.file_count, 1);
    json_decref(j);
}

/* Request, offer and completion are one registration: the offer's signature verifies over the
 * transcript of the request, and the completion answers that request. */
static void test_backup_seeds(void **state)
{
    (void)state;
    char err[512];
    struct backup_request req, relayed;
    struct backup_offer off;
    struct backup_completion comp;
    uint8_t transcript[32];
    json_t *j = seed_json("backup", "gen-request.json");
    if (backup_request_from_json(j, &req, err, sizeof(err)) < 0)
        fail_msg("backup/gen-request.json refused: %s", err);
    assert_int_equal(custos_quote_verify_signature(&req.quote), 0);
    json_decref(j);

    j = seed_json("backup", "gen-relayed-request.json");
    if (backup_request_from_json(json_object_get(j, "request"), &relayed, err, sizeof(err)) < 0)
        fail_msg("backup/gen-relayed-request.json refused: %s", err);
    json_decref(j);

    j = seed_json("backup", "gen-offer.json");
    if (backup_offer_from_json(json_object_get(j, "offer"), &off, err, sizeof(err)) < 0)
        fail_msg("backup/gen-offer.json refused: %s", err);
    json_decref(j);
    assert_string_equal(off.request_id, req.id);
    backup_transcript(&req, off.primary_platform_id, off.primary_key_hash, off.ephemeral_key, transcript);
    assert_int_equal(backup_offer_verify(&off, transcript), 0);

    j = seed_json("backup", "gen-completion.json");
    if (backup_completion_from_json(json_object_get(j, "completion"), &comp, err, sizeof(err)) < 0)
        fail_msg("backup/gen-completion.json refused: %s", err);
    json_decref(j);
    assert_string_equal(comp.request_id, req.id);
    char platform[CUSTOS_PLATFORM_ID_LEN + 1];
    custos_platform_id(req.quote.platform_pub, platform);
    assert_string_equal(comp.entry.platform_id, platform);
    assert_string_equal(comp.entry.node, req.node_name);
    assert_int_equal(comp.entry.tcb, req.quote.tcb);
    char measurement[CAS_KS_MEASUREMENT_HEX + 1];
    custos_hex_encode(req.quote.measurement, sizeof(req.quote.measurement), measurement, false);
    assert_string_equal(comp.entry.measurement, measurement);
}

static void check_keystore(const char *name, size_t count, int version)
{
    char err[512];
    size_t size = 0, out_size = 0;
    struct cas_keystore ks, back;
    char *out = NULL;
    uint8_t *text = seed("keystore", name, &size);
    if (cas_keystore_parse((const char *)text, size, &ks, err, sizeof(err)) < 0)
        fail_msg("keystore/%s refused: %s", name, err);
    assert_int_equal(ks.count, count);
    assert_int_equal(ks.version, version);
    if (cas_keystore_verify_mac(&ks, FUZZ_KS_KEY) != 0)
        fail_msg("keystore/%s: MAC does not verify under the fuzzer's key", name);
    /* written again as the current version, with the same entries */
    assert_int_equal(cas_keystore_serialize(&ks, FUZZ_KS_KEY, &out, &out_size), 0);
    if (cas_keystore_parse(out, out_size, &back, err, sizeof(err)) < 0)
        fail_msg("keystore/%s rewritten refused: %s", name, err);
    assert_int_equal(back.version, CAS_KS_VERSION);
    assert_int_equal(back.count, count);
    assert_int_equal(cas_keystore_verify_mac(&back, FUZZ_KS_KEY), 0);
    for (size_t i = 0; i < count; i++)
        assert_string_equal(back.entries[i].measurement, ks.entries[i].measurement);
    cas_keystore_free(&back);
    free(out);
    cas_keystore_free(&ks);
    free(text);
}

static void test_keystore_seeds(void **state)
{
    (void)state;
    check_keystore("gen-one-entry.json", 1, CAS_KS_VERSION);
    check_keystore("gen-three-entries.json", 3, CAS_KS_VERSION);
    check_keystore("v2-three-entries.json", 3, 2); /* written by casd before version 3: kept, not generated */
}

static void test_api_seed(void **state)
{
    (void)state;
    char err[512];
    const char *token = NULL, *toml = NULL;
    json_t *pin = NULL, *policy = NULL, *cfg = NULL, *ignored = json_array();
    json_error_t e;
    json_t *body = seed_json("api", "gen-provision.json");
    assert_int_equal(json_unpack_ex(body, &e, JSON_STRICT, "{s:s, s:s, s?o}", "token", &token, "owner_config", &toml,
                                    "policy", &pin),
                     0);
    assert_non_null(pin);
    if (cas_policy_check(pin, &policy, err, sizeof(err)) < 0)
        fail_msg("api/gen-provision.json: policy refused: %s", err);
    if (custos_toml_parse(toml, strlen(toml), &cfg, err, sizeof(err)) < 0)
        fail_msg("api/gen-provision.json: owner_config refused: %s", err);
    if (cas_owner_config_check(cfg, ignored, err, sizeof(err)) < 0)
        fail_msg("api/gen-provision.json: owner_config check: %s", err);
    json_decref(cfg);
    json_decref(policy);
    json_decref(ignored);
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_seeds),      cmocka_unit_test(test_backup_seeds),
        cmocka_unit_test(test_keystore_seeds),   cmocka_unit_test(test_api_seed),
        cmocka_unit_test(test_run_request_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
