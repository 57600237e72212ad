/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parser for a TOML subset, see toml.h. */
#include "toml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUOTE_MAX 40 /* bytes of input quoted in an error message */

struct toml_parser {
    const char *s;
    size_t len;
    size_t pos;
    size_t begin; /* first byte after an optional byte order mark */
    char *err;
    size_t errlen;
    json_t *root;
    json_t *cur;     /* table receiving key/value pairs */
    json_t *defined; /* tables defined by a header, keyed by address */
};

struct toml_buf {
    char *data;
    size_t len;
    size_t cap;
};

/* ---- characters and positions ---- */

static bool is_ctrl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_bare_key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-';
}

static bool is_token_char(char c)
{
    return is_bare_key_char(c) || c == '+' || c == '.' || c == ':';
}

static bool at(const struct toml_parser *p, size_t pos, char c)
{
    return pos < p->len && p->s[pos] == c;
}

static bool at_eol(const struct toml_parser *p)
{
    return p->pos >= p->len || p->s[p->pos] == '\n' || p->s[p->pos] == '\r';
}

/* End of input, LF or CRLF (a bare CR is not a line end). */
static bool at_line_end(const struct toml_parser *p)
{
    return p->pos >= p->len || p->s[p->pos] == '\n' || (p->s[p->pos] == '\r' && at(p, p->pos + 1, '\n'));
}

/* Length of the UTF-8 sequence at pos (input already validated). */
static size_t cp_len(const struct toml_parser *p, size_t pos)
{
    unsigned char c = (unsigned char)p->s[pos];
    size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;

    return n < p->len - pos ? n : p->len - pos;
}

static size_t line_of(const struct toml_parser *p, size_t pos)
{
    size_t line = 1;

    for (size_t i = 0; i < pos; i++)
        line += p->s[i] == '\n';
    return line;
}

static size_t column_of(const struct toml_parser *p, size_t pos)
{
    size_t start = pos;
    size_t col = 1;

    while (start > p->begin && p->s[start - 1] != '\n')
        start--;
    for (size_t i = start; i < pos; i++)
        col += ((unsigned char)p->s[i] & 0xc0) != 0x80;
    return col;
}

/* ---- error messages ---- */

/* Copy input bytes [start, end) into q for quoting, truncated and with controls masked. */
static const char *quote(const struct toml_parser *p, size_t start, size_t end, char *q, size_t qlen)
{
    size_t o = 0;

    for (size_t i = start; i < end && i < p->len;) {
        size_t n = cp_len(p, i);

        if (o + n > QUOTE_MAX || o + n + 4 > qlen) {
            memcpy(q + o, "...", 3);
            o += 3;
            break;
        }
        if (n == 1 && is_ctrl((unsigned char)p->s[i]))
            q[o] = '?';
        else
            memcpy(q + o, p->s + i, n);
        o += n;
        i += n;
    }
    q[o] = '\0';
    return q;
}

/* Describe the character at pos: 'x', end of line, end of input, control character. */
static const char *describe(const struct toml_parser *p, size_t pos, char *q, size_t qlen)
{
    char tmp[16];
    unsigned char c;

    if (pos >= p->len) {
        snprintf(q, qlen, "end of input");
        return q;
    }
    c = (unsigned char)p->s[pos];
    if (c == '\n' || c == '\r')
        snprintf(q, qlen, "end of line");
    else if (is_ctrl(c))
        snprintf(q, qlen, "control character U+%04X", c);
    else
        snprintf(q, qlen, "'%s'", quote(p, pos, pos + cp_len(p, pos), tmp, sizeof(tmp)));
    return q;
}

__attribute__((format(printf, 3, 4))) static int fail(struct toml_parser *p, size_t pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!p->err || !p->errlen)
        return -EINVAL;
    if (pos > p->len)
        pos = p->len;
    n = snprintf(p->err, p->errlen, "line %zu, column %zu: ", line_of(p, pos), column_of(p, pos));
    if (n < 0 || (size_t)n >= p->errlen)
        return -EINVAL;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int fail_oom(struct toml_parser *p)
{
    fail(p, p->pos, "out of memory");
    return -ENOMEM;
}

/* ---- buffers ---- */

