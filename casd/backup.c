/* SPDX-License-Identifier: Apache-2.0 */
/* The ephemeral backup CAS (casd --backup): makes an X25519 key pair, has its node's lasd quote it,
 * serves that request, unwraps the database key the primary offers, seals it with this node's CAS
 * seal key and proves it did. It keeps nothing on disk, wipes every secret and exits after one
 * registration or at its timeout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "casd.h"

/* The request stays readable after the completion: a relay that was interrupted asks again and gets
 * the same offer from the primary and the same completion from here. */
void cas_backup_get_request(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    (void)req;
    r->body = backup_request_to_json(&st->backup->request);
}

/* POST /v1/backup/finish: the relay says the primary confirmed; this backup exits. */
void cas_backup_post_finish(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    (void)req;
    if (!atomic_load(&st->backup_done)) {
        http_error(r, 409, "not_done", "this backup CAS has not completed a registration yet");
        return;
    }
    atomic_store(&st->backup_finished, true);
    r->body = json_pack("{s:b}", "finished", 1);
}

void cas_backup_post_complete(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    struct cas_backup_session *b = st->backup;
    json_error_t e;
    json_t *oj = NULL;
    struct backup_offer offer;
    struct backup_completion c;
    uint8_t shared[32], wrap[32], transcript[32], dbkey[32], seal[32];
    char err[512];
    int ret;
    memset(&c, 0, sizeof(c));
    json_t *body = http_json_body(req, r);
    if (!body)
        return;
    pthread_mutex_lock(&st->lock);
    if (json_unpack_ex(body, &e, JSON_STRICT, "{s:o}", "offer", &oj) < 0) {
        http_error(r, 400, "invalid_request", "%s (expected one field: offer)", e.text);
        goto out;
    }
    if (backup_offer_from_json(oj, &offer, err, sizeof(err)) < 0) {
        http_error(r, 400, "invalid_request", "%s", err);
        goto out;
    }
    if (b->done) {
        if (memcmp(offer.ephemeral_key, b->offer_key, sizeof(b->offer_key)) == 0 && b->completion)
            r->body = json_pack("{s:O}", "completion", b->completion); /* a retry: the same answer */
        else
            http_error(r, 409, "done", "this backup CAS has completed its registration with another offer");
        goto out;
    }
    if (strcmp(offer.request_id, b->request.id) != 0) {
        http_error(r, 409, "wrong_request", "the offer is for request %.16s, this backup CAS made %.16s",
                   offer.request_id, b->request.id);
        goto out;
    }
    backup_transcript(&b->request, offer.primary_platform_id, offer.primary_key_hash, offer.ephemeral_key, transcript);
    if (backup_offer_verify(&offer, transcript) < 0) {
        http_error(r, 403, "bad_signature", "the offer is not signed by the CAS key it names");
        goto out;
    }
    if (st->cfg.cas_key_hash && strcasecmp(st->cfg.cas_key_hash, offer.primary_key_hash) != 0) {
        http_error(r, 403, "unexpected_cas",
                   "the offer comes from CAS %s; this backup takes offers from CAS %s only (--cas-key-hash)",
                   offer.primary_key_hash, st->cfg.cas_key_hash);
        goto out;
    }
    ret = custos_x25519(b->private_key, offer.ephemeral_key, shared);
    if (ret == 0)
        ret = backup_wrap_key(shared, transcript, wrap);
    if (ret == 0)
        ret = custos_aead_open(wrap, offer.nonce, transcript, 32, offer.wrapped, sizeof(offer.wrapped), dbkey);
    if (ret < 0) {
        http_error(r, 400, "bad_offer", "the offer does not open with this backup's key (tampered or misdirected)");
        goto out;
    }
    if (st->node.las_ops->seal_key(st->node.las_ctx, CAS_SEAL_LABEL, seal, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "%s", err);
        http_error(r, 503, "las_unavailable", "cannot get this node's seal key: %s", err);
        goto out;
    }
    struct cas_keystore_entry *en = &c.entry;
    strcpy(en->platform_id, st->node.platform_id);
    strcpy(en->kind, st->node.platform_kind);
    snprintf(en->node, sizeof(en->node), "%s", b->request.node_name);
    en->tcb = b->request.quote.tcb;
    en->time = (int64_t)time(NULL);
    custos_hex_encode(b->request.quote.measurement, sizeof(b->request.quote.measurement), en->measurement, false);
    strcpy(c.request_id, b->request.id);
    ret = cas_keystore_seal_node(en, seal);
    if (ret == 0)
        ret = backup_proof(dbkey, transcript, en, c.proof);
    if (ret < 0) {
        http_error(r, 500, "internal", "cannot seal the database key");
        goto out;
    }
    b->done = true;
    custos_wipe(b->private_key, sizeof(b->private_key));
    memcpy(b->offer_key, offer.ephemeral_key, sizeof(b->offer_key));
    b->completion = backup_completion_to_json(&c);
    atomic_store(&st->backup_done, true);
    LOG_MODULE_INFO(CAS_LOG, "database key received from primary platform %s and sealed for this node (%s)",
                    offer.primary_platform_id, en->node);
    r->body = json_pack("{s:O}", "completion", b->completion);
out:
    pthread_mutex_unlock(&st->lock);
    custos_wipe(shared, sizeof(shared));
    custos_wipe(wrap, sizeof(wrap));
    custos_wipe(dbkey, sizeof(dbkey));
    custos_wipe(seal, sizeof(seal));
    json_decref(body);
}

