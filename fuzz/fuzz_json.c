/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the strict JSON parser: refusals explain themselves; accepted documents
 * round-trip through jansson's encoder. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_t *sentinel = (json_t *)(uintptr_t)0x1, *out = sentinel;
    int ret = custos_json_parse((const char *)data, size, &out, err, sizeof(err));
    if (ret < 0) {
        if (out != sentinel || (ret != -EINVAL && ret != -E2BIG))
            abort();
        if (!memchr(err, '\0', sizeof(err)) || !err[0])
            abort();
        return 0;
    }
    if (ret != 0 || !(json_is_object(out) || json_is_array(out)))
        abort();
    char *text = json_dumps(out, JSON_COMPACT);
    json_t *back = NULL;
    if (!text || custos_json_parse(text, strlen(text), &back, err, sizeof(err)) != 0 || !json_equal(out, back))
        abort();
    json_decref(back);
    free(text);
    json_decref(out);
    return 0;
}
