/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the strict TOML subset parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "toml.h"

static json_t *parse_ok(const char *text)
{
    char err[256] = "";
    json_t *out = NULL;
    int ret = custos_toml_parse(text, strlen(text), &out, err, sizeof(err));

    if (ret)
        fail_msg("unexpected failure %d: %s\ninput:\n%s", ret, err, text);
    assert_non_null(out);
    assert_true(json_is_object(out));
    return out;
}

static void expect_fail_len(const char *text, size_t len, int want_ret, const char *want_msg)
{
    char err[256] = "";
    json_t *sentinel = (json_t *)(uintptr_t)0x1234;
    json_t *out = sentinel;
    int ret = custos_toml_parse(text, len, &out, err, sizeof(err));

    if (ret != want_ret || strcmp(err, want_msg))
        fail_msg("input:\n%.200s\nwant %d \"%s\"\ngot  %d \"%s\"", text, want_ret, want_msg, ret, err);
    assert_ptr_equal(out, sentinel);
}

static void expect_fail(const char *text, const char *want_msg)
{
    expect_fail_len(text, strlen(text), -EINVAL, want_msg);
}

static const char *get_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_int_t get_int(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* ---- accepted input ---- */

static void test_example(void **state)
{
    static const char text[] = "# comment\n"
                               "[api_identity]\n"
                               "common_name = \"mycas\"\n"
                               "alt_names = [\"mycas\", \"cas\", \"cas.default\", \"localhost\", \"10.0.0.1\"]\n"
                               "\n"
                               "[dcap]\n"
                               "subscription_key = \"00000000000000000000000000000000\"\n"
                               "enabled = true\n"
                               "port = 8081\n";
    json_t *root = parse_ok(text);
    json_t *id = json_object_get(root, "api_identity");
    json_t *dcap = json_object_get(root, "dcap");
    json_t *names;

    (void)state;
    assert_int_equal(json_object_size(root), 2);
    assert_true(json_is_object(id));
    assert_string_equal(get_str(id, "common_name"), "mycas");
    names = json_object_get(id, "alt_names");
    assert_true(json_is_array(names));
    assert_int_equal(json_array_size(names), 5);
    assert_string_equal(json_string_value(json_array_get(names, 0)), "mycas");
    assert_string_equal(json_string_value(json_array_get(names, 4)), "10.0.0.1");
    assert_string_equal(get_str(dcap, "subscription_key"), "00000000000000000000000000000000");
    assert_true(json_is_true(json_object_get(dcap, "enabled")));
    assert_int_equal(get_int(dcap, "port"), 8081);
    json_decref(root);
}

static void test_empty_and_comments(void **state)
{
    json_t *root;

    (void)state;
    root = parse_ok("");
    assert_int_equal(json_object_size(root), 0);
    json_decref(root);
    root = parse_ok("  # only a comment\n\n\t\n# another # one\n   ");
    assert_int_equal(json_object_size(root), 0);
    json_decref(root);
    root = parse_ok("a = 1 # trailing\nb = \"x#y\" #c\nc = 'p#q'#d\n[t] # after header");
    assert_int_equal(get_int(root, "a"), 1);
    assert_string_equal(get_str(root, "b"), "x#y");
    assert_string_equal(get_str(root, "c"), "p#q");
    assert_true(json_is_object(json_object_get(root, "t")));
    json_decref(root);
}

static void test_not_nul_terminated(void **state)
{
    static const char text[] = "a = 12345";
    char err[128];
    json_t *out = NULL;

    (void)state;
    /* Only "a = 12" is passed: the parser must not read past len. */
    assert_int_equal(custos_toml_parse(text, 6, &out, err, sizeof(err)), 0);
    assert_int_equal(get_int(out, "a"), 12);
    json_decref(out);
    /* And NULL with length 0 is an empty document. */
    assert_int_equal(custos_toml_parse(NULL, 0, &out, NULL, 0), 0);
    assert_int_equal(json_object_size(out), 0);
    json_decref(out);
}

static void test_tables(void **state)
{
    json_t *root, *a, *b;

    (void)state;
    root = parse_ok("top = 1\n[a.b.c]\nx = 1\n[ a . b ]\ny = 2\n[a]\nz = 3\n[\"q.k\".'lit']\n");
    assert_int_equal(get_int(root, "top"), 1);
    a = json_object_get(root, "a");
    b = json_object_get(a, "b");
    assert_int_equal(get_int(json_object_get(b, "c"), "x"), 1);
    assert_int_equal(get_int(b, "y"), 2);
    assert_int_equal(get_int(a, "z"), 3);
    assert_true(json_is_object(json_object_get(json_object_get(root, "q.k"), "lit")));
    json_decref(root);
}

static void test_keys(void **state)
{
    json_t *root;

    (void)state;
    root = parse_ok("bare_Key-09 = 1\n1234 = 2\n\"quoted key\" = 3\n'lit\\key' = 4\n"
                    "\"\\u00e9t\\u00E9\" = 5\n\"\" = 6\ntrue = 7\n");
    assert_int_equal(get_int(root, "bare_Key-09"), 1);
    assert_int_equal(get_int(root, "1234"), 2);
    assert_int_equal(get_int(root, "quoted key"), 3);
    assert_int_equal(get_int(root, "lit\\key"), 4);
    assert_int_equal(get_int(root, "\xc3\xa9t\xc3\xa9"), 5);
    assert_int_equal(get_int(root, ""), 6);
    assert_int_equal(get_int(root, "true"), 7);
    json_decref(root);
}

static void test_basic_string_escapes(void **state)
{
    json_t *root;

    (void)state;
    root = parse_ok("s = \"q\\\" b\\\\ n\\n t\\t r\\r b\\b f\\f\"\n"
                    "u = \"\\u00e9\\u20AC\\U0001F600\\U0010FFFF\"\n"
                    "raw = \"caf\xc3\xa9 \xe2\x82\xac\ttab\"\n"
                    "e = \"\"\n");
    assert_string_equal(get_str(root, "s"), "q\" b\\ n\n t\t r\r b\b f\f");
    assert_string_equal(get_str(root, "u"), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
    assert_string_equal(get_str(root, "raw"), "caf\xc3\xa9 \xe2\x82\xac\ttab");
    assert_string_equal(get_str(root, "e"), "");
    json_decref(root);
}

static void test_literal_strings(void **state)
{
    json_t *root;

    (void)state;
    root = parse_ok("path = 'C:\\Users\\n\\t'\nq = 'say \"hi\"'\ne = ''\n");
    assert_string_equal(get_str(root, "path"), "C:\\Users\\n\\t");
    assert_string_equal(get_str(root, "q"), "say \"hi\"");
    assert_string_equal(get_str(root, "e"), "");
    json_decref(root);
}

static void test_integers(void **state)
{
    json_t *root;

    (void)state;
    root = parse_ok("a = 0\nb = +0\nc = -0\nd = 1_000_000\ne = -17\nf = +42\n"
                    "max = 9223372036854775807\nmin = -9223372036854775808\n"
                    "u = 9_223_372_036_854_775_807\n");
    assert_int_equal(get_int(root, "a"), 0);
    assert_int_equal(get_int(root, "b"), 0);
    assert_int_equal(get_int(root, "c"), 0);
    assert_int_equal(get_int(root, "d"), 1000000);
    assert_int_equal(get_int(root, "e"), -17);
    assert_int_equal(get_int(root, "f"), 42);
    assert_true(get_int(root, "max") == INT64_MAX);
    assert_true(get_int(root, "min") == INT64_MIN);
    assert_true(get_int(root, "u") == INT64_MAX);
    json_decref(root);
}

static void test_booleans(void **state)
{
    json_t *root;

    (void)state;
    root = parse_ok("t = true\nf = false #no\n");
    assert_true(json_is_true(json_object_get(root, "t")));
    assert_true(json_is_false(json_object_get(root, "f")));
    json_decref(root);
}

static void test_arrays(void **state)
{
    json_t *root, *a;

    (void)state;
    root = parse_ok("a = [\n  \"x\", # first\n  'y' ,\n\n  # a comment line\n  \"z\",\n]\n"
                    "e = []\nf = [ ]\ng = [\"only\"]\nh = [ # c\n]\n");
    a = json_object_get(root, "a");
    assert_int_equal(json_array_size(a), 3);
    assert_string_equal(json_string_value(json_array_get(a, 1)), "y");
    assert_string_equal(json_string_value(json_array_get(a, 2)), "z");
    assert_int_equal(json_array_size(json_object_get(root, "e")), 0);
    assert_int_equal(json_array_size(json_object_get(root, "f")), 0);
    assert_int_equal(json_array_size(json_object_get(root, "g")), 1);
    assert_int_equal(json_array_size(json_object_get(root, "h")), 0);
    json_decref(root);
}

static void test_crlf_and_bom(void **state)
{
    json_t *root;

    (void)state;
    root = parse_ok("\xef\xbb\xbf# c\r\n[t]\r\nk = \"v\" # x\r\na = [\r\n'1',\r\n]\r\n");
    assert_string_equal(get_str(json_object_get(root, "t"), "k"), "v");
    assert_int_equal(json_array_size(json_object_get(json_object_get(root, "t"), "a")), 1);
    json_decref(root);
}

static char *repeat(const char *prefix, const char *unit, size_t n, const char *suffix)
{
    size_t pl = strlen(prefix), ul = strlen(unit), sl = strlen(suffix);
    char *s = malloc(pl + ul * n + sl + 1);

    assert_non_null(s);
    memcpy(s, prefix, pl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + pl + i * ul, unit, ul);
    memcpy(s + pl + ul * n, suffix, sl + 1);
    return s;
}

static void test_limits_accepted(void **state)
{
    char *text;
    json_t *root;

    (void)state;
    text = repeat("a = [", "\"x\",", CUSTOS_TOML_MAX_ARRAY, "]\n");
    root = parse_ok(text);
    assert_int_equal(json_array_size(json_object_get(root, "a")), CUSTOS_TOML_MAX_ARRAY);
    json_decref(root);
    free(text);

    text = repeat("", "k", CUSTOS_TOML_MAX_KEY, " = 1\n");
    root = parse_ok(text);
    json_decref(root);
    free(text);

    root = parse_ok("[a.b.c.d.e.f.g.h]\nx = 1\n");
    json_decref(root);
}

/* ---- refused input: one case per row, named after its group ---- */

struct refusal {
    const char *name;
    const char *text;
    const char *msg;
};

static const struct refusal refusals[] = {
    {"strings_1", "# c\n\na = 1\nalt_names = [\"mycas\", \"cas]\n", "line 4, column 23: unterminated string"},
    {"strings_2", "s = \"abc", "line 1, column 5: unterminated string"},
    {"strings_3", "s = 'abc\nt = 1", "line 1, column 5: unterminated string"},
    {"strings_4", "s = \"ab\\", "line 1, column 5: unterminated string"},
    {"strings_5", "s = \"a\\qb\"", "line 1, column 7: invalid escape sequence '\\q'"},
    {"strings_6", "s = \"a\\e\"", "line 1, column 7: invalid escape sequence '\\e'"},
    {"strings_7", "s = \"a\\xff\"", "line 1, column 7: invalid escape sequence '\\x'"},
    {"strings_8", "s = \"a\x01\"", "line 1, column 7: control character U+0001 in string"},
    {"strings_9", "s = 'a\x7f'", "line 1, column 7: control character U+007F in string"},
    {"strings_10", "s = \"a\rb\"", "line 1, column 7: control character U+000D in string"},
    {"strings_11", "s = \"\"\"multi\"\"\"", "line 1, column 5: multi-line strings are not supported"},
    {"strings_12", "s = '''multi'''", "line 1, column 5: multi-line strings are not supported"},
    {"unicode_1", "s = \"\\u12G4\"", "line 1, column 6: invalid unicode escape '\\u12G' (expected 4 hex digits)"},
    {"unicode_2", "s = \"\\U0000123\"",
     "line 1, column 6: invalid unicode escape '\\U0000123\"' (expected 8 hex digits)"},
    {"unicode_3", "s = \"\\uD800\"", "line 1, column 6: unicode escape '\\uD800' is not a Unicode scalar value"},
    {"unicode_4", "s = \"\\U00110000\"",
     "line 1, column 6: unicode escape '\\U00110000' is not a Unicode scalar value"},
    {"unicode_5", "s = \"a\\u0000\"", "line 1, column 7: NUL character (\\u0000) is not supported"},
    {"unicode_6", "a = 1\ns = \"\xc3\xa9\xc3\"\n", "line 2, column 7: invalid UTF-8 (byte 0xC3)"},
    {"unicode_7", "# \xc0\xaf overlong\n", "line 1, column 3: invalid UTF-8 (byte 0xC0)"},
    {"unicode_8", "s = '\xed\xa0\x80'", "line 1, column 6: invalid UTF-8 (byte 0xED)"},
    {"unicode_9", "s = '\xf4\x90\x80\x80'", "line 1, column 6: invalid UTF-8 (byte 0xF4)"},
    {"unicode_10", "\xe2\x82\xac = 1", "line 1, column 1: expected a key, found '\xe2\x82\xac'"},
    {"numbers_1", "f = 3.14", "line 1, column 5: floating-point values are not supported: '3.14'"},
    {"numbers_2", "f = 1e6", "line 1, column 5: floating-point values are not supported: '1e6'"},
    {"numbers_3", "f = -inf", "line 1, column 5: floating-point values are not supported: '-inf'"},
    {"numbers_4", "f = nan", "line 1, column 5: floating-point values are not supported: 'nan'"},
    {"numbers_5", "d = 1979-05-27", "line 1, column 5: dates and times are not supported: '1979-05-27'"},
    {"numbers_6", "d = 1979-05-27T07:32:00Z",
     "line 1, column 5: dates and times are not supported: '1979-05-27T07:32:00Z'"},
    {"numbers_7", "d = 07:32:00", "line 1, column 5: dates and times are not supported: '07:32:00'"},
    {"numbers_8", "h = 0xff", "line 1, column 5: hexadecimal, octal and binary integers are not supported: '0xff'"},
    {"numbers_9", "h = 0o17", "line 1, column 5: hexadecimal, octal and binary integers are not supported: '0o17'"},
    {"numbers_10", "n = 0123", "line 1, column 5: leading zeros are not allowed in '0123'"},
    {"numbers_11", "n = -01", "line 1, column 5: leading zeros are not allowed in '-01'"},
    {"numbers_12", "n = 1__0", "line 1, column 6: underscore must be between digits in '1__0'"},
    {"numbers_13", "n = 10_", "line 1, column 7: underscore must be between digits in '10_'"},
    {"numbers_14", "n = +_1", "line 1, column 5: invalid value '+_1'"},
    {"numbers_15", "n = 12ab", "line 1, column 5: invalid integer '12ab'"},
    {"numbers_16", "n = 9223372036854775808",
     "line 1, column 5: integer '9223372036854775808' is out of range (64-bit signed)"},
    {"numbers_17", "n = -9223372036854775809",
     "line 1, column 5: integer '-9223372036854775809' is out of range (64-bit signed)"},
    {"numbers_18", "n = 99999999999999999999999",
     "line 1, column 5: integer '99999999999999999999999' is out of range (64-bit signed)"},
    {"values_1", "name = mycas", "line 1, column 8: invalid value 'mycas' (strings must be quoted)"},
    {"values_2", "b = True", "line 1, column 5: invalid value 'True' (strings must be quoted)"},
    {"values_3", "b = truex", "line 1, column 5: invalid value 'truex' (strings must be quoted)"},
    {"values_4", "k =\nx = 1", "line 1, column 4: missing value"},
    {"values_5", "k = # c", "line 1, column 5: missing value"},
    {"values_6", "k = @", "line 1, column 5: invalid value starting with '@'"},
    {"values_7", "t = { a = 1 }", "line 1, column 5: inline tables are not supported"},
    {"values_8", "a = 1 2", "line 1, column 7: unexpected '2' after value (expected end of line)"},
    {"values_9", "a = \"x\"y", "line 1, column 8: unexpected 'y' after value (expected end of line)"},
    {"arrays_1", "a = [\"x\", 1]", "line 1, column 11: arrays may only contain strings, found '1'"},
    {"arrays_2", "a = [1, 2]", "line 1, column 6: arrays may only contain strings, found '1'"},
    {"arrays_3", "a = [true]", "line 1, column 6: arrays may only contain strings, found 'true'"},
    {"arrays_4", "a = [[\"x\"]]", "line 1, column 6: nested arrays are not supported"},
    {"arrays_5", "a = [{x = 1}]", "line 1, column 6: inline tables are not supported"},
    {"arrays_6", "a = [,]", "line 1, column 6: unexpected ',' in array (expected a value)"},
    {"arrays_7", "a = [\"x\",,]", "line 1, column 10: unexpected ',' in array (expected a value)"},
    {"arrays_8", "a = [\"x\" \"y\"]", "line 1, column 10: expected ',' or ']' in array, found '\"'"},
    {"arrays_9", "x = 1\na = [\n  \"x\",\n", "line 2, column 5: unterminated array"},
    {"arrays_10", "a = [\"x\"", "line 1, column 5: unterminated array"},
    {"arrays_11", "a = [ # \x02\n]", "line 1, column 9: control character U+0002 in comment"},
    {"tables_1", "[a]\nx = 1\n[a]\n", "line 3, column 1: table [a] is already defined"},
    {"tables_2", "[a.b]\n[a]\n[ a . b ]\n", "line 3, column 1: table [ a . b ] is already defined"},
    {"tables_3", "[\"a\"]\n[a]\n", "line 2, column 1: table [a] is already defined"},
    {"tables_4", "a = 1\n[a]\n", "line 2, column 2: key 'a' is already defined as a value"},
    {"tables_5", "[t]\nx = 'v'\n[t.x.y]\n", "line 3, column 4: key 'x' is already defined as a value"},
    {"tables_6", "[[products]]\n", "line 1, column 1: arrays of tables ([[...]]) are not supported"},
    {"tables_7", "[a.b.c.d.e.f.g.h.i]\n", "line 1, column 18: table nesting too deep (maximum 8 levels)"},
    {"tables_8", "[]\n", "line 1, column 2: expected a key, found ']'"},
    {"tables_9", "[a.]\n", "line 1, column 4: expected a key, found ']'"},
    {"tables_10", "[a\nx = 1", "line 1, column 3: expected ']' at end of table header, found end of line"},
    {"tables_11", "[a] x = 1", "line 1, column 5: unexpected 'x' after table header (expected end of line)"},
    {"keys_1", "a = 1\nb = 2\na = 3\n", "line 3, column 1: duplicate key 'a'"},
    {"keys_2", "a = 1\n\"a\" = 2\n", "line 2, column 1: duplicate key '\"a\"'"},
    {"keys_3", "[t]\nk = 1\n[u]\nk = 1\n[t]\n", "line 5, column 1: table [t] is already defined"},
    {"keys_4", "[a.b]\n[a]\nb = 1\n", "line 3, column 1: duplicate key 'b'"},
    {"keys_5", "a.b = 1", "line 1, column 2: dotted keys are not supported (use a [table] header)"},
    {"keys_6", "key value", "line 1, column 5: expected '=' after key, found 'v'"},
    {"keys_7", "key", "line 1, column 4: expected '=' after key, found end of input"},
    {"keys_8", "= 1", "line 1, column 1: expected a key, found '='"},
    {"keys_9", "k\x01 = 1", "line 1, column 2: expected '=' after key, found control character U+0001"},
    {"keys_10", "\"k\\u0000\" = 1", "line 1, column 3: NUL character (\\u0000) is not supported"},
    {"lines_1", "a = 1\rb = 2", "line 1, column 6: carriage return not followed by line feed"},
    {"lines_2", "\r", "line 1, column 1: carriage return not followed by line feed"},
    {"lines_3", "# bell\x07\n", "line 1, column 7: control character U+0007 in comment"},
    {"lines_4", "\xc3\xa9\xc3\xa9 = 1", "line 1, column 1: expected a key, found '\xc3\xa9'"},
    {"lines_5", "k = 'caf\xc3\xa9' x", "line 1, column 12: unexpected 'x' after value (expected end of line)"},
    {"quote_truncated", "n = 1234567890123456789012345678901234567890123456789x",
     "line 1, column 5: invalid integer '1234567890123456789012345678901234567890...'"},
};

static void test_refusal(void **state)
{
    const struct refusal *r = *state;

    expect_fail(r->text, r->msg);
}

static void test_refuse_too_many_elements(void **state)
{
    char *text = repeat("a = [", "'x',", CUSTOS_TOML_MAX_ARRAY + 1, "]\n");

    (void)state;
    expect_fail(text, "line 1, column 16390: array has too many elements (maximum 4096)");
    free(text);
}

static void test_refuse_long_keys(void **state)
{
    char *text;

    (void)state;
    text = repeat("", "k", CUSTOS_TOML_MAX_KEY + 1, " = 1\n");
    expect_fail(text, "line 1, column 1: key too long (257 bytes, maximum 256)");
    free(text);
    text = repeat("\"", "\\u00e9", 129, "\" = 1\n");
    expect_fail(text, "line 1, column 1: key too long (258 bytes, maximum 256)");
    free(text);
}

static void test_refuse_embedded_nul(void **state)
{
    (void)state;
    expect_fail_len("a = 1\n\0b = 2", 12, -EINVAL, "line 2, column 1: expected a key, found control character U+0000");
    expect_fail_len("s = 'a\0b'", 9, -EINVAL, "line 1, column 7: control character U+0000 in string");
}

static void test_refuse_size_and_args(void **state)
{
    size_t len = CUSTOS_TOML_MAX_INPUT + 1;
    char *big = malloc(len);
    char err[128] = "unchanged";
    json_t *out = NULL;

    (void)state;
    assert_non_null(big);
    memset(big, '#', len);
    expect_fail_len(big, len, -E2BIG, "line 1, column 1: input too large (1048577 bytes, maximum 1048576)");
    free(big);
    assert_int_equal(custos_toml_parse("a=1", 3, NULL, err, sizeof(err)), -EINVAL);
    assert_int_equal(custos_toml_parse(NULL, 3, &out, err, sizeof(err)), -EINVAL);
    assert_null(out);
    /* errlen 0: nothing written, still refused */
    strcpy(err, "unchanged");
    assert_int_equal(custos_toml_parse("a=", 2, &out, err, 0), -EINVAL);
    assert_string_equal(err, "unchanged");
    /* A short buffer gets a truncated, terminated message. */
    assert_int_equal(custos_toml_parse("a=", 2, &out, err, 8), -EINVAL);
    assert_string_equal(err, "line 1,");
    assert_null(out);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_empty_and_comments),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_basic_string_escapes),
        cmocka_unit_test(test_literal_strings),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_crlf_and_bom),
        cmocka_unit_test(test_limits_accepted),
        cmocka_unit_test(test_refuse_too_many_elements),
        cmocka_unit_test(test_refuse_long_keys),
        cmocka_unit_test(test_refuse_embedded_nul),
        cmocka_unit_test(test_refuse_size_and_args),
    };
    size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
    size_t nref = sizeof(refusals) / sizeof(refusals[0]);
    struct CMUnitTest *tests = calloc(nfixed + nref, sizeof(*tests));
    int failed;

    if (!tests)
        return 1;
    memcpy(tests, fixed, sizeof(fixed));
    for (size_t i = 0; i < nref; i++) {
        tests[nfixed + i].name = refusals[i].name;
        tests[nfixed + i].test_func = test_refusal;
        tests[nfixed + i].initial_state = (void *)&refusals[i];
    }
    failed = _cmocka_run_group_tests("toml", tests, nfixed + nref, NULL, NULL);
    free(tests);
    return failed;
}
