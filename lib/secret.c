/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <openssl/crypto.h>

#include "custos.h"

void custos_wipe(void *buf, size_t size)
{
    if (buf && size)
        OPENSSL_cleanse(buf, size);
}

bool custos_ct_equal(const void *a, const void *b, size_t size)
{
    return CRYPTO_memcmp(a, b, size) == 0;
}

void custos_harden_process(void)
{
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
