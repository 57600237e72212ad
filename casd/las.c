/* SPDX-License-Identifier: Apache-2.0 */
/* The real LAS: lasd on its Unix socket. */
#include "casd.h"

static int socket_quote(void *ctx, const uint8_t report_data[CUSTOS_REPORT_DATA_SIZE], struct custos_quote *out,
                        char *err, size_t err_size)
{
    return custos_las_quote(ctx, report_data, out, err, err_size);
}

static int socket_seal_key(void *ctx, const char *label, uint8_t out[32], char *err, size_t err_size)
{
    return custos_las_seal_key(ctx, label, out, err, err_size);
}

const struct cas_las_ops cas_las_socket = {socket_quote, socket_seal_key};
