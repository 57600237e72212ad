/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256, HMAC, HKDF, AES-256-GCM, ECDSA P-256 and X25519 through OpenSSL 3.
 *
 * OpenSSL 3 looks an algorithm up by name (locks, string compares, hash tables) whenever it is
 * given a legacy EVP_sha256()/EVP_aes_256_gcm() or a name: the algorithms of the hot paths (SHA-256,
 * HMAC, AES-256-GCM, HKDF) are fetched once, at first use, and kept until exit. HMAC and AES-GCM
 * contexts are kept per thread and keyed per call; after each call they are keyed again with an
 * all-zero key, so no key schedule or HMAC state of a caller's key stays behind in them. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "custos.h"

struct custos_p256 {
    EVP_PKEY *pkey;
};

/* ---- algorithms fetched once, contexts per thread ----------------------------------------------- */

static struct {
    EVP_MD *sha256;
    EVP_MAC *hmac;
    EVP_CIPHER *gcm;
    EVP_KDF *hkdf;
    pthread_key_t key; /* struct thread_ctx of each thread */
    bool ok;
} g_alg;
static pthread_once_t g_alg_once = PTHREAD_ONCE_INIT;
static const uint8_t g_zero_key[32];

struct thread_ctx {
    EVP_MAC_CTX *hmac;   /* digest set; keyed per call */
    EVP_CIPHER_CTX *gcm; /* cipher set; keyed per call */
};

static void thread_ctx_free(void *p)
{
    struct thread_ctx *t = p;
    if (!t)
        return;
    EVP_MAC_CTX_free(t->hmac);
    EVP_CIPHER_CTX_free(t->gcm);
    free(t);
}

static void alg_fetch(void)
{
    g_alg.sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    g_alg.hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    g_alg.gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    g_alg.hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    g_alg.ok =
        g_alg.sha256 && g_alg.hmac && g_alg.gcm && g_alg.hkdf && pthread_key_create(&g_alg.key, thread_ctx_free) == 0;
}

static bool alg_ready(void)
{
    return pthread_once(&g_alg_once, alg_fetch) == 0 && g_alg.ok;
}

/* This thread's contexts, made at its first call; NULL when out of memory or fetching failed. */
static struct thread_ctx *thread_ctx(void)
{
    if (!alg_ready())
        return NULL;
    struct thread_ctx *t = pthread_getspecific(g_alg.key);
    if (t)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA2-256", 0),
                           OSSL_PARAM_construct_end()};
    t->hmac = EVP_MAC_CTX_new(g_alg.hmac);
    t->gcm = EVP_CIPHER_CTX_new();
    if (!t->hmac || !t->gcm || EVP_MAC_CTX_set_params(t->hmac, params) != 1 ||
        EVP_CipherInit_ex2(t->gcm, g_alg.gcm, NULL, NULL, 1, NULL) != 1 || pthread_setspecific(g_alg.key, t) != 0) {
        thread_ctx_free(t);
        return NULL;
    }
    return t;
}

int custos_crypto_init(void)
{
    return thread_ctx() ? 0 : -EIO;
}

int custos_sha256(const void *data, size_t size, uint8_t out[CUSTOS_SHA256_SIZE])
{
    unsigned int n = 0;
    if (!alg_ready())
        return -EIO;
    return EVP_Digest(data, size, out, &n, g_alg.sha256, NULL) == 1 ? 0 : -EIO;
}

int custos_hmac_sha256(const uint8_t *key, size_t key_size, const void *data, size_t size,
                       uint8_t out[CUSTOS_SHA256_SIZE])
{
    struct thread_ctx *t = thread_ctx();
    size_t n = 0;
    if (!t)
        return -EIO;
    /* a NULL key would mean "the previous key" to EVP_MAC_init: an empty key is meant */
    int ok = EVP_MAC_init(t->hmac, key ? key : g_zero_key, key ? key_size : 0, NULL) == 1 &&
             EVP_MAC_update(t->hmac, data, size) == 1 && EVP_MAC_final(t->hmac, out, &n, CUSTOS_SHA256_SIZE) == 1 &&
             n == CUSTOS_SHA256_SIZE;
    (void)EVP_MAC_init(t->hmac, g_zero_key, sizeof(g_zero_key), NULL); /* drop the key's state */
    return ok ? 0 : -EIO;
}

