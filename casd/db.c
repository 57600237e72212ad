/* SPDX-License-Identifier: Apache-2.0 */
/* casd record store: encrypted, authenticated records in LMDB (see db.h for the layout); its other
 * parts: db_commit.c (group commit), db_file.c (file checks), db_rekey.c (key rotation). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "custos.h"
#include "db.h"
#include "db_internal.h"

#define REC_VERSION 1
#define REC_OVERHEAD (1 + CUSTOS_AEAD_NONCE_SIZE + CUSTOS_AEAD_TAG_SIZE)
#define SENTINEL_NAME                                                                                                  \
    "\x01"                                                                                                             \
    "custos-db-sentinel"
#define SENTINEL_VALUE "custos-db-sentinel-v1"
#define KEY_PAGE 4096

/* Checks a record name: -EINVAL when NULL, empty or reserved (starts with 0x01), -E2BIG when long. */
static int check_name(const char *name, bool allow_reserved, size_t *len)
{
    if (!name || !name[0] || (name[0] == '\x01' && !allow_reserved))
        return -EINVAL;
    size_t n = strnlen(name, CAS_DB_MAX_NAME + 1);
    if (n > CAS_DB_MAX_NAME)
        return -E2BIG;
    *len = n;
    return 0;
}

static int name_key(const struct cas_db *db, const char *name, size_t len, uint8_t out[32])
{
    return custos_hmac_sha256(db->keys->name, sizeof(db->keys->name), name, len, out) < 0 ? -EIO : 0;
}

/* Builds version || nonce || AEAD(record key, nonce, aad = lkey, value). Caller frees *out. */
int db_seal_record_with(const uint8_t record_key[32], const uint8_t lkey[32], const void *value, size_t size,
                        uint8_t **out, size_t *out_size)
{
    int ret;
    uint8_t *rec = malloc(REC_OVERHEAD + size);
    if (!rec)
        return -ENOMEM;
    rec[0] = REC_VERSION;
    ret = custos_random(rec + 1, CUSTOS_AEAD_NONCE_SIZE);
    if (ret < 0)
        goto out;
    ret = custos_aead_seal(record_key, rec + 1, lkey, 32, value, size, rec + 1 + CUSTOS_AEAD_NONCE_SIZE);
    if (ret < 0)
        goto out;
    *out = rec;
    *out_size = REC_OVERHEAD + size;
    rec = NULL;
out:
    free(rec); /* ciphertext only: nothing to wipe */
    return ret;
}

static int seal_record(const struct cas_db *db, const uint8_t lkey[32], const void *value, size_t size, uint8_t **out,
                       size_t *out_size)
{
    return db_seal_record_with(db->keys->record, lkey, value, size, out, out_size);
}

/* Authenticates and decrypts a stored record into a new buffer (NUL-terminated). -EBADMSG. */
int db_open_record(const struct cas_db *db, const uint8_t lkey[32], const uint8_t *rec, size_t rec_size, uint8_t **out,
                   size_t *out_size)
{
    int ret;
    uint8_t *pt = NULL;
    size_t size;
    if (rec_size < REC_OVERHEAD || rec_size - REC_OVERHEAD > CAS_DB_MAX_VALUE || rec[0] != REC_VERSION)
        return -EBADMSG;
    size = rec_size - REC_OVERHEAD;
    pt = malloc(size + 1);
    if (!pt)
        return -ENOMEM;
    ret = custos_aead_open(db->keys->record, rec + 1, lkey, 32, rec + 1 + CUSTOS_AEAD_NONCE_SIZE,
                           rec_size - 1 - CUSTOS_AEAD_NONCE_SIZE, pt);
    if (ret < 0)
        goto out;
    pt[size] = '\0';
    *out = pt;
    *out_size = size;
    pt = NULL;
out:
    if (pt) {
        custos_wipe(pt, size + 1);
        free(pt);
    }
    return ret;
}

