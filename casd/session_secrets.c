/* SPDX-License-Identifier: Apache-2.0 */
/* Session secrets: generation (kept across updates while their definition holds), exports,
 * expansion of $$CAS::NAME[:FORMAT]$$ references and the matching of a launcher's command. No
 * secret value ever reaches an error message; every buffer that held one is wiped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "custos.h"
#include "session.h"

static const char g_alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* size characters of A-Z a-z 0-9: random bytes below 248 (= 4 * 62) taken modulo 62, the others
 * drawn again, so every character is equally likely. */
static int random_ascii(uint8_t *out, size_t size)
{
    uint8_t pool[256];
    size_t have = 0, used = 0;
    int ret = 0;
    _Static_assert(sizeof(g_alnum) - 1 == 62, "alphabet");
    for (size_t i = 0; i < size;) {
        if (used == have) {
            if ((ret = custos_random(pool, sizeof(pool))) < 0)
                break;
            have = sizeof(pool);
            used = 0;
        }
        uint8_t b = pool[used++];
        if (b < 248)
            out[i++] = (uint8_t)g_alnum[b % 62];
    }
    custos_wipe(pool, sizeof(pool));
    return ret;
}

/* The definition's hash: SHA-256 of the secret's normal form without export (an x509's also covers
 * its issuer's def, so a new issuer key re-issues the certificates it signed). */
static int secret_def(const json_t *def, const char *issuer_def, char out[65])
{
    json_t *copy = json_deep_copy(def);
    if (!copy)
        return -ENOMEM;
    json_object_del(copy, "export");
    if (issuer_def)
        json_object_set_new(copy, "issuer_def", json_string(issuer_def));
    int ret = cas_session_hash(copy, out);
    json_decref(copy);
    return ret;
}

/* A given value's bytes: ascii text, hex digits, or base64 for binary. */
static int given_bytes(const char *kind, const char *value, uint8_t **out, size_t *out_size)
{
    size_t n = strlen(value);
    if (!strcmp(kind, "binary"))
        return custos_base64_decode(value, out, out_size);
    uint8_t *b = malloc(n + 1);
    if (!b)
        return -ENOMEM;
    if (!strcmp(kind, "hex")) {
        if (custos_hex_decode(value, b, n / 2) < 0) {
            free(b);
            return -EINVAL;
        }
        n /= 2;
    } else {
        memcpy(b, value, n);
    }
    *out = b;
    *out_size = n;
    return 0;
}

static int put_b64(json_t *entry, const uint8_t *bytes, size_t size)
{
    char *b64 = custos_base64_encode(bytes, size);
    if (!b64)
        return -ENOMEM;
    json_object_set_new(entry, "value", json_string(b64));
    custos_wipe(b64, strlen(b64));
    free(b64);
    return 0;
}

/* ascii, binary, hex: the given value or size random bytes (characters for ascii). */
static int make_bytes(const json_t *def, const char *kind, json_t *entry)
{
    const char *value = json_string_value(json_object_get(def, "value"));
    uint8_t *bytes = NULL;
    size_t size = (size_t)json_integer_value(json_object_get(def, "size"));
    int ret;
    if (value) {
        ret = given_bytes(kind, value, &bytes, &size);
    } else if (size < 1 || size > CAS_SESSION_MAX_SECRET_SIZE) {
        ret = -EINVAL;
    } else {
        bytes = malloc(size);
        ret = !bytes ? -ENOMEM : !strcmp(kind, "ascii") ? random_ascii(bytes, size) : custos_random(bytes, size);
    }
    if (ret == 0)
        ret = put_b64(entry, bytes, size);
    if (bytes)
        custos_wipe(bytes, size);
    free(bytes);
    return ret;
}

static int make_key(json_t *entry)
{
    EVP_PKEY *key = NULL;
    char *pem = NULL;
    int ret = custos_key_generate(&key);
    if (ret == 0)
        ret = custos_key_to_pem(key, &pem);
    if (ret == 0)
        ret = put_b64(entry, (const uint8_t *)pem, strlen(pem));
    if (pem)
        custos_wipe(pem, strlen(pem));
    free(pem);
    EVP_PKEY_free(key);
    return ret;
}