int custos_hkdf_sha256(const uint8_t *ikm, size_t ikm_size, const uint8_t *salt, size_t salt_size, const uint8_t *info,
                       size_t info_size, uint8_t *out, size_t out_size)
{
    if (!alg_ready())
        return -EIO;
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(g_alg.hkdf);
    if (!ctx)
        return -ENOMEM;
    OSSL_PARAM params[5], *p = params;
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA2-256", 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_size);
    if (salt_size)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_size);
    if (info_size)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_size);
    *p = OSSL_PARAM_construct_end();
    int ret = EVP_KDF_derive(ctx, out, out_size, params) == 1 ? 0 : -EIO;
    EVP_KDF_CTX_free(ctx); /* clears the key it copied */
    return ret;
}

int custos_random(void *out, size_t size)
{
    return RAND_bytes(out, (int)size) == 1 ? 0 : -EIO;
}

/* Keys the thread's AES-256-GCM context (cipher kept, so nothing is fetched or allocated). */
static EVP_CIPHER_CTX *gcm_ctx(const uint8_t key[32], const uint8_t nonce[12], int enc)
{
    struct thread_ctx *t = thread_ctx();
    if (!t || EVP_CipherInit_ex2(t->gcm, NULL, key, nonce, enc, NULL) != 1)
        return NULL;
    return t->gcm;
}

/* Keys the context again with the zero key: the caller's key schedule does not stay in it. */
static void gcm_done(EVP_CIPHER_CTX *ctx)
{
    if (ctx)
        (void)EVP_CipherInit_ex2(ctx, NULL, g_zero_key, NULL, 1, NULL);
}

int custos_aead_seal(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_size, const void *in,
                     size_t size, uint8_t *out)
{
    int ret = -EIO, n = 0;
    if (size > INT_MAX || aad_size > INT_MAX)
        return -E2BIG;
    EVP_CIPHER_CTX *ctx = gcm_ctx(key, nonce, 1);
    if (!ctx)
        goto out;
    if (aad_size && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_size) != 1)
        goto out;
    if (size && EVP_EncryptUpdate(ctx, out, &n, in, (int)size) != 1)
        goto out;
    if (EVP_EncryptFinal_ex(ctx, out + size, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CUSTOS_AEAD_TAG_SIZE, out + size) != 1)
        goto out;
    ret = 0;
out:
    gcm_done(ctx);
    return ret;
}

int custos_aead_open(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_size,
                     const uint8_t *in, size_t in_size, uint8_t *out)
{
    int ret = -EIO, n = 0;
    if (in_size < CUSTOS_AEAD_TAG_SIZE)
        return -EBADMSG;
    size_t size = in_size - CUSTOS_AEAD_TAG_SIZE;
    if (size > INT_MAX || aad_size > INT_MAX)
        return -E2BIG;
    EVP_CIPHER_CTX *ctx = gcm_ctx(key, nonce, 0);
    if (!ctx)
        goto out;
    if (aad_size && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_size) != 1)
        goto out;
    if (size && EVP_DecryptUpdate(ctx, out, &n, in, (int)size) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CUSTOS_AEAD_TAG_SIZE, (void *)(in + size)) != 1)
        goto out;
    if (EVP_DecryptFinal_ex(ctx, out + size, &n) != 1) {
        custos_wipe(out, size);
        ret = -EBADMSG;
        goto out;
    }
    ret = 0;
out:
    gcm_done(ctx);
    return ret;
}