static int write_ops(struct cas_db *db, const struct cas_db_op *ops, size_t count, bool allow_reserved)
{
    int ret = 0;
    struct prepared *p = NULL;
    if (!db || (!ops && count))
        return -EINVAL;
    if (count == 0)
        return 0;
    if (count > CAS_DB_MAX_OPS)
        return -E2BIG;
    p = calloc(count, sizeof(*p));
    if (!p)
        return -ENOMEM;
    pthread_rwlock_rdlock(&db->key_lock);
    if (!db->env) { /* lost after a failed compaction: read under the lock that compaction holds */
        ret = -EIO;
        goto out;
    }
    /* Encrypt before taking the write lock, so writers hold it only for the LMDB work. */
    for (size_t i = 0; i < count; i++) {
        size_t len;
        ret = check_name(ops[i].name, allow_reserved, &len);
        if (ret < 0)
            goto out;
        if (ops[i].value && ops[i].size > CAS_DB_MAX_VALUE) {
            ret = -E2BIG;
            goto out;
        }
        ret = name_key(db, ops[i].name, len, p[i].key);
        if (ret < 0)
            goto out;
        if (ops[i].value) {
            ret = seal_record(db, p[i].key, ops[i].value, ops[i].size, &p[i].rec, &p[i].rec_size);
            if (ret < 0)
                goto out;
        }
    }
    ret = db_commit_grouped(db, p, count);
out:
    pthread_rwlock_unlock(&db->key_lock);
    for (size_t i = 0; i < count; i++)
        free(p[i].rec);
    free(p);
    return ret;
}

int cas_db_write(struct cas_db *db, const struct cas_db_op *ops, size_t count)
{
    return write_ops(db, ops, count, false);
}

int cas_db_put(struct cas_db *db, const char *name, const void *value, size_t size)
{
    if (!value)
        return -EINVAL;
    struct cas_db_op op = {name, value, size};
    return write_ops(db, &op, 1, false);
}

int cas_db_del(struct cas_db *db, const char *name)
{
    struct cas_db_op op = {name, NULL, 0};
    return write_ops(db, &op, 1, false);
}

static int get_record(struct cas_db *db, const char *name, bool allow_reserved, uint8_t **value, size_t *size)
{
    int ret;
    size_t len;
    uint8_t lkey[32];
    MDB_txn *txn = NULL;
    MDB_val k = {sizeof(lkey), lkey}, v;
    if (!db || !value || !size)
        return -EINVAL;
    ret = check_name(name, allow_reserved, &len);
    if (ret < 0)
        return ret;
    pthread_rwlock_rdlock(&db->key_lock);
    if (!db->env) { /* lost after a failed compaction */
        ret = -EIO;
        goto out;
    }
    ret = name_key(db, name, len, lkey);
    if (ret < 0)
        goto out;
    ret = db_errno(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn));
    if (ret < 0) {
        txn = NULL;
        goto out;
    }
    ret = db_errno(mdb_get(txn, db->dbi, &k, &v));
    if (ret < 0)
        goto out;
    ret = db_open_record(db, lkey, v.mv_data, v.mv_size, value, size);
out:
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&db->key_lock);
    return ret;
}

int cas_db_get(struct cas_db *db, const char *name, uint8_t **value, size_t *size)
{
    return get_record(db, name, false, value, size);
}

void cas_db_value_free(uint8_t *value, size_t size)
{
    if (!value)
        return;
    custos_wipe(value, size);
    free(value);
}

/* ---- the meta record ------------------------------------------------------------------------ */

static size_t meta_aad(const struct cas_db_meta *m, uint8_t out[sizeof(META_AAD) - 1 + CAS_DB_ID_SIZE + 8])
{
    memcpy(out, META_AAD, sizeof(META_AAD) - 1);
    memcpy(out + sizeof(META_AAD) - 1, m->id, CAS_DB_ID_SIZE);
    custos_put_be(out + sizeof(META_AAD) - 1 + CAS_DB_ID_SIZE, m->generation, 8);
    return sizeof(META_AAD) - 1 + CAS_DB_ID_SIZE + 8;
}

/* The clear part of a meta value. */
static int meta_parse(const MDB_val *v, struct cas_db_meta *m)
{
    const uint8_t *b = v->mv_data;
    if (v->mv_size != META_VALUE_SIZE || memcmp(b, META_MAGIC, 4) != 0 || b[4] != 2)
        return -EBADMSG;
    memcpy(m->id, b + 5, CAS_DB_ID_SIZE);
    m->generation = custos_get_be(b + 5 + CAS_DB_ID_SIZE, 8);
    return m->generation == 0 ? -EBADMSG : 0;
}

