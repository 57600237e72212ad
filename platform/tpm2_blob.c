/* SPDX-License-Identifier: Apache-2.0 */
/* The machine-secret.tpm2 file (format in tpm2_blob.h): built and parsed with the library's bounded
 * byte builder/reader; the TPM structures inside are Tss2_MU-marshalled. */
#include "tpm2_blob.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "custos.h"

static_assert(sizeof(TPM2_BLOB_MAGIC) - 1 == 8, "the magic is 8 bytes on disk");

__attribute__((format(printf, 3, 4))) static int refuse(char *why, size_t why_size, const char *fmt, ...)
{
    va_list ap;
    if (why && why_size) {
        va_start(ap, fmt);
        vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

int tpm2_blob_build(const struct tpm2_blob *blob, uint8_t *out, size_t cap, size_t *out_size)
{
    uint8_t pub[sizeof(TPM2B_PUBLIC)], priv[sizeof(TPM2B_PRIVATE)], *sum = NULL;
    size_t pub_size = 0, priv_size = 0;
    struct custos_buf b;
    int ret = -EINVAL;
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(&blob->pub, pub, sizeof(pub), &pub_size) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PRIVATE_Marshal(&blob->priv, priv, sizeof(priv), &priv_size) != TSS2_RC_SUCCESS ||
        blob->primary_name.size > sizeof(blob->primary_name.name))
        goto out;
    custos_buf_init(&b, out, cap);
    custos_buf_put(&b, TPM2_BLOB_MAGIC, sizeof(TPM2_BLOB_MAGIC) - 1);
    custos_buf_put_u8(&b, blob->srk);
    custos_buf_put_bytes_u16(&b, blob->primary_name.name, blob->primary_name.size);
    custos_buf_put_bytes_u32(&b, pub, pub_size);
    custos_buf_put_bytes_u32(&b, priv, priv_size);
    custos_buf_reserve(&b, TPM2_BLOB_SUM_SIZE, &sum);
    if (!custos_buf_ok(&b)) {
        ret = -ENOBUFS;
        goto out;
    }
    size_t body = custos_buf_len(&b) - TPM2_BLOB_SUM_SIZE;
    if ((ret = custos_sha256(out, body, sum)) < 0)
        goto out;
    *out_size = custos_buf_len(&b);
    ret = 0;
out:
    custos_wipe(priv, sizeof(priv));
    return ret;
}

/* A part of the file: a u16/u32 length within [min, max], then that many bytes. */
static int get_part(struct custos_buf *r, unsigned prefix, size_t min, size_t max, const char *what,
                    const uint8_t **out, size_t *out_size, char *why, size_t why_size)
{
    uint16_t n16 = 0;
    uint32_t n = 0;
    if ((prefix == 2 ? custos_buf_get_u16(r, &n16) : custos_buf_get_u32(r, &n)) < 0)
        return refuse(why, why_size, "truncated before the %s", what);
    if (prefix == 2)
        n = n16;
    if (n < min || n > max)
        return refuse(why, why_size, "bad %s length %u (expected %zu..%zu)", what, (unsigned)n, min, max);
    size_t left = custos_buf_left(r);
    if (custos_buf_get_ptr(r, n, out) < 0)
        return refuse(why, why_size, "truncated %s (%u bytes announced, %zu left)", what, (unsigned)n, left);
    *out_size = n;
    return 0;
}

static int parse(const uint8_t *data, size_t size, struct tpm2_blob *out, char *why, size_t why_size)
{
    struct custos_buf all, r;
    const uint8_t *body = NULL, *sum = NULL, *magic = NULL, *name = NULL, *pub = NULL, *priv = NULL;
    size_t name_size = 0, pub_size = 0, priv_size = 0, used = 0;
    uint8_t md[CUSTOS_SHA256_SIZE];
    int ret;

    static const size_t magic_size = sizeof(TPM2_BLOB_MAGIC) - 1;
    if (size < magic_size || memcmp(data, TPM2_BLOB_MAGIC, magic_size) != 0) {
        size_t family = sizeof(TPM2_BLOB_MAGIC_FAMILY) - 1;
        if (size >= family && memcmp(data, TPM2_BLOB_MAGIC_FAMILY, family) == 0)
            return refuse(why, why_size, "unsupported blob format version; was it written by a newer Custos?");
        return refuse(why, why_size, "not a Custos TPM2 blob: bad magic");
    }
    if (size > TPM2_BLOB_MAX)
        return refuse(why, why_size, "file too large (%zu bytes, at most %zu)", size, (size_t)TPM2_BLOB_MAX);
    if (size < magic_size + 1 + TPM2_BLOB_SUM_SIZE)
        return refuse(why, why_size, "truncated (%zu bytes)", size);

    /* the body, then its checksum */
    custos_buf_reader(&all, data, size);
    custos_buf_get_ptr(&all, size - TPM2_BLOB_SUM_SIZE, &body);
    custos_buf_get_ptr(&all, TPM2_BLOB_SUM_SIZE, &sum);
    assert(custos_buf_done(&all));

    custos_buf_reader(&r, body, size - TPM2_BLOB_SUM_SIZE);
    custos_buf_get_ptr(&r, magic_size, &magic);
    custos_buf_get_u8(&r, &out->srk);
    if (out->srk != TPM2_SRK_ECC_P256 && out->srk != TPM2_SRK_RSA_2048)
        return refuse(why, why_size, "unknown storage key template %u", out->srk);
    if ((ret = get_part(&r, 2, 2, sizeof(out->primary_name.name), "primary key name", &name, &name_size, why,
                        why_size)) < 0 ||
        (ret = get_part(&r, 4, 2, sizeof(TPM2B_PUBLIC), "public part", &pub, &pub_size, why, why_size)) < 0 ||
        (ret = get_part(&r, 4, 2, sizeof(TPM2B_PRIVATE), "private part", &priv, &priv_size, why, why_size)) < 0)
        return ret;
    if (custos_buf_left(&r))
        return refuse(why, why_size, "%zu unexpected bytes after the private part", custos_buf_left(&r));

    out->primary_name.size = (UINT16)name_size;
    memcpy(out->primary_name.name, name, name_size);
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, pub_size, &used, &out->pub) != TSS2_RC_SUCCESS || used != pub_size)
        return refuse(why, why_size, "malformed public part (%zu bytes, %zu of them a TPM2B_PUBLIC)", pub_size, used);
    /* Tss2_MU does not hold the TPM2B's size field to the structure it read; this parser does, so
     * that a blob is accepted only in the one form the serializer writes. */
    if ((size_t)out->pub.size + 2 != pub_size)
        return refuse(why, why_size, "malformed public part: its size field says %u bytes, its structure is %zu",
                      out->pub.size, pub_size - 2);
    used = 0;
    if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(priv, priv_size, &used, &out->priv) != TSS2_RC_SUCCESS || used != priv_size)
        return refuse(why, why_size, "malformed private part (%zu bytes, %zu of them a TPM2B_PRIVATE)", priv_size,
                      used);
    if (custos_sha256(body, custos_buf_len(&r), md) < 0 || !custos_ct_equal(md, sum, sizeof(md)))
        return refuse(why, why_size, "checksum mismatch (the file is damaged)");
    const TPMT_PUBLIC *p = &out->pub.publicArea;
    if (p->type != TPM2_ALG_KEYEDHASH || p->nameAlg != TPM2_ALG_SHA256 ||
        p->parameters.keyedHashDetail.scheme.scheme != TPM2_ALG_NULL)
        return refuse(why, why_size,
                      "the public part is not a sealed-data object (type 0x%04x, name algorithm 0x%04x; expected "
                      "keyed hash 0x%04x with SHA-256 0x%04x and no scheme)",
                      p->type, p->nameAlg, TPM2_ALG_KEYEDHASH, TPM2_ALG_SHA256);
    return 0;
}

int tpm2_blob_parse(const uint8_t *data, size_t size, struct tpm2_blob *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof(*out));
    if (why && why_size)
        why[0] = '\0';
    int ret = data ? parse(data, size, out, why, why_size) : refuse(why, why_size, "no data");
    if (ret < 0)
        custos_wipe(out, sizeof(*out));
    return ret;
}
