/* SPDX-License-Identifier: Apache-2.0 */
/* bench/crypto_ops: the cost on this machine of each cryptographic operation in one backup
 * registration, measured with the same library calls Custos makes. Prints "name microseconds". */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "custos.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define MEASURE(name, count, stmt)                                                                                     \
    do {                                                                                                               \
        double t0 = now();                                                                                             \
        for (int i_ = 0; i_ < (count); i_++) {                                                                         \
            stmt;                                                                                                      \
        }                                                                                                              \
        double us = (now() - t0) * 1e6 / (count);                                                                      \
        printf("%-28s %10.2f\n", name, us);                                                                            \
        total += us * mult_##count;                                                                                    \
    } while (0)

int main(void)
{
    uint8_t seed[32] = {7}, msg[151] = {1}, sig[80], priv[32], pub[32], priv2[32], pub2[32], shared[32], key[32];
    uint8_t nonce[12] = {0}, ct[48], pt[32], mac[32];
    size_t sig_size = 0;
    double total = 0;
    custos_p256 *k = NULL;
    custos_p256_from_seed(seed, sizeof(seed), &k);
    custos_p256_sign(k, msg, sizeof(msg), sig, &sig_size);
    custos_x25519_keypair(priv2, pub2);
    /* How often each runs in one registration (backup + primary). */
    enum {
        mult_2000 = 2,
        mult_2001 = 2,
        /* quote + offer signature */ mult_2002 = 2,
        mult_2003 = 2,
        mult_20000 = 6,
        mult_20001 = 2,
        mult_20002 = 4,
        mult_20003 = 4
    };
    MEASURE("ecdsa_p256_sign(quote,offer)", 2000, custos_p256_sign(k, msg, sizeof(msg), sig, &sig_size));
    MEASURE("ecdsa_p256_verify(quote,offer)", 2001, custos_p256_verify(k, msg, sizeof(msg), sig, sig_size));
    MEASURE("x25519_keypair", 2002, custos_x25519_keypair(priv, pub));
    MEASURE("x25519_derive", 2003, custos_x25519(priv, pub2, shared));
    MEASURE("hkdf_sha256", 20000, custos_hkdf_sha256(shared, 32, msg, 32, (const uint8_t *)"x", 1, key, 32));
    MEASURE("aes256gcm_seal_open_32B", 20001,
            (custos_aead_seal(key, nonce, msg, 32, shared, 32, ct), custos_aead_open(key, nonce, msg, 32, ct, 48, pt)));
    MEASURE("hmac_sha256", 20002, custos_hmac_sha256(key, 32, msg, sizeof(msg), mac));
    MEASURE("sha256_151B", 20003, custos_sha256(msg, sizeof(msg), mac));
    printf("%-28s %10.2f\n", "total_per_registration", total);
    custos_p256_free(k);
    return 0;
}
