/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions: the YAML document's checks and normal form, its hash, and look-ups in it. Every refusal
 * names the path of the field ("services[0].enviroment: unknown field"); docs/design.md "Sessions
 * (policies) and secrets" is the contract. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"
#include "session.h"

#define PATH_SIZE 512

struct pc {
    char *err;
    size_t err_size;
};

__attribute__((format(printf, 3, 4))) static int bad(struct pc *c, const char *path, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (path && *path)
        snprintf(c->err, c->err_size, "%s: %s", path, msg);
    else
        snprintf(c->err, c->err_size, "%s", msg);
    return -EINVAL;
}

/* path.key and path[i] (cut at PATH_SIZE - 1 bytes: paths only name things in messages). */
static void sub(char out[PATH_SIZE], const char *path, const char *key)
{
    int n = path && *path ? snprintf(out, PATH_SIZE, "%s.%.200s", path, key) : snprintf(out, PATH_SIZE, "%.200s", key);
    if (n < 0)
        out[0] = '\0';
}

static void idx(char out[PATH_SIZE], const char *path, size_t i)
{
    if (snprintf(out, PATH_SIZE, "%s[%zu]", path, i) < 0)
        out[0] = '\0';
}

/* A field, with null (an empty YAML value) read as absent. */
static json_t *field(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list))
            return true;
    return false;
}

static int need_map(struct pc *c, const json_t *v, const char *path)
{
    return json_is_object(v) ? 0 : bad(c, path, "must be a map");
}

/* Refuses the first field of obj that allowed does not list. */
static int only_fields(struct pc *c, const json_t *obj, const char *path, const char *const *allowed)
{
    const char *key;
    json_t *v;
    int ret = need_map(c, obj, path);
    if (ret < 0)
        return ret;
    json_object_foreach((json_t *)obj, key, v) {
        if (!in_list(key, allowed)) {
            char p[PATH_SIZE];
            sub(p, path, key);
            return bad(c, p, "unknown field");
        }
    }
    return 0;
}

/* obj.key as a string into *out (NULL when absent and not required). */
static int get_str(struct pc *c, const json_t *obj, const char *path, const char *key, bool required, const char **out)
{
    char p[PATH_SIZE];
    json_t *v = field(obj, key);
    *out = NULL;
    sub(p, path, key);
    if (!v)
        return required ? bad(c, p, "missing") : 0;
    if (!json_is_string(v))
        return bad(c, p, "must be a string");
    *out = json_string_value(v);
    return 0;
}

/* obj.key as a list of 1..max entries (NULL when absent and not required). */
static int get_list(struct pc *c, const json_t *obj, const char *path, const char *key, bool required, size_t max,
                    const json_t **out)
{
    char p[PATH_SIZE];
    json_t *v = field(obj, key);
    *out = NULL;
    sub(p, path, key);
    if (!v)
        return required ? bad(c, p, "missing") : 0;
    if (!json_is_array(v))
        return bad(c, p, "must be a list");
    if (json_array_size(v) > max)
        return bad(c, p, "at most %zu entries", max);
    *out = v;
    return 0;
}

static int list_str(struct pc *c, const json_t *list, size_t i, const char *path, const char **out)
{
    char p[PATH_SIZE];
    const json_t *v = json_array_get(list, i);
    idx(p, path, i);
    if (!json_is_string(v))
        return bad(c, p, "must be a string");
    *out = json_string_value(v);
    return 0;
}

bool cas_session_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n >= 1 && n <= 128 && strcmp(name, ".") && strcmp(name, "..") &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int check_name(struct pc *c, const char *path, const char *name)
{
    if (cas_session_name_valid(name))
        return 0;
    return bad(c, path, "'%.130s' is not a name (1..128 characters of A-Z a-z 0-9 . _ -, not '.' or '..')", name);
}

/* A 64-hex string (SHA-256, MRENCLAVE, key hash), lowercased into out. */
static int check_hex64(struct pc *c, const char *path, const char *s, char out[65])
{
    uint8_t bytes[32];
    if (custos_hex_decode(s, bytes, sizeof(bytes)) < 0)
        return bad(c, path, "'%.80s' is not 64 hex digits", s);
    custos_hex_encode(bytes, sizeof(bytes), out, false);
    return 0;
}

static bool env_name_valid(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 255 && !(s[0] >= '0' && s[0] <= '9') &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* An absolute path: starts with '/', at most CAS_SESSION_MAX_PATH bytes; a file's path (file:
 * true) also has no "." or ".." component, no empty component and does not end with '/'. */
static int check_abs_path(struct pc *c, const char *path, const char *s, bool file)
{
    size_t n = strlen(s);
    if (s[0] != '/')
        return bad(c, path, "'%.130s' is not an absolute path", s);
    if (n > CAS_SESSION_MAX_PATH)
        return bad(c, path, "longer than %d bytes", CAS_SESSION_MAX_PATH);
    if (!file)
        return 0;
    for (const char *p = s; *p;) {
        const char *e = strchr(p + 1, '/');
        size_t len = (e ? (size_t)(e - p) : strlen(p)) - 1;
        if (len == 0 || (len == 1 && p[1] == '.') || (len == 2 && p[1] == '.' && p[2] == '.'))
            return bad(c, path, "'%.130s' is not a file's path (no empty, '.' or '..' component, no '/' at the end)",
                       s);
        p = e ? e : p + len + 1;
    }
    return 0;
}

