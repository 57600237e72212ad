/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256, HMAC, HKDF, AES-256-GCM, ECDSA P-256 and X25519 through OpenSSL 3. */
#include <errno.h>
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

int custos_sha256(const void *data, size_t size, uint8_t out[CUSTOS_SHA256_SIZE])
{
    unsigned int n = 0;
    return EVP_Digest(data, size, out, &n, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

int custos_hmac_sha256(const uint8_t *key, size_t key_size, const void *data, size_t size,
                       uint8_t out[CUSTOS_SHA256_SIZE])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, (int)key_size, data, size, out, &n) ? 0 : -EIO;
}

int custos_hkdf_sha256(const uint8_t *ikm, size_t ikm_size, const uint8_t *salt, size_t salt_size,
                       const uint8_t *info, size_t info_size, uint8_t *out, size_t out_size)
{
    int ret = -EIO;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (!ctx)
        return -ENOMEM;
    if (EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int)ikm_size) != 1)
        goto out;
    if (salt_size && EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)salt_size) != 1)
        goto out;
    if (info_size && EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)info_size) != 1)
        goto out;
    size_t n = out_size;
    if (EVP_PKEY_derive(ctx, out, &n) != 1 || n != out_size)
        goto out;
    ret = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    return ret;
}

int custos_random(void *out, size_t size)
{
    return RAND_bytes(out, (int)size) == 1 ? 0 : -EIO;
}

int custos_aead_seal(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_size,
                     const void *in, size_t size, uint8_t *out)
{
    int ret = -EIO, n = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return -ENOMEM;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1)
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
    EVP_CIPHER_CTX_free(ctx);
    return ret;
}

int custos_aead_open(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_size,
                     const uint8_t *in, size_t in_size, uint8_t *out)
{
    int ret = -EIO, n = 0;
    if (in_size < CUSTOS_AEAD_TAG_SIZE)
        return -EBADMSG;
    size_t size = in_size - CUSTOS_AEAD_TAG_SIZE;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return -ENOMEM;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1)
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
    EVP_CIPHER_CTX_free(ctx);
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
    if (custos_hkdf_sha256(seed, seed_size, NULL, 0, (const uint8_t *)"custos-p256-scalar", 18, wide,
                           sizeof(wide)) < 0)
        goto out;
    if (!BN_copy(n1, EC_GROUP_get0_order(group)) || !BN_sub_word(n1, 1) ||
        !BN_bin2bn(wide, sizeof(wide), d) || !BN_mod(d, d, n1, bnctx) || !BN_add_word(d, 1))
        goto out;
    point = EC_POINT_new(group);
    if (!point || !EC_POINT_mul(group, point, d, NULL, NULL, bnctx) ||
        EC_POINT_point2oct(group, point, POINT_CONVERSION_COMPRESSED, pub, sizeof(pub), bnctx) !=
            sizeof(pub))
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
    if (EVP_PKEY_set_utf8_string_param(key->pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       "compressed") != 1 ||
        EVP_PKEY_get_octet_string_param(key->pkey, OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof(buf), &n) != 1 ||
        n != CUSTOS_P256_PUB_SIZE)
        return -EIO;
    memcpy(out, buf, n);
    return 0;
}

int custos_p256_sign(const custos_p256 *key, const void *data, size_t size, uint8_t *sig,
                     size_t *sig_size)
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

int custos_p256_verify(const custos_p256 *key, const void *data, size_t size, const uint8_t *sig,
                       size_t sig_size)
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

int custos_x25519(const uint8_t priv[32], const uint8_t peer_pub[32], uint8_t shared[32])
{
    int ret = -EIO;
    EVP_PKEY *mine = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_pub, 32);
    EVP_PKEY_CTX *ctx = mine ? EVP_PKEY_CTX_new(mine, NULL) : NULL;
    size_t n = 32;
    if (!ctx || !peer || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, peer) != 1 ||
        EVP_PKEY_derive(ctx, shared, &n) != 1 || n != 32)
        goto out;
    /* Refuse the all-zero output of a low-order peer point. */
    static const uint8_t zero[32];
    if (custos_ct_equal(shared, zero, 32)) {
        ret = -EINVAL;
        goto out;
    }
    ret = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(mine);
    EVP_PKEY_free(peer);
    return ret;
}
