/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_proto.h"
#include "validate.h"

#define REQUEST_LABEL "custos-backup-request-v1"
#define TRANSCRIPT_LABEL "custos-backup-transcript-v1"
#define WRAP_LABEL "custos-backup-wrap-v1"
#define PROOF_LABEL "custos-backup-proof-v1"

void backup_request_report_data(const uint8_t public_key[32], int64_t created_at, const char *node_name,
                                uint8_t out[CUSTOS_REPORT_DATA_SIZE])
{
    uint8_t buf[sizeof(REQUEST_LABEL) - 1 + 32 + 8 + BACKUP_NODE_MAX];
    size_t n = strnlen(node_name, BACKUP_NODE_MAX);
    struct custos_buf b;
    custos_buf_init(&b, buf, sizeof(buf));
    custos_buf_put(&b, REQUEST_LABEL, sizeof(REQUEST_LABEL) - 1);
    custos_buf_put(&b, public_key, 32);
    custos_buf_put_u64(&b, (uint64_t)created_at);
    custos_buf_put(&b, node_name, n);
    memset(out, 0, CUSTOS_REPORT_DATA_SIZE);
    custos_sha256(buf, custos_buf_len(&b), out); /* cannot overflow: sized above */
}

static json_t *b64(const uint8_t *p, size_t n)
{
    char *s = custos_base64_encode(p, n);
    json_t *j = s ? json_string(s) : NULL;
    free(s);
    return j;
}

/* A base64 field of exactly `size` bytes. */

static int get_b64(const json_t *obj, const char *name, uint8_t *out, size_t size, char *err, size_t err_size)
{
    return custos_json_b64_bytes(obj, name, out, size, size, NULL, err, err_size);
}

static int get_b64_var(const json_t *obj, const char *name, uint8_t *out, size_t cap, size_t *size, char *err,
                       size_t err_size)
{
    return custos_json_b64_bytes(obj, name, out, 1, cap, size, err, err_size);
}

static bool valid_hex64(const char *s)
{
    uint8_t tmp[32];
    return s && custos_hex_decode(s, tmp, sizeof(tmp)) == 0;
}

json_t *backup_request_to_json(const struct backup_request *r)
{
    return json_pack("{s:o, s:o, s:s, s:I}", "quote", custos_quote_to_json(&r->quote), "public_key",
                     b64(r->public_key, 32), "node_name", r->node_name, "created_at", (json_int_t)r->created_at);
}

int backup_request_from_json(const json_t *j, struct backup_request *out, char *err, size_t err_size)
{
    json_t *quote = NULL;
    const char *node = NULL, *pk = NULL;
    json_int_t created = 0;
    json_error_t e;
    struct backup_request r;
    char qerr[256];
    uint8_t rd[CUSTOS_REPORT_DATA_SIZE], h[32];
    memset(&r, 0, sizeof(r));
    if (!json_is_object(j) || json_unpack_ex((json_t *)j, &e, JSON_STRICT, "{s:o, s:s, s:s, s:I}", "quote", &quote,
                                             "public_key", &pk, "node_name", &node, "created_at", &created) < 0) {
        snprintf(err, err_size, "backup request: %s (expected quote, public_key, node_name, created_at)",
                 json_is_object(j) ? e.text : "not a JSON object");
        return -EINVAL;
    }
    if (!cas_node_name_valid(node)) {
        snprintf(err, err_size, "backup request: field 'node_name' must be 1..%d characters of A-Z a-z 0-9 . _ -",
                 BACKUP_NODE_MAX);
        return -EINVAL;
    }
    if (created <= 0) {
        snprintf(err, err_size, "backup request: field 'created_at' must be a positive time");
        return -EINVAL;
    }
    if (get_b64(j, "public_key", r.public_key, 32, err, err_size) < 0)
        return -EINVAL;
    if (custos_quote_from_json(quote, &r.quote, qerr, sizeof(qerr)) < 0) {
        snprintf(err, err_size, "backup request: field 'quote': %s", qerr);
        return -EINVAL;
    }
    strcpy(r.node_name, node);
    r.created_at = created;
    backup_request_report_data(r.public_key, r.created_at, r.node_name, rd);
    if (!custos_ct_equal(rd, r.quote.report_data, sizeof(rd))) {
        snprintf(err, err_size,
                 "backup request: the quote does not bind this request's public key, node name "
                 "and time (a quote taken from another request or node)");
        return -EPERM;
    }
    custos_sha256(r.public_key, 32, h);
    custos_hex_encode(h, 32, r.id, false);
    *out = r;
    return 0;
}

