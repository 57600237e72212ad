/* SPDX-License-Identifier: Apache-2.0 */
/* SGX is reserved: this build has no SGX backend, and says so. */
#include <errno.h>
#include <stdio.h>

#include "platform.h"

static int sgx_machine_secret(const struct custos_platform_config *cfg, uint8_t out[CUSTOS_MACHINE_SECRET_SIZE],
                              char *err, size_t err_size)
{
    (void)cfg;
    (void)out;
    snprintf(err, err_size, "platform 'sgx' is not built into this Custos; use --platform sim or tpm2");
    return -ENOTSUP;
}

static uint32_t sgx_tcb(const struct custos_platform_config *cfg)
{
    (void)cfg;
    return 0;
}

const struct custos_platform_backend custos_platform_sgx = {
    .name = "sgx",
    .kind = CUSTOS_PLATFORM_SGX,
    .protection = "not available",
    .machine_secret = sgx_machine_secret,
    .tcb = sgx_tcb,
};
