/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "platform.h"

static const struct custos_platform_backend *const g_backends[] = {
    &custos_platform_sim,
    &custos_platform_tpm2,
    &custos_platform_sgx,
};

int custos_platform_open(const char *name, const struct custos_platform_config *cfg, struct custos_platform **out,
                         char *err, size_t err_size)
{
    const struct custos_platform_backend *b = NULL;
    uint8_t seed[32];
    int ret;
    for (size_t i = 0; i < sizeof(g_backends) / sizeof(g_backends[0]); i++)
        if (!strcmp(g_backends[i]->name, name))
            b = g_backends[i];
    if (!b) {
        snprintf(err, err_size, "unknown platform '%s' (expected sim, tpm2 or sgx)", name);
        return -EINVAL;
    }
    struct custos_platform *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    mlock(p, sizeof(*p));
    p->backend = b;
    if ((ret = b->machine_secret(cfg, p->secret, err, err_size)) < 0)
        goto fail;
    ret = custos_hkdf_sha256(p->secret, sizeof(p->secret), (const uint8_t *)"custos-platform-v1", 18,
                             (const uint8_t *)"identity", 8, seed, sizeof(seed));
    if (ret == 0)
        ret = custos_p256_from_seed(seed, sizeof(seed), &p->identity);
    custos_wipe(seed, sizeof(seed));
    if (ret == 0)
        ret = custos_p256_public(p->identity, p->pub);
    if (ret < 0) {
        snprintf(err, err_size, "cannot derive the platform identity key: %s", strerror(-ret));
        goto fail;
    }
    custos_platform_id(p->pub, p->id);
    p->tcb = b->tcb(cfg);
    p->debug = cfg->debug;
    *out = p;
    return 0;
fail:
    custos_platform_close(p);
    return ret;
}

void custos_platform_close(struct custos_platform *p)
{
    if (!p)
        return;
    custos_p256_free(p->identity);
    custos_wipe(p->secret, sizeof(p->secret));
    munlock(p, sizeof(*p));
    free(p);
}

int custos_platform_seal_key(const struct custos_platform *p, const uint8_t *label, size_t label_size,
                             const uint8_t measurement[CUSTOS_MEASUREMENT_SIZE], uint32_t uid,
                             uint8_t out[CUSTOS_SEAL_KEY_SIZE])
{
    static const char prefix[] = "custos-seal-v1"; /* without its NUL */
    uint8_t info[sizeof(prefix) - 1 + 4 + 64];
    struct custos_buf b;
    if (label_size == 0 || label_size > 64)
        return -EINVAL;
    custos_buf_init(&b, info, sizeof(info));
    custos_buf_put(&b, prefix, sizeof(prefix) - 1);
    custos_buf_put_u32(&b, uid);
    custos_buf_put(&b, label, label_size);
    return custos_hkdf_sha256(p->secret, sizeof(p->secret), measurement, CUSTOS_MEASUREMENT_SIZE, info,
                              custos_buf_len(&b), out, CUSTOS_SEAL_KEY_SIZE);
}

int custos_platform_sign_quote(const struct custos_platform *p, struct custos_quote *q)
{
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE];
    memcpy(q->platform_pub, p->pub, sizeof(p->pub));
    q->kind = (uint8_t)p->backend->kind;
    q->tcb = p->tcb;
    q->debug = p->debug;
    custos_quote_body(q, body);
    return custos_p256_sign(p->identity, body, sizeof(body), q->sig, &q->sig_size);
}
