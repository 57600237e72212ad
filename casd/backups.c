/* SPDX-License-Identifier: Apache-2.0 */
/* GET /v1/backups, DELETE /v1/backups/ID[?measurement=HEX] and DELETE /v1/backups?measurement=HEX
 * (removal rotates the database key: rotate.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "casd.h"

/* ---- listing and removal -------------------------------------------------------------------- */

/* The primary's own current entry: its platform and its measurement (or the entry without one it
 * opened before the upgrade to version 3 rewrote it). */
static bool is_current(const struct cas_state *st, const struct cas_keystore_entry *e)
{
    return e == cas_keystore_find_for(&st->pri.ks, st->node.platform_id, st->node.measurement_hex);
}

void cas_backups_list(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    (void)req;
    json_t *list = json_array();
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->pri.ks.count; i++) {
        const struct cas_keystore_entry *e = &st->pri.ks.entries[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}", "platform_id", e->platform_id, "platform_kind", e->kind,
                              "node", e->node, "tcb", (json_int_t)e->tcb, "registered_at", (json_int_t)e->time,
                              "primary", strcmp(e->platform_id, st->node.platform_id) == 0);
        /* A legacy entry (registered before key rotation) cannot follow one: register it again. */
        json_object_set_new(o, "rotatable", json_boolean(e->node_key));
        /* null: an entry of a version 1/2 key-store, for any measurement */
        json_object_set_new(o, "measurement", e->measurement[0] ? json_string(e->measurement) : json_null());
        json_object_set_new(o, "current", json_boolean(is_current(st, e)));
        json_array_append_new(list, o);
    }
    pthread_mutex_unlock(&st->lock);
    r->body = json_pack("{s:o, s:s, s:s}", "backups", list, "primary_platform_id", st->node.platform_id,
                        "primary_measurement", st->node.measurement_hex);
}

/* ?measurement=HEX: 64 hex digits (either case), lowercased into out, or "any": the entries without
 * a measurement (from a version 1/2 key-store), out = "". false: the response says why. */
static bool measurement_arg(struct http_request *req, struct http_response *r, char out[CAS_KS_MEASUREMENT_HEX + 1],
                            bool *given)
{
    const char *m = http_arg(req, "measurement");
    *given = m != NULL;
    if (!m)
        return true;
    if (strcmp(m, "any") == 0) {
        out[0] = '\0';
        return true;
    }
    if (strlen(m) != CAS_KS_MEASUREMENT_HEX || strspn(m, "0123456789abcdefABCDEF") != CAS_KS_MEASUREMENT_HEX) {
        http_error(r, 400, "invalid_measurement", "measurement '%.80s' is not %d hex digits (or \"any\")", m,
                   CAS_KS_MEASUREMENT_HEX);
        return false;
    }
    for (size_t i = 0; i <= CAS_KS_MEASUREMENT_HEX; i++)
        out[i] = (char)(m[i] >= 'A' && m[i] <= 'F' ? m[i] - 'A' + 'a' : m[i]);
    return true;
}

/* Removes the entries m matches (never the primary's current one) and rotates the key once.
 * what: how the response and the log name them. Call without st->lock. */
static void remove_matching(struct cas_state *st, struct http_response *r, const struct cas_ks_match *m,
                            const char *what)
{
    int ret = 0;
    size_t count = 0;
    const char *shown = m->measurement && !m->measurement[0] ? "any" : m->measurement;
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->pri.ks.count; i++) {
        const struct cas_keystore_entry *e = &st->pri.ks.entries[i];
        if (cas_keystore_match(e, m)) {
            if (is_current(st, e)) {
                pthread_mutex_unlock(&st->lock);
                http_error(r, 409, "primary_entry",
                           "the entry of the platform this CAS runs on (%s) for its own measurement %s cannot be "
                           "removed (only entries of other measurements of this platform can: add --measurement)",
                           st->node.platform_id, st->node.measurement_hex);
                return;
            }
            count++;
        } else if (!e->node_key) {
            pthread_mutex_unlock(&st->lock);
            http_error(r, 409, "legacy_entry",
                       "removing a backup rotates the database key, and the entry of platform %s (node %s) was "
                       "registered before rotation existed: it could not open the database afterwards. Register "
                       "that node again (cas register-backup), then remove this one",
                       e->platform_id, e->node);
            return;
        }
    }
    if (count == 0)
        ret = -ENOENT;
    if (ret == 0)
        ret = cas_audit(st, "backup removing",
                        json_pack("{s:s?, s:s?}", "platform_id", m->platform_id, "measurement", shown), NULL, 0);
    uint64_t generation = st->pri.ks.generation;
    if (ret == 0)
        ret = cas_rotate_key(st, m);
    pthread_mutex_unlock(&st->lock);
    if (ret == -ENOENT) {
        http_error(r, 404, "not_found", "no backup is registered for %s", what);
        return;
    }
    if (ret < 0) {
        http_error(r, 500, "storage", "cannot remove the backup (the database key was not rotated): %s",
                   strerror(-ret));
        return;
    }
    LOG_MODULE_INFO(CAS_LOG, "%zu key-store entr%s of %s removed; database key rotated (generation %llu -> %llu)",
                    count, count == 1 ? "y" : "ies", what, (unsigned long long)generation,
                    (unsigned long long)st->pri.ks.generation);
    r->body = json_pack("{s:s?, s:s?, s:I, s:I}", "removed", m->platform_id, "measurement", shown, "count",
                        (json_int_t)count, "generation", (json_int_t)st->pri.ks.generation);
}

/* DELETE /v1/backups/ID[?measurement=HEX]: every entry of platform ID (revoking a node), or only the
 * entry of (ID, HEX) (an old casd build's entry after an upgrade). */
void cas_backups_remove(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    const char *id = req->url + strlen("/v1/backups/");
    uint8_t pub[CUSTOS_P256_PUB_SIZE];
    char norm[CUSTOS_PLATFORM_ID_LEN + 1], m[CAS_KS_MEASUREMENT_HEX + 1], what[200];
    bool given;
    if (custos_platform_id_parse(id, pub) < 0) {
        http_error(r, 400, "invalid_platform_id", "'%.80s' is not a platform ID (66 hex digits)", id);
        return;
    }
    if (!measurement_arg(req, r, m, &given))
        return;
    custos_platform_id(pub, norm);
    struct cas_ks_match match = {.platform_id = norm, .measurement = given ? m : NULL};
    snprintf(what, sizeof(what), "platform %s%s%s", norm, given ? " and measurement " : "",
             given ? (m[0] ? m : "any") : "");
    remove_matching(st, r, &match, what);
}

/* DELETE /v1/backups?measurement=HEX: every entry of that casd measurement except the primary's
 * current one, with one key rotation (after an upgrade: the old build's entries). */
void cas_backups_prune(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    char m[CAS_KS_MEASUREMENT_HEX + 1], what[120];
    bool given;
    if (!measurement_arg(req, r, m, &given))
        return;
    if (!given) {
        http_error(r, 400, "invalid_measurement", "query parameter 'measurement' (64 hex digits) is required");
        return;
    }
    struct cas_ks_match match = {.measurement = m,
                                 .keep_platform_id = st->node.platform_id,
                                 .keep_measurement = st->node.measurement_hex};
    snprintf(what, sizeof(what), "measurement %s", m[0] ? m : "any");
    remove_matching(st, r, &match, what);
}
