/* SPDX-License-Identifier: Apache-2.0 */
/* Stand-in for builds without tpm2-tss: selecting tpm2 says clearly that it is not built. */
#include <errno.h>
#include <stdio.h>

#include "platform.h"

static int tpm2_machine_secret(const struct custos_platform_config *cfg, uint8_t out[CUSTOS_MACHINE_SECRET_SIZE],
                               char *err, size_t err_size)
{
    (void)cfg;
    (void)out;
    snprintf(err, err_size,
             "platform 'tpm2' is not built into this Custos (tpm2-tss was missing at "
             "build time; install libtss2-dev and rebuild)");
    return -ENOTSUP;
}

static uint32_t tpm2_tcb(const struct custos_platform_config *cfg)
{
    (void)cfg;
    return 0;
}

const struct custos_platform_backend custos_platform_tpm2 = {
    .name = "tpm2",
    .kind = CUSTOS_PLATFORM_TPM2,
    .protection = "not available",
    .machine_secret = tpm2_machine_secret,
    .tcb = tpm2_tcb,
};