static EVP_PKEY *p256_build(const BIGNUM *priv, const uint8_t *pub, size_t pub_size)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!bld || !ctx)
        goto out;
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_size))
        goto out;
    if (priv && !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!params || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

int custos_p256_from_seed(const uint8_t *seed, size_t seed_size, custos_p256 **out)
{
    int ret = -EIO;
    uint8_t wide[48], pub[CUSTOS_P256_PUB_SIZE];
    BN_CTX *bnctx = BN_CTX_new();
    BIGNUM *d = BN_secure_new(), *n1 = BN_new();
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *point = NULL;
    custos_p256 *key = NULL;
    if (!bnctx || !d || !n1 || !group)
        goto out;
    /* 384 bits of HKDF output reduced mod (n-1), plus 1: a uniform scalar in [1, n-1]. */
    if (custos_hkdf_sha256(seed, seed_size, NULL, 0, (const uint8_t *)"custos-p256-scalar", 18, wide, sizeof(wide)) < 0)
        goto out;
    if (!BN_copy(n1, EC_GROUP_get0_order(group)) || !BN_sub_word(n1, 1) || !BN_bin2bn(wide, sizeof(wide), d) ||
        !BN_mod(d, d, n1, bnctx) || !BN_add_word(d, 1))
        goto out;
    point = EC_POINT_new(group);
    if (!point || !EC_POINT_mul(group, point, d, NULL, NULL, bnctx) ||
        EC_POINT_point2oct(group, point, POINT_CONVERSION_COMPRESSED, pub, sizeof(pub), bnctx) != sizeof(pub))
        goto out;
    key = calloc(1, sizeof(*key));
    if (!key) {
        ret = -ENOMEM;
        goto out;
    }
    key->pkey = p256_build(d, pub, sizeof(pub));
    if (!key->pkey) {
        free(key);
        goto out;
    }
    *out = key;
    ret = 0;
out:
    custos_wipe(wide, sizeof(wide));
    BN_clear_free(d);
    BN_free(n1);
    EC_POINT_free(point);
    EC_GROUP_free(group);
    BN_CTX_free(bnctx);
    return ret;
}

int custos_p256_from_public(const uint8_t pub[CUSTOS_P256_PUB_SIZE], custos_p256 **out)
{
    if (pub[0] != 2 && pub[0] != 3)
        return -EINVAL;
    custos_p256 *key = calloc(1, sizeof(*key));
    if (!key)
        return -ENOMEM;
    key->pkey = p256_build(NULL, pub, CUSTOS_P256_PUB_SIZE);
    if (!key->pkey) {
        free(key);
        return -EINVAL;
    }
    *out = key;
    return 0;
}

int custos_p256_public(const custos_p256 *key, uint8_t out[CUSTOS_P256_PUB_SIZE])
{
    uint8_t buf[80];
    size_t n = 0;
    if (EVP_PKEY_set_utf8_string_param(key->pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed") != 1 ||
        EVP_PKEY_get_octet_string_param(key->pkey, OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof(buf), &n) != 1 ||
        n != CUSTOS_P256_PUB_SIZE)
        return -EIO;
    memcpy(out, buf, n);
    return 0;
}

int custos_p256_sign(const custos_p256 *key, const void *data, size_t size, uint8_t *sig, size_t *sig_size)
{
    int ret = -EIO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = 72;
    if (!ctx)
        return -ENOMEM;
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
        EVP_DigestSign(ctx, sig, &n, data, size) == 1) {
        *sig_size = n;
        ret = 0;
    }
    EVP_MD_CTX_free(ctx);
    return ret;
}

int custos_p256_verify(const custos_p256 *key, const void *data, size_t size, const uint8_t *sig, size_t sig_size)
{
    int ret = -EBADMSG;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
        EVP_DigestVerify(ctx, sig, sig_size, data, size) == 1)
        ret = 0;
    EVP_MD_CTX_free(ctx);
    return ret;
}

/* Platform keys verify many quotes: the last few public keys are kept as built keys (building one
 * from its compressed point costs about as much as a verification). Each caller takes its own
 * reference, so a key replaced in the cache stays valid for a verification under way. */
#define P256_CACHE 16
static struct {
    uint8_t pub[CUSTOS_P256_PUB_SIZE];
    EVP_PKEY *pkey;
} g_p256_cache[P256_CACHE];
static unsigned g_p256_next;
static pthread_mutex_t g_p256_lock = PTHREAD_MUTEX_INITIALIZER;

