/* SPDX-License-Identifier: Apache-2.0 */
/* The owner's trust policy for backups: read, and extended by the owner (checks in validate.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "casd.h"

/* ---- the owner's policy (checked in validate.c) ---------------------------------------------- */

json_t *cas_policy_load(struct cas_state *st)
{
    uint8_t *raw = NULL;
    size_t size = 0;
    json_t *p = NULL;
    char err[64];
    if (cas_db_get(st->pri.db, REC_POLICY, &raw, &size) == 0) {
        custos_json_parse((const char *)raw, size, &p, err, sizeof(err));
        cas_db_value_free(raw, size);
    }
    if (p && !json_object_get(p, "launchers")) /* a policy stored before launchers existed */
        json_object_set_new(p, "launchers", json_array());
    return p ? p
             : json_pack("{s:b, s:b, s:[], s:[], s:[]}", "trust_any_platform", 0, "allow_debug", 0, "platforms",
                         "measurements", "launchers");
}

/* POST /v1/owner/allowed-measurements {"measurement": HEX}, /v1/owner/allowed-launchers
 * {"measurement": HEX} or /v1/owner/allowed-platforms {"platform_id": ID}: adds to the owner's policy. */
void cas_policy_allow(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    bool launcher = strstr(req->url, "launchers") != NULL;
    bool measurement = launcher || strstr(req->url, "measurements") != NULL;
    const char *field = measurement ? "measurement" : "platform_id";
    const char *value = NULL;
    json_error_t e;
    char err[256];
    json_t *body = http_json_body(req, r), *policy = NULL, *checked = NULL;
    if (!body)
        return;
    if (json_unpack_ex(body, &e, JSON_STRICT, "{s:s}", field, &value) < 0) {
        http_error(r, 400, "invalid_request", "%s (expected one field: %s)", e.text, field);
        goto out;
    }
    pthread_mutex_lock(&st->lock);
    policy = cas_policy_load(st);
    json_t *list = json_object_get(policy, launcher ? "launchers" : measurement ? "measurements" : "platforms");
    size_t i;
    json_t *v;
    bool present = false;
    json_array_foreach(list, i, v)
        present |= strcasecmp(json_string_value(v), value) == 0;
    if (!present)
        json_array_append_new(list, json_string(value));
    if (cas_policy_check(policy, &checked, err, sizeof(err)) < 0) {
        pthread_mutex_unlock(&st->lock);
        http_error(r, 400, "invalid_value", "%s", err);
        goto out;
    }
    char *text = json_dumps(checked, JSON_COMPACT | JSON_SORT_KEYS);
    struct cas_db_op op = {REC_POLICY, text, text ? strlen(text) : 0};
    int ret = text ? cas_audit(st,
                               launcher      ? "launcher allowed"
                               : measurement ? "measurement allowed"
                                             : "platform allowed",
                               json_pack("{s:s}", field, value), &op, 1)
                   : -ENOMEM;
    free(text);
    atomic_fetch_add(&st->pri.policy_gen, 1);
    pthread_mutex_unlock(&st->lock);
    if (ret < 0) {
        http_error(r, 500, "storage", "cannot store the policy: %s", strerror(-ret));
        goto out;
    }
    r->body = json_incref(checked);
out:
    json_decref(checked);
    json_decref(policy);
    json_decref(body);
}

/* ---- registrars: allowed by the owner to register and list backups, nothing else -------------- */

/* A key hash as the owner gives it: 64 hex digits, stored lowercase (as casd computes callers'). */
static bool key_hash_normalize(const char *in, char out[65])
{
    if (!in || strlen(in) != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        char c = in[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        out[i] = c;
    }
    out[64] = '\0';
    return true;
}

/* The stored record {"registrars": [{"key_hash": HEX, "allowed_at": T}, ...]}, checked; an empty one
 * when none is stored. NULL when the record is damaged. */
static json_t *registrars_record(struct cas_state *st)
{
    uint8_t *raw = NULL;
    size_t size = 0;
    json_t *rec = NULL, *list = NULL, *v;
    char err[128], norm[65];
    int ret = cas_db_get(st->pri.db, REC_REGISTRARS, &raw, &size);
    if (ret == -ENOENT)
        return json_pack("{s:[]}", "registrars");
    if (ret < 0)
        return NULL;
    ret = custos_json_parse((const char *)raw, size, &rec, err, sizeof(err));
    cas_db_value_free(raw, size);
    if (ret < 0 || json_unpack(rec, "{s:o}", "registrars", &list) < 0 || !json_is_array(list) ||
        json_array_size(list) > CAS_REGISTRAR_MAX) {
        json_decref(rec);
        return NULL;
    }
    size_t i;
    json_array_foreach(list, i, v) {
        const char *h = NULL;
        json_int_t t = 0;
        if (json_unpack(v, "{s:s, s:I}", "key_hash", &h, "allowed_at", &t) < 0 || !key_hash_normalize(h, norm) ||
            strcmp(norm, h) != 0) {
            json_decref(rec);
            return NULL;
        }
    }
    return rec;
}

/* Memory follows the stored record (st->lock held, or at start). */
static void registrars_adopt(struct cas_state *st, json_t *rec)
{
    size_t i;
    json_t *v;
    st->pri.registrar_count = 0;
    json_array_foreach(json_object_get(rec, "registrars"), i, v)
        snprintf(st->pri.registrars[st->pri.registrar_count++], 65, "%s",
                 json_string_value(json_object_get(v, "key_hash")));
}

int cas_registrars_load(struct cas_state *st)
{
    json_t *rec = registrars_record(st);
    if (!rec) {
        LOG_MODULE_ERROR(CAS_LOG, "the registrars record in the database is damaged");
        return -EBADMSG;
    }
    registrars_adopt(st, rec);
    json_decref(rec);
    return 0;
}

bool cas_is_registrar(struct cas_state *st, const char *key_hash)
{
    bool found = false;
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->pri.registrar_count; i++)
        found |= custos_ct_equal(st->pri.registrars[i], key_hash, 64);
    pthread_mutex_unlock(&st->lock);
    return found;
}

