/* SPDX-License-Identifier: Apache-2.0 */
/* A bounded byte builder and reader over a caller's buffer, with a sticky failure flag (see
 * custos.h). Integers are big-endian. */
#include <errno.h>
#include <string.h>

#include "custos.h"

void custos_buf_init(struct custos_buf *b, void *storage, size_t size)
{
    b->wdata = storage;
    b->data = storage;
    b->size = storage ? size : 0;
    b->pos = 0;
    b->failed = false;
}

void custos_buf_reader(struct custos_buf *r, const void *data, size_t size)
{
    static const uint8_t empty[1];
    r->wdata = NULL;
    r->data = data ? data : empty; /* never NULL: a get of 0 bytes from no input succeeds */
    r->size = data ? size : 0;
    r->pos = 0;
    r->failed = false;
}

bool custos_buf_ok(const struct custos_buf *b)
{
    return !b->failed;
}

bool custos_buf_done(const struct custos_buf *b)
{
    return !b->failed && b->pos == b->size;
}

size_t custos_buf_len(const struct custos_buf *b)
{
    return b->pos;
}

size_t custos_buf_left(const struct custos_buf *b)
{
    return b->failed ? 0 : b->size - b->pos;
}

/* ---- writer ---------------------------------------------------------------------------------- */

/* The next size bytes of the storage, or NULL (and the flag set) when they do not fit. */
static uint8_t *room(struct custos_buf *b, size_t size)
{
    if (b->failed || !b->wdata || size > b->size - b->pos) {
        b->failed = true;
        return NULL;
    }
    uint8_t *p = b->wdata + b->pos;
    b->pos += size;
    return p;
}

static int put_be(struct custos_buf *b, uint64_t v, unsigned bytes)
{
    uint8_t *p = room(b, bytes);
    if (!p)
        return -ENOBUFS;
    custos_put_be(p, v, bytes);
    return 0;
}

int custos_buf_put_u8(struct custos_buf *b, uint8_t v)
{
    return put_be(b, v, 1);
}

int custos_buf_put_u16(struct custos_buf *b, uint16_t v)
{
    return put_be(b, v, 2);
}

int custos_buf_put_u32(struct custos_buf *b, uint32_t v)
{
    return put_be(b, v, 4);
}

int custos_buf_put_u64(struct custos_buf *b, uint64_t v)
{
    return put_be(b, v, 8);
}

int custos_buf_put(struct custos_buf *b, const void *data, size_t size)
{
    uint8_t *p = room(b, size);
    if (!p)
        return -ENOBUFS;
    if (size)
        memcpy(p, data, size);
    return 0;
}

static int put_bytes(struct custos_buf *b, const void *data, size_t size, unsigned prefix, uint64_t max)
{
    if (size > max || (!b->failed && b->wdata && prefix + size > b->size - b->pos)) {
        b->failed = true; /* nothing written: neither the prefix nor part of the bytes */
        return -ENOBUFS;
    }
    int ret = put_be(b, size, prefix);
    return ret < 0 ? ret : custos_buf_put(b, data, size);
}

int custos_buf_put_bytes_u16(struct custos_buf *b, const void *data, size_t size)
{
    return put_bytes(b, data, size, 2, UINT16_MAX);
}

int custos_buf_put_bytes_u32(struct custos_buf *b, const void *data, size_t size)
{
    return put_bytes(b, data, size, 4, UINT32_MAX);
}

int custos_buf_put_str0(struct custos_buf *b, const char *s)
{
    return custos_buf_put(b, s, strlen(s) + 1);
}

int custos_buf_reserve(struct custos_buf *b, size_t size, uint8_t **out)
{
    *out = room(b, size);
    if (!*out)
        return -ENOBUFS;
    memset(*out, 0, size);
    return 0;
}

/* ---- reader ---------------------------------------------------------------------------------- */

/* The next size bytes of the input, or NULL (and the flag set) when the input is shorter. */
static const uint8_t *take(struct custos_buf *r, size_t size)
{
    if (r->failed || size > r->size - r->pos) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += size;
    return p;
}

static int get_be(struct custos_buf *r, uint64_t *v, unsigned bytes)
{
    const uint8_t *p = take(r, bytes);
    *v = p ? custos_get_be(p, bytes) : 0;
    return p ? 0 : -EBADMSG;
}

int custos_buf_get_u8(struct custos_buf *r, uint8_t *out)
{
    uint64_t v;
    int ret = get_be(r, &v, 1);
    *out = (uint8_t)v;
    return ret;
}

int custos_buf_get_u16(struct custos_buf *r, uint16_t *out)
{
    uint64_t v;
    int ret = get_be(r, &v, 2);
    *out = (uint16_t)v;
    return ret;
}

int custos_buf_get_u32(struct custos_buf *r, uint32_t *out)
{
    uint64_t v;
    int ret = get_be(r, &v, 4);
    *out = (uint32_t)v;
    return ret;
}

int custos_buf_get_u64(struct custos_buf *r, uint64_t *out)
{
    return get_be(r, out, 8);
}

int custos_buf_get(struct custos_buf *r, void *out, size_t size)
{
    const uint8_t *p = take(r, size);
    if (!p) {
        memset(out, 0, size);
        return -EBADMSG;
    }
    if (size)
        memcpy(out, p, size);
    return 0;
}

int custos_buf_get_ptr(struct custos_buf *r, size_t size, const uint8_t **out)
{
    *out = take(r, size);
    return *out ? 0 : -EBADMSG;
}

static int get_bytes(struct custos_buf *r, const uint8_t **out, size_t *out_size, unsigned prefix)
{
    uint64_t n = 0;
    size_t start = r->pos;
    *out = NULL;
    *out_size = 0;
    if (get_be(r, &n, prefix) < 0 || !(*out = take(r, n))) {
        r->pos = start; /* a failed get leaves the cursor where it was */
        return -EBADMSG;
    }
    *out_size = n;
    return 0;
}

int custos_buf_get_bytes_u16(struct custos_buf *r, const uint8_t **out, size_t *out_size)
{
    return get_bytes(r, out, out_size, 2);
}

int custos_buf_get_bytes_u32(struct custos_buf *r, const uint8_t **out, size_t *out_size)
{
    return get_bytes(r, out, out_size, 4);
}

int custos_buf_get_str0(struct custos_buf *r, const char **out)
{
    const uint8_t *nul = r->failed || r->pos == r->size ? NULL : memchr(r->data + r->pos, 0, r->size - r->pos);
    *out = NULL;
    if (!nul) {
        r->failed = true;
        return -EBADMSG;
    }
    *out = (const char *)take(r, (size_t)(nul - (r->data + r->pos)) + 1);
    return 0;
}
