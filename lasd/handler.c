/* SPDX-License-Identifier: Apache-2.0 */
/* One lasd request: quote, seal key or info, for the process that sent it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lasd.h"

static size_t error_resp(uint8_t *resp, size_t cap, const char *msg)
{
    size_t n = strlen(msg);
    if (n > cap - 1)
        n = cap - 1;
    resp[0] = 1;
    memcpy(resp + 1, msg, n);
    return 1 + n;
}

static size_t do_quote(const struct custos_platform *platform, const struct las_caller *caller, const uint8_t *data,
                       size_t size, uint8_t *resp, size_t cap)
{
    struct custos_quote q;
    char err[512];
    memset(&q, 0, sizeof(q));
    (void)size; /* checked by custos_las_request_parse */
    if (las_measure(caller, q.measurement, err, sizeof(err)) < 0)
        return error_resp(resp, cap, err);
    memcpy(q.report_data, data, CUSTOS_REPORT_DATA_SIZE);
    q.uid = (uint32_t)caller->uid;
    if (custos_platform_sign_quote(platform, &q) < 0)
        return error_resp(resp, cap, "signing failed");
    resp[0] = 0;
    custos_quote_body(&q, resp + 1);
    memcpy(resp + 1 + CUSTOS_QUOTE_BODY_SIZE, q.sig, q.sig_size);
    return 1 + CUSTOS_QUOTE_BODY_SIZE + q.sig_size;
}

static size_t do_seal_key(const struct custos_platform *platform, const struct las_caller *caller, const uint8_t *label,
                          size_t size, uint8_t *resp, size_t cap)
{
    uint8_t m[CUSTOS_MEASUREMENT_SIZE];
    char err[512];
    if (las_measure(caller, m, err, sizeof(err)) < 0)
        return error_resp(resp, cap, err);
    if (custos_platform_seal_key(platform, label, size, m, (uint32_t)caller->uid, resp + 1) < 0)
        return error_resp(resp, cap, "key derivation failed");
    resp[0] = 0;
    LOG_MODULE_DEBUG(LAS_LOG, "seal key for label '%.*s' handed to pid %d", (int)size, (const char *)label,
                     (int)caller->pid);
    return 1 + CUSTOS_SEAL_KEY_SIZE;
}

static size_t do_info(const struct custos_platform *platform, uint8_t *resp, size_t cap)
{
    int n = snprintf((char *)resp + 1, cap - 1, "{\"platform_id\":\"%s\",\"platform_kind\":\"%s\",\"tcb\":%u}",
                     platform->id, platform->backend->name, platform->tcb);
    resp[0] = 0;
    return 1 + (size_t)n;
}

size_t las_handle(const struct custos_platform *platform, const struct las_caller *caller, const uint8_t *req,
                  size_t req_size, uint8_t *resp, size_t resp_cap)
{
    struct custos_las_request r;
    char err[160];
    if (custos_las_request_parse(req, req_size, &r, err, sizeof(err)) < 0)
        return error_resp(resp, resp_cap, err);
    switch (r.op) {
    case CUSTOS_LAS_OP_QUOTE:
        return do_quote(platform, caller, r.data, r.data_size, resp, resp_cap);
    case CUSTOS_LAS_OP_SEAL_KEY:
        return do_seal_key(platform, caller, r.data, r.data_size, resp, resp_cap);
    default:
        return do_info(platform, resp, resp_cap);
    }
}
