/* SPDX-License-Identifier: Apache-2.0 */
/* Group commit of the record store: concurrent writers share one LMDB commit (its fsyncs). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include <lmdb.h>

#include "db_internal.h"

/* One writer's batch in the group-commit queue (on its stack). */
struct commit_req {
    const struct prepared *p;
    size_t count;
    int ret;
    bool done;
    struct commit_req *next;
};

/* Applies one batch in txn: all of it or (an error returned) none of it when txn is a nested one. */
static int apply(struct cas_db *db, MDB_txn *txn, const struct prepared *p, size_t count)
{
    int ret = 0;
    for (size_t i = 0; i < count && ret == 0; i++) {
        MDB_val k = {sizeof(p[i].key), (void *)p[i].key};
        if (p[i].rec) {
            MDB_val v = {p[i].rec_size, p[i].rec};
            ret = db_errno(mdb_put(txn, db->dbi, &k, &v, 0));
        } else {
            ret = db_errno(mdb_del(txn, db->dbi, &k, NULL));
        }
    }
    return ret;
}

/* Commits the queued batches in one LMDB write transaction (one commit: its two fsyncs are shared).
 * A single batch is applied directly; with several, each goes into a nested transaction, so a batch
 * that fails (a delete of an absent name, a full map) is undone alone and the others still commit.
 * Every batch's ret is 0 only once the outer commit returned (durable). */
static void commit_batches(struct cas_db *db, struct commit_req *batch)
{
    MDB_txn *txn = NULL;
    int ret = db_errno(mdb_txn_begin(db->env, NULL, 0, &txn));
    bool nested = batch->next != NULL;
    for (struct commit_req *r = batch; r; r = r->next) {
        if (ret < 0) {
            r->ret = ret;
            continue;
        }
        if (!nested) {
            r->ret = apply(db, txn, r->p, r->count);
            continue;
        }
        MDB_txn *child = NULL;
        r->ret = db_errno(mdb_txn_begin(db->env, txn, 0, &child));
        if (r->ret == 0)
            r->ret = apply(db, child, r->p, r->count);
        if (r->ret == 0)
            r->ret = db_errno(mdb_txn_commit(child));
        else if (child)
            mdb_txn_abort(child);
    }
    if (ret == 0) {
        bool any = false;
        for (struct commit_req *r = batch; r; r = r->next)
            any |= r->ret == 0;
        if (!any) {
            mdb_txn_abort(txn);
            return;
        }
        ret = db_errno(mdb_txn_commit(txn)); /* fsyncs data and meta pages (no MDB_NOSYNC) */
        for (struct commit_req *r = batch; r && ret < 0; r = r->next)
            if (r->ret == 0)
                r->ret = ret;
    }
}

/* Queues p and waits: either another writer commits it, or this one becomes the committer of
 * everything queued when the previous commit ends. Returns the batch's result (0: durable). */
int db_commit_grouped(struct cas_db *db, const struct prepared *p, size_t count)
{
    struct commit_req me = {.p = p, .count = count};
    pthread_mutex_lock(&db->q_lock);
    *db->q_tail = &me;
    db->q_tail = &me.next;
    while (!me.done && db->q_busy)
        pthread_cond_wait(&db->q_done, &db->q_lock);
    if (me.done) {
        pthread_mutex_unlock(&db->q_lock);
        return me.ret;
    }
    struct commit_req *batch = db->q_head;
    db->q_head = NULL;
    db->q_tail = &db->q_head;
    db->q_busy = true;
    pthread_mutex_unlock(&db->q_lock);
    commit_batches(db, batch);
    pthread_mutex_lock(&db->q_lock);
    for (struct commit_req *r = batch, *next; r; r = next) {
        next = r->next; /* r may be gone once done is seen */
        r->done = true;
    }
    db->q_busy = false;
    pthread_cond_broadcast(&db->q_done);
    pthread_mutex_unlock(&db->q_lock);
    return me.ret;
}
