/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"

void (*custos_json_free_hook)(const void *ptr, size_t size);

/* jansson's free: the whole block is wiped first. The size comes from the allocator
 * (malloc_usable_size), not from a header in front of the block, so a block jansson hands out (a
 * json_dumps string) stays an ordinary malloc block that callers may pass to free(). */
static void wipe_free(void *ptr)
{
    if (!ptr)
        return;
    size_t size = malloc_usable_size(ptr);
    custos_wipe(ptr, size);
    if (custos_json_free_hook)
        custos_json_free_hook(ptr, size);
    free(ptr);
}

static void install(void)
{
    json_set_alloc_funcs(malloc, wipe_free);
}

void custos_json_wipe_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);
}

#define JSON_MAX_SIZE (4u << 20)
#define JSON_MAX_DEPTH 64

static int depth_ok(const json_t *j, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
            if (!depth_ok(v, depth + 1))
                return 0;
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
            if (!depth_ok(v, depth + 1))
                return 0;
    }
    return 1;
}

int custos_json_parse(const char *text, size_t size, json_t **out, char *err, size_t err_size)
{
    json_error_t e;
    if (size > JSON_MAX_SIZE) {
        snprintf(err, err_size, "JSON document too large (%zu bytes, limit %u)", size, JSON_MAX_SIZE);
        return -E2BIG;
    }
    json_t *j = json_loadb(text, size, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        if (strstr(e.text, "JSON_ALLOW_NUL")) /* jansson names its flag; say what is wrong instead */
            snprintf(err, err_size,
                     "invalid JSON at line %d, column %d: a string holds a NUL character (\\u0000), "
                     "which is not allowed",
                     e.line, e.column);
        else
            snprintf(err, err_size, "invalid JSON at line %d, column %d: %s", e.line, e.column, e.text);
        return -EINVAL;
    }
    if (!depth_ok(j, 0)) {
        json_decref(j);
        snprintf(err, err_size, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
        return -EINVAL;
    }
    *out = j;
    return 0;
}

int custos_json_b64_bytes(const json_t *obj, const char *name, uint8_t *out, size_t min, size_t max, size_t *out_size,
                          char *err, size_t err_size)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    const json_t *v = json_object_get(obj, name);
    const char *s = json_string_value(v);
    if (!s || strlen(s) != json_string_length(v)) {
        snprintf(err, err_size, "field \"%s\": %s", name, v ? "not a string" : "missing");
        return -EINVAL;
    }
    int ret = custos_base64_decode(s, &buf, &n);
    if (ret == -ENOMEM) {
        snprintf(err, err_size, "out of memory");
        return ret;
    }
    if (ret < 0) {
        snprintf(err, err_size, "field \"%s\": not base64", name);
        return -EINVAL;
    }
    if (n < min || n > max) {
        if (min == max)
            snprintf(err, err_size, "field \"%s\": %zu bytes, want %zu", name, n, min);
        else
            snprintf(err, err_size, "field \"%s\": %zu bytes, want %zu to %zu", name, n, min, max);
        ret = -EINVAL;
    } else {
        memcpy(out, buf, n);
        if (out_size)
            *out_size = n;
    }
    custos_wipe(buf, n);
    free(buf);
    return ret;
}
