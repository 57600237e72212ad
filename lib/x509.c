/* SPDX-License-Identifier: Apache-2.0 */
/* TLS identities: key pairs, self-signed certificates and key hashes (SHA-256 of the
 * SubjectPublicKeyInfo), shared by casd and the cas CLI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "custos.h"

int custos_key_generate(EVP_PKEY **out)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k)
        return -EIO;
    *out = k;
    return 0;
}

static char *bio_to_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        memcpy(s, data, (size_t)n);
        s[n] = '\0';
    }
    return s;
}

int custos_key_to_pem(EVP_PKEY *key, char **out)
{
    BIO *bio = BIO_new(BIO_s_secmem());
    int ret = -EIO;
    if (!bio)
        return -ENOMEM;
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
        *out = bio_to_string(bio);
        ret = *out ? 0 : -ENOMEM;
    }
    BIO_free(bio); /* secure memory BIO: cleared on free */
    return ret;
}

int custos_key_from_pem(const char *pem, size_t size, EVP_PKEY **out, char *err, size_t err_size)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)size);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!k) {
        snprintf(err, err_size, "not a PEM private key (expected PKCS#8 '-----BEGIN PRIVATE KEY-----')");
        return -EINVAL;
    }
    int id = EVP_PKEY_get_base_id(k), bits = EVP_PKEY_get_bits(k);
    char group[32] = "";
    size_t glen = 0;
    if (id == EVP_PKEY_EC)
        EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &glen);
    bool ok = (id == EVP_PKEY_RSA && bits >= 2048) || id == EVP_PKEY_ED25519 ||
              (id == EVP_PKEY_EC && (!strcmp(group, "prime256v1") || !strcmp(group, "secp384r1")));
    if (!ok) {
        snprintf(err, err_size, "unsupported identity key (%s, %d bits): use RSA >= 2048, EC P-256/P-384 or Ed25519",
                 id == EVP_PKEY_RSA  ? "RSA"
                 : id == EVP_PKEY_EC ? group
                                     : "other type",
                 bits);
        EVP_PKEY_free(k);
        return -EINVAL;
    }
    *out = k;
    return 0;
}

int custos_key_hash(EVP_PKEY *key, uint8_t out[CUSTOS_SHA256_SIZE])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return -EIO;
    int ret = custos_sha256(der, (size_t)n, out);
    OPENSSL_free(der);
    return ret;
}

/* Key hash of a certificate's public key; frees x. */
static int x509_key_hash(X509 *x, uint8_t out[CUSTOS_SHA256_SIZE])
{
    if (!x)
        return -EINVAL;
    EVP_PKEY *k = X509_get0_pubkey(x);
    int ret = k ? custos_key_hash(k, out) : -EINVAL;
    X509_free(x);
    return ret;
}

int custos_cert_key_hash(const uint8_t *der, size_t size, uint8_t out[CUSTOS_SHA256_SIZE])
{
    const unsigned char *p = der;
    return x509_key_hash(d2i_X509(NULL, &p, (long)size), out);
}

int custos_cert_pem_key_hash(const char *pem, uint8_t out[CUSTOS_SHA256_SIZE])
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return x509_key_hash(x, out);
}

int custos_key_sign(EVP_PKEY *key, const void *data, size_t size, uint8_t *sig, size_t *sig_size)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = 512;
    int ret = -EIO;
    bool no_digest = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;
    if (ctx && EVP_DigestSignInit(ctx, NULL, no_digest ? NULL : EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(ctx, NULL, &n, data, size) == 1 && n <= 512 && EVP_DigestSign(ctx, sig, &n, data, size) == 1) {
        *sig_size = n;
        ret = 0;
    }
    EVP_MD_CTX_free(ctx);
    return ret;
}

int custos_key_spki(EVP_PKEY *key, uint8_t *out, size_t out_cap, size_t *out_size)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return -EIO;
    int ret = (size_t)n <= out_cap ? 0 : -E2BIG;
    if (ret == 0) {
        memcpy(out, der, (size_t)n);
        *out_size = (size_t)n;
    }
    OPENSSL_free(der);
    return ret;
}

int custos_spki_verify(const uint8_t *spki, size_t spki_size, const void *data, size_t size, const uint8_t *sig,
                       size_t sig_size)
{
    const unsigned char *p = spki;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)spki_size);
    if (!key || p != spki + spki_size) {
        EVP_PKEY_free(key);
        return -EBADMSG;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool no_digest = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;
    int ret = ctx && EVP_DigestVerifyInit(ctx, NULL, no_digest ? NULL : EVP_sha256(), NULL, key) == 1 &&
                      EVP_DigestVerify(ctx, sig, sig_size, data, size) == 1
                  ? 0
                  : -EBADMSG;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ret;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -EINVAL;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -EIO;
}

/* Appends "DNS:name" or "IP:addr" for each name; names must be printable without commas. */
static int san_value(const char *const *names, size_t count, char *out, size_t out_size)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const char *s = names[i];
        if (!*s || strpbrk(s, ",\n\r") || strlen(s) > 253)
            return -EINVAL;
        ASN1_OCTET_STRING *ip_addr = a2i_IPADDRESS(s);
        bool ip = ip_addr != NULL;
        ASN1_OCTET_STRING_free(ip_addr);
        int w = snprintf(out + n, out_size - n, "%s%s:%s", n ? "," : "", ip ? "IP" : "DNS", s);
        if (w < 0 || (size_t)w >= out_size - n)
            return -E2BIG;
        n += (size_t)w;
    }
    return 0;
}

int custos_cert_self_signed(EVP_PKEY *key, const char *common_name, const char *const *alt_names, size_t alt_count,
                            char **out_pem)
{
    int ret = -EIO;
    X509 *x = X509_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *san = NULL;
    size_t san_size = alt_count * 260 + 1; /* "DNS:" + 253 + "," per name */
    uint8_t serial[16];
    BIGNUM *bn = NULL;
    if (!x || !bio)
        goto out;
    if (custos_random(serial, sizeof(serial)) < 0)
        goto out;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
        goto out;
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0))
        goto out;
    X509_set_issuer_name(x, name);
    if (alt_count) {
        if (!(san = malloc(san_size))) {
            ret = -ENOMEM;
            goto out;
        }
        if ((ret = san_value(alt_names, alt_count, san, san_size)) < 0 ||
            (ret = add_ext(x, NID_subject_alt_name, san)) < 0)
            goto out;
        ret = -EIO;
    }
    if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0)
        goto out;
    bool no_digest = EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;
    if (!X509_sign(x, key, no_digest ? NULL : EVP_sha256()))
        goto out;
    if (PEM_write_bio_X509(bio, x) != 1)
        goto out;
    *out_pem = bio_to_string(bio);
    ret = *out_pem ? 0 : -ENOMEM;
out:
    free(san);
    BN_free(bn);
    BIO_free(bio);
    X509_free(x);
    return ret;
}
