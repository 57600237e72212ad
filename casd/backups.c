/* SPDX-License-Identifier: Apache-2.0 */
/* GET /v1/backups and DELETE /v1/backups/ID (removal rotates the database key: rotate.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "casd.h"

/* ---- listing and removal -------------------------------------------------------------------- */

void cas_backups_list(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    (void)req;
    json_t *list = json_array();
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->pri.ks.count; i++) {
        const struct cas_keystore_entry *e = &st->pri.ks.entries[i];
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}", "platform_id", e->platform_id,
                                              "platform_kind", e->kind, "node", e->node, "tcb", (json_int_t)e->tcb,
                                              "registered_at", (json_int_t)e->time, "primary",
                                              strcmp(e->platform_id, st->node.platform_id) == 0));
        /* A legacy entry (registered before key rotation) cannot follow one: register it again. */
        json_object_set_new(json_array_get(list, json_array_size(list) - 1), "rotatable", json_boolean(e->node_key));
    }
    pthread_mutex_unlock(&st->lock);
    r->body = json_pack("{s:o, s:s}", "backups", list, "primary_platform_id", st->node.platform_id);
}

void cas_backups_remove(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    const char *id = req->url + strlen("/v1/backups/");
    uint8_t pub[CUSTOS_P256_PUB_SIZE];
    char norm[CUSTOS_PLATFORM_ID_LEN + 1];
    if (custos_platform_id_parse(id, pub) < 0) {
        http_error(r, 400, "invalid_platform_id", "'%.80s' is not a platform ID (66 hex digits)", id);
        return;
    }
    custos_platform_id(pub, norm);
    if (strcmp(norm, st->node.platform_id) == 0) {
        http_error(r, 409, "primary_entry", "the entry of the platform this CAS runs on (%s) cannot be removed", norm);
        return;
    }
    pthread_mutex_lock(&st->lock);
    int ret = cas_keystore_find(&st->pri.ks, norm) ? 0 : -ENOENT;
    for (size_t i = 0; ret == 0 && i < st->pri.ks.count; i++) {
        const struct cas_keystore_entry *e = &st->pri.ks.entries[i];
        if (!e->node_key && strcmp(e->platform_id, norm) != 0) {
            pthread_mutex_unlock(&st->lock);
            http_error(r, 409, "legacy_entry",
                       "removing a backup rotates the database key, and the entry of platform %s (node %s) was "
                       "registered before rotation existed: it could not open the database afterwards. Register "
                       "that node again (cas register-backup), then remove this one",
                       e->platform_id, e->node);
            return;
        }
    }
    if (ret == 0)
        ret = cas_audit(st, "backup removing", json_pack("{s:s}", "platform_id", norm), NULL, 0);
    uint64_t generation = st->pri.ks.generation;
    if (ret == 0)
        ret = cas_rotate_key(st, norm);
    pthread_mutex_unlock(&st->lock);
    if (ret == -ENOENT) {
        http_error(r, 404, "not_found", "no backup is registered for platform %s", norm);
        return;
    }
    if (ret < 0) {
        http_error(r, 500, "storage", "cannot remove the backup (the database key was not rotated): %s",
                   strerror(-ret));
        return;
    }
    LOG_MODULE_INFO(CAS_LOG, "backup of platform %s removed; database key rotated (generation %llu -> %llu)", norm,
                    (unsigned long long)generation, (unsigned long long)st->pri.ks.generation);
    r->body = json_pack("{s:s, s:I}", "removed", norm, "generation", (json_int_t)st->pri.ks.generation);
}
