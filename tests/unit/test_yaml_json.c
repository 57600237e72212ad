/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the YAML reader (yaml.c) and the strict JSON parser (json.c). */
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

static json_t *yaml_ok(const char *text)
{
    char err[256] = "";
    json_t *out = NULL;
    int ret = custos_yaml_parse(text, strlen(text), &out, err, sizeof(err));
    if (ret)
        fail_msg("unexpected failure %d: %s\ninput:\n%s", ret, err, text);
    assert_non_null(out);
    return out;
}

/* Expects a refusal whose message contains every one of the NULL-terminated needles. */
static void yaml_bad(const char *text, int want, ...)
{
    char err[256] = "";
    json_t *sentinel = (json_t *)(uintptr_t)0x1234, *out = sentinel;
    int ret = custos_yaml_parse(text, strlen(text), &out, err, sizeof(err));
    if (ret != want)
        fail_msg("want %d, got %d (%s)\ninput:\n%.300s", want, ret, err, text);
    assert_ptr_equal(out, sentinel);
    va_list ap;
    va_start(ap, want);
    for (const char *n; (n = va_arg(ap, const char *));)
        if (!strstr(err, n))
            fail_msg("message '%s' lacks '%s'\ninput:\n%.300s", err, n, text);
    va_end(ap);
}

static json_t *json_ok(const char *text)
{
    char err[256] = "";
    json_t *out = NULL;
    int ret = custos_json_parse(text, strlen(text), &out, err, sizeof(err));
    if (ret)
        fail_msg("unexpected failure %d: %s\ninput:\n%s", ret, err, text);
    assert_non_null(out);
    return out;
}

static void json_bad(const char *text, int want, ...)
{
    char err[256] = "";
    json_t *sentinel = (json_t *)(uintptr_t)0x1234, *out = sentinel;
    int ret = custos_json_parse(text, strlen(text), &out, err, sizeof(err));
    if (ret != want)
        fail_msg("want %d, got %d (%s)\ninput:\n%.300s", want, ret, err, text);
    assert_ptr_equal(out, sentinel);
    va_list ap;
    va_start(ap, want);
    for (const char *n; (n = va_arg(ap, const char *));)
        if (!strstr(err, n))
            fail_msg("message '%s' lacks '%s'\ninput:\n%.300s", err, n, text);
    va_end(ap);
}

static char *nested(const char *open, const char *close, int depth)
{
    size_t o = strlen(open), c = strlen(close);
    char *s = malloc((size_t)depth * (o + c) + 1), *p = s;
    assert_non_null(s);
    for (int i = 0; i < depth; i++, p += o)
        memcpy(p, open, o);
    for (int i = 0; i < depth; i++, p += c)
        memcpy(p, close, c);
    *p = '\0';
    return s;
}