/* Writes rec with its audit record in one transaction; memory changes only once it is stored. */
static int registrars_store(struct cas_state *st, json_t *rec, const char *event, const char *hash)
{
    char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    struct cas_db_op op = {REC_REGISTRARS, text, text ? strlen(text) : 0};
    int ret = text ? cas_audit(st, event, json_pack("{s:s}", "key_hash", hash), &op, 1) : -ENOMEM;
    free(text);
    if (ret == 0)
        registrars_adopt(st, rec);
    return ret;
}

/* POST /v1/owner/registrars {"key_hash": HEX} */
void cas_registrar_allow(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    const char *value = NULL;
    char hash[65];
    json_error_t e;
    if (json_unpack_ex(req->json, &e, JSON_STRICT, "{s:s}", "key_hash", &value) < 0) {
        http_error(r, 400, "invalid_request", "%s (expected one field: key_hash)", e.text);
        return;
    }
    if (!key_hash_normalize(value, hash)) {
        http_error(r, 400, "invalid_key_hash",
                   "key_hash '%.80s' is not a key hash (64 hex digits: SHA-256 of the identity's public key)", value);
        return;
    }
    if (strcmp(hash, st->pri.owner_hash) == 0) {
        http_error(r, 400, "owner_identity", "%s is the owner's own identity: it cannot be made a registrar", hash);
        return;
    }
    pthread_mutex_lock(&st->lock);
    json_t *rec = registrars_record(st);
    json_t *list = json_object_get(rec, "registrars");
    size_t i;
    json_t *v;
    bool present = false;
    json_array_foreach(list, i, v)
        present |= strcmp(json_string_value(json_object_get(v, "key_hash")), hash) == 0;
    int ret = 0;
    if (!rec)
        ret = -EBADMSG;
    else if (!present && json_array_size(list) >= CAS_REGISTRAR_MAX)
        ret = -ENOSPC;
    else if (!present) {
        json_array_append_new(list, json_pack("{s:s, s:I}", "key_hash", hash, "allowed_at", (json_int_t)time(NULL)));
        ret = registrars_store(st, rec, "registrar allowed", hash);
    }
    pthread_mutex_unlock(&st->lock);
    json_decref(rec);
    if (ret == -ENOSPC) {
        http_error(r, 409, "too_many_registrars",
                   "this CAS already has %d registrars (the most it keeps); deny one first", CAS_REGISTRAR_MAX);
        return;
    }
    if (ret < 0) {
        http_error(r, 500, "storage", "cannot store the registrars: %s", strerror(-ret));
        return;
    }
    if (!present)
        LOG_MODULE_INFO(CAS_LOG, "registrar %s allowed", hash);
    r->body = json_pack("{s:s, s:b}", "allowed", hash, "already", present);
}

/* DELETE /v1/owner/registrars/HEX */
void cas_registrar_deny(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    const char *value = req->url + strlen("/v1/owner/registrars/");
    char hash[65];
    if (!key_hash_normalize(value, hash)) {
        http_error(r, 400, "invalid_key_hash",
                   "'%.80s' is not a key hash (64 hex digits: SHA-256 of the identity's public key)", value);
        return;
    }
    pthread_mutex_lock(&st->lock);
    json_t *rec = registrars_record(st);
    json_t *list = json_object_get(rec, "registrars");
    size_t i;
    json_t *v;
    int ret = rec ? -ENOENT : -EBADMSG;
    json_array_foreach(list, i, v) {
        if (strcmp(json_string_value(json_object_get(v, "key_hash")), hash) == 0) {
            json_array_remove(list, i);
            ret = registrars_store(st, rec, "registrar denied", hash);
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    json_decref(rec);
    if (ret == -ENOENT) {
        http_error(r, 404, "not_found", "%s is not a registrar of this CAS", hash);
        return;
    }
    if (ret < 0) {
        http_error(r, 500, "storage", "cannot store the registrars: %s", strerror(-ret));
        return;
    }
    LOG_MODULE_INFO(CAS_LOG, "registrar %s denied", hash);
    r->body = json_pack("{s:s}", "denied", hash);
}

/* The registrars for GET /v1/owner: [{"key_hash", "allowed_at"}]; NULL when the record is damaged. */
json_t *cas_registrars_list(struct cas_state *st)
{
    pthread_mutex_lock(&st->lock);
    json_t *rec = registrars_record(st);
    pthread_mutex_unlock(&st->lock);
    json_t *list = json_incref(json_object_get(rec, "registrars"));
    json_decref(rec);
    return list;
}