/* ---- secret references ------------------------------------------------------------------------ */

const json_t *cas_session_secret(const json_t *session, const char *name)
{
    size_t i;
    json_t *s;
    if (!name)
        return NULL;
    json_array_foreach(json_object_get(session, "secrets"), i, s) {
        const char *n = json_string_value(json_object_get(s, "name"));
        if (n && !strcmp(n, name))
            return s;
    }
    return NULL;
}

static const void *find_bytes(const char *s, size_t size, size_t from, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = from; i + n <= size; i++)
        if (s[i] == needle[0] && !memcmp(s + i, needle, n))
            return s + i;
    return NULL;
}

int cas_ref_next(const char *s, size_t size, size_t *pos, struct cas_secret_ref *ref, char *err, size_t err_size)
{
    static const char open[] = "$$CAS::";
    const char *start = find_bytes(s, size, *pos, open);
    if (!start)
        return 0;
    size_t at = (size_t)(start - s), body = at + sizeof(open) - 1;
    const char *close = find_bytes(s, size, body, "$$");
    if (!close) {
        snprintf(err, err_size, "unclosed secret reference ('$$CAS::' at byte %zu has no closing '$$')", at);
        return -EINVAL;
    }
    size_t len = (size_t)(close - s) - body;
    const char *colon = memchr(s + body, ':', len);
    size_t name_len = colon ? (size_t)(colon - (s + body)) : len;
    size_t fmt_len = colon ? len - name_len - 1 : 0;
    memset(ref, 0, sizeof(*ref));
    if (name_len < sizeof(ref->name))
        memcpy(ref->name, s + body, name_len);
    if (colon && fmt_len < sizeof(ref->format))
        memcpy(ref->format, colon + 1, fmt_len);
    static const char *const formats[] = {"hex", "base64", "crt", "key", NULL};
    if (name_len >= sizeof(ref->name) || strlen(ref->name) != name_len || !cas_session_name_valid(ref->name) ||
        (colon &&
         (fmt_len >= sizeof(ref->format) || strlen(ref->format) != fmt_len || !in_list(ref->format, formats)))) {
        snprintf(err, err_size,
                 "malformed secret reference at byte %zu (write $$CAS::NAME$$ or $$CAS::NAME:FORMAT$$, FORMAT "
                 "hex, base64, crt or key)",
                 at);
        return -EINVAL;
    }
    ref->start = at;
    ref->end = (size_t)(close - s) + 2;
    *pos = ref->end;
    return 1;
}

const char *cas_ref_format_problem(const char *kind, const char *format, bool text)
{
    bool x509 = kind && !strcmp(kind, "x509");
    if (!strcmp(format, "crt") || !strcmp(format, "key"))
        return !kind || x509 ? NULL : ":crt and :key are only for x509 secrets";
    if (format[0])
        return !x509 ? NULL : ":hex and :base64 do not apply to x509 secrets (use :crt or :key)";
    if (text && kind && !strcmp(kind, "binary"))
        return "a binary secret needs :hex or :base64 here (raw bytes only in injection files)";
    return NULL;
}

/* Every reference of s must name a secret of secrets (the normal form's list) with a format its
 * kind allows in this context. */
static int check_refs(struct pc *c, const char *path, const char *s, const json_t *session, bool text)
{
    struct cas_secret_ref ref;
    size_t pos = 0;
    int ret;
    char msg[300];
    while ((ret = cas_ref_next(s, strlen(s), &pos, &ref, msg, sizeof(msg))) == 1) {
        const json_t *def = cas_session_secret(session, ref.name);
        if (!def)
            return bad(c, path, "$$CAS::%s%s%s$$: no secret '%s' in this session", ref.name, ref.format[0] ? ":" : "",
                       ref.format, ref.name);
        const char *problem = cas_ref_format_problem(json_string_value(json_object_get(def, "kind")), ref.format, text);
        if (problem)
            return bad(c, path, "$$CAS::%s%s%s$$: %s", ref.name, ref.format[0] ? ":" : "", ref.format, problem);
    }
    return ret < 0 ? bad(c, path, "%s", msg) : 0;
}

/* ---- top level -------------------------------------------------------------------------------- */

