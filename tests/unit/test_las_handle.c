/* SPDX-License-Identifier: Apache-2.0 */
/* Unit test of lasd's request handler (las_handle) with a real sim platform in a temporary
 * directory and this test process as the caller. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lasd.h"

static struct custos_platform *g_platform;
static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    char err[512];
    snprintf(g_dir, sizeof(g_dir), "/tmp/custos-test-las-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    struct custos_platform_config cfg = {.dir = g_dir, .sim_tcb = 3};
    return custos_platform_open("sim", &cfg, &g_platform, err, sizeof(err)) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    custos_platform_close(g_platform);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static size_t handle(const uint8_t *req, size_t n, uint8_t *resp, size_t cap)
{
    struct las_caller self = {.pid = getpid(), .uid = getuid(), .pidfd = -1};
    return las_handle(g_platform, &self, req, n, resp, cap);
}

static void self_measurement(uint8_t out[32])
{
    FILE *fp = fopen("/proc/self/exe", "rb");
    assert_non_null(fp);
    uint8_t *exe = malloc(256u << 20);
    assert_non_null(exe);
    size_t size = fread(exe, 1, 256u << 20, fp);
    fclose(fp);
    custos_sha256(exe, size, out);
    free(exe);
}

static void test_quote(void **state)
{
    (void)state;
    uint8_t req[1 + CUSTOS_REPORT_DATA_SIZE], resp[CUSTOS_LAS_MAX_MSG], m[32];
    char err[256];
    struct custos_quote q;
    req[0] = CUSTOS_LAS_OP_QUOTE;
    for (size_t i = 0; i < CUSTOS_REPORT_DATA_SIZE; i++)
        req[1 + i] = (uint8_t)i;
    size_t n = handle(req, sizeof(req), resp, sizeof(resp));
    assert_true(n > 1);
    assert_int_equal(resp[0], 0);
    assert_int_equal(custos_las_answer_quote(resp + 1, n - 1, &q, err, sizeof(err)), 0);
    assert_int_equal(custos_quote_verify_signature(&q), 0);
    assert_memory_equal(q.platform_pub, g_platform->pub, CUSTOS_P256_PUB_SIZE);
    assert_memory_equal(q.report_data, req + 1, CUSTOS_REPORT_DATA_SIZE);
    assert_int_equal(q.uid, getuid());
    assert_int_equal(q.tcb, 3);
    self_measurement(m);
    assert_memory_equal(q.measurement, m, 32); /* the caller's executable */
}

static void test_seal_key(void **state)
{
    (void)state;
    uint8_t req[] = {CUSTOS_LAS_OP_SEAL_KEY, 'c', 'a', 's', '-', 'd', 'b'}, resp[256], m[32], want[32];
    size_t n = handle(req, sizeof(req), resp, sizeof(resp));
    assert_int_equal(n, 1 + CUSTOS_SEAL_KEY_SIZE);
    assert_int_equal(resp[0], 0);
    self_measurement(m);
    assert_int_equal(custos_platform_seal_key(g_platform, req + 1, sizeof(req) - 1, m, getuid(), want), 0);
    assert_memory_equal(resp + 1, want, 32);
    /* another label, another key */
    req[6] = 'c';
    handle(req, sizeof(req), resp, sizeof(resp));
    assert_memory_not_equal(resp + 1, want, 32);
}

static void test_info(void **state)
{
    (void)state;
    uint8_t req[] = {CUSTOS_LAS_OP_INFO}, resp[512];
    size_t n = handle(req, sizeof(req), resp, sizeof(resp) - 1);
    assert_int_equal(resp[0], 0);
    resp[n] = 0;
    assert_non_null(strstr((char *)resp + 1, g_platform->id));
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        uint8_t req[80];
        size_t n;
        const char *want;
    } bad[] = {
        {{0}, 0, "empty request"},
        {{9}, 1, "unknown request type 9"},
        {{CUSTOS_LAS_OP_QUOTE}, 64, "must carry 64 bytes"},
        {{CUSTOS_LAS_OP_SEAL_KEY}, 1, "label must be 1..64 bytes"},
        {{CUSTOS_LAS_OP_SEAL_KEY, 'a', ' ', 'b'}, 4, "printable ASCII"},
        {{CUSTOS_LAS_OP_INFO, 1}, 2, "carries no data"},
    };
    uint8_t resp[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = handle(bad[i].req, bad[i].n, resp, sizeof(resp) - 1);
        assert_true(n >= 1);
        assert_int_equal(resp[0], 1);
        resp[n] = 0;
        if (!strstr((char *)resp + 1, bad[i].want))
            fail_msg("request %zu: '%s' lacks '%s'", i, (char *)resp + 1, bad[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_seal_key),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
