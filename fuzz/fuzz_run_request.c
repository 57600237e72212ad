/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the attestation request of cas-run (POST /v1/run's body): the strict JSON
 * parser, then custos_run_request_parse; an accepted request must bind (report data and salt). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    json_t *body = NULL;
    struct custos_run_request rq;
    if (custos_json_parse((const char *)data, size, &body, err, sizeof(err)) < 0)
        return 0;
    int ret = custos_run_request_parse(body, &rq, err, sizeof(err));
    if (ret < 0) {
        if (ret != -EINVAL || !err[0] || !memchr(err, '\0', sizeof(err)))
            abort();
    } else {
        uint8_t salt[32], rd[CUSTOS_REPORT_DATA_SIZE];
        if (rq.argv == NULL || json_array_size(rq.argv) < 1 || rq.file_count > CUSTOS_RUN_MAX_FILES ||
            custos_run_binding(rq.request, salt, rd) < 0)
            abort();
        for (size_t i = 0; i < rq.file_count; i++)
            if (rq.files[i].arg < 1 || rq.files[i].arg >= json_array_size(rq.argv))
                abort();
    }
    json_decref(body);
    return 0;
}