static int parse_access(struct pc *c, const json_t *doc, json_t *norm)
{
    static const char *const fields[] = {"read", "update", NULL};
    static const char *const lists[] = {"read", "update"};
    const json_t *ap = field(doc, "access_policy");
    json_t *out = json_object();
    int ret = 0;
    json_object_set_new(norm, "access_policy", out);
    if (ap && (ret = only_fields(c, ap, "access_policy", fields)) < 0)
        return ret;
    for (size_t l = 0; l < 2; l++) {
        const json_t *list = NULL;
        json_t *o = json_array();
        json_object_set_new(out, lists[l], o);
        if (ap && (ret = get_list(c, ap, "access_policy", lists[l], false, CAS_SESSION_MAX_LIST, &list)) < 0)
            return ret;
        if (!list) {
            json_array_append_new(o, json_string("CREATOR"));
            continue;
        }
        char p[PATH_SIZE], hex[65];
        sub(p, "access_policy", lists[l]);
        for (size_t i = 0; i < json_array_size(list); i++) {
            const char *s;
            char pi[PATH_SIZE];
            if ((ret = list_str(c, list, i, p, &s)) < 0)
                return ret;
            idx(pi, p, i);
            if (!strcmp(s, "CREATOR")) {
                json_array_append_new(o, json_string(s));
                continue;
            }
            if (check_hex64(c, pi, s, hex) < 0)
                return bad(c, pi, "'%.80s' is neither CREATOR nor a key hash (64 hex digits)", s);
            json_array_append_new(o, json_string(hex));
        }
    }
    return 0;
}

static int parse_security(struct pc *c, const json_t *doc, json_t *norm)
{
    static const char *const fields[] = {"attestation", NULL};
    static const char *const att_fields[] = {"tolerate", "ignore_advisories", "mode", NULL};
    static const char *const tolerable[] = {"debug-mode",
                                            "outdated-tcb",
                                            "software-hardening-needed",
                                            "hyperthreading",
                                            "insecure-igpu",
                                            "insecure-configuration",
                                            "aepic-leak",
                                            NULL};
    const json_t *sec = field(doc, "security"), *att = NULL, *list = NULL;
    json_t *tolerate = json_array(), *attn = json_object(), *secn = json_object();
    const char *mode;
    int ret;
    json_object_set_new(norm, "security", secn);
    json_object_set_new(secn, "attestation", attn);
    json_object_set_new(attn, "tolerate", tolerate);
    if (sec && (ret = only_fields(c, sec, "security", fields)) < 0)
        return ret;
    att = sec ? field(sec, "attestation") : NULL;
    if (att && (ret = only_fields(c, att, "security.attestation", att_fields)) < 0)
        return ret;
    if (att && (ret = get_str(c, att, "security.attestation", "mode", false, &mode)) < 0)
        return ret;
    if (att && (ret = get_list(c, att, "security.attestation", "tolerate", false, CAS_SESSION_MAX_LIST, &list)) < 0)
        return ret;
    for (size_t i = 0; list && i < json_array_size(list); i++) {
        const char *s;
        char p[PATH_SIZE];
        if ((ret = list_str(c, list, i, "security.attestation.tolerate", &s)) < 0)
            return ret;
        idx(p, "security.attestation.tolerate", i);
        if (!in_list(s, tolerable))
            return bad(c, p,
                       "'%.80s' cannot be tolerated (debug-mode, outdated-tcb, software-hardening-needed, "
                       "hyperthreading, insecure-igpu, insecure-configuration, aepic-leak)",
                       s);
        json_array_append_new(tolerate, json_string(s));
    }
    const json_t *adv = att ? field(att, "ignore_advisories") : NULL;
    if (json_is_string(adv)) {
        if (strcmp(json_string_value(adv), "*"))
            return bad(c, "security.attestation.ignore_advisories", "must be \"*\" or a list of advisory names");
        json_object_set_new(attn, "ignore_advisories", json_string("*"));
        return 0;
    }
    json_t *advn = json_array();
    json_object_set_new(attn, "ignore_advisories", advn);
    if (adv && !json_is_array(adv))
        return bad(c, "security.attestation.ignore_advisories", "must be \"*\" or a list of advisory names");
    if (adv &&
        (ret = get_list(c, att, "security.attestation", "ignore_advisories", false, CAS_SESSION_MAX_LIST, &list)) < 0)
        return ret;
    for (size_t i = 0; adv && i < json_array_size(adv); i++) {
        const char *s;
        char p[PATH_SIZE];
        if ((ret = list_str(c, adv, i, "security.attestation.ignore_advisories", &s)) < 0)
            return ret;
        idx(p, "security.attestation.ignore_advisories", i);
        if (!s[0] || strlen(s) > 128)
            return bad(c, p, "an advisory name is 1..128 characters");
        json_array_append_new(advn, json_string(s));
    }
    return 0;
}

/* ---- secrets ---------------------------------------------------------------------------------- */

