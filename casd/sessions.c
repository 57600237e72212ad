/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions in the database: create (the owner), update and read (the session's access_policy), list.
 * The document's checks, normal form, hash and secrets are session.c's; here: records, versions,
 * consistency (an update names the current hash as predecessor) and the audit records, each change
 * in one transaction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "casd.h"
#include "session.h"

#define REC_SESSIONS "sessions"
#define SESSIONS_MAX 4096
#define VERSIONS_SCANNED 1000 /* how far back a stale predecessor is looked up, for its message */

/* One writer at a time over the session records and the list of names. */
static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;

static int load_json(struct cas_state *st, const char *rec, json_t **out)
{
    uint8_t *raw = NULL;
    size_t size = 0;
    char err[128];
    *out = NULL;
    int ret = cas_db_get(st->pri.db, rec, &raw, &size);
    if (ret < 0)
        return ret;
    ret = custos_json_parse((const char *)raw, size, out, err, sizeof(err)) < 0 ? -EBADMSG : 0;
    cas_db_value_free(raw, size);
    return ret;
}

/* Sessions are read on every attested retrieval and written rarely: the records read are kept
 * (parsed, read-only, shared by reference) until the next write of any session. A reader that read
 * the database while a write happened does not fill the cache (the generation changed). */
static pthread_rwlock_t cache_lock = PTHREAD_RWLOCK_INITIALIZER;
static json_t *cache; /* name -> [record, secrets] */
static unsigned long cache_gen;

static void cache_invalidate(void)
{
    pthread_rwlock_wrlock(&cache_lock);
    json_decref(cache);
    cache = NULL;
    cache_gen++;
    pthread_rwlock_unlock(&cache_lock);
}

static int load_from_db(struct cas_state *st, const char *name, json_t **record, json_t **secrets)
{
    char rec[CAS_DB_MAX_NAME];
    snprintf(rec, sizeof(rec), "session/%s", name);
    int ret = load_json(st, rec, record);
    if (ret < 0)
        return ret;
    snprintf(rec, sizeof(rec), "session-secrets/%s", name);
    ret = load_json(st, rec, secrets);
    if (ret < 0) {
        json_decref(*record);
        *record = NULL;
        return ret == -ENOENT ? -EBADMSG : ret; /* a session without its secrets record is damaged */
    }
    return 0;
}

int cas_session_load(struct cas_state *st, const char *name, json_t **record, json_t **secrets)
{
    json_t *r = NULL, *s = NULL;
    pthread_rwlock_rdlock(&cache_lock);
    json_t *hit = json_object_get(cache, name);
    unsigned long gen = cache_gen;
    if (hit) {
        r = json_incref(json_array_get(hit, 0));
        s = json_incref(json_array_get(hit, 1));
    }
    pthread_rwlock_unlock(&cache_lock);
    if (!hit) {
        int ret = load_from_db(st, name, &r, &s);
        if (ret < 0)
            return ret;
        pthread_rwlock_wrlock(&cache_lock);
        if (gen == cache_gen && (cache || (cache = json_object())) && json_object_size(cache) < SESSIONS_MAX)
            json_object_set_new(cache, name, json_pack("[O, O]", r, s));
        pthread_rwlock_unlock(&cache_lock);
    }
    *record = r;
    if (secrets)
        *secrets = s;
    else
        json_decref(s);
    return 0;
}

static bool policy_allows(const json_t *session, const char *what, const char *caller)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(json_object_get(session, "access_policy"), what), i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), caller) == 0)
            return true;
    return false;
}

/* Every import of session must name a session that exists and exports that secret to it. */
static bool imports_ok(struct cas_state *st, const json_t *session, struct http_response *r)
{
    const char *name = json_string_value(json_object_get(session, "name"));
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(session, "secrets"), i, s) {
        json_t *imp = json_object_get(s, "import");
        if (!imp)
            continue;
        const char *from = json_string_value(json_object_get(imp, "session"));
        const char *secret = json_string_value(json_object_get(imp, "secret"));
        json_t *rec = NULL;
        int ret = strcmp(from, name) == 0 ? -ELOOP : cas_session_load(st, from, &rec, NULL);
        bool exported = ret == 0 && cas_session_exports(json_object_get(rec, "session"), secret, name);
        json_decref(rec);
        if (ret == -ELOOP)
            http_error(r, 400, "invalid_session", "secrets[%zu].import: a session cannot import from itself", i);
        else if (ret == -ENOENT)
            http_error(r, 400, "invalid_session", "secrets[%zu].import: no session named '%s'", i, from);
        else if (ret < 0)
            http_error(r, 500, "storage", "cannot read session '%s': %s", from, strerror(-ret));
        else if (!exported)
            http_error(r, 403, "not_exported", "secrets[%zu].import: session '%s' does not export secret '%s' to '%s'",
                       i, from, secret, name);
        if (ret < 0 || !exported)
            return false;
    }
    return true;
}

