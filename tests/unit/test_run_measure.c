/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for run/measure.c and run/proto.c: the sealed copies (sealed against every change, hash
 * of the bytes, what a later change of the file does not reach), PATH resolution, which words are
 * measured, and the request R as casd's own strict parser reads it, with an answer sealed by casd's
 * code opened by cas-run's. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "run.h"

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof(g_dir), "%s/custos-test-run-measure-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text, mode_t mode, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", g_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
}

static void test_sealed_copy(void **state)
{
    (void)state;
    char path[300], err[512];
    uint8_t h[32], want[32];
    int fd = -1;
    write_file("data", "measured bytes", 0644, path, sizeof(path));
    assert_int_equal(run_sealed_copy(path, 1024, false, false, &fd, h, err, sizeof(err)), 0);
    custos_sha256("measured bytes", 14, want);
    assert_memory_equal(h, want, 32);
    int seals = fcntl(fd, F_GET_SEALS);
    assert_int_equal(seals & (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL),
                     F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0); /* a protected file survives exec */
    assert_int_equal(pwrite(fd, "X", 1, 0), -1);          /* no one changes the copy */
    assert_int_equal(ftruncate(fd, 0), -1);
    /* the file changes afterwards: the copy does not */
    write_file("data", "other bytes!!!", 0644, path, sizeof(path));
    char buf[32] = {0};
    assert_int_equal(pread(fd, buf, sizeof(buf) - 1, 0), 14);
    assert_string_equal(buf, "measured bytes");
    close(fd);
    /* bounds and kinds */
    assert_int_equal(run_sealed_copy(path, 4, true, true, &fd, h, err, sizeof(err)), -EFBIG);
    assert_int_equal(run_sealed_copy(g_dir, 1024, true, true, &fd, h, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
    snprintf(path, sizeof(path), "%s/missing", g_dir);
    assert_int_equal(run_sealed_copy(path, 1024, true, true, &fd, h, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "missing"));
}

static void test_resolve_and_scripts(void **state)
{
    (void)state;
    char path[300], out[PATH_MAX], err[512];
    const char *old = getenv("PATH");
    char *saved = old ? strdup(old) : NULL;
    write_file("noexec", "x", 0644, path, sizeof(path));
    write_file("tool", "#!/bin/sh\necho\n", 0755, path, sizeof(path));
    setenv("PATH", g_dir, 1);
    assert_int_equal(run_resolve_program("tool", out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, path);
    assert_int_equal(run_resolve_program("noexec", out, sizeof(out), err, sizeof(err)), -EACCES);
    assert_int_equal(run_resolve_program("absent", out, sizeof(out), err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "absent"));
    assert_int_equal(run_resolve_program("", out, sizeof(out), err, sizeof(err)), -ENOENT);
    /* a script is refused, and the advice names its interpreter */
    char *words[] = {"tool", NULL};
    struct run_measured m;
    assert_int_equal(run_measure(words, 1, &m, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "is a script"));
    assert_non_null(strstr(err, "-- /bin/sh "));
    if (saved) {
        setenv("PATH", saved, 1);
        free(saved);
    } else {
        unsetenv("PATH");
    }
}

static void test_measure_words_and_request(void **state)
{
    (void)state;
    char data[300], err[512];
    write_file("in.txt", "input", 0644, data, sizeof(data));
    char fifo[300];
    snprintf(fifo, sizeof(fifo), "%s/fifo", g_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    /* word 1 a file, word 2 a FIFO (never opened), word 3 a directory, word 4 no file at all */
    char *words[] = {"true", data, fifo, g_dir, "--flag", NULL};
    struct run_measured m;
    assert_int_equal(run_measure(words, 5, &m, err, sizeof(err)), 0);
    assert_true(m.program_fd >= 0);
    assert_true(fcntl(m.program_fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(m.file_fd[0], -1);
    assert_true(m.file_fd[1] >= 0);
    for (int i = 2; i < 5; i++)
        assert_int_equal(m.file_fd[i], -1);

    /* R as cas-run makes it, read by casd's strict parser */
    uint8_t priv[32], pub[32], salt[32], rd[CUSTOS_REPORT_DATA_SIZE];
    assert_int_equal(custos_x25519_keypair(priv, pub), 0);
    char kh[65];
    memset(kh, 'a', 64);
    kh[64] = '\0';
    json_t *req = run_request(&m, words, pub, kh, 1700000000);
    assert_non_null(req);
    struct custos_quote q = {.kind = CUSTOS_PLATFORM_SIM};
    assert_int_equal(custos_run_binding(req, salt, rd), 0);
    memcpy(q.report_data, rd, sizeof(rd));
    custos_p256 *pk = NULL;
    uint8_t qbody[CUSTOS_QUOTE_BODY_SIZE];
    assert_int_equal(custos_p256_from_seed((const uint8_t *)"seed", 4, &pk), 0);
    assert_int_equal(custos_p256_public(pk, q.platform_pub), 0);
    custos_quote_body(&q, qbody);
    assert_int_equal(custos_p256_sign(pk, qbody, sizeof(qbody), q.sig, &q.sig_size), 0);
    custos_p256_free(pk);
    json_t *body = json_pack("{s:s, s:O, s:o}", "service", "s/svc", "request", req, "quote", custos_quote_to_json(&q));
    struct custos_run_request rq;
    int ret = custos_run_request_parse(body, &rq, err, sizeof(err));
    if (ret < 0)
        fail_msg("casd refuses cas-run's request: %s", err);
    assert_int_equal(rq.time, 1700000000);
    assert_memory_equal(rq.key, pub, 32);
    assert_memory_equal(rq.program, m.program_hash, 32);
    assert_int_equal(rq.file_count, 1);
    assert_int_equal(rq.files[0].arg, 1);
    assert_memory_equal(rq.files[0].sha256, m.file_hash[1], 32);
    assert_int_equal(json_array_size(rq.argv), 5);
    assert_string_equal(json_string_value(json_array_get(rq.argv, 1)), data); /* the original word */

    /* an answer sealed by casd's code opens with cas-run's key, and with nothing else */
    const char *config = "{\"argv\":[\"true\"],\"env\":[],\"pwd\":\"/\",\"files\":[],\"session_hash\":\"h\"}";
    json_t *answer = NULL, *opened = NULL;
    assert_int_equal(custos_run_seal(pub, salt, config, strlen(config), &answer), 0);
    assert_int_equal(run_open_config(answer, priv, salt, &opened, err, sizeof(err)), 0);
    assert_string_equal(json_string_value(json_object_get(opened, "pwd")), "/");
    json_decref(opened);
    opened = NULL;
    salt[0] ^= 1; /* another request's */
    assert_int_not_equal(run_open_config(answer, priv, salt, &opened, err, sizeof(err)), 0);
    assert_null(opened);
    json_decref(answer);
    json_decref(body);
    json_decref(req);
    run_measured_free(&m);
    run_measured_free(&m); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sealed_copy),
        cmocka_unit_test(test_resolve_and_scripts),
        cmocka_unit_test(test_measure_words_and_request),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