static int parse_secret_value(struct pc *c, const char *path, const char *kind, const char *v, json_int_t *size,
                              json_t *out)
{
    size_t n = strlen(v), bytes = n;
    if (!strcmp(kind, "ascii")) {
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)v[i];
            if ((ch < 0x20 || ch > 0x7e) && ch != '\t' && ch != '\n' && ch != '\r')
                return bad(c, path, "an ascii value is printable ASCII, tab and newline (use kind binary)");
        }
        json_object_set_new(out, "value", json_string(v));
    } else if (!strcmp(kind, "hex")) {
        if (n % 2 || strspn(v, "0123456789abcdefABCDEF") != n)
            return bad(c, path, "not hex digits (an even number of 0-9 a-f)");
        char *lower = strdup(v);
        if (!lower)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++)
            if (lower[i] >= 'A' && lower[i] <= 'F')
                lower[i] = (char)(lower[i] - 'A' + 'a');
        json_object_set_new(out, "value", json_string(lower));
        custos_wipe(lower, n);
        free(lower);
        bytes = n / 2;
    } else {
        uint8_t *raw = NULL;
        if (custos_base64_decode(v, &raw, &bytes) < 0)
            return bad(c, path, "not base64 (a binary value is given in strict base64, with padding)");
        custos_wipe(raw, bytes);
        free(raw);
        json_object_set_new(out, "value", json_string(v));
    }
    if (bytes < 1 || bytes > CAS_SESSION_MAX_SECRET_SIZE)
        return bad(c, path, "must hold 1..%d bytes (it holds %zu)", CAS_SESSION_MAX_SECRET_SIZE, bytes);
    if (*size >= 0 && (size_t)*size != bytes)
        return bad(c, path, "holds %zu bytes, but size says %lld", bytes, (long long)*size);
    *size = (json_int_t)bytes;
    return 0;
}

static int parse_import(struct pc *c, const json_t *s, const char *path, const char *session_name, json_t *out)
{
    static const char *const fields[] = {"session", "secret", NULL};
    static const char *const excluded[] = {"kind", "size", "value", "issuer", "common_name", "export", NULL};
    const char *from, *secret;
    char p[PATH_SIZE], pi[PATH_SIZE];
    int ret;
    for (size_t i = 0; excluded[i]; i++) {
        if (field(s, excluded[i])) {
            sub(p, path, excluded[i]);
            return bad(c, p, "not with import (an imported secret is defined by the session it comes from)");
        }
    }
    sub(pi, path, "import");
    const json_t *imp = field(s, "import");
    if ((ret = only_fields(c, imp, pi, fields)) < 0 || (ret = get_str(c, imp, pi, "session", true, &from)) < 0 ||
        (ret = get_str(c, imp, pi, "secret", true, &secret)) < 0)
        return ret;
    sub(p, pi, "session");
    if ((ret = check_name(c, p, from)) < 0)
        return ret;
    if (!strcmp(from, session_name))
        return bad(c, p, "a session cannot import from itself");
    sub(p, pi, "secret");
    if ((ret = check_name(c, p, secret)) < 0)
        return ret;
    json_object_set_new(out, "import", json_pack("{s:s, s:s}", "session", from, "secret", secret));
    return 0;
}

static int parse_secret(struct pc *c, const json_t *s, const char *path, const char *session_name, json_t *out)
{
    static const char *const fields[] = {"name",        "kind",   "size",   "value", "issuer",
                                         "common_name", "export", "import", NULL};
    static const char *const kinds[] = {"ascii", "binary", "hex", "key", "x509", NULL};
    const char *name, *kind = "ascii", *issuer, *cn;
    char p[PATH_SIZE];
    int ret;
    if ((ret = only_fields(c, s, path, fields)) < 0 || (ret = get_str(c, s, path, "name", true, &name)) < 0)
        return ret;
    sub(p, path, "name");
    if ((ret = check_name(c, p, name)) < 0)
        return ret;
    json_object_set_new(out, "name", json_string(name));
    if (field(s, "import"))
        return parse_import(c, s, path, session_name, out);

    if ((ret = get_str(c, s, path, "kind", false, &kind)) < 0)
        return ret;
    sub(p, path, "kind");
    if (!kind)
        kind = "ascii";
    else if (!in_list(kind, kinds))
        return bad(c, p, "'%.40s' is not a kind (ascii, binary, hex, key, x509)", kind);
    json_object_set_new(out, "kind", json_string(kind));
    bool sized = strcmp(kind, "key") && strcmp(kind, "x509");

    json_int_t size = -1;
    const json_t *sz = field(s, "size");
    sub(p, path, "size");
    if (sz && !sized)
        return bad(c, p, "not for %s secrets", kind);
    if (sz && !json_is_integer(sz))
        return bad(c, p, "must be an integer");
    if (sz && (json_integer_value(sz) < 1 || json_integer_value(sz) > CAS_SESSION_MAX_SECRET_SIZE))
        return bad(c, p, "must be 1..%d", CAS_SESSION_MAX_SECRET_SIZE);
    if (sz)
        size = json_integer_value(sz);

    const char *value;
    if ((ret = get_str(c, s, path, "value", false, &value)) < 0)
        return ret;
    sub(p, path, "value");
    if (value && !sized)
        return bad(c, p, "not for %s secrets (they are generated)", kind);
    if (value && (ret = parse_secret_value(c, p, kind, value, &size, out)) < 0)
        return ret;
    if (sized)
        json_object_set_new(out, "size", json_integer(size < 0 ? 32 : size));

    bool x509 = !strcmp(kind, "x509");
    if ((ret = get_str(c, s, path, "issuer", false, &issuer)) < 0 ||
        (ret = get_str(c, s, path, "common_name", false, &cn)) < 0)
        return ret;
    sub(p, path, "issuer");
    if (issuer && !x509)
        return bad(c, p, "only x509 secrets have an issuer");
    if (issuer && (ret = check_name(c, p, issuer)) < 0)
        return ret;
    if (issuer)
        json_object_set_new(out, "issuer", json_string(issuer));
    sub(p, path, "common_name");
    if (cn && !x509)
        return bad(c, p, "only x509 secrets have a common_name");
    if (cn && (!cn[0] || strlen(cn) > 64))
        return bad(c, p, "must be 1..64 characters");
    if (x509)
        json_object_set_new(out, "common_name", json_string(cn ? cn : name));

    const json_t *exp = field(s, "export");
    sub(p, path, "export");
    if (json_is_string(exp)) {
        if (strcmp(json_string_value(exp), "*"))
            return bad(c, p, "must be \"*\" or a list of session names");
        json_object_set_new(out, "export", json_string("*"));
    } else if (exp) {
        const json_t *list;
        if (get_list(c, s, path, "export", false, CAS_SESSION_MAX_LIST, &list) < 0)
            return bad(c, p, "must be \"*\" or a list of at most %d session names", CAS_SESSION_MAX_LIST);
        json_t *o = json_array();
        json_object_set_new(out, "export", o);
        for (size_t i = 0; i < json_array_size(list); i++) {
            const char *to;
            char pe[PATH_SIZE];
            idx(pe, p, i);
            if ((ret = list_str(c, list, i, p, &to)) < 0 || (ret = check_name(c, pe, to)) < 0)
                return ret;
            json_array_append_new(o, json_string(to));
        }
    }
    return 0;
}