static int buf_put(struct toml_parser *p, struct toml_buf *b, const char *data, size_t n)
{
    if (n > SIZE_MAX - b->len - 1)
        return fail_oom(p);
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        char *d;

        while (cap < b->len + n + 1)
            cap *= 2;
        d = realloc(b->data, cap);
        if (!d)
            return fail_oom(p);
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_put_utf8(struct toml_parser *p, struct toml_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return buf_put(p, b, u, n);
}

/* ---- whole-input checks ---- */

/* Length of the valid UTF-8 sequence at i, or 0 if it is invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t len, size_t i)
{
    unsigned char c = s[i];
    size_t n;
    uint32_t cp, min;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > len - i)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static int check_utf8(struct toml_parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;

    for (size_t i = p->begin; i < p->len;) {
        size_t n = utf8_seq_len(s, p->len, i);

        if (!n)
            return fail(p, i, "invalid UTF-8 (byte 0x%02X)", s[i]);
        i += n;
    }
    return 0;
}

/* ---- whitespace, comments, line ends ---- */

static void skip_ws(struct toml_parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
        p->pos++;
}

/* At '#': consume the comment up to (not including) the line end. */
static int parse_comment(struct toml_parser *p)
{
    for (p->pos++; !at_eol(p); p->pos++) {
        unsigned char c = (unsigned char)p->s[p->pos];

        if (is_ctrl(c))
            return fail(p, p->pos, "control character U+%04X in comment", c);
    }
    return 0;
}

/* At a line end or end of input: consume it. */
static int parse_newline(struct toml_parser *p)
{
    if (p->pos >= p->len)
        return 0;
    if (p->s[p->pos] == '\n') {
        p->pos++;
        return 0;
    }
    if (p->s[p->pos] == '\r' && at(p, p->pos + 1, '\n')) {
        p->pos += 2;
        return 0;
    }
    return fail(p, p->pos, "carriage return not followed by line feed");
}

/* After a header or key/value pair: only whitespace and a comment may follow. */
static int finish_line(struct toml_parser *p, const char *after)
{
    char d[32];
    int ret;

    skip_ws(p);
    if (at(p, p->pos, '#')) {
        ret = parse_comment(p);
        if (ret)
            return ret;
    }
    if (!at_eol(p))
        return fail(p, p->pos, "unexpected %s after %s (expected end of line)", describe(p, p->pos, d, sizeof(d)),
                    after);
    return parse_newline(p);
}

/* Skip whitespace, line ends and comments inside an array. */
static int skip_array_space(struct toml_parser *p)
{
    int ret = 0;

    for (;;) {
        skip_ws(p);
        if (at(p, p->pos, '#'))
            ret = parse_comment(p);
        else if (p->pos < p->len && at_eol(p))
            ret = parse_newline(p);
        else
            return 0;
        if (ret)
            return ret;
    }
}

/* ---- strings ---- */

static int parse_hex(struct toml_parser *p, size_t esc, size_t digits, uint32_t *cp)
{
    char q[QUOTE_MAX + 4];
    size_t start = p->pos + 1; /* after 'u' or 'U' */

    *cp = 0;
    for (size_t i = 0; i < digits; i++) {
        char c = start + i < p->len ? p->s[start + i] : '\0';
        uint32_t v;

        if (is_digit(c))
            v = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = (uint32_t)(c - 'A' + 10);
        else
            return fail(p, esc, "invalid unicode escape '%s' (expected %zu hex digits)",
                        quote(p, esc, start + i < p->len ? start + i + 1 : start + i, q, sizeof(q)), digits);
        *cp = (*cp << 4) | v;
    }
    p->pos = start + digits;
    if (*cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return fail(p, esc, "unicode escape '%s' is not a Unicode scalar value", quote(p, esc, p->pos, q, sizeof(q)));
    if (*cp == 0)
        return fail(p, esc, "NUL character (\\u0000) is not supported");
    return 0;
}

/* At '\\' inside a basic string: decode one escape sequence into b. */
static int parse_escape(struct toml_parser *p, struct toml_buf *b)
{
    static const char from[] = "\"\\ntrbf";
    static const char to[] = "\"\\\n\t\r\b\f";
    char q[QUOTE_MAX + 4];
    size_t esc = p->pos;
    const char *hit;
    uint32_t cp;
    int ret;

    p->pos++;
    if (at(p, p->pos, 'u') || at(p, p->pos, 'U')) {
        ret = parse_hex(p, esc, p->s[p->pos] == 'u' ? 4 : 8, &cp);
        return ret ? ret : buf_put_utf8(p, b, cp);
    }
    if (at_line_end(p))
        return 0; /* the caller reports the unterminated string */
    hit = p->s[p->pos] ? strchr(from, p->s[p->pos]) : NULL;
    if (!hit)
        return fail(p, esc, "invalid escape sequence '%s'", quote(p, esc, p->pos + cp_len(p, p->pos), q, sizeof(q)));
    p->pos++;
    return buf_put(p, b, &to[hit - from], 1);
}

/* At a quote: refuse multi-line strings, which start with three quotes. */
static int check_single_line(struct toml_parser *p, char quote_char)
{
    if (at(p, p->pos + 1, quote_char) && at(p, p->pos + 2, quote_char))
        return fail(p, p->pos, "multi-line strings are not supported");
    return 0;
}

/* At '"' or '\'': decode a basic or literal string into b. */
static int parse_string(struct toml_parser *p, struct toml_buf *b)
{
    char quote_char = p->s[p->pos];
    size_t start = p->pos;
    int ret;

    ret = check_single_line(p, quote_char);
    if (ret)
        return ret;
    for (p->pos++;;) {
        size_t run = p->pos;
        unsigned char c;

        while (run < p->len && p->s[run] != quote_char && !(quote_char == '"' && p->s[run] == '\\') &&
               !is_ctrl((unsigned char)p->s[run]))
            run++;
        ret = buf_put(p, b, p->s + p->pos, run - p->pos);
        if (ret)
            return ret;
        p->pos = run;
        if (at_line_end(p))
            return fail(p, start, "unterminated string");
        c = (unsigned char)p->s[p->pos];
        if (c == (unsigned char)quote_char) {
            p->pos++;
            return 0;
        }
        if (is_ctrl(c))
            return fail(p, p->pos, "control character U+%04X in string", c);
        if (quote_char == '"') {
            ret = parse_escape(p, b);
            if (ret)
                return ret;
        }
    }
}

/* ---- keys ---- */

/* Decode a bare or quoted key into b (NUL-terminated). */
static int parse_key(struct toml_parser *p, struct toml_buf *b)
{
    char d[32];
    size_t start = p->pos;
    int ret;

    b->len = 0;
    if (p->pos < p->len && is_bare_key_char(p->s[p->pos])) {
        while (p->pos < p->len && is_bare_key_char(p->s[p->pos]))
            p->pos++;
        ret = buf_put(p, b, p->s + start, p->pos - start);
    } else if (at(p, p->pos, '"') || at(p, p->pos, '\'')) {
        ret = buf_put(p, b, "", 0);
        if (!ret)
            ret = parse_string(p, b);
    } else {
        return fail(p, p->pos, "expected a key, found %s", describe(p, p->pos, d, sizeof(d)));
    }
    if (ret)
        return ret;
    if (b->len > CUSTOS_TOML_MAX_KEY)
        return fail(p, start, "key too long (%zu bytes, maximum %d)", b->len, CUSTOS_TOML_MAX_KEY);
    return 0;
}

/* ---- values ---- */

/* Check [+-]?(0|[1-9](_?[0-9])*) over the n-byte token at start. */
static int check_decimal(struct toml_parser *p, size_t start, size_t n)
{
    char q[QUOTE_MAX + 4];
    const char *tok = p->s + start;
    size_t i = (tok[0] == '-' || tok[0] == '+') ? 1 : 0;

    quote(p, start, start + n, q, sizeof(q));
    for (size_t j = i; j < n; j++) {
        if (tok[j] == '_') {
            if (j == i || !is_digit(tok[j - 1]) || j + 1 >= n || !is_digit(tok[j + 1]))
                return fail(p, start + j, "underscore must be between digits in '%s'", q);
        } else if (!is_digit(tok[j])) {
            return fail(p, start, "invalid integer '%s'", q);
        }
    }
    if (n == i)
        return fail(p, start, "invalid integer '%s'", q);
    if (tok[i] == '0' && n > i + 1)
        return fail(p, start, "leading zeros are not allowed in '%s'", q);
    return 0;
}

static int parse_decimal(struct toml_parser *p, size_t start, size_t n, json_int_t *v)
{
    char q[QUOTE_MAX + 4];
    const char *tok = p->s + start;
    bool neg = tok[0] == '-';
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t mag = 0;
    int ret;

    ret = check_decimal(p, start, n);
    if (ret)
        return ret;
    for (size_t j = 0; j < n; j++) {
        uint64_t digit = (uint64_t)(tok[j] - '0');

        if (!is_digit(tok[j]))
            continue;
        if (mag > (limit - digit) / 10)
            return fail(p, start, "integer '%s' is out of range (64-bit signed)",
                        quote(p, start, start + n, q, sizeof(q)));
        mag = mag * 10 + digit;
    }
    if (neg)
        *v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(json_int_t)mag;
    else
        *v = (json_int_t)mag;
    return 0;
}

static bool is_date_or_time(const char *d, size_t m)
{
    if (m >= 5 && is_digit(d[0]) && is_digit(d[1]) && is_digit(d[2]) && is_digit(d[3]) && d[4] == '-')
        return true;
    return m >= 3 && is_digit(d[0]) && is_digit(d[1]) && d[2] == ':';
}

static bool is_float_word(const char *d, size_t m)
{
    return m == 3 && (!memcmp(d, "inf", 3) || !memcmp(d, "nan", 3));
}

/* A bare token: boolean or integer; refuse the other TOML scalars clearly. */
static int parse_scalar(struct toml_parser *p, json_t **out)
{
    char q[QUOTE_MAX + 4];
    size_t start = p->pos;
    const char *tok = p->s + start, *d;
    size_t n, m;
    json_int_t v = 0;
    int ret;

    while (p->pos < p->len && is_token_char(p->s[p->pos]))
        p->pos++;
    n = p->pos - start;
    if (!n)
        return fail(p, start, "invalid value starting with %s", describe(p, start, q, sizeof(q)));
    quote(p, start, p->pos, q, sizeof(q));
    if ((n == 4 && !memcmp(tok, "true", 4)) || (n == 5 && !memcmp(tok, "false", 5))) {
        *out = tok[0] == 't' ? json_true() : json_false();
        return 0;
    }
    d = (tok[0] == '+' || tok[0] == '-') ? tok + 1 : tok;
    m = n - (size_t)(d - tok);
    if (is_float_word(d, m))
        return fail(p, start, "floating-point values are not supported: '%s'", q);
    if (!m || !is_digit(d[0]))
        return fail(p, start, "invalid value '%s'%s", q, d == tok ? " (strings must be quoted)" : "");
    if (m >= 2 && d[0] == '0' && (d[1] == 'x' || d[1] == 'o' || d[1] == 'b'))
        return fail(p, start, "hexadecimal, octal and binary integers are not supported: '%s'", q);
    if (is_date_or_time(d, m))
        return fail(p, start, "dates and times are not supported: '%s'", q);
    if (memchr(d, '.', m) || memchr(d, 'e', m) || memchr(d, 'E', m))
        return fail(p, start, "floating-point values are not supported: '%s'", q);
    ret = parse_decimal(p, start, n, &v);
    if (ret)
        return ret;
    *out = json_integer(v);
    return *out ? 0 : fail_oom(p);
}

static int parse_string_value(struct toml_parser *p, json_t **out)
{
    struct toml_buf b = {0};
    int ret;

    ret = parse_string(p, &b);
    if (ret)
        goto out;
    *out = json_stringn_nocheck(b.data ? b.data : "", b.len);
    if (!*out)
        ret = fail_oom(p);
out:
    free(b.data);
    return ret;
}

/* At an array element that is not a string: explain why it is refused. */
static int refuse_element(struct toml_parser *p)
{
    char q[QUOTE_MAX + 4];
    size_t start = p->pos, end = p->pos;
    char c = p->s[p->pos];

    if (c == ',')
        return fail(p, start, "unexpected ',' in array (expected a value)");
    if (c == '[')
        return fail(p, start, "nested arrays are not supported");
    if (c == '{')
        return fail(p, start, "inline tables are not supported");
    while (end < p->len && is_token_char(p->s[end]))
        end++;
    if (end == start)
        return fail(p, start, "invalid array element starting with %s", describe(p, start, q, sizeof(q)));
    return fail(p, start, "arrays may only contain strings, found '%s'", quote(p, start, end, q, sizeof(q)));
}

/* After an array element: consume ',' or ']'; *done is set at ']'. */
static int parse_array_sep(struct toml_parser *p, size_t open, bool *done)
{
    char d[32];
    int ret;

    ret = skip_array_space(p);
    if (ret)
        return ret;
    if (p->pos >= p->len)
        return fail(p, open, "unterminated array");
    if (p->s[p->pos] != ',' && p->s[p->pos] != ']')
        return fail(p, p->pos, "expected ',' or ']' in array, found %s", describe(p, p->pos, d, sizeof(d)));
    *done = p->s[p->pos] == ']';
    p->pos++;
    return 0;
}

static int parse_array(struct toml_parser *p, json_t **out)
{
    size_t open = p->pos;
    json_t *arr, *el = NULL;
    bool done = false;
    int ret = 0;

    arr = json_array();
    if (!arr)
        return fail_oom(p);
    for (p->pos++; !done;) {
        ret = skip_array_space(p);
        if (ret)
            goto out;
        if (p->pos >= p->len) {
            ret = fail(p, open, "unterminated array");
            goto out;
        }
        if (p->s[p->pos] == ']') {
            p->pos++;
            break;
        }
        if (p->s[p->pos] != '"' && p->s[p->pos] != '\'') {
            ret = refuse_element(p);
            goto out;
        }
        if (json_array_size(arr) >= CUSTOS_TOML_MAX_ARRAY) {
            ret = fail(p, p->pos, "array has too many elements (maximum %d)", CUSTOS_TOML_MAX_ARRAY);
            goto out;
        }
        ret = parse_string_value(p, &el);
        if (ret)
            goto out;
        if (json_array_append_new(arr, el)) {
            ret = fail_oom(p);
            goto out;
        }
        ret = parse_array_sep(p, open, &done);
        if (ret)
            goto out;
    }
    *out = arr;
    arr = NULL;
out:
    json_decref(arr);
    return ret;
}

static int parse_value(struct toml_parser *p, json_t **out)
{
    if (p->pos >= p->len || at_eol(p) || p->s[p->pos] == '#')
        return fail(p, p->pos, "missing value");
    switch (p->s[p->pos]) {
    case '"':
    case '\'':
        return parse_string_value(p, out);
    case '[':
        return parse_array(p, out);
    case '{':
        return fail(p, p->pos, "inline tables are not supported");
    default:
        return parse_scalar(p, out);
    }
}

/* ---- tables and key/value pairs ---- */

static void table_key(const json_t *table, char *k, size_t klen)
{
    snprintf(k, klen, "%p", (const void *)table);
}

/* Record that a header defines table; refuse a second definition. */
static int define_table(struct toml_parser *p, json_t *table, size_t open)
{
    char k[32], q[QUOTE_MAX + 4];

    table_key(table, k, sizeof(k));
    if (json_object_get(p->defined, k))
        return fail(p, open, "table [%s] is already defined", quote(p, open + 1, p->pos - 1, q, sizeof(q)));
    if (json_object_set_new_nocheck(p->defined, k, json_true()))
        return fail_oom(p);
    return 0;
}

/* Descend from *table into child key, creating it; refuse keys that hold values. */
static int descend(struct toml_parser *p, json_t **table, const char *key, size_t kstart)
{
    char q[QUOTE_MAX + 4];
    json_t *child = json_object_get(*table, key);

    if (!child) {
        child = json_object();
        if (!child || json_object_set_new_nocheck(*table, key, child))
            return fail_oom(p);
    } else if (!json_is_object(child)) {
        return fail(p, kstart, "key '%s' is already defined as a value", quote(p, kstart, p->pos, q, sizeof(q)));
    }
    *table = child;
    return 0;
}

/* At '[': parse a [a.b.c] header and make it the current table. */
static int parse_table_header(struct toml_parser *p)
{
    struct toml_buf key = {0};
    json_t *table = p->root;
    size_t open = p->pos, depth = 0;
    char d[32];
    int ret;

    if (at(p, p->pos + 1, '[')) {
        ret = fail(p, open, "arrays of tables ([[...]]) are not supported");
        goto out;
    }
    for (p->pos++;; p->pos++) {
        size_t kstart;

        skip_ws(p);
        kstart = p->pos;
        ret = parse_key(p, &key);
        if (ret)
            goto out;
        if (++depth > CUSTOS_TOML_MAX_DEPTH) {
            ret = fail(p, kstart, "table nesting too deep (maximum %d levels)", CUSTOS_TOML_MAX_DEPTH);
            goto out;
        }
        ret = descend(p, &table, key.data, kstart);
        if (ret)
            goto out;
        skip_ws(p);
        if (!at(p, p->pos, '.'))
            break;
    }
    if (!at(p, p->pos, ']')) {
        ret = fail(p, p->pos, "expected ']' at end of table header, found %s", describe(p, p->pos, d, sizeof(d)));
        goto out;
    }
    p->pos++;
    ret = define_table(p, table, open);
    if (ret)
        goto out;
    p->cur = table;
out:
    free(key.data);
    return ret;
}

static int parse_keyval(struct toml_parser *p)
{
    struct toml_buf key = {0};
    json_t *val = NULL;
    size_t kstart = p->pos;
    char q[QUOTE_MAX + 4];
    int ret;

    ret = parse_key(p, &key);
    if (ret)
        goto out;
    if (json_object_get(p->cur, key.data)) {
        ret = fail(p, kstart, "duplicate key '%s'", quote(p, kstart, p->pos, q, sizeof(q)));
        goto out;
    }
    skip_ws(p);
    if (at(p, p->pos, '.')) {
        ret = fail(p, p->pos, "dotted keys are not supported (use a [table] header)");
        goto out;
    }
    if (!at(p, p->pos, '=')) {
        ret = fail(p, p->pos, "expected '=' after key, found %s", describe(p, p->pos, q, sizeof(q)));
        goto out;
    }
    p->pos++;
    skip_ws(p);
    ret = parse_value(p, &val);
    if (ret)
        goto out;
    if (json_object_set_new_nocheck(p->cur, key.data, val)) {
        val = NULL; /* jansson consumed the reference */
        ret = fail_oom(p);
        goto out;
    }
    val = NULL;
out:
    json_decref(val);
    free(key.data);
    return ret;
}

static int parse_document(struct toml_parser *p)
{
    int ret = 0;

    while (!ret && p->pos < p->len) {
        skip_ws(p);
        if (p->pos >= p->len)
            break;
        if (p->s[p->pos] == '#' || at_eol(p)) {
            ret = finish_line(p, "comment");
        } else if (p->s[p->pos] == '[') {
            ret = parse_table_header(p);
            if (!ret)
                ret = finish_line(p, "table header");
        } else {
            ret = parse_keyval(p);
            if (!ret)
                ret = finish_line(p, "value");
        }
    }
    return ret;
}

int custos_toml_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen)
{
    struct toml_parser p = {.s = text, .len = len, .err = err, .errlen = err ? errlen : 0};
    int ret;

    if (p.errlen)
        err[0] = '\0';
    if (!out || (!text && len)) {
        if (p.errlen)
            snprintf(err, errlen, "invalid argument");
        return -EINVAL;
    }
    if (len > CUSTOS_TOML_MAX_INPUT) {
        if (p.errlen)
            snprintf(err, errlen, "line 1, column 1: input too large (%zu bytes, maximum %d)", len,
                     CUSTOS_TOML_MAX_INPUT);
        return -E2BIG;
    }
    p.root = json_object();
    p.defined = json_object();
    p.cur = p.root;
    if (!p.root || !p.defined) {
        ret = fail_oom(&p);
        goto out;
    }
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
        p.begin = p.pos = 3;
    ret = check_utf8(&p);
    if (!ret)
        ret = parse_document(&p);
    if (!ret) {
        *out = p.root;
        p.root = NULL;
    }
out:
    json_decref(p.root);
    json_decref(p.defined);
    return ret;
}
