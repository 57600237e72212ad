/* SPDX-License-Identifier: Apache-2.0 */
/* casd's API: routing, attestation, provisioning and the owner's settings. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "casd.h"
#include "toml.h"

#define NONCE_MAX CUSTOS_ATTESTATION_NONCE_MAX

/* ---- GET /v1/attestation?nonce=HEX ---------------------------------------------------------- */

void cas_get_attestation(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    const char *hex = http_arg(req, "nonce");
    uint8_t nonce[NONCE_MAX], kh[32], rd[CUSTOS_REPORT_DATA_SIZE];
    size_t len = hex ? strlen(hex) : 0;
    if (!hex || len < 16 || len > 2 * NONCE_MAX || len % 2 || custos_hex_decode(hex, nonce, len / 2) < 0) {
        http_error(r, 400, "invalid_nonce", "query parameter 'nonce' must be 16 to 64 hex digits");
        return;
    }
    custos_hex_decode(st->tls.key_hash, kh, sizeof(kh));
    custos_attestation_report_data(kh, nonce, len / 2, rd);
    struct custos_quote q;
    char err[512];
    if (cas_las_gate_quote(rd, &q, err, sizeof(err)) < 0) {
        static _Atomic long long last_logged; /* one line a second: anyone may ask for attestations */
        long long now = (long long)time(NULL);
        if (atomic_exchange(&last_logged, now) != now)
            LOG_MODULE_ERROR(CAS_LOG, "attestation: %s", err);
        http_error(r, 503, "las_unavailable", "cannot get a quote from this node's LAS: %s", err);
        return;
    }
    char m[65];
    custos_hex_encode(st->node.measurement, sizeof(st->node.measurement), m, false);
    pthread_mutex_lock(&st->lock);
    r->body = json_pack("{s:o, s:s, s:s, s:s, s:s, s:i, s:s, s:b}", "quote", custos_quote_to_json(&q), "key_hash",
                        st->tls.key_hash, "certificate", st->tls.cert_pem, "platform_id", st->node.platform_id,
                        "platform_kind", st->node.platform_kind, "tcb", (int)st->node.tcb, "measurement", m,
                        "provisioned", (int)atomic_load(&st->pri.provisioned));
    pthread_mutex_unlock(&st->lock);
}

/* ---- POST /v1/provision --------------------------------------------------------------------- */

