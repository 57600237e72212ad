/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "custos.h"

void custos_hex_encode(const uint8_t *in, size_t size, char *out, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * size] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int custos_hex_decode(const char *hex, uint8_t *out, size_t out_size)
{
    if (!hex || strlen(hex) != 2 * out_size)
        return -EINVAL;
    for (size_t i = 0; i < out_size; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

uint8_t *custos_put_be(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = bytes; i > 0; i--)
        *p++ = (uint8_t)(v >> (8 * (i - 1)));
    return p;
}

uint64_t custos_get_be(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

char *custos_base64_encode(const uint8_t *in, size_t size)
{
    size_t n = 4 * ((size + 2) / 3) + 1;
    char *out = malloc(n);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, in, (int)size);
    return out;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int custos_base64_decode(const char *in, uint8_t **out, size_t *out_size)
{
    size_t len = in ? strlen(in) : 0;
    if (!in || len % 4 != 0 || len > (1u << 26))
        return -EINVAL;
    uint8_t *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return -ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = pad ? -1 : b64_value(in[i + k]);
            if (v[k] < 0) {
                free(buf);
                return -EINVAL;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* Refuse non-canonical encodings (stray bits under the padding). */
        if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff))) {
            free(buf);
            return -EINVAL;
        }
        buf[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            buf[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            buf[o++] = (uint8_t)w;
    }
    *out = buf;
    *out_size = o;
    return 0;
}