void cas_backup_get_healthz(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    (void)req;
    r->body =
        json_pack("{s:s, s:s, s:b}", "status", "ready", "mode", "backup", "done", (int)atomic_load(&st->backup_done));
}

/* lasd's view of this node, and the quoted request. */
static int make_request(struct cas_state *st, struct cas_backup_session *b)
{
    char err[512];
    uint8_t rd[CUSTOS_REPORT_DATA_SIZE], h[32];
    struct backup_request *rq = &b->request;
    if (strlen(st->cfg.node_name) > BACKUP_NODE_MAX) {
        LOG_MODULE_ERROR(CAS_LOG, "node name too long: %s", st->cfg.node_name);
        return -EINVAL;
    }
    snprintf(rq->node_name, sizeof(rq->node_name), "%s", st->cfg.node_name);
    rq->created_at = (int64_t)time(NULL);
    if (custos_x25519_keypair(b->private_key, rq->public_key) < 0)
        return -EIO;
    backup_request_report_data(rq->public_key, rq->created_at, rq->node_name, rd);
    if (st->node.las_ops->quote(st->node.las_ctx, rd, &rq->quote, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "%s", err);
        return -EIO;
    }
    cas_node_from_quote(st, &rq->quote); /* this node, as its lasd quoted it */
    custos_sha256(rq->public_key, 32, h);
    custos_hex_encode(h, 32, rq->id, false);
    return 0;
}

/* The request (quoted by this node's lasd) and an ephemeral TLS identity: the backup is trusted
 * through its quote, not its certificate. */
int cas_backup_prepare(struct cas_state *st)
{
    static struct cas_backup_session session; /* locked in memory with the caller's state */
    uint8_t hash[32];
    const char *alts[] = {"localhost", st->cfg.node_name};
    int ret;
    st->backup = &session;
    if ((ret = make_request(st, &session)) < 0)
        return ret;
    if ((ret = custos_key_generate(&st->tls.key)) < 0 || (ret = custos_key_to_pem(st->tls.key, &st->tls.key_pem)) < 0 ||
        (ret = custos_cert_self_signed(st->tls.key, "cas-backup", alts, 2, &st->tls.cert_pem)) < 0 ||
        (ret = custos_key_hash(st->tls.key, hash)) < 0)
        return ret;
    return 0;
}

int cas_backup_wait(struct cas_state *st, long long timeout_s, const volatile sig_atomic_t *stop)
{
    int ret;
    /* the warning first: whoever waits for the ready line then sees it */
    if (!st->cfg.cas_key_hash)
        LOG_MODULE_WARN(CAS_LOG, "no --cas-key-hash: a key offer from any CAS is accepted (anyone who reaches this "
                                 "backup can spend its one registration)");
    LOG_MODULE_INFO(CAS_LOG, "backup CAS for node %s (platform %s, TCB %u) ready on https://%s/, request %.16s",
                    st->cfg.node_name, st->node.platform_id, st->node.tcb, st->cfg.listen, st->backup->request.id);
    time_t deadline = time(NULL) + timeout_s;
    while (!*stop && !atomic_load(&st->backup_done) && time(NULL) < deadline)
        usleep(20000);
    if (atomic_load(&st->backup_done)) {
        /* Until the relay says the primary confirmed (or CAS_BACKUP_LINGER_S pass), a relay that was
         * interrupted can finish the same registration. The database key is already wiped. */
        time_t linger = time(NULL) + CAS_BACKUP_LINGER_S;
        while (!*stop && !atomic_load(&st->backup_finished) && time(NULL) < linger)
            usleep(20000);
        usleep(100000); /* let the last answer leave */
        LOG_MODULE_INFO(CAS_LOG, "registration completed%s; backup CAS exits",
                        atomic_load(&st->backup_finished) ? " and confirmed" : " (no confirmation relayed)");
        ret = 0;
    } else {
        LOG_MODULE_ERROR(CAS_LOG, "%s",
                         *stop ? "stopped before any registration"
                               : "no registration before the timeout; backup CAS exits");
        ret = -ETIMEDOUT;
    }
    return ret;
}

void cas_backup_wipe(struct cas_state *st)
{
    if (!st->backup)
        return;
    json_decref(st->backup->completion);
    custos_wipe(st->backup, sizeof(*st->backup));
}