/* Issuers: each names another x509 secret of the session, and no chain loops. */
static int check_issuers(struct pc *c, const json_t *norm)
{
    const json_t *secrets = json_object_get(norm, "secrets");
    size_t count = json_array_size(secrets);
    for (size_t i = 0; i < count; i++) {
        const json_t *s = json_array_get(secrets, i);
        const char *issuer = json_string_value(json_object_get(s, "issuer"));
        char p[PATH_SIZE];
        snprintf(p, sizeof(p), "secrets[%zu].issuer", i);
        if (!issuer)
            continue;
        const json_t *is = cas_session_secret(norm, issuer);
        if (!is)
            return bad(c, p, "no secret '%s' in this session", issuer);
        if (strcmp(json_string_value(json_object_get(is, "kind")) ?: "", "x509"))
            return bad(c, p, "'%s' is not an x509 secret of this session", issuer);
        /* Follow the chain: more steps than secrets means it loops. */
        const json_t *at = s;
        for (size_t steps = 0; at && json_object_get(at, "issuer"); steps++) {
            if (steps > count)
                return bad(c, p, "the issuer chain of '%s' loops", json_string_value(json_object_get(s, "name")));
            at = cas_session_secret(norm, json_string_value(json_object_get(at, "issuer")));
        }
    }
    return 0;
}

/* ---- images and services ---------------------------------------------------------------------- */

static int parse_image(struct pc *c, const json_t *im, const char *path, const json_t *norm, json_t *out)
{
    static const char *const fields[] = {"name", "injection_files", NULL};
    static const char *const file_fields[] = {"path", "content", NULL};
    const char *name;
    const json_t *files;
    char p[PATH_SIZE], pf[PATH_SIZE], pp[PATH_SIZE];
    int ret;
    if ((ret = only_fields(c, im, path, fields)) < 0 || (ret = get_str(c, im, path, "name", true, &name)) < 0)
        return ret;
    sub(p, path, "name");
    if ((ret = check_name(c, p, name)) < 0)
        return ret;
    json_object_set_new(out, "name", json_string(name));
    json_t *o = json_array();
    json_object_set_new(out, "injection_files", o);
    if ((ret = get_list(c, im, path, "injection_files", false, CAS_SESSION_MAX_FILES, &files)) < 0)
        return ret;
    sub(p, path, "injection_files");
    for (size_t i = 0; files && i < json_array_size(files); i++) {
        const json_t *f = json_array_get(files, i);
        const char *fpath, *content;
        idx(pf, p, i);
        if ((ret = only_fields(c, f, pf, file_fields)) < 0 || (ret = get_str(c, f, pf, "path", true, &fpath)) < 0 ||
            (ret = get_str(c, f, pf, "content", true, &content)) < 0)
            return ret;
        sub(pp, pf, "path");
        if ((ret = check_abs_path(c, pp, fpath, true)) < 0)
            return ret;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(o, j), "path")), fpath))
                return bad(c, pp, "'%.130s' is injected twice", fpath);
        sub(pp, pf, "content");
        if ((ret = check_refs(c, pp, content, norm, false)) < 0)
            return ret;
        json_array_append_new(o, json_pack("{s:s, s:s}", "path", fpath, "content", content));
    }
    return 0;
}

