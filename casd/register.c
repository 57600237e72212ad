/* SPDX-License-Identifier: Apache-2.0 */
/* The primary CAS's side of backup registration: check the backup's request, wrap the database key
 * to it, accept its sealed entry on proof, keep the key-store (the list of platforms that can open
 * the database) and the owner's trust policy. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "casd.h"

/* ---- registration --------------------------------------------------------------------------- */

/* Trust checks of the primary; fills the response with a 4xx naming the check and both values. */
static bool check_backup_quote(struct cas_state *st, const struct backup_request *rq, struct http_response *r)
{
    json_t *policy = cas_policy_load(st);
    const char *platforms[257];
    uint8_t ms[257][CUSTOS_MEASUREMENT_SIZE];
    size_t np = 0, nm = 0, i;
    json_t *v;
    bool ok = false;
    char err[1024];
    json_array_foreach(json_object_get(policy, "platforms"), i, v)
        if (np < 256)
            platforms[np++] = json_string_value(v);
    const char *hex[256];
    size_t nh = 0;
    memcpy(ms[nm++], st->node.measurement, CUSTOS_MEASUREMENT_SIZE); /* the primary's own measurement */
    json_array_foreach(json_object_get(policy, "measurements"), i, v)
        if (nh < 256)
            hex[nh++] = json_string_value(v);
    if (custos_measurements_decode(hex, nh, ms + 1, NULL) == 0) /* checked when stored (validate.c) */
        nm += nh;
    platforms[np] = NULL;
    /* The primary's own platform is trusted: it runs on it. */
    platforms[np++] = st->node.platform_id;
    struct custos_quote_policy pol = {
        .platforms = platforms,
        .platform_count = np,
        .measurements = (const uint8_t(*)[CUSTOS_MEASUREMENT_SIZE])ms,
        .measurement_count = nm,
        .trust_any_platform = json_is_true(json_object_get(policy, "trust_any_platform")),
        .allow_debug = json_is_true(json_object_get(policy, "allow_debug")),
        .min_tcb = 0,
    };
    if (custos_quote_check(&rq->quote, &pol, err, sizeof(err)) < 0) {
        const char *code = strncmp(err, "bad signature", 13) == 0      ? "bad_quote"
                           : strncmp(err, "unknown platform", 16) == 0 ? "platform_not_allowed"
                           : strncmp(err, "measurement", 11) == 0      ? "measurement_not_allowed"
                                                                       : "quote_refused";
        http_error(r, strcmp(code, "bad_quote") ? 403 : 400, code, "backup refused: %s%s", err,
                   strcmp(code, "measurement_not_allowed") == 0 ? " (allow it with: cas owner allow-measurement HEX)"
                                                                : "");
        goto out;
    }
    if (rq->quote.uid != st->node.uid) {
        http_error(r, 403, "uid_mismatch",
                   "backup refused: it runs as uid %u, the primary as uid %u (a backup must run as the same user)",
                   rq->quote.uid, st->node.uid);
        goto out;
    }
    if (rq->quote.tcb < st->node.tcb) {
        http_error(r, 403, "tcb_too_low",
                   "backup refused: its TCB %u is lower than the primary's TCB %u (a backup must have an equal "
                   "or better TCB)",
                   rq->quote.tcb, st->node.tcb);
        goto out;
    }
    ok = true;
out:
    json_decref(policy);
    return ok;
}

static void pending_clear(struct cas_pending *p)
{
    json_decref(p->offer);
    memset(p, 0, sizeof(*p));
}

static struct cas_pending *pending_find(struct cas_state *st, const char *id)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < CAS_PENDING_MAX; i++) {
        struct cas_pending *p = &st->pri.pending[i];
        if (p->used && p->expires < now)
            pending_clear(p);
        if (p->used && strcmp(p->request_id, id) == 0)
            return p;
    }
    return NULL;
}

static struct cas_pending *pending_slot(struct cas_state *st)
{
    struct cas_pending *oldest = &st->pri.pending[0];
    pending_find(st, ""); /* expires old entries */
    for (size_t i = 0; i < CAS_PENDING_MAX; i++) {
        if (!st->pri.pending[i].used)
            return &st->pri.pending[i];
        if (st->pri.pending[i].expires < oldest->expires)
            oldest = &st->pri.pending[i];
    }
    return oldest;
}

static bool request_used(struct cas_state *st, const char *id)
{
    char name[80];
    uint8_t *raw = NULL;
    size_t size = 0;
    snprintf(name, sizeof(name), "backup/used/%s", id);
    if (cas_db_get(st->pri.db, name, &raw, &size) == 0) {
        cas_db_value_free(raw, size);
        return true;
    }
    return false;
}

/* Replaces the key-store with a copy that has `add` upserted (by platform and measurement), written
 * crash-safely; the in-memory list changes only once the file is written. Call with st->lock held. */