static char *cert_to_pem(X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *s = NULL;
    if (bio && PEM_write_bio_X509(bio, cert) == 1) {
        long n = BIO_get_mem_data(bio, &data);
        s = n > 0 ? strndup(data, (size_t)n) : NULL;
    }
    BIO_free(bio);
    return s;
}

static bool is_issuer(const json_t *session, const char *name)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(session, "secrets"), i, s)
        if (!strcmp(json_string_value(json_object_get(s, "issuer")) ?: "", name))
            return true;
    return false;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? 0 : -EIO;
}

/* An EC P-256 key and a certificate for CN common_name, one year, random serial, signed by the
 * issuer's entry ({key, crt}) or by itself; CA:TRUE when it issues some other secret. */
static int make_x509(const json_t *session, const json_t *def, const json_t *issuer_entry, json_t *entry)
{
    EVP_PKEY *key = NULL, *ikey = NULL;
    X509 *cert = X509_new(), *icert = NULL;
    BIGNUM *serial = NULL;
    char *pem = NULL, *crt = NULL, kerr[160];
    const char *name = json_string_value(json_object_get(def, "name"));
    const char *cn = json_string_value(json_object_get(def, "common_name"));
    int ret = cert ? custos_key_generate(&key) : -ENOMEM;
    if (ret < 0)
        goto out;
    if (issuer_entry) {
        const char *ikey_pem = json_string_value(json_object_get(issuer_entry, "key"));
        const char *icrt_pem = json_string_value(json_object_get(issuer_entry, "crt"));
        BIO *bio = icrt_pem ? BIO_new_mem_buf(icrt_pem, -1) : NULL;
        icert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!ikey_pem || !icert || custos_key_from_pem(ikey_pem, strlen(ikey_pem), &ikey, kerr, sizeof(kerr)) < 0) {
            ret = -EINVAL;
            goto out;
        }
    }
    X509_NAME *subject = X509_NAME_new();
    serial = BN_new();
    ret = -EIO;
    if (!subject || !serial ||
        X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)(cn ? cn : name), -1, -1, 0) !=
            1 ||
        X509_set_subject_name(cert, subject) != 1 ||
        X509_set_issuer_name(cert, icert ? X509_get_subject_name(icert) : subject) != 1) {
        X509_NAME_free(subject);
        goto out;
    }
    X509_NAME_free(subject);
    if (X509_set_version(cert, 2) != 1 || BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_is_zero(serial) || !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) ||
        !X509_gmtime_adj(X509_getm_notBefore(cert), 0) || !X509_gmtime_adj(X509_getm_notAfter(cert), 365L * 86400) ||
        X509_set_pubkey(cert, key) != 1)
        goto out;
    bool ca = is_issuer(session, name);
    if (add_ext(cert, icert ? icert : cert, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE") < 0 ||
        add_ext(cert, icert ? icert : cert, NID_key_usage,
                ca ? "critical,digitalSignature,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment") <
            0 ||
        add_ext(cert, icert ? icert : cert, NID_subject_key_identifier, "hash") < 0 ||
        (icert && add_ext(cert, icert, NID_authority_key_identifier, "keyid:always") < 0))
        goto out;
    if (X509_sign(cert, ikey ? ikey : key, EVP_sha256()) <= 0)
        goto out;
    if ((ret = custos_key_to_pem(key, &pem)) < 0)
        goto out;
    crt = cert_to_pem(cert);
    ret = crt ? 0 : -ENOMEM;
    if (ret == 0) {
        json_object_set_new(entry, "key", json_string(pem));
        json_object_set_new(entry, "crt", json_string(crt));
    }
out:
    if (pem)
        custos_wipe(pem, strlen(pem));
    free(pem);
    free(crt);
    BN_free(serial);
    X509_free(cert);
    X509_free(icert);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ikey);
    return ret;
}

