/* SPDX-License-Identifier: Apache-2.0 */
/* lasd internals: the measurement of local callers and the socket server. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "custos.h"
#include "platform.h"

#define LAS_LOG "las"

/* SHA-256 of the executable that process pid runs, read through /proc/<pid>/exe. Re-checks after
 * hashing that pid is still the same process (start time), so a recycled pid is refused. Results are
 * cached by (device, inode, size, mtime, ctime) of the file. */
int las_measure(pid_t pid, uint8_t out[CUSTOS_MEASUREMENT_SIZE], char *err, size_t err_size);

struct las_server_config {
    const char *socket_path;
    unsigned threads;
    unsigned max_clients;
    unsigned request_timeout_ms;
};

/* Serves until SIGTERM/SIGINT. */
int las_serve(const struct las_server_config *cfg, const struct custos_platform *platform);

/* Handles one request payload from process pid; writes the response payload (status byte first). */
size_t las_handle(const struct custos_platform *platform, pid_t pid, const uint8_t *req, size_t req_size,
                  uint8_t *resp, size_t resp_cap);
