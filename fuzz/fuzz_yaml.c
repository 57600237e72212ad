/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the YAML reader: refusals explain themselves; accepted documents give a
 * tree the strict JSON parser reads back unchanged (no duplicate keys, bounded depth). */
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
    int ret = custos_yaml_parse((const char *)data, size, &out, err, sizeof(err));
    if (ret < 0) {
        if (out != sentinel || (ret != -EINVAL && ret != -E2BIG && ret != -ENOMEM))
            abort();
        if (!memchr(err, '\0', sizeof(err)) || !err[0])
            abort();
        return 0;
    }
    if (ret != 0 || !out || out == sentinel)
        abort();
    if (json_is_object(out) || json_is_array(out)) {
        char *text = json_dumps(out, JSON_COMPACT);
        json_t *back = NULL;
        if (!text || custos_json_parse(text, strlen(text), &back, err, sizeof(err)) != 0 || !json_equal(out, back))
            abort();
        json_decref(back);
        free(text);
    }
    json_decref(out);
    return 0;
}
