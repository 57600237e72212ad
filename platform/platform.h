/* SPDX-License-Identifier: Apache-2.0 */
/* The platform seam: where the hardware root of trust plugs in. Each backend is one file that fills
 * a struct custos_platform_backend; everything derived from the machine secret is computed here,
 * in platform.c, the same way for every backend. Only lasd links this. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "custos.h"

#define CUSTOS_MACHINE_SECRET_SIZE 32
#define CUSTOS_DEFAULT_PLATFORM_DIR "/var/lib/custos/platform"

struct custos_platform_config {
    const char *dir;  /* platform directory */
    const char *tcti; /* tpm2: TCTI configuration, NULL for the kernel resource manager */
    uint32_t sim_tcb; /* sim: the TCB level to report */
    bool debug;       /* report debug mode in quotes */
};

struct custos_platform_backend {
    const char *name;
    int kind;               /* enum custos_platform_kind */
    const char *protection; /* what it protects against, logged at start */
    /* Produces the 32-byte machine secret; err names the file and the fix. */
    int (*machine_secret)(const struct custos_platform_config *cfg, uint8_t out[CUSTOS_MACHINE_SECRET_SIZE], char *err,
                          size_t err_size);
    uint32_t (*tcb)(const struct custos_platform_config *cfg);
};

extern const struct custos_platform_backend custos_platform_sim;
extern const struct custos_platform_backend custos_platform_tpm2;
extern const struct custos_platform_backend custos_platform_sgx;

struct custos_platform {
    const struct custos_platform_backend *backend;
    uint8_t secret[CUSTOS_MACHINE_SECRET_SIZE]; /* locked in memory, wiped on close */
    custos_p256 *identity;
    uint8_t pub[CUSTOS_P256_PUB_SIZE];
    char id[CUSTOS_PLATFORM_ID_LEN + 1];
    uint32_t tcb;
    bool debug;
};

/* Opens backend `name` ("sim", "tpm2", "sgx"). Caller frees with custos_platform_close. */
int custos_platform_open(const char *name, const struct custos_platform_config *cfg, struct custos_platform **out,
                         char *err, size_t err_size);
void custos_platform_close(struct custos_platform *p);
/* HKDF(machine secret, salt = measurement, info = "custos-seal-v1" || uid (4 bytes BE) || label):
 * a key for this program, run by this user, on this machine. */
int custos_platform_seal_key(const struct custos_platform *p, const uint8_t *label, size_t label_size,
                             const uint8_t measurement[CUSTOS_MEASUREMENT_SIZE], uint32_t uid,
                             uint8_t out[CUSTOS_SEAL_KEY_SIZE]);
/* Fills q->platform_pub/kind/tcb/debug and signs q. */
int custos_platform_sign_quote(const struct custos_platform *p, struct custos_quote *q);