static int keystore_commit(struct cas_state *st, const struct cas_keystore_entry *add)
{
    struct cas_keystore next = st->pri.ks;
    int ret = -ENOMEM;
    next.entries = calloc(st->pri.ks.count + 1, sizeof(*next.entries));
    if (next.entries) {
        memcpy(next.entries, st->pri.ks.entries, st->pri.ks.count * sizeof(*next.entries));
        next.count = st->pri.ks.count;
        ret = cas_keystore_upsert(&next, add);
    }
    if (ret == 0)
        ret = cas_keystore_save(st->pri.keystore_path, &next, st->pri.dbkey);
    cas_keystore_free(&next);
    if (ret == -ENOMEM)
        return ret;
    /* Whatever happened (a failure may come after the rename), memory follows the file. */
    struct cas_keystore disk = {0};
    char err[512];
    int lret = cas_keystore_load(st->pri.keystore_path, &disk, err, sizeof(err));
    if (lret == 0)
        lret = cas_keystore_verify_mac(&disk, st->pri.dbkey);
    if (lret < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot read back key-store %s after writing it: %s", st->pri.keystore_path,
                         lret == -EBADMSG ? "MAC mismatch" : err);
        cas_keystore_free(&disk);
        return ret < 0 ? ret : lret;
    }
    cas_keystore_free(&st->pri.ks);
    st->pri.ks = disk;
    return ret;
}

static int load_spent(struct cas_state *st, const char *id, struct backup_request *rq, uint8_t transcript[32],
                      json_t **offer);

/* POST /v1/backups/register {"request": {...}} -> {"offer": {...}} */
void cas_backups_register(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    json_error_t e;
    json_t *rj = NULL;
    char err[512];
    struct backup_request rq;
    struct backup_offer offer;
    uint8_t eph_priv[32], shared[32], wrap[32], transcript[32];
    memset(&offer, 0, sizeof(offer));
    json_t *body = http_json_body(req, r);
    if (!body)
        return;
    if (json_unpack_ex(body, &e, JSON_STRICT, "{s:o}", "request", &rj) < 0) {
        http_error(r, 400, "invalid_request", "%s (expected one field: request)", e.text);
        goto out;
    }
    int ret = backup_request_from_json(rj, &rq, err, sizeof(err));
    if (ret < 0) {
        http_error(r, ret == -EPERM ? 403 : 400, ret == -EPERM ? "quote_not_bound" : "invalid_request", "%s", err);
        goto out;
    }
    time_t now = time(NULL);
    if (rq.created_at > now + 60) {
        http_error(r, 403, "request_from_future",
                   "backup refused: the request is dated %lld, more than 60 s after this CAS's time %lld (clocks "
                   "out of step?)",
                   (long long)rq.created_at, (long long)now);
        goto out;
    }
    if (now - rq.created_at > CAS_REQUEST_MAX_AGE) {
        http_error(r, 403, "request_expired",
                   "backup refused: the request was made at %lld, more than %d s before this CAS's time %lld",
                   (long long)rq.created_at, CAS_REQUEST_MAX_AGE, (long long)now);
        goto out;
    }
    if (!check_backup_quote(st, &rq, r))
        goto out;
    pthread_mutex_lock(&st->lock);
    if (request_used(st, rq.id)) {
        /* spent: the same offer again (it opens for that backup only), never a second registration */
        json_t *offer_again = NULL;
        struct backup_request srq;
        uint8_t st_transcript[32];
        if (load_spent(st, rq.id, &srq, st_transcript, &offer_again) == 0) {
            r->body = json_pack("{s:o}", "offer", offer_again);
            pthread_mutex_unlock(&st->lock);
            goto out;
        }
        pthread_mutex_unlock(&st->lock);
        http_error(r, 409, "replayed_request",
                   "request %.16s of node %s was already used: its registration completed (cas backups list shows "
                   "it). To register that node again, start a new backup CAS there (replayed request)",
                   rq.id, rq.node_name);
        goto out;
    }
    struct cas_pending *again = pending_find(st, rq.id);
    if (again) { /* a retry of an interrupted registration: the same offer again */
        r->body = json_pack("{s:O}", "offer", again->offer);
        pthread_mutex_unlock(&st->lock);
        LOG_MODULE_INFO(CAS_LOG, "backup request %.16s from node %s asked again; same offer sent", rq.id, rq.node_name);
        goto out;
    }
    ret = custos_x25519_keypair(eph_priv, offer.ephemeral_key);
    if (ret == 0)
        ret = custos_x25519(eph_priv, rq.public_key, shared);
    if (ret == 0) {
        backup_transcript(&rq, st->node.platform_id, st->tls.key_hash, offer.ephemeral_key, transcript);
        ret = backup_wrap_key(shared, transcript, wrap);
    }
    if (ret == 0)
        ret = custos_random(offer.nonce, sizeof(offer.nonce));
    /* Signed with the CAS identity, so a backup that knows the CAS key hash takes offers from it only. */
    if (ret == 0)
        ret = custos_key_spki(st->tls.key, offer.primary_spki, sizeof(offer.primary_spki), &offer.primary_spki_size);
    if (ret == 0)
        ret = custos_key_sign(st->tls.key, transcript, 32, offer.signature, &offer.signature_size);
    if (ret == 0)
        ret = custos_aead_seal(wrap, offer.nonce, transcript, 32, st->pri.dbkey, 32, offer.wrapped);
    if (ret < 0) {
        pthread_mutex_unlock(&st->lock);
        http_error(r, 400, "invalid_key", "backup refused: its public key is not usable");
        goto out;
    }
    strcpy(offer.request_id, rq.id);
    strcpy(offer.primary_platform_id, st->node.platform_id);
    strcpy(offer.primary_key_hash, st->tls.key_hash);
    struct cas_pending *p = pending_slot(st);
    pending_clear(p);
    p->used = true;
    strcpy(p->request_id, rq.id);
    memcpy(p->transcript, transcript, 32);
    p->request = rq;
    p->expires = now + CAS_REQUEST_MAX_AGE;
    p->offer = backup_offer_to_json(&offer);
    r->body = json_pack("{s:O}", "offer", p->offer);
    pthread_mutex_unlock(&st->lock);
    char id[CUSTOS_PLATFORM_ID_LEN + 1];
    custos_platform_id(rq.quote.platform_pub, id);
    LOG_MODULE_INFO(CAS_LOG, "backup request %.16s from node %s (platform %s, TCB %u) accepted; key offered", rq.id,
                    rq.node_name, id, rq.quote.tcb);
out:
    custos_wipe(eph_priv, sizeof(eph_priv));
    custos_wipe(shared, sizeof(shared));
    custos_wipe(wrap, sizeof(wrap));
    json_decref(body);
}