static int meta_seal(const uint8_t record_key[32], const struct cas_db_meta *m, const uint8_t name_key_[32],
                     uint8_t out[META_VALUE_SIZE])
{
    uint8_t aad[sizeof(META_AAD) - 1 + CAS_DB_ID_SIZE + 8];
    size_t aad_size = meta_aad(m, aad);
    uint8_t *p = out;
    memcpy(p, META_MAGIC, 4);
    p[4] = 2;
    memcpy(p + 5, m->id, CAS_DB_ID_SIZE);
    custos_put_be(p + 5 + CAS_DB_ID_SIZE, m->generation, 8);
    p += 5 + CAS_DB_ID_SIZE + 8;
    int ret = custos_random(p, CUSTOS_AEAD_NONCE_SIZE);
    if (ret == 0)
        ret = custos_aead_seal(record_key, p, aad, aad_size, name_key_, 32, p + CUSTOS_AEAD_NONCE_SIZE);
    return ret;
}

static int meta_open(const uint8_t record_key[32], const MDB_val *v, struct cas_db_meta *m, uint8_t name_key_[32])
{
    uint8_t aad[sizeof(META_AAD) - 1 + CAS_DB_ID_SIZE + 8];
    int ret = meta_parse(v, m);
    if (ret < 0)
        return ret;
    size_t aad_size = meta_aad(m, aad);
    const uint8_t *p = (const uint8_t *)v->mv_data + 5 + CAS_DB_ID_SIZE + 8;
    return custos_aead_open(record_key, p, aad, aad_size, p + CUSTOS_AEAD_NONCE_SIZE, 32 + CUSTOS_AEAD_TAG_SIZE,
                            name_key_) < 0
               ? -EBADMSG
               : 0;
}

/* ---- opening -------------------------------------------------------------------------------- */

int db_derive(const uint8_t dbkey[32], const char *info, uint8_t out[32])
{
    return custos_hkdf_sha256(dbkey, CAS_DB_KEY_SIZE, NULL, 0, (const uint8_t *)info, strlen(info), out, 32) < 0 ? -EIO
                                                                                                                 : 0;
}

/* The environment, without keys. create: a new data file may be made. */
int db_env_open(const char *dir, bool create, struct cas_db **out, char *err, size_t err_size)
{
    int ret;
    struct cas_db *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, err_size, "%s: out of memory", dir);
        return -ENOMEM;
    }
    pthread_rwlock_init(&db->key_lock, NULL);
    pthread_mutex_init(&db->q_lock, NULL);
    pthread_cond_init(&db->q_done, NULL);
    db->q_tail = &db->q_head;
    void *page = mmap(NULL, KEY_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        ret = -ENOMEM;
        snprintf(err, err_size, "%s: cannot map a page for the keys: %s", dir, strerror(errno));
        goto out;
    }
    db->keys = page;
    db->keys_locked = mlock(page, KEY_PAGE) == 0; /* best effort: RLIMIT_MEMLOCK may forbid it */
    (void)madvise(page, KEY_PAGE, MADV_DONTDUMP);
    if (create) {
        ret = custos_mkdirs(dir, 0700);
        if (ret < 0) {
            snprintf(err, err_size, "cannot create the database directory %s: %s%s", dir, strerror(-ret),
                     ret == -ENOSPC ? " (disk full)" : "");
            goto out;
        }
    }
    ret = db_check_data_file(dir, err, err_size);
    /* create over an existing file only when it holds no record (cas_db_create checks): what a crash
     * right after LMDB made the file leaves */
    if (ret == -ENOENT && !create)
        snprintf(err, err_size, "%s: no database (data.mdb is missing or empty)", dir);
    if (ret < 0 && !(ret == -ENOENT && create))
        goto out;
    if ((ret = db_prepare_lock_file(dir, err, err_size)) < 0)
        goto out;
    ret = db_errno(mdb_env_create(&db->env));
    if (ret < 0) {
        db->env = NULL;
        snprintf(err, err_size, "%s: cannot create an LMDB environment: %s", dir, strerror(-ret));
        goto out;
    }
    int rc = mdb_env_set_mapsize(db->env, CAS_DB_MAP_SIZE);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_open(db->env, dir, MDB_NOTLS, 0600);
    if (rc != MDB_SUCCESS) {
        ret = db_errno(rc);
        if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED)
            ret = -EBADMSG;
        snprintf(err, err_size, "%s: cannot open the LMDB environment: %s%s", dir, mdb_strerror(rc),
                 rc == ENOSPC ? " (disk full)" : "");
        goto out;
    }
    if (create) {
        /* New data.mdb / lock.mdb entries, and a new directory, must survive a crash too. */
        char parent[PATH_MAX];
        db_fsync_dir(dir);
        if (strlen(dir) < sizeof(parent)) {
            strcpy(parent, dir);
            db_fsync_dir(dirname(parent));
        }
    }
    MDB_txn *txn = NULL;
    ret = db_errno(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn));
    if (ret == 0) {
        ret = db_errno(mdb_dbi_open(txn, NULL, 0, &db->dbi));
        if (ret == 0)
            ret = db_errno(mdb_txn_commit(txn)); /* keeps the dbi handle */
        else
            mdb_txn_abort(txn);
    }
    if (ret < 0) {
        snprintf(err, err_size, "%s: cannot open the LMDB database: %s", dir, strerror(-ret));
        goto out;
    }
    *out = db;
    db = NULL;