/* "@@N" with N = 1..63 written without leading zeros: N, else 0 (any other word). */
static long at_word(const char *w)
{
    if (strncmp(w, "@@", 2) || w[2] < '1' || w[2] > '9' || strlen(w) > 4 ||
        strspn(w + 2, "0123456789") != strlen(w + 2))
        return 0;
    long n = strtol(w + 2, NULL, 10);
    return n <= 63 ? n : 0;
}

static int parse_command(struct pc *c, const json_t *sv, const char *path, const json_t *norm, json_t *out)
{
    char p[PATH_SIZE], pw[PATH_SIZE];
    const json_t *cmd = field(sv, "command");
    json_t *words = json_array();
    int ret;
    json_object_set_new(out, "command", words);
    sub(p, path, "command");
    if (!cmd)
        return bad(c, p, "missing");
    if (json_is_string(cmd)) {
        const char *s = json_string_value(cmd);
        while (*s) {
            size_t n = strcspn(s, " ");
            if (n) {
                if (json_array_size(words) >= CAS_SESSION_MAX_WORDS)
                    return bad(c, p, "at most %d words", CAS_SESSION_MAX_WORDS);
                json_array_append_new(words, json_stringn(s, n));
            }
            s += n + (s[n] == ' ');
        }
    } else if (json_is_array(cmd)) {
        if (json_array_size(cmd) > CAS_SESSION_MAX_WORDS)
            return bad(c, p, "at most %d words", CAS_SESSION_MAX_WORDS);
        for (size_t i = 0; i < json_array_size(cmd); i++) {
            const char *w;
            if ((ret = list_str(c, cmd, i, p, &w)) < 0)
                return ret;
            json_array_append_new(words, json_string(w));
        }
    } else {
        return bad(c, p, "must be a string or a list of words");
    }
    size_t count = json_array_size(words);
    if (!count || !json_string_value(json_array_get(words, 0))[0])
        return bad(c, p, "has no program (word 0)");
    for (size_t i = 0; i < count; i++) {
        const char *w = json_string_value(json_array_get(words, i));
        long n = at_word(w);
        idx(pw, p, i);
        if (!strncmp(w, "@@", 2)) {
            if (!n)
                return bad(c, pw, "'%.40s' is not @@N with N = 1..63", w);
            if ((size_t)n != i)
                return bad(c, pw, "'%s' must stand at word %ld (the caller's word N takes the place of @@N)", w, n);
        }
        if ((ret = check_refs(c, pw, w, norm, true)) < 0)
            return ret;
    }
    return 0;
}

static int parse_environment(struct pc *c, const json_t *sv, const char *path, const json_t *norm, json_t *out)
{
    char p[PATH_SIZE], pk[PATH_SIZE];
    const json_t *env = field(sv, "environment");
    json_t *o = json_object();
    const char *key;
    json_t *v;
    int ret;
    json_object_set_new(out, "environment", o);
    sub(p, path, "environment");
    if (!env)
        return 0;
    if ((ret = need_map(c, env, p)) < 0)
        return ret;
    if (json_object_size(env) > CAS_SESSION_MAX_ENV)
        return bad(c, p, "at most %d entries", CAS_SESSION_MAX_ENV);
    json_object_foreach((json_t *)env, key, v) {
        bool pass = !strncmp(key, "@@", 2);
        const char *name = pass ? key + 2 : key;
        sub(pk, p, key);
        if (!env_name_valid(name))
            return bad(c, pk, "'%.130s' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most 255)",
                       name);
        if (!json_is_string(v))
            return bad(c, pk, "must be a string (quote numbers and booleans)");
        const char *val = json_string_value(v);
        if (pass && val[0])
            return bad(c, pk, "a pass-through (@@%s) has the value \"\"", name);
        if (pass ? json_object_get(env, name) != NULL : false)
            return bad(c, pk, "both %s and @@%s are set", name, name);
        if ((ret = check_refs(c, pk, val, norm, true)) < 0)
            return ret;
        json_object_set_new(o, key, json_string(val));
    }
    return 0;
}

