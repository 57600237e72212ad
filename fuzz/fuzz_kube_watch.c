/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the watch stream: the bytes arrive in chunks of fuzzer-chosen sizes (as from
 * the network), are split into bounded lines, and each line is parsed as a watch event. Lines longer
 * than the bound are dropped whole; every parsed event has an object; refusals explain themselves. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_line(void *ctx, const char *line, size_t size)
{
    (void)ctx;
    if (size == 0 || size > 2048 || memchr(line, '\n', size) || line[size] != 0)
        abort();
    enum kube_event type;
    json_t *obj = (json_t *)1;
    int code = -1;
    char err[256] = "";
    if (kube_watch_event_parse(line, size, &type, &obj, &code, err, sizeof(err)) < 0) {
        if (obj || !err[0])
            abort();
        return 0;
    }
    if (!json_is_object(obj) || (type != KUBE_ERROR && code != 0))
        abort();
    json_decref(obj);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = data[0] % 64 + 1;
    data++;
    size--;
    struct kube_lines l = {.max = 2048};
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (kube_lines_feed(&l, (const char *)data + off, n, on_line, NULL) < 0)
            abort();
    }
    kube_lines_free(&l);
    return 0;
}