/* Makes (or keeps) the entry of secret i; issuers first (the parse refused loops; depth guards). */
static int secret_entry(const json_t *session, const json_t *old, size_t i, json_t *out, unsigned depth, char *err,
                        size_t err_size)
{
    const json_t *def = json_array_get(json_object_get(session, "secrets"), i);
    const char *name = json_string_value(json_object_get(def, "name"));
    const char *kind = json_string_value(json_object_get(def, "kind"));
    const char *issuer = json_string_value(json_object_get(def, "issuer"));
    const json_t *issuer_entry = NULL;
    char hex[65];
    int ret;
    if (!name || json_object_get(out, name) || json_object_get(def, "import"))
        return 0;
    if (!kind || depth > CAS_SESSION_MAX_SECRETS) {
        snprintf(err, err_size, "secret '%.130s': not a parsed session's secret", name);
        return -EINVAL;
    }
    if (issuer) {
        size_t j;
        json_t *s;
        json_array_foreach(json_object_get(session, "secrets"), j, s)
            if (!strcmp(json_string_value(json_object_get(s, "name")) ?: "", issuer) &&
                (ret = secret_entry(session, old, j, out, depth + 1, err, err_size)) < 0)
                return ret;
        issuer_entry = json_object_get(out, issuer);
        if (!issuer_entry || !json_object_get(issuer_entry, "crt")) {
            snprintf(err, err_size, "secret '%s': issuer '%.130s' is not an x509 secret of this session", name, issuer);
            return -EINVAL;
        }
    }
    if ((ret = secret_def(def, issuer ? json_string_value(json_object_get(issuer_entry, "def")) : NULL, hex)) < 0)
        return ret;
    const json_t *prev = json_object_get(old, name);
    if (prev && !strcmp(json_string_value(json_object_get(prev, "def")) ?: "", hex)) {
        json_t *copy = json_deep_copy(prev);
        if (!copy)
            return -ENOMEM;
        json_object_set_new(copy, "kind", json_string(kind));
        return json_object_set_new(out, name, copy) == 0 ? 0 : -ENOMEM;
    }
    json_t *entry = json_pack("{s:s, s:s}", "def", hex, "kind", kind);
    if (!entry)
        return -ENOMEM;
    if (!strcmp(kind, "key"))
        ret = make_key(entry);
    else if (!strcmp(kind, "x509"))
        ret = make_x509(session, def, issuer_entry, entry);
    else
        ret = make_bytes(def, kind, entry);
    if (ret < 0) {
        json_decref(entry);
        snprintf(err, err_size, "secret '%s': cannot make its value (%s)", name, strerror(-ret));
        return ret;
    }
    return json_object_set_new(out, name, entry) == 0 ? 0 : -ENOMEM;
}

int cas_session_secrets(const json_t *session, const json_t *old, json_t **out, char *err, size_t err_size)
{
    json_t *o = json_object();
    int ret = o ? 0 : -ENOMEM;
    *out = NULL;
    for (size_t i = 0; ret == 0 && i < json_array_size(json_object_get(session, "secrets")); i++)
        ret = secret_entry(session, old, i, o, 0, err, err_size);
    if (ret < 0) {
        json_decref(o);
        return ret;
    }
    *out = o;
    return 0;
}

bool cas_session_exports(const json_t *session, const char *secret, const char *to)
{
    const json_t *def = cas_session_secret(session, secret);
    const json_t *exp = json_object_get(def, "export");
    size_t i;
    json_t *v;
    if (!def || !to || json_object_get(def, "import"))
        return false;
    if (json_is_string(exp))
        return !strcmp(json_string_value(exp), "*");
    json_array_foreach(exp, i, v)
        if (!strcmp(json_string_value(v) ?: "", to))
            return true;
    return false;
}

/* ---- expansion -------------------------------------------------------------------------------- */

/* A growing output that wipes every buffer it leaves behind. */
struct obuf {
    uint8_t *data;
    size_t size, cap;
};

static int obuf_put(struct obuf *b, const void *data, size_t size)
{
    if (size > CAS_SESSION_MAX_EXPAND - b->size)
        return -E2BIG;
    if (b->size + size + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->size + size + 1)
            cap *= 2;
        uint8_t *n = malloc(cap);
        if (!n)
            return -ENOMEM;
        if (b->data) {
            memcpy(n, b->data, b->size);
            custos_wipe(b->data, b->cap);
            free(b->data);
        }
        b->data = n;
        b->cap = cap;
    }
    if (size)
        memcpy(b->data + b->size, data, size);
    b->size += size;
    b->data[b->size] = '\0';
    return 0;
}

static void obuf_free(struct obuf *b)
{
    if (b->data)
        custos_wipe(b->data, b->cap);
    free(b->data);
    b->data = NULL;
}