out:
    cas_db_close(db);
    return ret;
}

/* Reads the meta value (clear part and, with keys set, authenticated). -ENODATA when absent. */
static int read_meta(struct cas_db *db, bool authenticate, struct cas_db_meta *m, uint8_t name_key_[32])
{
    MDB_txn *txn = NULL;
    MDB_val k = {META_KEY_SIZE, (void *)META_KEY}, v;
    int ret = db_errno(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn));
    if (ret < 0)
        return ret;
    ret = db_errno(mdb_get(txn, db->dbi, &k, &v));
    if (ret == -ENOENT)
        ret = -ENODATA;
    else if (ret == 0)
        ret = authenticate ? meta_open(db->keys->record, &v, m, name_key_) : meta_parse(&v, m);
    mdb_txn_abort(txn);
    return ret;
}

int db_check_meta(struct cas_db *db)
{
    struct cas_db_meta m;
    uint8_t nk[32];
    int ret = read_meta(db, true, &m, nk);
    if (ret == 0 && (m.generation != db->meta.generation || memcmp(m.id, db->meta.id, CAS_DB_ID_SIZE) != 0 ||
                     !custos_ct_equal(nk, db->keys->name, sizeof(nk))))
        ret = -EBADMSG;
    custos_wipe(nk, sizeof(nk));
    return ret == -ENODATA ? -EBADMSG : ret;
}

int cas_db_peek(const char *dir, struct cas_db_meta *out, char *err, size_t err_size)
{
    struct cas_db *db = NULL;
    if (!dir || !*dir || !out) {
        snprintf(err, err_size, "cas_db_peek: missing argument");
        return -EINVAL;
    }
    int ret = db_env_open(dir, false, &db, err, err_size);
    if (ret == 0) {
        ret = read_meta(db, false, out, NULL);
        if (ret == -EBADMSG)
            snprintf(err, err_size, "%s: damaged database: its meta record is not of this format", dir);
        else if (ret < 0 && ret != -ENODATA)
            snprintf(err, err_size, "%s: cannot read the meta record: %s", dir, strerror(-ret));
    }
    cas_db_close(db);
    return ret;
}

/* Checks the format-1 sentinel record with the derived keys. */
static int check_sentinel(struct cas_db *db, const char *dir, char *err, size_t err_size)
{
    uint8_t *val = NULL;
    size_t val_size = 0;
    int ret = get_record(db, SENTINEL_NAME, true, &val, &val_size);
    if (ret == 0 && (val_size != strlen(SENTINEL_VALUE) || memcmp(val, SENTINEL_VALUE, val_size) != 0))
        ret = -EBADMSG;
    if (ret == -EBADMSG || ret == -ENOENT) {
        snprintf(err, err_size, "the database key does not open %s (its sentinel record %s)", dir,
                 ret == -ENOENT ? "is not under this key" : "does not authenticate");
        ret = -EBADMSG;
    } else if (ret < 0) {
        snprintf(err, err_size, "%s: cannot read the sentinel record: %s", dir, strerror(-ret));
    }
    cas_db_value_free(val, val_size);
    return ret;
}

int cas_db_open(const char *dir, const uint8_t dbkey[CAS_DB_KEY_SIZE], struct cas_db **out, char *err, size_t err_size)
{
    struct cas_db *db = NULL;
    if (!dir || !*dir || !dbkey || !out) {
        snprintf(err, err_size, "cas_db_open: missing argument");
        return -EINVAL;
    }
    int ret = db_env_open(dir, false, &db, err, err_size);
    if (ret < 0)
        return ret;
    if ((ret = db_derive(dbkey, "custos-db-records-v1", db->keys->record)) < 0) {
        snprintf(err, err_size, "%s: cannot db_derive the database keys", dir);
        goto out;
    }
    ret = read_meta(db, true, &db->meta, db->keys->name);
    if (ret == -ENODATA) { /* format 1: names from the key itself, proven by the sentinel */
        memset(&db->meta, 0, sizeof(db->meta));
        if ((ret = db_derive(dbkey, "custos-db-names-v1", db->keys->name)) == 0)
            ret = check_sentinel(db, dir, err, err_size);
    } else if (ret == -EBADMSG) {
        snprintf(err, err_size, "the database key does not open %s (its meta record does not authenticate)", dir);
    } else if (ret < 0) {
        snprintf(err, err_size, "%s: cannot read the meta record: %s", dir, strerror(-ret));
    }
    if (ret < 0)
        goto out;
    *out = db;
    db = NULL;
out:
    cas_db_close(db);
    return ret;
}