static int parse_protected(struct pc *c, const json_t *sv, const char *path, json_t *out)
{
    static const char *const fields[] = {"path", "sha256", NULL};
    const json_t *list, *words = json_object_get(out, "command");
    json_t *o = json_array();
    char p[PATH_SIZE], pf[PATH_SIZE], pp[PATH_SIZE], hex[65];
    int ret;
    json_object_set_new(out, "protected_files", o);
    if ((ret = get_list(c, sv, path, "protected_files", false, CAS_SESSION_MAX_WORDS, &list)) < 0)
        return ret;
    sub(p, path, "protected_files");
    for (size_t i = 0; list && i < json_array_size(list); i++) {
        const json_t *f = json_array_get(list, i);
        const char *fpath, *sha;
        idx(pf, p, i);
        if ((ret = only_fields(c, f, pf, fields)) < 0 || (ret = get_str(c, f, pf, "path", true, &fpath)) < 0 ||
            (ret = get_str(c, f, pf, "sha256", true, &sha)) < 0)
            return ret;
        sub(pp, pf, "path");
        bool found = false;
        for (size_t w = 1; w < json_array_size(words) && !found; w++) {
            const char *word = json_string_value(json_array_get(words, w));
            found = !strcmp(word, fpath) && strncmp(word, "@@", 2) && !strstr(word, "$$CAS::");
        }
        if (!found)
            return bad(c, pp, "'%.130s' is not a literal word of the command (words 1..)", fpath);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(o, j), "path")), fpath))
                return bad(c, pp, "'%.130s' is listed twice", fpath);
        sub(pp, pf, "sha256");
        if ((ret = check_hex64(c, pp, sha, hex)) < 0)
            return ret;
        json_array_append_new(o, json_pack("{s:s, s:s}", "path", fpath, "sha256", hex));
    }
    return 0;
}

static int parse_service(struct pc *c, const json_t *sv, const char *path, const json_t *norm, json_t *out)
{
    static const char *const fields[] = {"name",        "image_name", "mrenclaves",      "platforms", "command",
                                         "environment", "pwd",        "protected_files", NULL};
    const char *name, *image, *pwd;
    const json_t *list;
    char p[PATH_SIZE], pi[PATH_SIZE], hex[65];
    int ret;
    if ((ret = only_fields(c, sv, path, fields)) < 0 || (ret = get_str(c, sv, path, "name", true, &name)) < 0)
        return ret;
    sub(p, path, "name");
    if ((ret = check_name(c, p, name)) < 0)
        return ret;
    json_object_set_new(out, "name", json_string(name));

    if ((ret = get_str(c, sv, path, "image_name", false, &image)) < 0)
        return ret;
    sub(p, path, "image_name");
    if (image && !cas_session_image(norm, image))
        return bad(c, p, "no image '%.130s' in this session's images", image);
    if (image)
        json_object_set_new(out, "image_name", json_string(image));

    if ((ret = get_list(c, sv, path, "mrenclaves", true, CAS_SESSION_MAX_LIST, &list)) < 0)
        return ret;
    sub(p, path, "mrenclaves");
    if (!json_array_size(list))
        return bad(c, p, "must list 1..%d measurements", CAS_SESSION_MAX_LIST);
    json_t *o = json_array();
    json_object_set_new(out, "mrenclaves", o);
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *s;
        idx(pi, p, i);
        if ((ret = list_str(c, list, i, p, &s)) < 0 || (ret = check_hex64(c, pi, s, hex)) < 0)
            return ret;
        json_array_append_new(o, json_string(hex));
    }

    if ((ret = get_list(c, sv, path, "platforms", false, CAS_SESSION_MAX_LIST, &list)) < 0)
        return ret;
    sub(p, path, "platforms");
    if (list && !json_array_size(list))
        return bad(c, p, "must list 1..%d platform IDs (leave it out for every platform this CAS trusts)",
                   CAS_SESSION_MAX_LIST);
    if (list) {
        o = json_array();
        json_object_set_new(out, "platforms", o);
    }
    for (size_t i = 0; list && i < json_array_size(list); i++) {
        const char *s;
        uint8_t pub[CUSTOS_P256_PUB_SIZE];
        char id[CUSTOS_PLATFORM_ID_LEN + 1];
        idx(pi, p, i);
        if ((ret = list_str(c, list, i, p, &s)) < 0)
            return ret;
        if (custos_platform_id_parse(s, pub) < 0)
            return bad(c, pi, "'%.80s' is not a platform ID (%d hex digits, starting 02 or 03)", s,
                       CUSTOS_PLATFORM_ID_LEN);
        custos_platform_id(pub, id);
        json_array_append_new(o, json_string(id));
    }

    if ((ret = parse_command(c, sv, path, norm, out)) < 0 || (ret = parse_environment(c, sv, path, norm, out)) < 0)
        return ret;
    if ((ret = get_str(c, sv, path, "pwd", false, &pwd)) < 0)
        return ret;
    sub(p, path, "pwd");
    if (pwd && (ret = check_abs_path(c, p, pwd, false)) < 0)
        return ret;
    json_object_set_new(out, "pwd", json_string(pwd ? pwd : "/"));
    return parse_protected(c, sv, path, out);
}