/* POST /v1/backups/confirm {"completion": {...}} */
/* The spent-request record backup/used/<id>: {"transcript": hex, "request": {...}, "offer": {...}}.
 * It lets a relay that lost an answer finish the same registration after the pending slot is gone
 * (CAS restarted, or the key-store write after it was interrupted): the same offer again, and the
 * same completion accepted or answered "already". It never gives a second registration. */
static int load_spent(struct cas_state *st, const char *id, struct backup_request *rq, uint8_t transcript[32],
                      json_t **offer)
{
    char name[80];
    uint8_t *raw = NULL;
    size_t size = 0;
    json_t *j = NULL, *rj = NULL, *oj = NULL;
    const char *th = NULL;
    char err[256];
    snprintf(name, sizeof(name), "backup/used/%s", id);
    int ret = cas_db_get(st->pri.db, name, &raw, &size);
    if (ret < 0)
        return ret;
    ret = custos_json_parse((const char *)raw, size, &j, err, sizeof(err));
    cas_db_value_free(raw, size);
    if (ret < 0 || json_unpack(j, "{s:s, s:o, s:o}", "transcript", &th, "request", &rj, "offer", &oj) < 0 ||
        custos_hex_decode(th, transcript, 32) < 0 || backup_request_from_json(rj, rq, err, sizeof(err)) < 0) {
        json_decref(j);
        return -ENODATA; /* "1": written by a casd before retries could finish */
    }
    if (offer)
        *offer = json_incref(oj);
    json_decref(j);
    return 0;
}