int custos_p256_verify_public(const uint8_t pub[CUSTOS_P256_PUB_SIZE], const void *data, size_t size,
                              const uint8_t *sig, size_t sig_size)
{
    EVP_PKEY *pkey = NULL;
    pthread_mutex_lock(&g_p256_lock);
    for (unsigned i = 0; i < P256_CACHE && !pkey; i++)
        if (g_p256_cache[i].pkey && memcmp(g_p256_cache[i].pub, pub, CUSTOS_P256_PUB_SIZE) == 0 &&
            EVP_PKEY_up_ref(g_p256_cache[i].pkey) == 1)
            pkey = g_p256_cache[i].pkey;
    pthread_mutex_unlock(&g_p256_lock);
    if (!pkey) {
        if (pub[0] != 2 && pub[0] != 3)
            return -EBADMSG;
        if (!(pkey = p256_build(NULL, pub, CUSTOS_P256_PUB_SIZE)))
            return -EBADMSG;
        pthread_mutex_lock(&g_p256_lock);
        unsigned slot = g_p256_next++ % P256_CACHE;
        EVP_PKEY_free(g_p256_cache[slot].pkey);
        g_p256_cache[slot].pkey = EVP_PKEY_up_ref(pkey) == 1 ? pkey : NULL;
        memcpy(g_p256_cache[slot].pub, pub, CUSTOS_P256_PUB_SIZE);
        pthread_mutex_unlock(&g_p256_lock);
    }
    custos_p256 key = {pkey};
    int ret = custos_p256_verify(&key, data, size, sig, sig_size);
    EVP_PKEY_free(pkey);
    return ret;
}

void custos_p256_free(custos_p256 *key)
{
    if (!key)
        return;
    EVP_PKEY_free(key->pkey);
    free(key);
}

int custos_x25519_keypair(uint8_t priv[32], uint8_t pub[32])
{
    int ret = -EIO;
    EVP_PKEY *pkey = NULL;
    size_t n = 32;
    if (custos_random(priv, 32) < 0)
        return -EIO;
    pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    if (pkey && EVP_PKEY_get_raw_public_key(pkey, pub, &n) == 1 && n == 32)
        ret = 0;
    EVP_PKEY_free(pkey);
    return ret;
}

/* The all-zero output of a low-order peer point is refused (-EINVAL). */
static int x25519_derive(EVP_PKEY *mine, const uint8_t peer_pub[32], uint8_t shared[32])
{
    static const uint8_t zero[32];
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_pub, 32);
    EVP_PKEY_CTX *ctx = mine && peer ? EVP_PKEY_CTX_new(mine, NULL) : NULL;
    size_t n = 32;
    int ret = -EIO;
    if (ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
        EVP_PKEY_derive(ctx, shared, &n) == 1 && n == 32)
        ret = custos_ct_equal(shared, zero, 32) ? -EINVAL : 0;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    return ret;
}

int custos_x25519_ephemeral(const uint8_t peer_pub[32], uint8_t pub[32], uint8_t shared[32])
{
    EVP_PKEY *mine = NULL;
    EVP_PKEY_CTX *gen = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    size_t n = 32;
    int ret = -EIO;
    if (gen && EVP_PKEY_keygen_init(gen) == 1 && EVP_PKEY_keygen(gen, &mine) == 1 &&
        EVP_PKEY_get_raw_public_key(mine, pub, &n) == 1 && n == 32)
        ret = x25519_derive(mine, peer_pub, shared);
    EVP_PKEY_CTX_free(gen);
    EVP_PKEY_free(mine);
    return ret;
}

/* The process's own key for custos_x25519_process: made at first use, never leaves OpenSSL. */
static EVP_PKEY *g_process_x25519;
static uint8_t g_process_x25519_pub[32];
static pthread_once_t g_process_x25519_once = PTHREAD_ONCE_INIT;

static void process_x25519_make(void)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *gen = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    size_t n = 32;
    if (gen && EVP_PKEY_keygen_init(gen) == 1 && EVP_PKEY_keygen(gen, &k) == 1 &&
        EVP_PKEY_get_raw_public_key(k, g_process_x25519_pub, &n) == 1 && n == 32)
        g_process_x25519 = k;
    else
        EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(gen);
}

int custos_x25519_process(const uint8_t peer_pub[32], uint8_t pub[32], uint8_t shared[32])
{
    if (pthread_once(&g_process_x25519_once, process_x25519_make) != 0 || !g_process_x25519)
        return -EIO;
    memcpy(pub, g_process_x25519_pub, 32);
    return x25519_derive(g_process_x25519, peer_pub, shared);
}

int custos_x25519(const uint8_t priv[32], const uint8_t peer_pub[32], uint8_t shared[32])
{
    EVP_PKEY *mine = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    int ret = mine ? x25519_derive(mine, peer_pub, shared) : -EIO;
    EVP_PKEY_free(mine);
    return ret;
}
