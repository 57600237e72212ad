/* SPDX-License-Identifier: Apache-2.0 */
/* Key rotation of the record store: every record re-encrypted in one transaction; then (a separate
 * step, after the key-store names the new key) the file compacted: its freed pages still hold the
 * records under the old key. */
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
 * A crash leaves the old file (the same data, with its stale pages) or the new one.
 *
 * The copy's transaction counter restarts at 1, while lock.mdb keeps the old file's: LMDB chooses a
 * meta page by the counter's parity, so an environment that reopened the copy through the old lock
 * region could read the copy's empty meta page (every record absent; the next commit would be built
 * on it). LMDB resets the region only when it opens the lock file alone; any other process with the
 * environment open (an operator's mdb_stat or mdb_copy) would prevent that. So the reopen gets a lock
 * file of its own (the old one, unlinked, stays with whoever still has it open, with the file it
 * belongs to), and the reopened database must show the meta record of the generation it had. */
int cas_db_compact(struct cas_db *db, char *err, size_t err_size)
{
    const char *dir = NULL;
    char path[PATH_MAX], tmp[PATH_MAX], lock[PATH_MAX];
    if (!db) {
        snprintf(err, err_size, "no database");
        return -EINVAL;
    }
    pthread_rwlock_wrlock(&db->key_lock); /* no transaction of this process is open while it runs */
    int ret = db->env ? db_errno(mdb_env_get_path(db->env, &dir)) : -EIO;
    if (ret < 0) {
        snprintf(err, err_size, "cannot get the database's directory: %s", strerror(-ret));
        goto out;
    }
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/data.mdb.compact", dir) >= (int)sizeof(tmp) ||
        snprintf(lock, sizeof(lock), "%s/lock.mdb", dir) >= (int)sizeof(lock)) {
        snprintf(err, err_size, "%s: path too long", dir);
        ret = -ENAMETOOLONG;
        goto out;
    }
    (void)unlink(tmp); /* left by a crash during an earlier compaction */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, err_size, "cannot create %s: %s", tmp, strerror(-ret));
        goto out;
    }
    ret = db_errno(mdb_env_copyfd2(db->env, fd, MDB_CP_COMPACT));
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    close(fd);
    if (ret < 0) {
        snprintf(err, err_size, "cannot write the compact copy %s: %s%s", tmp, strerror(-ret),
                 ret == -ENOSPC ? " (disk full)" : "");
        (void)unlink(tmp);
        goto out;
    }
    char dcopy[PATH_MAX];
    strcpy(dcopy, dir);
    mdb_env_close(db->env);
    db->env = NULL;
    if ((ret = custos_rename_durable(tmp, path)) < 0) {
        snprintf(err, err_size, "cannot rename %s over %s: %s", tmp, path, strerror(-ret));
        (void)unlink(tmp);
    }
    (void)unlink(lock); /* if it stays, the check below still refuses a wrong view */
    if (custos_atomic_write_hook)
        custos_atomic_write_hook(12);
    struct cas_db *fresh = NULL;
    char oerr[512];
    int oret = db_env_open(dcopy, false, &fresh, oerr, sizeof(oerr));
    if (oret == 0) {
        db->env = fresh->env;
        db->dbi = fresh->dbi;
        fresh->env = NULL;
        oret = db_check_meta(db);
        if (oret < 0) {
            snprintf(oerr, sizeof(oerr), "%s: the reopened database does not show generation %llu's meta record", dcopy,
                     (unsigned long long)db->meta.generation);
            mdb_env_close(db->env); /* nothing is read or written through a wrong view */
            db->env = NULL;
        }
    }
    cas_db_close(fresh);
    if (oret < 0) {
        snprintf(err, err_size, "%s", oerr);
        ret = -ESTALE;
    }
out:
    pthread_rwlock_unlock(&db->key_lock);
    return ret;
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
    ret = db->env ? db_errno(mdb_txn_begin(db->env, NULL, 0, &txn)) : -EIO;
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
        /* The key from our own copy: k points into the page this put rewrites (a value on overflow
         * pages is deleted and inserted again), and a key read from there came out garbled, out of
         * order, so that lookups missed records that were still in the tree. */
        MDB_val nk = {sizeof(lkey), lkey}, nv = {rec_size, rec};
        ret = db_errno(mdb_cursor_put(cur, &nk, &nv, MDB_CURRENT));
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
