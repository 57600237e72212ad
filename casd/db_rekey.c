/* SPDX-License-Identifier: Apache-2.0 */
/* Key rotation of the record store: every record re-encrypted in one transaction, then the file
 * compacted (its freed pages still hold the records under the old key). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db_internal.h"

/* Replaces data.mdb with a compact copy of itself: the pages a rotation freed still hold the records
 * under the old key, and LMDB reuses free pages only as it needs them. The copy holds live pages only.
 * Called with key_lock held exclusively (no transaction of this process is open). A crash leaves
 * the old file (the same data, with its stale pages) or the new one. */
static int compact(struct cas_db *db)
{
    const char *dir = NULL;
    char path[PATH_MAX], tmp[PATH_MAX];
    int ret = db_errno(mdb_env_get_path(db->env, &dir));
    if (ret < 0)
        return ret;
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/data.mdb.compact", dir) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    (void)unlink(tmp); /* left by a crash during an earlier compaction */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    ret = db_errno(mdb_env_copyfd2(db->env, fd, MDB_CP_COMPACT));
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    close(fd);
    if (ret < 0) {
        (void)unlink(tmp);
        return ret;
    }
    char dcopy[PATH_MAX];
    strcpy(dcopy, dir);
    mdb_env_close(db->env);
    db->env = NULL;
    ret = custos_rename_durable(tmp, path);
    char err[256];
    struct cas_db *fresh = NULL;
    int oret = db_env_open(dcopy, false, &fresh, err, sizeof(err));
    if (oret == 0) {
        db->env = fresh->env;
        db->dbi = fresh->dbi;
        fresh->env = NULL;
    }
    cas_db_close(fresh);
    return ret < 0 ? ret : oret;
}

int cas_db_rekey(struct cas_db *db, const uint8_t new_key[CAS_DB_KEY_SIZE], uint64_t generation)
{
    uint8_t record[32];
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t *pt = NULL, *rec = NULL;
    size_t pt_size = 0, rec_size = 0;
    if (!db || !new_key || generation <= db->meta.generation || db->meta.generation == 0)
        return -EINVAL;
    int ret = db_derive(new_key, "custos-db-records-v1", record);
    if (ret < 0)
        return ret;
    pthread_rwlock_wrlock(&db->key_lock);
    ret = db_errno(mdb_txn_begin(db->env, NULL, 0, &txn));
    if (ret < 0) {
        txn = NULL;
        goto out;
    }
    ret = db_errno(mdb_cursor_open(txn, db->dbi, &cur));
    if (ret < 0)
        goto out;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc != MDB_NOTFOUND;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((ret = db_errno(rc)) < 0)
            goto out;
        if (k.mv_size == META_KEY_SIZE && memcmp(k.mv_data, META_KEY, META_KEY_SIZE) == 0)
            continue;
        if (k.mv_size != 32) {
            ret = -EBADMSG;
            goto out;
        }
        uint8_t lkey[32];
        memcpy(lkey, k.mv_data, 32);
        ret = db_open_record(db, lkey, v.mv_data, v.mv_size, &pt, &pt_size);
        if (ret == 0)
            ret = db_seal_record_with(record, lkey, pt, pt_size, &rec, &rec_size);
        cas_db_value_free(pt, pt_size);
        pt = NULL;
        if (ret < 0)
            goto out;
        MDB_val nv = {rec_size, rec};
        ret = db_errno(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT));
        free(rec);
        rec = NULL;
        if (ret < 0)
            goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    struct cas_db_meta m = db->meta;
    m.generation = generation;
    if ((ret = db_put_meta(db, txn, &m, record)) < 0)
        goto out;
    if (custos_atomic_write_hook)
        custos_atomic_write_hook(10);
    ret = db_errno(mdb_txn_commit(txn));
    txn = NULL;
    if (ret == 0) {
        memcpy(db->keys->record, record, sizeof(record));
        db->meta = m;
        ret = compact(db);
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&db->key_lock);
    custos_wipe(record, sizeof(record));
    return ret;
}