json_t *backup_offer_to_json(const struct backup_offer *o)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "request_id", o->request_id, "primary_platform_id",
                     o->primary_platform_id, "primary_key_hash", o->primary_key_hash, "primary_public_key",
                     b64(o->primary_spki, o->primary_spki_size), "ephemeral_key", b64(o->ephemeral_key, 32), "nonce",
                     b64(o->nonce, 12), "wrapped", b64(o->wrapped, 48), "signature",
                     b64(o->signature, o->signature_size));
}

/* A base64 field of 1..cap bytes. */
int backup_offer_verify(const struct backup_offer *o, const uint8_t transcript[32])
{
    return custos_spki_verify(o->primary_spki, o->primary_spki_size, transcript, 32, o->signature, o->signature_size);
}

int backup_offer_from_json(const json_t *j, struct backup_offer *out, char *err, size_t err_size)
{
    const char *rid = NULL, *pid = NULL, *kh = NULL, *s1, *s2, *s3, *s4, *s5;
    json_error_t e;
    struct backup_offer o;
    uint8_t pub[CUSTOS_P256_PUB_SIZE], h[32], want[32];
    memset(&o, 0, sizeof(o));
    if (!json_is_object(j) ||
        json_unpack_ex((json_t *)j, &e, JSON_STRICT, "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "request_id", &rid,
                       "primary_platform_id", &pid, "primary_key_hash", &kh, "primary_public_key", &s4, "ephemeral_key",
                       &s1, "nonce", &s2, "wrapped", &s3, "signature", &s5) < 0) {
        snprintf(err, err_size, "backup offer: %s", json_is_object(j) ? e.text : "not a JSON object");
        return -EINVAL;
    }
    if (!valid_hex64(rid) || !valid_hex64(kh)) {
        snprintf(err, err_size, "backup offer: fields 'request_id' and 'primary_key_hash' must be 64 hex digits");
        return -EINVAL;
    }
    if (custos_platform_id_parse(pid, pub) < 0) {
        snprintf(err, err_size, "backup offer: field 'primary_platform_id' is not a platform ID");
        return -EINVAL;
    }
    if (get_b64(j, "ephemeral_key", o.ephemeral_key, 32, err, err_size) < 0 ||
        get_b64(j, "nonce", o.nonce, 12, err, err_size) < 0 ||
        get_b64(j, "wrapped", o.wrapped, 48, err, err_size) < 0 ||
        get_b64_var(j, "primary_public_key", o.primary_spki, sizeof(o.primary_spki), &o.primary_spki_size, err,
                    err_size) < 0 ||
        get_b64_var(j, "signature", o.signature, sizeof(o.signature), &o.signature_size, err, err_size) < 0)
        return -EINVAL;
    custos_hex_decode(kh, want, sizeof(want));
    custos_sha256(o.primary_spki, o.primary_spki_size, h);
    if (!custos_ct_equal(h, want, 32)) {
        snprintf(err, err_size, "backup offer: 'primary_public_key' does not hash to 'primary_key_hash'");
        return -EINVAL;
    }
    strcpy(o.request_id, rid);
    custos_platform_id(pub, o.primary_platform_id);
    strcpy(o.primary_key_hash, kh);
    *out = o;
    return 0;
}

/* A backup's entry is a node entry: its sealed private key and public key; the primary wraps the
 * database key for it. */
json_t *backup_completion_to_json(const struct backup_completion *c)
{
    return json_pack("{s:s, s:o, s:o}", "request_id", c->request_id, "entry",
                     cas_keystore_entry_to_json(&c->entry, false), "proof", b64(c->proof, 32));
}

