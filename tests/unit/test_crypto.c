/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for crypto.c and secret.c against published test vectors. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "custos.h"

/* Decodes a hex literal into a fresh buffer (test helper; aborts the test on bad input). */
static uint8_t *unhex(const char *hex, size_t *size)
{
    size_t n = strlen(hex) / 2;
    uint8_t *out = malloc(n ? n : 1);
    assert_non_null(out);
    assert_int_equal(custos_hex_decode(hex, out, n), 0);
    if (size)
        *size = n;
    return out;
}

static void assert_hex(const uint8_t *got, size_t size, const char *want)
{
    char *hex = malloc(2 * size + 1);
    assert_non_null(hex);
    custos_hex_encode(got, size, hex, false);
    assert_string_equal(hex, want);
    free(hex);
}

static void test_sha256_abc(void **state)
{
    (void)state;
    uint8_t d[CUSTOS_SHA256_SIZE];
    assert_int_equal(custos_sha256("abc", 3, d), 0);
    assert_hex(d, sizeof(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(custos_sha256("", 0, d), 0);
    assert_hex(d, sizeof(d), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* RFC 4231 test cases 1 and 2. */
static void test_hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t key[20], mac[CUSTOS_SHA256_SIZE];
    memset(key, 0x0b, sizeof(key));
    assert_int_equal(custos_hmac_sha256(key, sizeof(key), "Hi There", 8, mac), 0);
    assert_hex(mac, sizeof(mac), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    static const char data[] = "what do ya want for nothing?";
    assert_int_equal(custos_hmac_sha256((const uint8_t *)"Jefe", 4, data, strlen(data), mac), 0);
    assert_hex(mac, sizeof(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/* RFC 5869 appendix A, test cases 1-3 (SHA-256). */
static void test_hkdf_rfc5869(void **state)
{
    (void)state;
    uint8_t ikm[80], salt[80], info[80], okm[82];

    memset(ikm, 0x0b, 22);
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    assert_int_equal(custos_hkdf_sha256(ikm, 22, salt, 13, info, 10, okm, 42), 0);
    assert_hex(okm, 42, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");

    for (int i = 0; i < 80; i++) {
        ikm[i] = (uint8_t)i;
        salt[i] = (uint8_t)(0x60 + i);
        info[i] = (uint8_t)(0xb0 + i);
    }
    assert_int_equal(custos_hkdf_sha256(ikm, 80, salt, 80, info, 80, okm, 82), 0);
    assert_hex(okm, 82,
               "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
               "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
               "cc30c58179ec3e87c14c01d5c1f3434f1d87");

    memset(ikm, 0x0b, 22);
    assert_int_equal(custos_hkdf_sha256(ikm, 22, NULL, 0, NULL, 0, okm, 42), 0);
    assert_hex(okm, 42, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

/* The AES-256 cases (13-16) of McGrew & Viega, "The Galois/Counter Mode of Operation". */
static const struct {
    const char *key, *iv, *pt, *aad, *ct, *tag;
} gcm[] = {
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "",
     "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void test_aead_vectors(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof(gcm) / sizeof(gcm[0]); c++) {
        size_t pt_size, aad_size, ct_size, tag_size;
        uint8_t *key = unhex(gcm[c].key, NULL), *iv = unhex(gcm[c].iv, NULL);
        uint8_t *pt = unhex(gcm[c].pt, &pt_size), *aad = unhex(gcm[c].aad, &aad_size);
        uint8_t *ct = unhex(gcm[c].ct, &ct_size), *tag = unhex(gcm[c].tag, &tag_size);
        assert_int_equal(ct_size, pt_size);
        uint8_t *sealed = malloc(pt_size + CUSTOS_AEAD_TAG_SIZE);
        uint8_t *opened = malloc(pt_size + 1);
        assert_non_null(sealed);
        assert_non_null(opened);

        assert_int_equal(custos_aead_seal(key, iv, aad, aad_size, pt, pt_size, sealed), 0);
        assert_memory_equal(sealed, ct, pt_size);
        assert_memory_equal(sealed + pt_size, tag, CUSTOS_AEAD_TAG_SIZE);

        assert_int_equal(custos_aead_open(key, iv, aad, aad_size, sealed, pt_size + CUSTOS_AEAD_TAG_SIZE, opened), 0);
        assert_memory_equal(opened, pt, pt_size);

        /* Every flipped bit of ciphertext or tag is refused. */
        for (size_t i = 0; i < pt_size + CUSTOS_AEAD_TAG_SIZE; i++) {
            for (int bit = 0; bit < 8; bit += 7) {
                sealed[i] ^= (uint8_t)(1u << bit);
                int ret = custos_aead_open(key, iv, aad, aad_size, sealed, pt_size + CUSTOS_AEAD_TAG_SIZE, opened);
                if (ret != -EBADMSG)
                    fail_msg("case %zu: flipped bit %d of byte %zu: got %d", c, bit, i, ret);
                sealed[i] ^= (uint8_t)(1u << bit);
            }
        }
        /* Changed, added or dropped AAD is refused. */
        uint8_t other_aad[24] = {0};
        if (aad_size) {
            memcpy(other_aad, aad, aad_size);
            other_aad[aad_size - 1] ^= 0x80;
            assert_int_equal(custos_aead_open(key, iv, other_aad, aad_size, sealed, pt_size + CUSTOS_AEAD_TAG_SIZE,
                                              opened),
                             -EBADMSG);
            assert_int_equal(custos_aead_open(key, iv, NULL, 0, sealed, pt_size + CUSTOS_AEAD_TAG_SIZE, opened),
                             -EBADMSG);
        } else {
            assert_int_equal(custos_aead_open(key, iv, other_aad, 1, sealed, pt_size + CUSTOS_AEAD_TAG_SIZE, opened),
                             -EBADMSG);
        }
        /* Wrong key or nonce. */
        key[31] ^= 1;
        assert_int_equal(custos_aead_open(key, iv, aad, aad_size, sealed, pt_size + CUSTOS_AEAD_TAG_SIZE, opened),
                         -EBADMSG);
        key[31] ^= 1;
        iv[0] ^= 1;
        assert_int_equal(custos_aead_open(key, iv, aad, aad_size, sealed, pt_size + CUSTOS_AEAD_TAG_SIZE, opened),
                         -EBADMSG);
        iv[0] ^= 1;
        /* Truncated: tag incomplete, or shorter than a tag. */
        if (pt_size)
            assert_int_equal(custos_aead_open(key, iv, aad, aad_size, sealed, pt_size + CUSTOS_AEAD_TAG_SIZE - 1,
                                              opened),
                             -EBADMSG);
        assert_int_equal(custos_aead_open(key, iv, aad, aad_size, sealed, CUSTOS_AEAD_TAG_SIZE - 1, opened), -EBADMSG);
        free(key);
        free(iv);
        free(pt);
        free(aad);
        free(ct);
        free(tag);
        free(sealed);
        free(opened);
    }
}

static void test_aead_failure_does_not_release_plaintext(void **state)
{
    (void)state;
    uint8_t key[32], nonce[12], sealed[64 + 16], opened[64];
    const char msg[64] = "attack at dawn; this plaintext must not leak from a failed open";
    memset(key, 7, sizeof(key));
    memset(nonce, 9, sizeof(nonce));
    assert_int_equal(custos_aead_seal(key, nonce, "hdr", 3, msg, sizeof(msg), sealed), 0);
    sealed[sizeof(sealed) - 1] ^= 1;
    memset(opened, 0, sizeof(opened));
    assert_int_equal(custos_aead_open(key, nonce, "hdr", 3, sealed, sizeof(sealed), opened), -EBADMSG);
    assert_null(memmem(opened, sizeof(opened), "attack", 6));
}

static custos_p256 *key_from_seed(const char *seed)
{
    custos_p256 *k = NULL;
    assert_int_equal(custos_p256_from_seed((const uint8_t *)seed, strlen(seed), &k), 0);
    assert_non_null(k);
    return k;
}

static void test_p256_from_seed_deterministic(void **state)
{
    (void)state;
    uint8_t a1[CUSTOS_P256_PUB_SIZE], a2[CUSTOS_P256_PUB_SIZE], b[CUSTOS_P256_PUB_SIZE];
    custos_p256 *ka1 = key_from_seed("seed A"), *ka2 = key_from_seed("seed A");
    custos_p256 *kb = key_from_seed("seed B");
    assert_int_equal(custos_p256_public(ka1, a1), 0);
    assert_int_equal(custos_p256_public(ka2, a2), 0);
    assert_int_equal(custos_p256_public(kb, b), 0);
    assert_memory_equal(a1, a2, sizeof(a1));
    assert_memory_not_equal(a1, b, sizeof(a1));
    assert_true(a1[0] == 2 || a1[0] == 3);
    assert_true(b[0] == 2 || b[0] == 3);
    /* The same seed signs what the other instance verifies. */
    uint8_t sig[72];
    size_t sig_size = 0;
    assert_int_equal(custos_p256_sign(ka1, "m", 1, sig, &sig_size), 0);
    assert_int_equal(custos_p256_verify(ka2, "m", 1, sig, sig_size), 0);
    custos_p256_free(ka1);
    custos_p256_free(ka2);
    custos_p256_free(kb);
    custos_p256_free(NULL);
}

static void test_p256_sign_verify(void **state)
{
    (void)state;
    static const char msg[] = "the quote body";
    custos_p256 *k = key_from_seed("signer"), *other = key_from_seed("someone else");
    uint8_t pub[CUSTOS_P256_PUB_SIZE], sig[72];
    size_t sig_size = 0;
    assert_int_equal(custos_p256_sign(k, msg, sizeof(msg), sig, &sig_size), 0);
    assert_in_range(sig_size, 8, 72);
    assert_int_equal(sig[0], 0x30); /* DER SEQUENCE */
    assert_int_equal(custos_p256_verify(k, msg, sizeof(msg), sig, sig_size), 0);

    /* A verifier built from the public key alone accepts it too. */
    custos_p256 *pk = NULL;
    assert_int_equal(custos_p256_public(k, pub), 0);
    assert_int_equal(custos_p256_from_public(pub, &pk), 0);
    assert_int_equal(custos_p256_verify(pk, msg, sizeof(msg), sig, sig_size), 0);
    uint8_t pub2[CUSTOS_P256_PUB_SIZE];
    assert_int_equal(custos_p256_public(pk, pub2), 0);
    assert_memory_equal(pub, pub2, sizeof(pub));

    /* Modified message: every byte. */
    char m[sizeof(msg)];
    for (size_t i = 0; i < sizeof(msg); i++) {
        memcpy(m, msg, sizeof(msg));
        m[i] ^= 1;
        assert_int_equal(custos_p256_verify(pk, m, sizeof(m), sig, sig_size), -EBADMSG);
    }
    assert_int_equal(custos_p256_verify(pk, msg, sizeof(msg) - 1, sig, sig_size), -EBADMSG);
    /* Wrong key. */
    assert_int_equal(custos_p256_verify(other, msg, sizeof(msg), sig, sig_size), -EBADMSG);
    /* Modified or truncated signature. */
    for (size_t i = 0; i < sig_size; i++) {
        sig[i] ^= 0x40;
        assert_int_equal(custos_p256_verify(pk, msg, sizeof(msg), sig, sig_size), -EBADMSG);
        sig[i] ^= 0x40;
    }
    assert_int_equal(custos_p256_verify(pk, msg, sizeof(msg), sig, sig_size - 1), -EBADMSG);
    assert_int_equal(custos_p256_verify(pk, msg, sizeof(msg), sig, 0), -EBADMSG);
    custos_p256_free(k);
    custos_p256_free(other);
    custos_p256_free(pk);
}

static void test_p256_from_public_refuses_garbage(void **state)
{
    (void)state;
    uint8_t pub[CUSTOS_P256_PUB_SIZE];
    custos_p256 *k = key_from_seed("valid"), *out = NULL;
    assert_int_equal(custos_p256_public(k, pub), 0);
    custos_p256_free(k);

    uint8_t bad[CUSTOS_P256_PUB_SIZE];
    /* Wrong prefix bytes (uncompressed/hybrid/none). */
    static const uint8_t prefixes[] = {0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0xff};
    for (size_t i = 0; i < sizeof(prefixes); i++) {
        memcpy(bad, pub, sizeof(bad));
        bad[0] = prefixes[i];
        out = NULL;
        assert_int_equal(custos_p256_from_public(bad, &out), -EINVAL);
        assert_null(out);
    }
    /* x >= p: not a field element. */
    memset(bad, 0xff, sizeof(bad));
    bad[0] = 2;
    assert_int_equal(custos_p256_from_public(bad, &out), -EINVAL);
    assert_null(out);
    static const char p_hex[] = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
    assert_int_equal(custos_hex_decode(p_hex, bad + 1, 32), 0);
    bad[0] = 3;
    assert_int_equal(custos_p256_from_public(bad, &out), -EINVAL);
    assert_null(out);
    /* About half of all x are not on the curve: some x in 1..16 must be refused. */
    int refused = 0;
    for (int x = 1; x <= 16; x++) {
        memset(bad, 0, sizeof(bad));
        bad[0] = 2;
        bad[32] = (uint8_t)x;
        out = NULL;
        int ret = custos_p256_from_public(bad, &out);
        if (ret < 0) {
            assert_int_equal(ret, -EINVAL);
            assert_null(out);
            refused++;
        } else {
            custos_p256_free(out);
        }
    }
    assert_true(refused > 0);
}

/* RFC 7748 section 6.1. */
static void test_x25519_rfc7748(void **state)
{
    (void)state;
    uint8_t *a_priv = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", NULL);
    uint8_t *a_pub = unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", NULL);
    uint8_t *b_priv = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", NULL);
    uint8_t *b_pub = unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", NULL);
    static const char shared_hex[] = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    uint8_t s1[32], s2[32];
    assert_int_equal(custos_x25519(a_priv, b_pub, s1), 0);
    assert_hex(s1, 32, shared_hex);
    assert_int_equal(custos_x25519(b_priv, a_pub, s2), 0);
    assert_hex(s2, 32, shared_hex);

    /* The all-zero (low-order) point gives an all-zero secret, which is refused. */
    static const uint8_t zero[32];
    assert_true(custos_x25519(a_priv, zero, s1) < 0);
    /* Another low-order point: u = 1. */
    uint8_t one[32] = {1};
    assert_true(custos_x25519(a_priv, one, s1) < 0);
    free(a_priv);
    free(a_pub);
    free(b_priv);
    free(b_pub);
}

static void test_x25519_keypair(void **state)
{
    (void)state;
    uint8_t a_priv[32], a_pub[32], b_priv[32], b_pub[32], s1[32], s2[32];
    assert_int_equal(custos_x25519_keypair(a_priv, a_pub), 0);
    assert_int_equal(custos_x25519_keypair(b_priv, b_pub), 0);
    assert_memory_not_equal(a_priv, b_priv, 32);
    assert_memory_not_equal(a_pub, b_pub, 32);
    assert_int_equal(custos_x25519(a_priv, b_pub, s1), 0);
    assert_int_equal(custos_x25519(b_priv, a_pub, s2), 0);
    assert_memory_equal(s1, s2, 32);
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[32] = {0}, b[32] = {0};
    assert_int_equal(custos_random(a, sizeof(a)), 0);
    assert_int_equal(custos_random(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
}

static void test_ct_equal(void **state)
{
    (void)state;
    uint8_t a[40], b[40];
    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = b[i] = (uint8_t)(i * 3);
    assert_true(custos_ct_equal(a, b, sizeof(a)));
    assert_true(custos_ct_equal(a, b, 0));
    for (size_t i = 0; i < sizeof(a); i++) {
        b[i] ^= 0x80;
        assert_false(custos_ct_equal(a, b, sizeof(a)));
        assert_true(custos_ct_equal(a, b, i)); /* the prefix before the difference is equal */
        b[i] ^= 0x80;
    }
}

static void test_wipe(void **state)
{
    (void)state;
    uint8_t buf[16];
    memset(buf, 0xa5, sizeof(buf));
    custos_wipe(buf, sizeof(buf));
    static const uint8_t zero[16];
    assert_memory_equal(buf, zero, sizeof(buf));
    custos_wipe(NULL, 10); /* tolerated */
}

/* The contexts kept per thread: threads keyed differently at the same time each get their own
 * answers (HMAC against RFC 4231 case 2, AES-GCM round trips under a per-thread key), and a key
 * is never reused from an earlier call (an empty key after a 20-byte one). */
struct crypto_worker {
    int id;
    int failures;
};

static void *crypto_worker_main(void *arg)
{
    struct crypto_worker *w = arg;
    static const char data[] = "what do ya want for nothing?";
    uint8_t key[32], nonce[12] = {0}, mac[32], want[32], sealed[64 + 16], opened[64], msg[64];
    custos_hex_decode("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want, 32);
    memset(key, w->id + 1, sizeof(key));
    memset(msg, w->id, sizeof(msg));
    for (int i = 0; i < 2000; i++) {
        nonce[0] = (uint8_t)i;
        if (custos_hmac_sha256((const uint8_t *)"Jefe", 4, data, strlen(data), mac) < 0 || memcmp(mac, want, 32))
            w->failures++;
        if (custos_aead_seal(key, nonce, "a", 1, msg, sizeof(msg), sealed) < 0 ||
            custos_aead_open(key, nonce, "a", 1, sealed, sizeof(sealed), opened) < 0 ||
            memcmp(opened, msg, sizeof(msg)))
            w->failures++;
    }
    return NULL;
}

static void test_contexts_per_thread(void **state)
{
    (void)state;
    pthread_t t[4];
    struct crypto_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct crypto_worker){.id = i};
        assert_int_equal(pthread_create(&t[i], NULL, crypto_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    /* HMAC with an empty key (RFC 4231 has none: HMAC-SHA256("", "") is well known) after a keyed call */
    uint8_t k20[20], mac[32];
    memset(k20, 0x0b, sizeof(k20));
    assert_int_equal(custos_hmac_sha256(k20, sizeof(k20), "Hi There", 8, mac), 0);
    assert_int_equal(custos_hmac_sha256(NULL, 0, "", 0, mac), 0);
    assert_hex(mac, sizeof(mac), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    assert_int_equal(custos_crypto_init(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_abc),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_aead_vectors),
        cmocka_unit_test(test_aead_failure_does_not_release_plaintext),
        cmocka_unit_test(test_p256_from_seed_deterministic),
        cmocka_unit_test(test_p256_sign_verify),
        cmocka_unit_test(test_p256_from_public_refuses_garbage),
        cmocka_unit_test(test_x25519_rfc7748),
        cmocka_unit_test(test_x25519_keypair),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_contexts_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