/* The entry of a referenced secret and its kind: local from src->secrets, imported through
 * src->import. Imported entries without "kind" are x509 when they hold "crt", else binary. */
static const json_t *resolve(const struct cas_secret_source *src, const struct cas_secret_ref *ref, const char **kind,
                             char *err, size_t err_size)
{
    const json_t *def = cas_session_secret(src->session, ref->name), *entry = NULL, *imp;
    char ierr[256] = "";
    if (!def) {
        snprintf(err, err_size, "no secret '%s' in this session", ref->name);
        return NULL;
    }
    if ((imp = json_object_get(def, "import"))) {
        const char *from = json_string_value(json_object_get(imp, "session"));
        const char *secret = json_string_value(json_object_get(imp, "secret"));
        entry = src->import && from && secret ? src->import(src->ctx, from, secret, ierr, sizeof(ierr)) : NULL;
        if (!entry) {
            snprintf(err, err_size, "cannot import %s/%s: %s", from ? from : "?", secret ? secret : "?",
                     ierr[0] ? ierr : "no import source");
            return NULL;
        }
        *kind = json_string_value(json_object_get(entry, "kind"));
        if (!*kind)
            *kind = json_object_get(entry, "crt") ? "x509" : "binary";
        return entry;
    }
    entry = json_object_get(src->secrets, ref->name);
    *kind = json_string_value(json_object_get(def, "kind"));
    if (!entry || !*kind) {
        snprintf(err, err_size, "secret '%s' has no value (secrets not made for this version)", ref->name);
        return NULL;
    }
    return entry;
}

/* Appends the value of one reference. */
static int expand_one(const struct cas_secret_source *src, const struct cas_secret_ref *ref, bool text, struct obuf *b,
                      char *err, size_t err_size)
{
    const char *kind = NULL, *problem;
    char why[300];
    uint8_t *bytes = NULL;
    size_t size = 0;
    int ret;
    const json_t *entry = resolve(src, ref, &kind, why, sizeof(why));
    if (!entry) {
        ret = -EINVAL;
        goto fail;
    }
    if ((problem = cas_ref_format_problem(kind, ref->format, text))) {
        snprintf(why, sizeof(why), "%s", problem);
        ret = -EINVAL;
        goto fail;
    }
    if (!strcmp(kind, "x509")) {
        const char *pem = json_string_value(json_object_get(entry, strcmp(ref->format, "key") ? "crt" : "key"));
        if (!pem) {
            snprintf(why, sizeof(why), "the x509 secret has no %s", strcmp(ref->format, "key") ? "crt" : "key");
            ret = -EINVAL;
            goto fail;
        }
        ret = obuf_put(b, pem, strlen(pem));
        goto done;
    }
    const char *value = json_string_value(json_object_get(entry, "value"));
    if (!value || custos_base64_decode(value, &bytes, &size) < 0) {
        snprintf(why, sizeof(why), "its stored value is not base64");
        ret = -EINVAL;
        goto fail;
    }
    ret = 0;
    if (!strcmp(ref->format, "hex") || (!ref->format[0] && !strcmp(kind, "hex"))) {
        char pair[3];
        for (size_t i = 0; i < size && ret == 0; i++) {
            custos_hex_encode(bytes + i, 1, pair, false);
            ret = obuf_put(b, pair, 2);
        }
        custos_wipe(pair, sizeof(pair));
    } else if (!strcmp(ref->format, "base64")) {
        char *b64 = custos_base64_encode(bytes, size);
        ret = b64 ? obuf_put(b, b64, strlen(b64)) : -ENOMEM;
        if (b64)
            custos_wipe(b64, strlen(b64));
        free(b64);
    } else {
        ret = obuf_put(b, bytes, size);
    }
done:
    custos_wipe(bytes, size);
    free(bytes);
    if (ret == -E2BIG)
        snprintf(err, err_size, "$$CAS::%s%s%s$$: the expansion is over %u bytes", ref->name, ref->format[0] ? ":" : "",
                 ref->format, CAS_SESSION_MAX_EXPAND);
    return ret;
fail:
    snprintf(err, err_size, "$$CAS::%s%s%s$$: %s", ref->name, ref->format[0] ? ":" : "", ref->format, why);
    return ret;
}