static void test_yaml_types(void **state)
{
    (void)state;
    json_t *j = yaml_ok("name: custos\n"
                        "port: 8080\n"
                        "neg: -5\n"
                        "plus: +7\n"
                        "zero: 0\n"
                        "huge: 99999999999999999999\n"
                        "yes: true\n"
                        "no: false\n"
                        "Upper: TRUE\n"
                        "nothing: null\n"
                        "tilde: ~\n"
                        "empty:\n"
                        "quoted: \"123\"\n"
                        "single: 'true'\n"
                        "qnull: \"null\"\n"
                        "word: yes\n"
                        "hexish: 0x10\n"
                        "real: 1.5e3\n"
                        "dotted: 1.2.3\n"
                        "list:\n"
                        "  - a\n"
                        "  - 2\n"
                        "  - {k: v, n: [1, false]}\n"
                        "nested:\n"
                        "  deeper:\n"
                        "    key: value with spaces\n");
    assert_true(json_is_object(j));
    assert_int_equal(json_object_size(j), 21);
    assert_true(json_is_real(json_object_get(j, "real")));
    assert_true(json_real_value(json_object_get(j, "real")) == 1500.0);
    assert_string_equal(json_string_value(json_object_get(j, "dotted")), "1.2.3");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "custos");
    assert_true(json_is_integer(json_object_get(j, "port")));
    assert_int_equal(json_integer_value(json_object_get(j, "port")), 8080);
    assert_int_equal(json_integer_value(json_object_get(j, "neg")), -5);
    assert_int_equal(json_integer_value(json_object_get(j, "plus")), 7);
    assert_true(json_is_integer(json_object_get(j, "zero")));
    assert_int_equal(json_integer_value(json_object_get(j, "zero")), 0);
    /* Out of int64 range: kept as text rather than silently clamped. */
    assert_string_equal(json_string_value(json_object_get(j, "huge")), "99999999999999999999");
    assert_true(json_is_true(json_object_get(j, "yes")));
    assert_true(json_is_false(json_object_get(j, "no")));
    assert_true(json_is_true(json_object_get(j, "Upper")));
    assert_true(json_is_null(json_object_get(j, "nothing")));
    assert_true(json_is_null(json_object_get(j, "tilde")));
    assert_true(json_is_null(json_object_get(j, "empty")));
    /* Quoted scalars stay strings. */
    assert_true(json_is_string(json_object_get(j, "quoted")));
    assert_string_equal(json_string_value(json_object_get(j, "quoted")), "123");
    assert_string_equal(json_string_value(json_object_get(j, "single")), "true");
    assert_string_equal(json_string_value(json_object_get(j, "qnull")), "null");
    /* YAML 1.1 booleans are plain strings in 1.2. */
    assert_string_equal(json_string_value(json_object_get(j, "word")), "yes");
    assert_string_equal(json_string_value(json_object_get(j, "hexish")), "0x10");
    json_t *list = json_object_get(j, "list");
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 3);
    assert_string_equal(json_string_value(json_array_get(list, 0)), "a");
    assert_int_equal(json_integer_value(json_array_get(list, 1)), 2);
    json_t *m = json_array_get(list, 2);
    assert_string_equal(json_string_value(json_object_get(m, "k")), "v");
    assert_true(json_is_false(json_array_get(json_object_get(m, "n"), 1)));
    assert_string_equal(json_string_value(
                            json_object_get(json_object_get(json_object_get(j, "nested"), "deeper"), "key")),
                        "value with spaces");
    json_decref(j);

    /* Top-level sequence and scalar documents; an explicit document marker. */
    j = yaml_ok("- 1\n- two\n");
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
    j = yaml_ok("--- 42\n...\n");
    assert_true(json_is_integer(j));
    assert_int_equal(json_integer_value(j), 42);
    json_decref(j);
    /* Same tree as the equivalent JSON. */
    j = yaml_ok("{\"a\": [1, \"x\", null, true], \"b\": {}}");
    json_t *k = json_ok("{\"a\": [1, \"x\", null, true], \"b\": {}}");
    assert_true(json_equal(j, k));
    json_decref(j);
    json_decref(k);
}

static void test_yaml_anchors_aliases_tags(void **state)
{
    (void)state;
    yaml_bad("a: &x 1\nb: *x\n", -EINVAL, "line 1", "anchor", NULL);
    yaml_bad("a: 1\nb: &x [1, 2]\n", -EINVAL, "line 2", "anchor", NULL);
    yaml_bad("a: 1\nb: &x {c: d}\n", -EINVAL, "line 2", "anchor", NULL);
    yaml_bad("a: 1\nb: *x\n", -EINVAL, "line 2", "alias", NULL);
    yaml_bad("- *x\n", -EINVAL, "line 1", "alias", NULL);
    yaml_bad("a: !!str 1\n", -EINVAL, "line 1", "tag", NULL);
    yaml_bad("a: 1\nb: !custom x\n", -EINVAL, "line 2", "tag", NULL);
    yaml_bad("!!map {a: 1}\n", -EINVAL, "line 1", "tag", NULL);
    yaml_bad("a:\n  - !!seq [1]\n", -EINVAL, "line 2", "tag", NULL);
    /* On keys too. */
    yaml_bad("ok: 1\n&k a: 1\n", -EINVAL, "line 2", "anchor", NULL);
    yaml_bad("ok: 1\n!!str a: 1\n", -EINVAL, "line 2", "tag", NULL);
    yaml_bad("&k a: 1\nb: *k\n", -EINVAL, "line", NULL);
    yaml_bad("*k : 1\n", -EINVAL, "line", NULL);
}