/* Parses list `key` of doc with one(), into norm[key]; refuses entries whose name repeats. */
static int parse_list(struct pc *c, const json_t *doc, json_t *norm, const char *key, size_t max,
                      int (*one)(struct pc *, const json_t *, const char *, const json_t *, json_t *),
                      const char *session_name)
{
    const json_t *list;
    json_t *o = json_array();
    int ret;
    json_object_set_new(norm, key, o);
    if ((ret = get_list(c, doc, "", key, false, max, &list)) < 0)
        return ret;
    for (size_t i = 0; list && i < json_array_size(list); i++) {
        char p[PATH_SIZE], pn[PATH_SIZE];
        json_t *e = json_object();
        json_array_append_new(o, e);
        idx(p, key, i);
        ret = one ? one(c, json_array_get(list, i), p, norm, e)
                  : parse_secret(c, json_array_get(list, i), p, session_name, e);
        if (ret < 0)
            return ret;
        const char *name = json_string_value(json_object_get(e, "name"));
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(json_string_value(json_object_get(json_array_get(o, j), "name")), name)) {
                sub(pn, p, "name");
                return bad(c, pn, "duplicate name '%s' (also %s[%zu])", name, key, j);
            }
        }
    }
    return 0;
}

int cas_session_parse(const char *text, size_t size, json_t **out, char *err, size_t err_size)
{
    static const char *const fields[] = {"name",   "version", "predecessor", "access_policy", "security", "services",
                                         "images", "secrets", NULL};
    struct pc c = {err, err_size};
    json_t *doc = NULL, *norm = NULL;
    const char *name, *version, *pred;
    char hex[65], yerr[256];
    int ret;
    *out = NULL;
    if (size > CAS_SESSION_MAX_TEXT)
        return bad(&c, "", "the session text is over %u bytes", CAS_SESSION_MAX_TEXT);
    if (custos_yaml_parse(text, size, &doc, yerr, sizeof(yerr)) < 0)
        return bad(&c, "", "not a YAML document: %s", yerr);
    norm = json_object();
    if (!norm) {
        ret = -ENOMEM;
        goto out;
    }
    if (!json_is_object(doc)) {
        ret = bad(&c, "", "a session is a map (name, version, services, ...)");
        goto out;
    }
    if ((ret = only_fields(&c, doc, "", fields)) < 0 || (ret = get_str(&c, doc, "", "name", true, &name)) < 0 ||
        (ret = check_name(&c, "name", name)) < 0 || (ret = get_str(&c, doc, "", "version", true, &version)) < 0)
        goto out;
    if (strcmp(version, "0.3")) {
        ret = bad(&c, "version", "'%.20s' is not supported (write version: \"0.3\")", version);
        goto out;
    }
    json_object_set_new(norm, "name", json_string(name));
    json_object_set_new(norm, "version", json_string("0.3"));
    if ((ret = get_str(&c, doc, "", "predecessor", false, &pred)) < 0)
        goto out;
    if (pred && (ret = check_hex64(&c, "predecessor", pred, hex)) < 0)
        goto out;
    if (pred)
        json_object_set_new(norm, "predecessor", json_string(hex));
    if ((ret = parse_access(&c, doc, norm)) < 0 || (ret = parse_security(&c, doc, norm)) < 0 ||
        (ret = parse_list(&c, doc, norm, "secrets", CAS_SESSION_MAX_SECRETS, NULL, name)) < 0 ||
        (ret = check_issuers(&c, norm)) < 0 ||
        (ret = parse_list(&c, doc, norm, "images", CAS_SESSION_MAX_IMAGES, parse_image, name)) < 0 ||
        (ret = parse_list(&c, doc, norm, "services", CAS_SESSION_MAX_SERVICES, parse_service, name)) < 0)
        goto out;
    *out = norm;
    norm = NULL;
out:
    json_decref(doc);
    json_decref(norm);
    return ret;
}

/* ---- the normal form's users ------------------------------------------------------------------ */

void cas_session_set_creator(json_t *session, const char *creator)
{
    static const char *const lists[] = {"read", "update"};
    json_t *ap = json_object_get(session, "access_policy");
    for (size_t l = 0; l < 2; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(ap, lists[l]), i, v)
            if (!strcmp(json_string_value(v) ?: "", "CREATOR"))
                json_array_set_new(json_object_get(ap, lists[l]), i, json_string(creator));
    }
}

int cas_session_hash(const json_t *session, char out[65])
{
    uint8_t digest[CUSTOS_SHA256_SIZE];
    char *dump = json_dumps(session, JSON_SORT_KEYS | JSON_COMPACT);
    if (!dump)
        return -ENOMEM;
    size_t n = strlen(dump);
    int ret = custos_sha256(dump, n, digest);
    custos_wipe(dump, n); /* given secret values are part of the normal form */
    free(dump);
    if (ret < 0)
        return ret;
    custos_hex_encode(digest, sizeof(digest), out, false);
    return 0;
}

static const json_t *named(const json_t *list, const char *name)
{
    size_t i;
    json_t *e;
    if (!name)
        return NULL;
    json_array_foreach(list, i, e) {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n && !strcmp(n, name))
            return e;
    }
    return NULL;
}

const json_t *cas_session_service(const json_t *session, const char *name)
{
    return named(json_object_get(session, "services"), name);
}

const json_t *cas_session_image(const json_t *session, const char *name)
{
    return named(json_object_get(session, "images"), name);
}