/* The session's text from the body {"session": TEXT}, parsed and checked (400 naming the path). */
static json_t *parse_body(struct http_request *req, struct http_response *r)
{
    const char *text = NULL;
    size_t size = 0;
    json_error_t e;
    char err[512];
    json_t *session = NULL;
    if (json_unpack_ex(req->json, &e, JSON_STRICT, "{s:s%}", "session", &text, &size) < 0)
        http_error(r, 400, "invalid_request", "%s (expected one field: session, the session's YAML text)", e.text);
    else if (cas_session_parse(text, size, &session, err, sizeof(err)) < 0)
        http_error(r, 400, "invalid_session", "%s", err);
    return session;
}

/* Writes a session version: its record, secrets, history entry and (on create) the list of names,
 * with its audit record, in one transaction. */
static int store(struct cas_state *st, const char *event, json_t *record, const json_t *secrets, json_t *names,
                 const char *by)
{
    const char *name = json_string_value(json_object_get(json_object_get(record, "session"), "name"));
    json_int_t version = json_integer_value(json_object_get(record, "version"));
    char rec[CAS_DB_MAX_NAME], srec[CAS_DB_MAX_NAME], vrec[CAS_DB_MAX_NAME];
    snprintf(rec, sizeof(rec), "session/%s", name);
    snprintf(srec, sizeof(srec), "session-secrets/%s", name);
    snprintf(vrec, sizeof(vrec), "session-version/%s/%lld", name, (long long)version);
    json_t *hist = json_pack("{s:O, s:O, s:O, s:s}", "hash", json_object_get(record, "hash"), "session",
                             json_object_get(record, "session"), "time", json_object_get(record, "updated"), "by", by);
    char *t_rec = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
    char *t_sec = json_dumps(secrets, JSON_COMPACT | JSON_SORT_KEYS);
    char *t_hist = hist ? json_dumps(hist, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *t_names = names ? json_dumps(names, JSON_COMPACT) : NULL;
    int ret = -ENOMEM;
    if (t_rec && t_sec && t_hist && (!names || t_names)) {
        struct cas_db_op ops[4] = {
            {rec, t_rec, strlen(t_rec)},
            {srec, t_sec, strlen(t_sec)},
            {vrec, t_hist, strlen(t_hist)},
            {REC_SESSIONS, t_names, t_names ? strlen(t_names) : 0},
        };
        cache_invalidate(); /* before and after: no reader caches what it read during the write */
        ret = cas_audit(st, event,
                        json_pack("{s:s, s:O, s:I, s:s}", "name", name, "hash", json_object_get(record, "hash"),
                                  "version", version, "by", by),
                        ops, names ? 4 : 3);
        cache_invalidate();
    }
    if (t_sec)
        custos_wipe(t_sec, strlen(t_sec));
    free(t_rec);
    free(t_sec);
    free(t_hist);
    free(t_names);
    json_decref(hist);
    return ret;
}

static json_t *load_names(struct cas_state *st)
{
    json_t *names = NULL;
    if (load_json(st, REC_SESSIONS, &names) < 0 || !json_is_array(names)) {
        json_decref(names);
        names = json_array();
    }
    return names;
}

/* POST /v1/sessions {"session": TEXT} (the owner) */
void cas_sessions_create(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    json_t *session = parse_body(req, r), *old = NULL, *secrets = NULL, *names = NULL, *record = NULL;
    char err[512], hash[65];
    if (!session)
        return;
    const char *name = json_string_value(json_object_get(session, "name"));
    if (json_object_get(session, "predecessor")) {
        http_error(r, 400, "invalid_session",
                   "predecessor: a new session has no predecessor (to change session '%s', use update)", name);
        goto out;
    }
    cas_session_set_creator(session, req->caller);
    pthread_mutex_lock(&sessions_lock);
    int ret = cas_session_load(st, name, &old, NULL);
    if (ret == 0) {
        http_error(r, 409, "session_exists",
                   "session '%s' exists (version %lld, hash %s): update it with predecessor: %s", name,
                   (long long)json_integer_value(json_object_get(old, "version")),
                   json_string_value(json_object_get(old, "hash")), json_string_value(json_object_get(old, "hash")));
        goto unlock;
    }
    if (ret != -ENOENT) {
        http_error(r, 500, "storage", "cannot read session '%s': %s", name, strerror(-ret));
        goto unlock;
    }
    names = load_names(st);
    if (json_array_size(names) >= SESSIONS_MAX) {
        http_error(r, 507, "too_many_sessions", "this CAS holds %d sessions, the most it keeps", SESSIONS_MAX);
        goto unlock;
    }
    if (!imports_ok(st, session, r))
        goto unlock;
    if (cas_session_secrets(session, NULL, &secrets, err, sizeof(err)) < 0) {
        http_error(r, 400, "invalid_session", "%s", err);
        goto unlock;
    }
    json_int_t now = (json_int_t)time(NULL);
    cas_session_hash(session, hash);
    record = json_pack("{s:s, s:O, s:s, s:I, s:I, s:I}", "hash", hash, "session", session, "creator", req->caller,
                       "created", now, "updated", now, "version", (json_int_t)1);
    json_array_append_new(names, json_string(name));
    ret = record ? store(st, "session created", record, secrets, names, req->caller) : -ENOMEM;
    if (ret < 0) {
        http_error(r, 500, "storage", "cannot store session '%s': %s", name, strerror(-ret));
        goto unlock;
    }
    LOG_MODULE_INFO(CAS_LOG, "session %s created (version 1, hash %s) by %.16s", name, hash, req->caller);
    r->body = json_pack("{s:s, s:s, s:i}", "name", name, "hash", hash, "version", 1);
unlock:
    pthread_mutex_unlock(&sessions_lock);
out:
    json_decref(record);
    json_decref(names);
    json_decref(secrets);
    json_decref(old);
    json_decref(session);
}

/* The session name of a /v1/sessions/NAME path (400 when it is not one). */
static const char *path_name(const struct http_request *req, struct http_response *r)
{
    const char *name = req->url + strlen("/v1/sessions/");
    if (http_arg_count(req) > 0 || !cas_session_name_valid(name)) {
        http_error(r, 400, "invalid_name",
                   "'%.140s' is not a session name (1 to 128 of A-Z a-z 0-9 . _ -, not . or .., no query string)",
                   name);
        return NULL;
    }
    return name;
}

/* Which version of name has this hash (0: none of the last VERSIONS_SCANNED). */
static json_int_t version_of(struct cas_state *st, const char *name, json_int_t current, const char *hash)
{
    for (json_int_t v = current - 1; v >= 1 && v >= current - VERSIONS_SCANNED; v--) {
        char rec[CAS_DB_MAX_NAME];
        json_t *h = NULL;
        snprintf(rec, sizeof(rec), "session-version/%s/%lld", name, (long long)v);
        bool same = load_json(st, rec, &h) == 0 && json_is_string(json_object_get(h, "hash")) &&
                    strcmp(json_string_value(json_object_get(h, "hash")), hash) == 0;
        json_decref(h);
        if (same)
            return v;
    }
    return 0;
}

/* PUT /v1/sessions/NAME {"session": TEXT} (an identity in the current version's access_policy.update) */
void cas_sessions_update(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    const char *name = path_name(req, r);
    json_t *session = name ? parse_body(req, r) : NULL, *cur = NULL, *old_secrets = NULL, *secrets = NULL;
    char err[512], hash[65];
    if (!session)
        return;
    const char *doc_name = json_string_value(json_object_get(session, "name"));
    const char *pred = json_string_value(json_object_get(session, "predecessor"));
    if (strcmp(doc_name, name) != 0) {
        http_error(r, 400, "invalid_session", "name: the document names session '%s', the request '%s'", doc_name,
                   name);
        goto out;
    }
    pthread_mutex_lock(&sessions_lock);
    int ret = cas_session_load(st, name, &cur, &old_secrets);
    if (ret < 0) {
        if (ret == -ENOENT)
            http_error(r, 404, "not_found", "no session named '%s' (create it first)", name);
        else
            http_error(r, 500, "storage", "cannot read session '%s': %s", name, strerror(-ret));
        goto unlock;
    }
    const json_t *cur_session = json_object_get(cur, "session");
    const char *cur_hash = json_string_value(json_object_get(cur, "hash"));
    json_int_t version = json_integer_value(json_object_get(cur, "version"));
    if (!policy_allows(cur_session, "update", req->caller)) {
        http_error(r, 403, "forbidden", "identity %s may not update session '%s' (not in its access_policy.update)",
                   req->caller, name);
        goto unlock;
    }
    if (!pred) {
        http_error(r, 400, "invalid_session", "predecessor: an update must name the current version's hash (%s)",
                   cur_hash);
        goto unlock;
    }
    if (strcmp(pred, cur_hash) != 0) {
        json_int_t v = version_of(st, name, version, pred);
        if (v)
            http_error(r, 409, "stale_predecessor",
                       "predecessor %s is version %lld of session '%s'; the current version is %lld (hash %s): "
                       "an update must build on the current version",
                       pred, (long long)v, name, (long long)version, cur_hash);
        else
            http_error(r, 409, "stale_predecessor",
                       "predecessor %s is not a version of session '%s'; the current version is %lld (hash %s)", pred,
                       name, (long long)version, cur_hash);
        goto unlock;
    }
    cas_session_set_creator(session, json_string_value(json_object_get(cur, "creator")));
    if (!imports_ok(st, session, r))
        goto unlock;
    if (cas_session_secrets(session, old_secrets, &secrets, err, sizeof(err)) < 0) {
        http_error(r, 400, "invalid_session", "%s", err);
        goto unlock;
    }
    cas_session_hash(session, hash);
    json_t *shared = cur; /* the cache's: read-only */
    cur = json_deep_copy(shared);
    json_decref(shared);
    if (!cur) {
        http_error(r, 500, "internal", "out of memory");
        goto unlock;
    }
    json_object_set_new(cur, "hash", json_string(hash));
    json_object_set(cur, "session", session);
    json_object_set_new(cur, "updated", json_integer((json_int_t)time(NULL)));
    json_object_set_new(cur, "version", json_integer(version + 1));
    ret = store(st, "session updated", cur, secrets, NULL, req->caller);
    if (ret < 0) {
        http_error(r, 500, "storage", "cannot store session '%s': %s", name, strerror(-ret));
        goto unlock;
    }
    LOG_MODULE_INFO(CAS_LOG, "session %s updated (version %lld, hash %s) by %.16s", name, (long long)version + 1, hash,
                    req->caller);
    r->body =
        json_pack("{s:s, s:s, s:I, s:s}", "name", name, "hash", hash, "version", version + 1, "predecessor", pred);
unlock:
    pthread_mutex_unlock(&sessions_lock);
out:
    json_decref(secrets);
    json_decref(old_secrets);
    json_decref(cur);
    json_decref(session);
}

/* GET /v1/sessions/NAME (an identity in access_policy.read): the document, never generated values. */
void cas_sessions_read(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    const char *name = path_name(req, r);
    json_t *cur = NULL;
    if (!name)
        return;
    int ret = cas_session_load(st, name, &cur, NULL);
    if (ret == -ENOENT || (ret == 0 && !policy_allows(json_object_get(cur, "session"), "read", req->caller)))
        /* the same answer for "absent" and "not yours": names are not disclosed to strangers */
        http_error(r, 404, "not_found", "no session named '%s' that identity %s may read", name, req->caller);
    else if (ret < 0)
        http_error(r, 500, "storage", "cannot read session '%s': %s", name, strerror(-ret));
    else
        r->body = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O}", "name", name, "hash", json_object_get(cur, "hash"),
                            "version", json_object_get(cur, "version"), "created", json_object_get(cur, "created"),
                            "updated", json_object_get(cur, "updated"), "session", json_object_get(cur, "session"));
    json_decref(cur);
}

/* GET /v1/sessions: the sessions the caller may read. */
void cas_sessions_list(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    json_t *names = load_names(st), *out = json_array(), *v;
    size_t i;
    json_array_foreach(names, i, v) {
        json_t *cur = NULL;
        if (cas_session_load(st, json_string_value(v), &cur, NULL) == 0 &&
            policy_allows(json_object_get(cur, "session"), "read", req->caller))
            json_array_append_new(out,
                                  json_pack("{s:O, s:O, s:O, s:O}", "name", v, "hash", json_object_get(cur, "hash"),
                                            "version", json_object_get(cur, "version"), "updated",
                                            json_object_get(cur, "updated")));
        json_decref(cur);
    }
    r->body = json_pack("{s:o}", "sessions", out);
    json_decref(names);
}
