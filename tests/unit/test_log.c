/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for logging (log.c): level specs and the line format. */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "custos.h"

static int reset(void **state)
{
    (void)state;
    return custos_log_configure("info") == 0 ? 0 : -1;
}

static void test_configure_modules(void **state)
{
    (void)state;
    assert_int_equal(custos_log_configure("info,las=debug"), 0);
    assert_true(custos_log_enabled("las", CUSTOS_LOG_DEBUG));
    assert_false(custos_log_enabled("cas", CUSTOS_LOG_DEBUG));
    assert_true(custos_log_enabled("cas", CUSTOS_LOG_INFO));
    assert_true(custos_log_enabled(NULL, CUSTOS_LOG_INFO));
    assert_false(custos_log_enabled(NULL, CUSTOS_LOG_DEBUG));
    assert_false(custos_log_enabled("la", CUSTOS_LOG_DEBUG)); /* exact module names */
    assert_false(custos_log_enabled("lasd", CUSTOS_LOG_DEBUG));

    assert_int_equal(custos_log_configure("warn,las=error,cas=debug"), 0);
    assert_false(custos_log_enabled("x", CUSTOS_LOG_INFO));
    assert_true(custos_log_enabled("x", CUSTOS_LOG_WARN));
    assert_true(custos_log_enabled("x", CUSTOS_LOG_ERROR));
    assert_false(custos_log_enabled("las", CUSTOS_LOG_WARN));
    assert_true(custos_log_enabled("las", CUSTOS_LOG_ERROR));
    assert_true(custos_log_enabled("cas", CUSTOS_LOG_DEBUG));

    /* Module-only spec keeps the default; a new spec replaces the module list. */
    assert_int_equal(custos_log_configure("las=debug"), 0);
    assert_false(custos_log_enabled("x", CUSTOS_LOG_INFO));
    assert_true(custos_log_enabled("las", CUSTOS_LOG_DEBUG));
    assert_false(custos_log_enabled("cas", CUSTOS_LOG_DEBUG));

    /* Case and the "warning" spelling. */
    assert_int_equal(custos_log_configure("DEBUG,las=Warning"), 0);
    assert_true(custos_log_enabled("x", CUSTOS_LOG_DEBUG));
    assert_false(custos_log_enabled("las", CUSTOS_LOG_INFO));
    assert_true(custos_log_enabled("las", CUSTOS_LOG_WARN));

    /* Empty spec: no change. */
    assert_int_equal(custos_log_configure(""), 0);
    assert_int_equal(custos_log_configure(NULL), 0);
    assert_true(custos_log_enabled("x", CUSTOS_LOG_DEBUG));
}

static void test_configure_refused(void **state)
{
    (void)state;
    assert_int_equal(custos_log_configure("error,las=debug"), 0);
    static const char *const bad[] = {
        "verbose",
        "las=",
        "=debug",
        "las=loud",
        "info,,las=debug",
        ",info",
        "las:debug",
        "info,las=debug=x",
        "infoo",
        "de",
        "abcdefghijklmnopqrstuvwxyz=debug",
        ("m1=info,m2=info,m3=info,m4=info,m5=info,m6=info,m7=info,m8=info,m9=info,m10=info,"
         "m11=info,m12=info,m13=info,m14=info,m15=info,m16=info,m17=info"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (custos_log_configure(bad[i]) != -EINVAL)
            fail_msg("spec '%s' was accepted", bad[i]);
        /* A refused spec changes nothing. */
        assert_true(custos_log_enabled("las", CUSTOS_LOG_DEBUG));
        assert_false(custos_log_enabled("x", CUSTOS_LOG_WARN));
    }
    /* Sixteen modules are fine. */
    assert_int_equal(custos_log_configure("m1=info,m2=info,m3=info,m4=info,m5=info,m6=info,m7=info,"
                                          "m8=info,m9=info,m10=info,m11=info,m12=info,m13=info,"
                                          "m14=info,m15=info,m16=debug"),
                     0);
    assert_true(custos_log_enabled("m16", CUSTOS_LOG_DEBUG));
}

/* Runs fn with stderr going to a temp file; returns what was written (static buffer). */
static const char *capture(void (*fn)(void))
{
    static char buf[8192];
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof(buf) - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    return buf;
}

static void log_hello(void)
{
    LOG_MODULE_INFO("test", "hello");
}

static void log_levels(void)
{
    LOG_MODULE_ERROR("test", "e%d", 1);
    LOG_MODULE_WARN("test", "w%s", "2");
    LOG_MODULE_INFO("test", "i");
    LOG_MODULE_DEBUG("test", "d");
    LOG_MODULE_DEBUG("noisy", "shown");
}

static void log_long(void)
{
    char big[12000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    LOG_MODULE_WARN("test", "%s", big);
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int ret = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    if (ret != 0)
        fail_msg("'%s' does not match %s", text, pattern);
}

#define STAMP "[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{3}"

static void test_line_format(void **state)
{
    (void)state;
    time_t before = time(NULL);
    const char *out = capture(log_hello);
    time_t after = time(NULL);
    size_t len = strlen(out);
    assert_true(len > 0);
    assert_int_equal(out[len - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    char line[256];
    assert_true(len - 1 < sizeof(line));
    memcpy(line, out, len - 1);
    line[len - 1] = '\0';
    assert_matches(line, "^" STAMP " INFO: hello$");

    /* The stamp is the current time (UTC, or local time). */
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(line, "%Y-%m-%d %H:%M:%S", &tm);
    assert_non_null(rest);
    assert_int_equal(*rest, ',');
    time_t utc = timegm(&tm);
    tm.tm_isdst = -1;
    time_t local = mktime(&tm);
    assert_true((utc >= before && utc <= after) || (local >= before && local <= after));
}

static void test_levels_and_filtering(void **state)
{
    (void)state;
    assert_int_equal(custos_log_configure("info,noisy=debug"), 0);
    const char *out = capture(log_levels);
    assert_matches(out, "^" STAMP " ERROR: e1\n" STAMP " WARN: w2\n" STAMP " INFO: i\n" STAMP " DEBUG: shown\n$");
    assert_int_equal(custos_log_configure("error"), 0);
    out = capture(log_levels);
    assert_matches(out, "^" STAMP " ERROR: e1\n$");
    assert_int_equal(custos_log_configure("error,test=debug"), 0);
    out = capture(log_hello);
    assert_matches(out, "^" STAMP " INFO: hello\n$");
}

static void test_long_message(void **state)
{
    (void)state;
    const char *out = capture(log_long);
    size_t len = strlen(out);
    /* Truncated, but still one whole line. */
    assert_true(len > 5000 && len <= 8192);
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    assert_matches(out, "^" STAMP " WARN: x+\n$");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_configure_modules, reset, reset),
        cmocka_unit_test_setup_teardown(test_configure_refused, reset, reset),
        cmocka_unit_test_setup_teardown(test_line_format, reset, reset),
        cmocka_unit_test_setup_teardown(test_levels_and_filtering, reset, reset),
        cmocka_unit_test_setup_teardown(test_long_message, reset, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