void cas_post_provision(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    json_t *body = http_json_body(req, r), *cfg = NULL, *ignored = json_array(), *owner = NULL;
    json_t *policy_in = NULL, *policy = NULL;
    const char *token = NULL, *toml = NULL;
    int ret;
    json_error_t e;
    char err[512];
    char *text = NULL, *policy_text = NULL;
    if (!body)
        goto out;
    if (json_unpack_ex(body, &e, JSON_STRICT, "{s:s, s:s, s?o}", "token", &token, "owner_config", &toml, "policy",
                       &policy_in) < 0) {
        http_error(r, 400, "invalid_request",
                   "provision request: %s (expected fields token, owner_config and optionally policy)", e.text);
        goto out;
    }
    json_t *empty = json_object();
    ret = cas_policy_check(policy_in ? policy_in : empty, &policy, err, sizeof(err));
    json_decref(empty);
    if (ret < 0) {
        http_error(r, 400, "invalid_policy", "%s", err);
        goto out;
    }
    if (!req->has_caller) {
        http_error(r, 401, "no_client_certificate",
                   "provisioning needs a TLS client certificate: its key becomes the owner identity");
        goto out;
    }
    if (custos_toml_parse(toml, strlen(toml), &cfg, err, sizeof(err)) < 0) {
        http_error(r, 400, "invalid_owner_config", "owner configuration: %s", err);
        goto out;
    }
    if (cas_owner_config_check(cfg, ignored, err, sizeof(err)) < 0) {
        http_error(r, 400, "invalid_owner_config", "%s", err);
        goto out;
    }
    if (cas_certificate_for(st, cfg, NULL) < 0) {
        http_error(r, 400, "invalid_owner_config", "[api_identity]: no TLS certificate can be made with these names");
        goto out;
    }
    pthread_mutex_lock(&st->lock);
    /* One answer for "wrong token" and "already provisioned": the token is single-use. */
    bool ok = !atomic_load(&st->pri.provisioned) && strlen(token) == 64 && custos_ct_equal(token, st->pri.token, 64);
    if (!ok) {
        pthread_mutex_unlock(&st->lock);
        LOG_MODULE_WARN(CAS_LOG, "provisioning refused for identity %s", req->caller);
        http_error(r, 403, "provisioning_refused", "provisioning refused: the token is not valid (it is single-use)");
        goto out;
    }
    owner = json_pack("{s:s, s:O, s:O, s:I}", "key_hash", req->caller, "config", cfg, "ignored_sections", ignored,
                      "provisioned_at", (json_int_t)time(NULL));
    text = owner ? json_dumps(owner, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    policy_text = json_dumps(policy, JSON_COMPACT | JSON_SORT_KEYS);
    struct cas_db_op ops[] = {{REC_OWNER, text, text ? strlen(text) : 0},
                              {REC_POLICY, policy_text, policy_text ? strlen(policy_text) : 0},
                              {REC_TOKEN, NULL, 0}};
    ret =
        text && policy_text ? cas_audit(st, "provisioned", json_pack("{s:s}", "owner", req->caller), ops, 3) : -ENOMEM;
    if (ret < 0) {
        pthread_mutex_unlock(&st->lock);
        LOG_MODULE_ERROR(CAS_LOG, "cannot store the owner: %s", strerror(-ret));
        http_error(r, 500, "storage", "cannot store the owner: %s", strerror(-ret));
        goto out;
    }
    strcpy(st->pri.owner_hash, req->caller);
    atomic_store_explicit(&st->pri.provisioned, true, memory_order_release); /* after owner_hash */
    custos_wipe(st->pri.token, sizeof(st->pri.token));
    pthread_mutex_unlock(&st->lock);
    atomic_store(&st->pri.cert_changed, true);
    LOG_MODULE_INFO(CAS_LOG, "CAS provisioned; owner identity %s", req->caller);
    r->body =
        json_pack("{s:s, s:s, s:O}", "owner", req->caller, "key_hash", st->tls.key_hash, "ignored_sections", ignored);
out:
    free(text);
    free(policy_text);
    json_decref(policy);
    json_decref(owner);
    json_decref(cfg);
    json_decref(ignored);
    json_decref(body);
}

/* ---- owner-only endpoints ------------------------------------------------------------------- */

void cas_get_owner(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    (void)req;
    uint8_t *raw = NULL;
    size_t size = 0;
    json_t *owner = NULL;
    char err[128];
    if (cas_db_get(st->pri.db, REC_OWNER, &raw, &size) < 0 ||
        custos_json_parse((const char *)raw, size, &owner, err, sizeof(err)) < 0) {
        http_error(r, 500, "storage", "cannot read the owner record");
    } else {
        json_t *registrars = cas_registrars_list(st);
        json_object_set_new(owner, "cas_key_hash", json_string(st->tls.key_hash));
        json_object_set_new(owner, "registrars", registrars ? registrars : json_array());
        r->body = json_incref(owner);
    }
    if (raw)
        cas_db_value_free(raw, size);
    json_decref(owner);
}

/* ---- PUT/GET /v1/secrets/NAME: owner-held secret values --------------------------------------- */

#define SECRET_VALUE_MAX (64u << 10)

/* The URL's path arrives percent-decoded (cas_mhd_unescape: %00 stays "%00"); a query string would
 * be cut off before it, so "NAME?x" is refused rather than read as NAME. */
static bool secret_record(const struct http_request *req, char *rec, size_t size, struct http_response *r)
{
    const char *name = req->url + strlen("/v1/secrets/");
    char err[512];
    if (http_arg_count(req) > 0) {
        http_error(r, 400, "invalid_name",
                   "secret name '%.140s' followed by a query string: a '?' in a name "
                   "must be percent-encoded (it is not allowed in a name anyway)",
                   name);
        return false;
    }
    if (cas_secret_name_check(name, err, sizeof(err)) < 0) {
        http_error(r, 400, "invalid_name", "%s", err);
        return false;
    }
    snprintf(rec, size, "secret/%s", name);
    return true;
}

void cas_put_secret(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    char rec[CAS_SECRET_NAME_MAX + 16];
    const char *value = NULL;
    json_error_t e;
    if (!secret_record(req, rec, sizeof(rec), r))
        return;
    json_t *body = http_json_body(req, r);
    if (!body)
        return;
    if (json_unpack_ex(body, &e, JSON_STRICT, "{s:s}", "value", &value) < 0) {
        http_error(r, 400, "invalid_request", "secret: %s (expected one field: value)", e.text);
    } else if (strlen(value) > SECRET_VALUE_MAX) {
        http_error(r, 413, "value_too_large", "secret value exceeds %u bytes", SECRET_VALUE_MAX);
    } else {
        int ret = cas_db_put(st->pri.db, rec, value, strlen(value));
        if (ret < 0)
            http_error(r, 500, "storage", "cannot store the secret: %s", strerror(-ret));
        else
            r->body = json_pack("{s:s}", "stored", rec + 7);
    }
    json_decref(body);
}

void cas_get_secret(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    char rec[CAS_SECRET_NAME_MAX + 16];
    uint8_t *value = NULL;
    size_t size = 0;
    if (!secret_record(req, rec, sizeof(rec), r))
        return;
    int ret = cas_db_get(st->pri.db, rec, &value, &size);
    if (ret == -ENOENT) {
        http_error(r, 404, "not_found", "no secret named '%s'", rec + 7);
        return;
    }
    if (ret < 0) {
        http_error(r, 500, "storage", "cannot read the secret: %s", strerror(-ret));
        return;
    }
    r->body = json_pack("{s:s, s:s%}", "name", rec + 7, "value", (const char *)value, size);
    cas_db_value_free(value, size);
    if (!r->body)
        http_error(r, 500, "storage", "the stored secret is not valid UTF-8");
}

void cas_get_healthz(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    (void)req;
    r->body = json_pack("{s:s, s:b}", "status", "ok", "provisioned", (int)atomic_load(&st->pri.provisioned));
}
