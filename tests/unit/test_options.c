/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the declarative option table (options.c). */
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

#include "custos.h"

#define ENV_SOCKET "CUSTOS_TEST_SOCKET"
#define ENV_PORT_A "CUSTOS_TEST_PORT_A"
#define ENV_PORT_B "CUSTOS_TEST_PORT_B"
#define ENV_VERBOSE "CUSTOS_TEST_VERBOSE"
#define ENV_ALLOW "CUSTOS_TEST_ALLOW"

struct values {
    const char *socket;
    long long port;
    bool verbose;
    struct custos_strlist allow;
    struct custos_strlist positional;
};

static struct values g_v;
static char g_out[4096], g_err[4096];

static void table(struct custos_option opts[4])
{
    custos_strlist_free(&g_v.allow);
    custos_strlist_free(&g_v.positional);
    memset(&g_v, 0, sizeof(g_v));
    g_v.port = -999;
    struct custos_option t[4] = {
        {"socket", 's', ENV_SOCKET, CUSTOS_OPT_STRING, "/run/default.sock", 0, 0, "PATH", "socket path", &g_v.socket},
        {"port", 'p', ENV_PORT_A "|" ENV_PORT_B, CUSTOS_OPT_INT, "8080", 1, 65535, "N", "TCP port", &g_v.port},
        {"verbose", 'v', ENV_VERBOSE, CUSTOS_OPT_BOOL, "false", 0, 0, NULL, "more output", &g_v.verbose},
        {"allow", 'a', ENV_ALLOW, CUSTOS_OPT_LIST, NULL, 0, 0, "ID", "allowed ID", &g_v.allow},
    };
    memcpy(opts, t, sizeof(t));
}

