/* SPDX-License-Identifier: Apache-2.0 */
/* TPM 2.0 platform: the machine secret is sealed by the node's TPM (see tpm2_seal.c). */
#include "platform.h"
#include "tpm2_seal.h"

static int tpm2_machine_secret(const struct custos_platform_config *cfg, uint8_t out[CUSTOS_MACHINE_SECRET_SIZE],
                               char *err, size_t err_size)
{
    int ret = custos_mkdirs(cfg->dir, 0700);
    if (ret < 0)
        return ret;
    return custos_tpm2_machine_secret(cfg->dir, cfg->tcti, out, err, err_size);
}

static uint32_t tpm2_tcb(const struct custos_platform_config *cfg)
{
    (void)cfg;
    return 1;
}

const struct custos_platform_backend custos_platform_tpm2 = {
    .name = "tpm2",
    .kind = CUSTOS_PLATFORM_TPM2,
    .protection = "TPM 2.0: the machine secret is sealed by this node's TPM (protects against moving "
                  "data to another machine and against reading the platform directory offline; NOT "
                  "against root on this machine while lasd runs, which can ask lasd for keys)",
    .machine_secret = tpm2_machine_secret,
    .tcb = tpm2_tcb,
};
