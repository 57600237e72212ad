/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the strict TOML subset parser. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_t *out = NULL;
    int ret;

    ret = custos_toml_parse((const char *)data, size, &out, err, sizeof(err));
    if (ret == 0) {
        if (!json_is_object(out))
            abort();
        json_decref(out);
        return 0;
    }
    /* Refusals leave *out untouched and always explain themselves. */
    if (out || (ret != -EINVAL && ret != -E2BIG && ret != -ENOMEM))
        abort();
    if (strncmp(err, "line ", 5) || !memchr(err, '\0', sizeof(err)))
        abort();
    return 0;
}
