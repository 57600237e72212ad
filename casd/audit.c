/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log: records written in the same transaction as the change they record. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "casd.h"

/* ---- audit ---------------------------------------------------------------------------------- */

int cas_audit(struct cas_state *st, const char *event, json_t *details, const struct cas_db_op *extra,
              size_t extra_count)
{
    static pthread_mutex_t audit_lock = PTHREAD_MUTEX_INITIALIZER;
    uint8_t *raw = NULL;
    size_t size = 0;
    unsigned long long seq = 0;
    char name[64], next[32];
    struct cas_db_op ops[8];
    if (extra_count > 6) {
        json_decref(details);
        return -E2BIG;
    }
    pthread_mutex_lock(&audit_lock); /* the counter is read and advanced by one writer at a time */
    if (cas_db_get(st->pri.db, REC_AUDIT_NEXT, &raw, &size) == 0) {
        char buf[32] = "";
        memcpy(buf, raw, size < sizeof(buf) - 1 ? size : sizeof(buf) - 1);
        seq = strtoull(buf, NULL, 10);
        cas_db_value_free(raw, size);
    }
    json_t *rec = json_pack("{s:I, s:I, s:s, s:o}", "seq", (json_int_t)seq, "time", (json_int_t)time(NULL), "event",
                            event, "details", details ? details : json_object());
    char *text = rec ? json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(rec);
    int ret = -ENOMEM;
    if (text) {
        snprintf(name, sizeof(name), "audit/%020llu", seq);
        snprintf(next, sizeof(next), "%llu", seq + 1);
        if (extra_count)
            memcpy(ops, extra, extra_count * sizeof(*ops));
        ops[extra_count] = (struct cas_db_op){name, text, strlen(text)};
        ops[extra_count + 1] = (struct cas_db_op){REC_AUDIT_NEXT, next, strlen(next)};
        ret = cas_db_write(st->pri.db, ops, extra_count + 2);
        free(text);
    }
    pthread_mutex_unlock(&audit_lock);
    if (ret < 0)
        LOG_MODULE_ERROR(CAS_LOG, "cannot write the audit record '%s': %s", event, strerror(-ret));
    return ret;
}