static void test_yaml_depth(void **state)
{
    (void)state;
    /* The root is depth 0: 65 nested sequences reach depth 64, 66 go over. */
    char *s = nested("[", "]", 65);
    json_t *j = yaml_ok(s);
    json_decref(j);
    free(s);
    s = nested("[", "]", 66);
    yaml_bad(s, -EINVAL, "line 1", "deep", NULL);
    free(s);
    s = nested("{a: ", "}", 100);
    yaml_bad(s, -EINVAL, "line 1", "deep", NULL);
    free(s);
    /* A scalar counts as a level too: [[...[1]...]] with 64 brackets is fine, with 65 not. */
    for (int k = 64; k <= 65; k++) {
        s = nested("[", "]", k);
        char *t = malloc(strlen(s) + 2);
        assert_non_null(t);
        sprintf(t, "%.*s1%s", k, s, s + k);
        if (k == 64)
            json_decref(yaml_ok(t));
        else
            yaml_bad(t, -EINVAL, "line 1", "deep", NULL);
        free(t);
        free(s);
    }
    /* Deep block mappings. */
    char block[8192], *p = block;
    for (int i = 0; i < 70; i++)
        p += sprintf(p, "%*sk%d:\n", i, "", i);
    yaml_bad(block, -EINVAL, "line 66", "deep", NULL);
}

static void test_yaml_size(void **state)
{
    (void)state;
    size_t n = CUSTOS_YAML_MAX_SIZE + 1;
    char *big = malloc(n + 1), err[256] = "";
    assert_non_null(big);
    memset(big, '#', n);
    memcpy(big + n - 5, "\na: 1", 5);
    big[n] = '\0';
    json_t *out = NULL;
    assert_int_equal(custos_yaml_parse(big, n, &out, err, sizeof(err)), -E2BIG);
    assert_null(out);
    assert_non_null(strstr(err, "too large"));
    assert_int_equal(custos_json_parse(big, n, &out, err, sizeof(err)), -E2BIG);
    assert_null(out);
    /* Exactly at the limit is accepted. */
    assert_int_equal(custos_yaml_parse(big + 1, n - 1, &out, err, sizeof(err)), 0);
    assert_int_equal(json_integer_value(json_object_get(out, "a")), 1);
    json_decref(out);
    free(big);
}

static void test_yaml_duplicates_and_documents(void **state)
{
    (void)state;
    yaml_bad("a: 1\nb: 2\na: 3\n", -EINVAL, "line 3", "duplicate key 'a'", NULL);
    yaml_bad("x:\n  y: 1\n  y: 2\n", -EINVAL, "line 3", "duplicate", NULL);
    yaml_bad("{a: 1, 'a': 2}", -EINVAL, "duplicate", NULL);
    yaml_bad("a: 1\n---\nb: 2\n", -EINVAL, "line 2", "more than one", NULL);
    yaml_bad("--- 1\n--- 2\n", -EINVAL, "more than one", NULL);
    yaml_bad("", -EINVAL, "empty", NULL);
    yaml_bad("# only a comment\n", -EINVAL, "empty", NULL);
    /* Syntax errors name line and column. */
    yaml_bad("a: 1\nb: [1, 2\nc: 3\n", -EINVAL, "line", "column", NULL);
    yaml_bad("a: \"x\n", -EINVAL, "line", "column", NULL);
    yaml_bad("a: b: c\n", -EINVAL, "line 1", "column", NULL);
    /* Non-scalar keys and NULs. */
    yaml_bad("? [1]\n: v\n", -EINVAL, "line 1", "keys must be scalars", NULL);
    yaml_bad("a: \"x\\0y\"\n", -EINVAL, "line 1", "NUL", NULL);
    yaml_bad("\"x\\0y\": 1\n", -EINVAL, "line 1", "NUL", NULL);
}