/* Writes the meta record for m (with the current record key) in its own transaction. */
int db_put_meta(struct cas_db *db, MDB_txn *txn, const struct cas_db_meta *m, const uint8_t record_key[32])
{
    uint8_t val[META_VALUE_SIZE];
    MDB_val k = {META_KEY_SIZE, (void *)META_KEY}, v = {sizeof(val), val};
    int ret = meta_seal(record_key, m, db->keys->name, val);
    if (ret == 0)
        ret = db_errno(mdb_put(txn, db->dbi, &k, &v, 0));
    return ret;
}

static int commit_meta(struct cas_db *db, const struct cas_db_meta *m)
{
    MDB_txn *txn = NULL;
    int ret = db_errno(mdb_txn_begin(db->env, NULL, 0, &txn));
    if (ret < 0)
        return ret;
    ret = db_put_meta(db, txn, m, db->keys->record);
    if (ret == 0)
        ret = db_errno(mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
    if (ret == 0)
        db->meta = *m;
    return ret;
}

int cas_db_create(const char *dir, const uint8_t dbkey[CAS_DB_KEY_SIZE], const uint8_t id[CAS_DB_ID_SIZE],
                  struct cas_db **out, char *err, size_t err_size)
{
    struct cas_db *db = NULL;
    if (!dir || !*dir || !dbkey || !id || !out) {
        snprintf(err, err_size, "cas_db_create: missing argument");
        return -EINVAL;
    }
    int ret = db_env_open(dir, true, &db, err, err_size);
    if (ret < 0)
        return ret;
    struct cas_db_meta m = {.generation = 1};
    memcpy(m.id, id, CAS_DB_ID_SIZE);
    MDB_stat ms;
    MDB_txn *txn = NULL;
    ret = db_derive(dbkey, "custos-db-records-v1", db->keys->record);
    if (ret == 0)
        ret = db_derive(dbkey, "custos-db-names-v1", db->keys->name);
    if (ret == 0)
        ret = db_errno(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn));
    if (ret == 0) {
        ret = db_errno(mdb_stat(txn, db->dbi, &ms));
        mdb_txn_abort(txn);
        if (ret == 0 && ms.ms_entries != 0) {
            snprintf(err, err_size, "%s already holds records: refusing to create a database over them", dir);
            ret = -EEXIST;
            goto out;
        }
    }
    if (ret == 0)
        ret = commit_meta(db, &m);
    if (ret < 0) {
        snprintf(err, err_size, "%s: cannot write the new database: %s%s", dir, strerror(-ret),
                 ret == -ENOSPC ? " (disk full)" : "");
        goto out;
    }
    *out = db;
    db = NULL;
out:
    cas_db_close(db);
    return ret;
}

void cas_db_get_meta(const struct cas_db *db, struct cas_db_meta *out)
{
    *out = db->meta;
}

int cas_db_migrate(struct cas_db *db, const uint8_t id[CAS_DB_ID_SIZE])
{
    if (!db || !id)
        return -EINVAL;
    if (db->meta.generation != 0)
        return -EALREADY;
    struct cas_db_meta m = {.generation = 1};
    memcpy(m.id, id, CAS_DB_ID_SIZE);
    pthread_rwlock_wrlock(&db->key_lock);
    int ret = commit_meta(db, &m);
    pthread_rwlock_unlock(&db->key_lock);
    return ret;
}

void cas_db_close(struct cas_db *db)
{
    if (!db)
        return;
    if (db->env)
        mdb_env_close(db->env);
    if (db->keys) {
        custos_wipe(db->keys, sizeof(*db->keys));
        if (db->keys_locked)
            munlock(db->keys, KEY_PAGE);
        munmap(db->keys, KEY_PAGE);
    }
    pthread_rwlock_destroy(&db->key_lock);
    pthread_mutex_destroy(&db->q_lock);
    pthread_cond_destroy(&db->q_done);
    free(db);
}