void cas_backups_confirm(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    json_error_t e;
    json_t *cj = NULL;
    char err[512], id[CUSTOS_PLATFORM_ID_LEN + 1], used[80], th[65];
    struct backup_completion c;
    struct backup_request spent_rq;
    uint8_t proof[32], spent_transcript[32];
    char *record = NULL;
    json_t *body = http_json_body(req, r);
    if (!body)
        return;
    if (json_unpack_ex(body, &e, JSON_STRICT, "{s:o}", "completion", &cj) < 0) {
        http_error(r, 400, "invalid_request", "%s (expected one field: completion)", e.text);
        goto out;
    }
    if (backup_completion_from_json(cj, &c, err, sizeof(err)) < 0) {
        http_error(r, 400, "invalid_request", "%s", err);
        goto out;
    }
    pthread_mutex_lock(&st->lock);
    struct cas_pending *p = pending_find(st, c.request_id);
    const struct backup_request *rq = p ? &p->request : &spent_rq;
    const uint8_t *transcript = p ? p->transcript : spent_transcript;
    int sret = p ? 0 : load_spent(st, c.request_id, &spent_rq, spent_transcript, NULL);
    if (sret < 0) {
        pthread_mutex_unlock(&st->lock);
        http_error(r, 409, "unknown_request", "no pending registration %.16s: %s", c.request_id,
                   sret == -ENODATA ? "it completed (cas backups list shows it)"
                                    : "it expired or this CAS restarted since the offer; start a new backup CAS and "
                                      "register again");
        goto out;
    }
    custos_platform_id(rq->quote.platform_pub, id);
    char quote_m[CAS_KS_MEASUREMENT_HEX + 1];
    custos_hex_encode(rq->quote.measurement, sizeof(rq->quote.measurement), quote_m, false);
    if (backup_proof(st->pri.dbkey, transcript, &c.entry, proof) < 0 || !custos_ct_equal(proof, c.proof, 32)) {
        pthread_mutex_unlock(&st->lock);
        http_error(r, 403, "bad_proof", "backup refused: its proof does not match (it does not hold the key)");
        goto out;
    }
    if (strcmp(c.entry.platform_id, id) != 0 || strcmp(c.entry.kind, custos_platform_kind_name(rq->quote.kind)) ||
        c.entry.tcb != rq->quote.tcb || strcmp(c.entry.node, rq->node_name) != 0 ||
        strcmp(c.entry.measurement, quote_m) != 0) {
        pthread_mutex_unlock(&st->lock);
        http_error(r, 403, "entry_mismatch",
                   "backup refused: its key-store entry (platform %s, node %s, TCB %u, measurement %s) does not "
                   "match its quote (platform %s, node %s, TCB %u, measurement %s)",
                   c.entry.platform_id, c.entry.node, c.entry.tcb, c.entry.measurement, id, rq->node_name,
                   rq->quote.tcb, quote_m);
        goto out;
    }
    const struct cas_keystore_entry *have = cas_keystore_find(&st->pri.ks, id, c.entry.measurement);
    bool same = have && have->node_key && memcmp(have->public_key, c.entry.public_key, 32) == 0;
    if (!p && same) { /* a retry of a committed confirmation: change nothing */
        r->body = json_pack("{s:s, s:s, s:i, s:b}", "registered", id, "node", have->node, "tcb", (int)have->tcb,
                            "already", 1);
        pthread_mutex_unlock(&st->lock);
        goto out;
    }
    if (!p && have && have->time > c.entry.time) {
        pthread_mutex_unlock(&st->lock);
        http_error(r, 409, "superseded",
                   "registration %.16s of node %s completed, and a later registration of the "
                   "same platform and measurement replaced it",
                   c.request_id, have->node);
        goto out;
    }
    int ret = cas_keystore_wrap(&st->pri.ks, &c.entry, st->pri.dbkey);
    if (ret < 0) {
        pthread_mutex_unlock(&st->lock);
        http_error(r, 400, "invalid_key", "backup refused: its node public key is not usable");
        goto out;
    }
    /* First the request is spent and the registration recorded (one transaction), then the key-store
     * file is replaced atomically: after a crash it holds the old or the new list; the spent record
     * lets the relay's retry finish the registration. */
    if (p) {
        custos_hex_encode(p->transcript, 32, th, false);
        json_t *rec = json_pack("{s:s, s:o, s:O}", "transcript", th, "request", backup_request_to_json(&p->request),
                                "offer", p->offer);
        record = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
        json_decref(rec);
        snprintf(used, sizeof(used), "backup/used/%s", c.request_id);
        struct cas_db_op op = {used, record, record ? strlen(record) : 0};
        ret = record ? cas_audit(st, "backup registering",
                                 json_pack("{s:s, s:s, s:s, s:i, s:s, s:s}", "platform_id", id, "kind", c.entry.kind,
                                           "node", c.entry.node, "tcb", (int)c.entry.tcb, "measurement",
                                           c.entry.measurement, "by", req->caller),
                                 &op, 1)
                     : -ENOMEM;
    }
    if (ret == 0)
        ret = keystore_commit(st, &c.entry);
    if (ret < 0) {
        pthread_mutex_unlock(&st->lock);
        LOG_MODULE_ERROR(CAS_LOG, "cannot register the backup (key-store %s): %s", st->pri.keystore_path,
                         strerror(-ret));
        http_error(r, 500, "storage", "cannot save the key-store: %s", strerror(-ret));
        goto out;
    }
    if (p)
        pending_clear(p);
    pthread_mutex_unlock(&st->lock);
    LOG_MODULE_INFO(CAS_LOG, "backup registered for node %s (platform %s, TCB %u, measurement %s)%s", c.entry.node, id,
                    c.entry.tcb, c.entry.measurement, p ? "" : " on a retry of its confirmation");
    r->body = json_pack("{s:s, s:s, s:i, s:s}", "registered", id, "node", c.entry.node, "tcb", (int)c.entry.tcb,
                        "measurement", c.entry.measurement);
out:
    free(record);
    json_decref(body);
}