static void capture_read(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs the parser with stdout and stderr captured into g_out and g_err. */
static int parse_argv(int argc, char **argv, bool with_positional)
{
    struct custos_option opts[4];
    table(opts);
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    assert_true(saved_out >= 0 && saved_err >= 0);
    assert_true(dup2(fileno(out), 1) >= 0);
    assert_true(dup2(fileno(err), 2) >= 0);
    int ret =
        custos_options_parse("prog", "A test program.", opts, 4, argc, argv, with_positional ? &g_v.positional : NULL);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    capture_read(out, g_out, sizeof(g_out));
    capture_read(err, g_err, sizeof(g_err));
    return ret;
}

#define PARSE(pos, ...)                                                                                                \
    ({                                                                                                                 \
        char *argv_[] = {"prog", __VA_ARGS__};                                                                         \
        parse_argv((int)(sizeof(argv_) / sizeof(argv_[0])), argv_, pos);                                               \
    })

static int clean_env(void **state)
{
    (void)state;
    unsetenv(ENV_SOCKET);
    unsetenv(ENV_PORT_A);
    unsetenv(ENV_PORT_B);
    unsetenv(ENV_VERBOSE);
    unsetenv(ENV_ALLOW);
    return 0;
}

static int free_values(void **state)
{
    custos_strlist_free(&g_v.allow);
    custos_strlist_free(&g_v.positional);
    return clean_env(state);
}

static void test_defaults(void **state)
{
    (void)state;
    char *argv[] = {"prog"};
    assert_int_equal(parse_argv(1, argv, true), 0);
    assert_string_equal(g_v.socket, "/run/default.sock");
    assert_int_equal(g_v.port, 8080);
    assert_false(g_v.verbose);
    assert_int_equal(g_v.allow.count, 0);
    assert_int_equal(g_v.positional.count, 0);
    assert_string_equal(g_err, "");
}

static void test_env_override(void **state)
{
    (void)state;
    setenv(ENV_SOCKET, "/env.sock", 1);
    setenv(ENV_PORT_A, "81", 1);
    setenv(ENV_VERBOSE, "yes", 1);
    setenv(ENV_ALLOW, "env-id", 1);
    char *argv[] = {"prog"};
    assert_int_equal(parse_argv(1, argv, false), 0);
    assert_string_equal(g_v.socket, "/env.sock");
    assert_int_equal(g_v.port, 81);
    assert_true(g_v.verbose);
    assert_int_equal(g_v.allow.count, 1);
    assert_string_equal(g_v.allow.items[0], "env-id");
}

static void test_flag_overrides_env(void **state)
{
    (void)state;
    setenv(ENV_SOCKET, "/env.sock", 1);
    setenv(ENV_PORT_A, "81", 1);
    setenv(ENV_VERBOSE, "true", 1);
    setenv(ENV_ALLOW, "env-id", 1);
    assert_int_equal(PARSE(false, "--socket", "/flag.sock", "--port=82", "--verbose=false", "--allow", "cli-id"), 0);
    assert_string_equal(g_v.socket, "/flag.sock");
    assert_int_equal(g_v.port, 82);
    assert_false(g_v.verbose);
    /* Lists given on the command line replace the environment's. */
    assert_int_equal(g_v.allow.count, 1);
    assert_string_equal(g_v.allow.items[0], "cli-id");
}

static void test_env_alternatives(void **state)
{
    (void)state;
    setenv(ENV_PORT_B, "2222", 1);
    assert_int_equal(PARSE(false, "-v"), 0);
    assert_int_equal(g_v.port, 2222);
    /* The first alternative wins when both are set. */
    setenv(ENV_PORT_A, "1111", 1);
    assert_int_equal(PARSE(false, "-v"), 0);
    assert_int_equal(g_v.port, 1111);
    /* And a bad value in the chosen one is reported under its name. */
    setenv(ENV_PORT_A, "many", 1);
    assert_int_equal(PARSE(false, "-v"), -EINVAL);
    assert_non_null(strstr(g_err, ENV_PORT_A));
}

static void test_flag_forms(void **state)
{
    (void)state;
    assert_int_equal(PARSE(false, "--socket=/a=b.sock", "-p", "443"), 0);
    assert_string_equal(g_v.socket, "/a=b.sock");
    assert_int_equal(g_v.port, 443);
    assert_int_equal(PARSE(false, "-s", "/short.sock", "--port", "1"), 0);
    assert_string_equal(g_v.socket, "/short.sock");
    assert_int_equal(g_v.port, 1);
    /* Empty value through the = form. */
    assert_int_equal(PARSE(false, "--socket="), 0);
    assert_string_equal(g_v.socket, "");
    /* Later flags win. */
    assert_int_equal(PARSE(false, "--port=5", "--port=6"), 0);
    assert_int_equal(g_v.port, 6);
}

static void test_int_bounds(void **state)
{
    (void)state;
    assert_int_equal(PARSE(false, "--port=1"), 0);
    assert_int_equal(g_v.port, 1);
    assert_int_equal(PARSE(false, "--port=65535"), 0);
    assert_int_equal(g_v.port, 65535);
    assert_int_equal(PARSE(false, "--port=0"), -EINVAL);
    assert_non_null(strstr(g_err, "--port"));
    assert_non_null(strstr(g_err, "out of range"));
    assert_int_equal(PARSE(false, "--port=65536"), -EINVAL);
    assert_non_null(strstr(g_err, "--port"));
    assert_int_equal(PARSE(false, "--port", "-5"), -EINVAL);
    setenv(ENV_PORT_A, "70000", 1);
    assert_int_equal(PARSE(false, "-v"), -EINVAL);
    assert_non_null(strstr(g_err, ENV_PORT_A));
}

static void test_bad_int(void **state)
{
    (void)state;
    static char *const bad[] = {"--port=",    "--port=12x",  "--port=x12",
                                "--port=1.5", "--port=0x10", "--port=99999999999999999999999",
                                "--port=--1", "--port= 5",   "--port=\t5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {"prog", bad[i]};
        int ret = parse_argv(2, argv, false);
        if (ret != -EINVAL)
            fail_msg("'%s' accepted (%d)", bad[i], ret);
        assert_non_null(strstr(g_err, "--port"));
    }
}

static void test_bool_flag(void **state)
{
    (void)state;
    /* A bare bool flag does not take the next argument. */
    assert_int_equal(PARSE(true, "--verbose", "file"), 0);
    assert_true(g_v.verbose);
    assert_int_equal(g_v.positional.count, 1);
    assert_string_equal(g_v.positional.items[0], "file");
    assert_int_equal(PARSE(false, "--verbose=true"), 0);
    assert_true(g_v.verbose);
    assert_int_equal(PARSE(false, "--verbose=0"), 0);
    assert_false(g_v.verbose);
    assert_int_equal(PARSE(false, "--verbose=maybe"), -EINVAL);
    assert_non_null(strstr(g_err, "--verbose"));
    setenv(ENV_VERBOSE, "on-ish", 1);
    assert_int_equal(PARSE(false, "-s", "x"), -EINVAL);
    assert_non_null(strstr(g_err, ENV_VERBOSE));
}

static void test_list_repeated(void **state)
{
    (void)state;
    assert_int_equal(PARSE(false, "--allow", "one", "-a", "two", "--allow=three"), 0);
    assert_int_equal(g_v.allow.count, 3);
    assert_string_equal(g_v.allow.items[0], "one");
    assert_string_equal(g_v.allow.items[1], "two");
    assert_string_equal(g_v.allow.items[2], "three");
}

static void test_positional(void **state)
{
    (void)state;
    assert_int_equal(PARSE(true, "first", "--port=9", "second", "-", "--", "--verbose", "-x"), 0);
    assert_int_equal(g_v.port, 9);
    assert_false(g_v.verbose);
    assert_int_equal(g_v.positional.count, 5);
    assert_string_equal(g_v.positional.items[0], "first");
    assert_string_equal(g_v.positional.items[1], "second");
    assert_string_equal(g_v.positional.items[2], "-");
    assert_string_equal(g_v.positional.items[3], "--verbose");
    assert_string_equal(g_v.positional.items[4], "-x");
    custos_strlist_free(&g_v.positional);
    assert_null(g_v.positional.items);
    assert_int_equal(g_v.positional.count, 0);

    /* Not allowed when the caller takes none. */
    assert_int_equal(PARSE(false, "stray"), -EINVAL);
    assert_non_null(strstr(g_err, "stray"));
}

static void test_unknown_and_missing(void **state)
{
    (void)state;
    assert_int_equal(PARSE(false, "--sock=/x"), -EINVAL); /* no prefix matching */
    assert_non_null(strstr(g_err, "--sock"));
    assert_int_equal(PARSE(false, "--nope"), -EINVAL);
    assert_non_null(strstr(g_err, "--nope"));
    assert_int_equal(PARSE(false, "-z"), -EINVAL);
    assert_non_null(strstr(g_err, "-z"));
    assert_int_equal(PARSE(false, "-sv"), -EINVAL);
    assert_int_equal(PARSE(false, "--socket"), -EINVAL); /* value missing */
    assert_non_null(strstr(g_err, "--socket"));
    assert_int_equal(PARSE(false, "-p"), -EINVAL);
}

static void test_help(void **state)
{
    (void)state;
    assert_int_equal(PARSE(false, "--help"), 1);
    assert_non_null(strstr(g_out, "Usage: prog"));
    assert_non_null(strstr(g_out, "A test program."));
    assert_non_null(strstr(g_out, "--socket PATH"));
    assert_non_null(strstr(g_out, "(default: 8080)"));
    assert_non_null(strstr(g_out, "[1..65535]"));
    assert_non_null(strstr(g_out, ENV_PORT_A "|" ENV_PORT_B));
    assert_non_null(strstr(g_out, "(repeatable)"));
    assert_int_equal(PARSE(false, "--port=7", "-h"), 1);
    assert_non_null(strstr(g_out, "Usage: prog"));
    /* After "--", -h is an argument. */
    assert_int_equal(PARSE(true, "--", "-h"), 0);
    assert_int_equal(g_v.positional.count, 1);
    assert_string_equal(g_out, "");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, clean_env, free_values)
    const struct CMUnitTest tests[] = {
        T(test_defaults),         T(test_env_override),        T(test_flag_overrides_env),
        T(test_env_alternatives), T(test_flag_forms),          T(test_int_bounds),
        T(test_bad_int),          T(test_bool_flag),           T(test_list_repeated),
        T(test_positional),       T(test_unknown_and_missing), T(test_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
