/* SPDX-License-Identifier: Apache-2.0 */
/* The record store's internals, shared by its parts and by nothing else: db.c (records, the meta
 * record, opening), db_commit.c (group commit), db_file.c (the data file, checked before LMDB maps
 * it), db_rekey.c (key rotation and compaction). The format is in db.h. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "custos.h"
#include "db.h"

/* The derived keys live in their own mlock'ed, never-dumped page. */
struct db_keys {
    uint8_t name[32];
    uint8_t record[32];
};

struct commit_req;

struct cas_db {
    MDB_env *env;
    MDB_dbi dbi;
    struct db_keys *keys;
    bool keys_locked;
    struct cas_db_meta meta;
    /* Readers and writers hold it shared; cas_db_rekey holds it exclusively while it swaps keys. */
    pthread_rwlock_t key_lock;
    /* Group commit: writers queue their sealed batches; one of them commits every queued batch in one
     * LMDB transaction (each in its own nested transaction) while the others wait for its result. */
    pthread_mutex_t q_lock;
    pthread_cond_t q_done;
    struct commit_req *q_head, **q_tail;
    bool q_busy; /* a writer is committing */
};

#define META_KEY "\0custos-db-meta"
#define META_KEY_SIZE (sizeof(META_KEY) - 1)
#define META_MAGIC "CDBM"
#define META_AAD "custos-db-meta-v2"
#define META_VALUE_SIZE (4 + 1 + CAS_DB_ID_SIZE + 8 + CUSTOS_AEAD_NONCE_SIZE + 32 + CUSTOS_AEAD_TAG_SIZE)

/* A record ready for LMDB: its key (name hash) and sealed value. */
struct prepared {
    uint8_t key[32];
    uint8_t *rec; /* NULL: delete */
    size_t rec_size;
};

/* db.c */
int db_errno(int rc); /* an LMDB return code as 0 or -errno */
int db_derive(const uint8_t dbkey[32], const char *info, uint8_t out[32]);
/* Builds version || nonce || AEAD(record key, nonce, aad = lkey, value). Caller frees *out. */
int db_seal_record_with(const uint8_t record_key[32], const uint8_t lkey[32], const void *value, size_t size,
                        uint8_t **out, size_t *out_size);
/* Authenticates and decrypts a stored record into a new buffer (NUL-terminated). -EBADMSG. */
int db_open_record(const struct cas_db *db, const uint8_t lkey[32], const uint8_t *rec, size_t rec_size, uint8_t **out,
                   size_t *out_size);
/* Puts the meta record for m, sealed with record_key, in txn. */
int db_put_meta(struct cas_db *db, MDB_txn *txn, const struct cas_db_meta *m, const uint8_t record_key[32]);
/* 0 when the database shows the meta record this handle opened it with (same ID, generation and
 * name key, authenticated with the record key); -EBADMSG otherwise. */
int db_check_meta(struct cas_db *db);
/* The environment, without keys. create: a new data file may be made. */
int db_env_open(const char *dir, bool create, struct cas_db **out, char *err, size_t err_size);

/* db_commit.c: queues p (count records, all or nothing) for the next group commit and waits for it.
 * 0 once committed (fsynced); the caller holds key_lock shared. */
int db_commit_grouped(struct cas_db *db, const struct prepared *p, size_t count);

/* db_file.c */
void db_fsync_dir(const char *path); /* best effort */
/* 0 when dir/data.mdb holds an LMDB database whose pages are all in the file; -ENOENT when there is
 * none or it is empty; -EBADMSG (damaged) or -errno, with err naming the file. */
int db_check_data_file(const char *dir, char *err, size_t err_size);
/* Allocates lock.mdb for real (a full file system: an error, not SIGBUS). */
int db_prepare_lock_file(const char *dir, char *err, size_t err_size);
