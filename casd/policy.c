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
    return p ? p
             : json_pack("{s:b, s:b, s:[], s:[]}", "trust_any_platform", 0, "allow_debug", 0, "platforms",
                         "measurements");
}

/* POST /v1/owner/allowed-measurements {"measurement": HEX} or /v1/owner/allowed-platforms
 * {"platform_id": ID}: adds to the owner's policy. */
void cas_policy_allow(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    bool measurement = strstr(req->url, "measurements") != NULL;
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
    json_t *list = json_object_get(policy, measurement ? "measurements" : "platforms");
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
    int ret = text ? cas_audit(st, measurement ? "measurement allowed" : "platform allowed",
                               json_pack("{s:s}", field, value), &op, 1)
                   : -ENOMEM;
    free(text);
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