int backup_completion_from_json(const json_t *j, struct backup_completion *out, char *err, size_t err_size)
{
    const char *rid = NULL, *proof = NULL;
    json_t *entry = NULL;
    json_error_t e;
    struct backup_completion c;
    memset(&c, 0, sizeof(c));
    if (!json_is_object(j) || json_unpack_ex((json_t *)j, &e, JSON_STRICT, "{s:s, s:o, s:s}", "request_id", &rid,
                                             "entry", &entry, "proof", &proof) < 0) {
        snprintf(err, err_size, "backup completion: %s", json_is_object(j) ? e.text : "not a JSON object");
        return -EINVAL;
    }
    if (!valid_hex64(rid)) {
        snprintf(err, err_size, "backup completion: field 'request_id' must be 64 hex digits");
        return -EINVAL;
    }
    if (cas_keystore_entry_from_json(entry, CAS_KS_FORM_BACKUP, "backup completion: entry: ", &c.entry, err, err_size) <
            0 ||
        get_b64(j, "proof", c.proof, 32, err, err_size) < 0)
        return -EINVAL;
    strcpy(c.request_id, rid);
    *out = c;
    return 0;
}

void backup_transcript(const struct backup_request *r, const char *primary_platform_id, const char *primary_key_hash,
                       const uint8_t primary_ephemeral[32], uint8_t out[32])
{
    uint8_t buf[sizeof(TRANSCRIPT_LABEL) - 1 + CUSTOS_QUOTE_BODY_SIZE + 32 + BACKUP_NODE_MAX + 1 + 8 +
                CUSTOS_PLATFORM_ID_LEN + 64 + 32];
    uint8_t *body = NULL;
    struct custos_buf b;
    custos_buf_init(&b, buf, sizeof(buf));
    custos_buf_put(&b, TRANSCRIPT_LABEL, sizeof(TRANSCRIPT_LABEL) - 1);
    if (custos_buf_reserve(&b, CUSTOS_QUOTE_BODY_SIZE, &body) == 0)
        custos_quote_body(&r->quote, body);
    custos_buf_put(&b, r->public_key, 32);
    custos_buf_put_str0(&b, r->node_name);
    custos_buf_put_u64(&b, (uint64_t)r->created_at);
    custos_buf_put(&b, primary_platform_id, CUSTOS_PLATFORM_ID_LEN);
    custos_buf_put(&b, primary_key_hash, 64);
    custos_buf_put(&b, primary_ephemeral, 32);
    custos_sha256(buf, custos_buf_len(&b), out); /* cannot overflow: sized above */
}

int backup_wrap_key(const uint8_t shared[32], const uint8_t transcript[32], uint8_t out[32])
{
    return custos_hkdf_sha256(shared, 32, transcript, 32, (const uint8_t *)WRAP_LABEL, sizeof(WRAP_LABEL) - 1, out, 32);
}

int backup_proof(const uint8_t dbkey[32], const uint8_t transcript[32], const struct cas_keystore_entry *e,
                 uint8_t out[32])
{
    uint8_t key[32], msg[32 + CAS_KS_BINDING_MAX + 12 + 48 + 32 + CAS_KS_MEASUREMENT_HEX];
    struct custos_buf b;
    int ret = custos_hkdf_sha256(dbkey, 32, NULL, 0, (const uint8_t *)PROOF_LABEL, sizeof(PROOF_LABEL) - 1, key, 32);
    if (ret < 0)
        return ret;
    custos_buf_init(&b, msg, sizeof(msg));
    custos_buf_put(&b, transcript, 32);
    cas_keystore_put_binding(&b, e);
    custos_buf_put(&b, e->nonce, sizeof(e->nonce));
    custos_buf_put(&b, e->sealed, sizeof(e->sealed));
    custos_buf_put(&b, e->public_key, sizeof(e->public_key));
    custos_buf_put(&b, e->measurement, strnlen(e->measurement, CAS_KS_MEASUREMENT_HEX));
    ret = custos_buf_ok(&b) ? custos_hmac_sha256(key, 32, msg, custos_buf_len(&b), out) : -EINVAL;
    custos_wipe(key, sizeof(key));
    return ret;
}