int cas_session_expand(const struct cas_secret_source *src, const char *in, size_t size, bool text, uint8_t **out,
                       size_t *out_size, char *err, size_t err_size)
{
    struct obuf b = {0};
    struct cas_secret_ref ref;
    size_t pos = 0, copied = 0;
    int ret, found;
    *out = NULL;
    *out_size = 0;
    if (!in && size) {
        snprintf(err, err_size, "no input");
        return -EINVAL;
    }
    if ((ret = obuf_put(&b, "", 0)) < 0)
        goto fail;
    while ((found = cas_ref_next(in, size, &pos, &ref, err, err_size)) == 1) {
        if ((ret = obuf_put(&b, in + copied, ref.start - copied)) < 0)
            goto too_big;
        size_t before = b.size;
        if ((ret = expand_one(src, &ref, text, &b, err, err_size)) < 0)
            goto fail;
        if (text && memchr(b.data + before, '\0', b.size - before)) {
            snprintf(err, err_size, "$$CAS::%s%s%s$$: its value holds a NUL byte (not allowed here)", ref.name,
                     ref.format[0] ? ":" : "", ref.format);
            ret = -EINVAL;
            goto fail;
        }
        copied = ref.end;
    }
    if (found < 0) {
        ret = found;
        goto fail;
    }
    if ((ret = obuf_put(&b, in + copied, size - copied)) < 0)
        goto too_big;
    if (text && memchr(b.data, '\0', b.size)) {
        snprintf(err, err_size, "the text holds a NUL byte");
        ret = -EINVAL;
        goto fail;
    }
    *out = b.data;
    *out_size = b.size;
    return 0;
too_big:
    if (ret == -E2BIG)
        snprintf(err, err_size, "the expansion is over %u bytes", CAS_SESSION_MAX_EXPAND);
fail:
    obuf_free(&b);
    return ret;
}

/* ---- command matching ------------------------------------------------------------------------- */

/* A word for an error line: at most 80 bytes, unprintable ones shown as '?'. */
static void quote_word(const char *w, char out[84])
{
    size_t n = 0;
    for (; w[n] && n < 80; n++)
        out[n] = (w[n] >= 0x20 && w[n] < 0x7f) ? w[n] : '?';
    if (w[n]) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static void add_line(json_t *errors, const char *line)
{
    if (errors)
        json_array_append_new(errors, json_string(line));
}

bool cas_service_match_command(const json_t *service, const json_t *argv, json_t *errors, json_t **filled)
{
    const json_t *cmd = json_object_get(service, "command");
    size_t want = json_array_size(cmd), got = json_array_size(argv);
    char line[300], a[84], b[84];
    bool ok = true;
    *filled = NULL;
    if (!json_is_array(cmd) || !want) {
        add_line(errors, "The service has no command");
        return false;
    }
    if (!json_is_array(argv) || got != want) {
        snprintf(line, sizeof(line), "Command has %zu words - Expected %zu", got, want);
        add_line(errors, line);
        return false;
    }
    json_t *f = json_array();
    if (!f) {
        add_line(errors, "out of memory");
        return false;
    }
    for (size_t i = 0; i < want; i++) {
        const char *w = json_string_value(json_array_get(cmd, i));
        const char *g = json_string_value(json_array_get(argv, i));
        if (!g) {
            snprintf(line, sizeof(line), "Command word %zu is not a string", i);
            add_line(errors, line);
            ok = false;
            continue;
        }
        bool at = w && !strncmp(w, "@@", 2) && w[2] >= '1' && w[2] <= '9' && (size_t)atoi(w + 2) == i;
        if (i == 0) { /* the program: judged by its measurement, named as the session names it */
            json_array_append_new(f, json_string(w ? w : g));
            continue;
        }
        if (!at && (!w || strcmp(w, g))) {
            quote_word(g, a);
            quote_word(w ? w : "", b);
            snprintf(line, sizeof(line), "Command word %zu is '%s' - Expected '%s'", i, a, b);
            add_line(errors, line);
            ok = false;
            continue;
        }
        json_array_append_new(f, json_string(g));
    }
    if (!ok) {
        json_decref(f);
        return false;
    }
    *filled = f;
    return true;
}