static void test_json(void **state)
{
    (void)state;
    json_t *j = json_ok("{\"s\": \"x\", \"i\": -3, \"f\": 1.5, \"t\": true, \"n\": null, \"a\": [\"123\"]}");
    assert_true(json_is_integer(json_object_get(j, "i")));
    assert_true(json_is_real(json_object_get(j, "f")));
    assert_true(json_is_string(json_array_get(json_object_get(j, "a"), 0)));
    json_decref(j);

    json_bad("{\"a\": 1, \"a\": 2}", -EINVAL, "duplicate", NULL);
    json_bad("{\"x\": {\"a\": 1, \"b\": {}, \"a\": 2}}", -EINVAL, "duplicate", NULL);
    json_bad("{\"a\": 1,\n \"b\": x}", -EINVAL, "line 2", "column", NULL);
    json_bad("{\"a\": 1}\n{}", -EINVAL, "line 2", "column", NULL);
    json_bad("", -EINVAL, "line", NULL);
    json_bad("{\"a\": \"\\u0000\"}", -EINVAL, "line", NULL);

    char *s = nested("[", "]", 65);
    j = json_ok(s);
    json_decref(j);
    free(s);
    s = nested("[", "]", 66);
    json_bad(s, -EINVAL, "deeper than 64", NULL);
    free(s);
    /* Scalars count as a level: 64 wrappers around a value are fine, 65 are not. */
    for (int k = 64; k <= 65; k++) {
        s = nested("{\"a\":", "}", k);
        char *t = malloc(strlen(s) + 2);
        assert_non_null(t);
        sprintf(t, "%.*s1%s", k * 5, s, s + k * 5);
        if (k == 64)
            json_decref(json_ok(t));
        else
            json_bad(t, -EINVAL, "deeper than 64", NULL);
        free(t);
        free(s);
    }
    s = nested("[", "]", 3000);
    json_bad(s, -EINVAL, NULL);
    free(s);

    /* Size is checked before parsing, and only the given bytes are parsed. */
    char err[128];
    json_t *out = NULL;
    assert_int_equal(custos_json_parse("{} trailing", 2, &out, err, sizeof(err)), 0);
    json_decref(out);
}

static void test_json_b64(void **state)
{
    (void)state;
    json_t *j = json_ok("{\"good\": \"Zm9v\", \"bad\": \"Zm9\", \"num\": 1}");
    uint8_t out[8] = {0};
    size_t size = 0;
    char err[128];
    assert_int_equal(custos_json_b64_bytes(j, "good", out, 3, 3, &size, err, sizeof(err)), 0);
    assert_int_equal(size, 3);
    assert_memory_equal(out, "foo", 3);
    assert_int_equal(custos_json_b64_bytes(j, "good", out, 1, 8, &size, err, sizeof(err)), 0);
    assert_int_equal(custos_json_b64_bytes(j, "good", out, 4, 4, NULL, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "field \"good\": 3 bytes, want 4");
    assert_int_equal(custos_json_b64_bytes(j, "good", out, 4, 8, NULL, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "field \"good\": 3 bytes, want 4 to 8");
    assert_int_equal(custos_json_b64_bytes(j, "bad", out, 1, 8, NULL, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "field \"bad\": not base64");
    assert_int_equal(custos_json_b64_bytes(j, "num", out, 1, 8, NULL, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "field \"num\": not a string");
    assert_int_equal(custos_json_b64_bytes(j, "missing", out, 1, 8, NULL, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "field \"missing\": missing");
    json_decref(j);
}

/* custos_json_wipe_init: every block jansson frees is zero when it reaches free(). */
static size_t g_frees, g_dirty, g_big;

static void free_hook(const void *ptr, size_t size)
{
    const uint8_t *p = ptr;
    g_frees++;
    g_big += size >= 40;
    for (size_t i = 0; i < size; i++)
        g_dirty += p[i] != 0;
}

static void test_json_free_wipes(void **state)
{
    (void)state;
    static const char doc[] = "{\"token\": \"S3CRET-0123456789abcdef0123456789abcdef\", "
                              "\"nested\": [{\"k\": \"another secret value, long enough\"}]}";
    char err[256];
    json_t *j = NULL;
    custos_json_wipe_init();
    custos_json_wipe_init(); /* idempotent */
    custos_json_free_hook = free_hook;
    g_frees = g_dirty = g_big = 0;
    assert_int_equal(custos_json_parse(doc, strlen(doc), &j, err, sizeof(err)), 0);
    char *text = json_dumps(j, JSON_COMPACT); /* its buffers grow and are freed inside jansson */
    assert_non_null(text);
    json_decref(j);
    free(text); /* still an ordinary malloc block */
    custos_json_free_hook = NULL;
    assert_true(g_frees >= 6); /* objects, array, keys, strings, the dump's scratch buffer */
    assert_true(g_big >= 2);   /* the two long strings at least */
    assert_int_equal(g_dirty, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_free_wipes),
        cmocka_unit_test(test_yaml_types),
        cmocka_unit_test(test_yaml_anchors_aliases_tags),
        cmocka_unit_test(test_yaml_depth),
        cmocka_unit_test(test_yaml_size),
        cmocka_unit_test(test_yaml_duplicates_and_documents),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_b64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
