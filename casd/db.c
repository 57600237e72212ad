/* SPDX-License-Identifier: Apache-2.0 */
/* casd record store: encrypted, authenticated records in LMDB (see db.h for the layout). */
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

#define REC_VERSION 1
#define REC_OVERHEAD (1 + CUSTOS_AEAD_NONCE_SIZE + CUSTOS_AEAD_TAG_SIZE)
#define SENTINEL_NAME "\x01" "custos-db-sentinel"
#define SENTINEL_VALUE "custos-db-sentinel-v1"
#define KEY_PAGE 4096

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

static int mdb_to_errno(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL:
        return -ENOSPC;
    case MDB_READERS_FULL:
        return -EAGAIN;
    case MDB_BAD_VALSIZE:
        return -E2BIG;
    default:
        return rc > 0 ? -rc : -EIO;
    }
}

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
static int seal_record_with(const uint8_t record_key[32], const uint8_t lkey[32], const void *value, size_t size,
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

static int seal_record(const struct cas_db *db, const uint8_t lkey[32], const void *value, size_t size,
                       uint8_t **out, size_t *out_size)
{
    return seal_record_with(db->keys->record, lkey, value, size, out, out_size);
}

/* Authenticates and decrypts a stored record into a new buffer (NUL-terminated). -EBADMSG. */
static int open_record(const struct cas_db *db, const uint8_t lkey[32], const uint8_t *rec, size_t rec_size,
                       uint8_t **out, size_t *out_size)
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

struct prepared {
    uint8_t key[32];
    uint8_t *rec; /* NULL: delete */
    size_t rec_size;
};

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
            ret = mdb_to_errno(mdb_put(txn, db->dbi, &k, &v, 0));
        } else {
            ret = mdb_to_errno(mdb_del(txn, db->dbi, &k, NULL));
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
    int ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, 0, &txn));
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
        r->ret = mdb_to_errno(mdb_txn_begin(db->env, txn, 0, &child));
        if (r->ret == 0)
            r->ret = apply(db, child, r->p, r->count);
        if (r->ret == 0)
            r->ret = mdb_to_errno(mdb_txn_commit(child));
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
        ret = mdb_to_errno(mdb_txn_commit(txn)); /* fsyncs data and meta pages (no MDB_NOSYNC) */
        for (struct commit_req *r = batch; r && ret < 0; r = r->next)
            if (r->ret == 0)
                r->ret = ret;
    }
}

/* Queues p and waits: either another writer commits it, or this one becomes the committer of
 * everything queued when the previous commit ends. Returns the batch's result (0: durable). */
static int commit_grouped(struct cas_db *db, const struct prepared *p, size_t count)
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

static int write_ops(struct cas_db *db, const struct cas_db_op *ops, size_t count, bool allow_reserved)
{
    int ret = 0;
    struct prepared *p = NULL;
    if (!db || (!ops && count))
        return -EINVAL;
    if (!db->env)
        return -EIO; /* lost after a failed compaction */
    if (count == 0)
        return 0;
    if (count > CAS_DB_MAX_OPS)
        return -E2BIG;
    p = calloc(count, sizeof(*p));
    if (!p)
        return -ENOMEM;
    pthread_rwlock_rdlock(&db->key_lock);
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
    ret = commit_grouped(db, p, count);
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
    if (!db->env)
        return -EIO;
    ret = check_name(name, allow_reserved, &len);
    if (ret < 0)
        return ret;
    pthread_rwlock_rdlock(&db->key_lock);
    ret = name_key(db, name, len, lkey);
    if (ret < 0)
        goto out;
    ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn));
    if (ret < 0) {
        txn = NULL;
        goto out;
    }
    ret = mdb_to_errno(mdb_get(txn, db->dbi, &k, &v));
    if (ret < 0)
        goto out;
    ret = open_record(db, lkey, v.mv_data, v.mv_size, value, size);
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

/* Best-effort fsync of a directory, so newly created entries in it survive a crash. */
static void fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)fsync(fd);
    close(fd);
}

/* ---- the data file, checked before LMDB maps it ----------------------------------------------- */

/* LMDB 0.9 file layout (mdb.c): pages 0 and 1 are meta pages; a page header is 16 bytes, then
 * MDB_meta: magic u32 | version u32 | address (8) | mapsize (8) | 2 x MDB_db (48 each; the first's
 * md_pad is the page size) | last_pg (8) | txnid (8). Native byte order, 64-bit. */
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_VERSION 1u
#define LMDB_PAGEHDR 16
#define LMDB_META_PSIZE 24
#define LMDB_META_LAST_PG 120
#define LMDB_META_TXNID 128
#define LMDB_META_SIZE 136

struct lmdb_meta {
    uint32_t psize;
    uint64_t last_pg, txnid;
};

static bool read_lmdb_meta(int fd, off_t at, struct lmdb_meta *m)
{
    uint8_t b[LMDB_META_SIZE];
    uint32_t magic, version;
    if (pread(fd, b, sizeof(b), at + LMDB_PAGEHDR) != (ssize_t)sizeof(b))
        return false;
    memcpy(&magic, b, 4);
    memcpy(&version, b + 4, 4);
    memcpy(&m->psize, b + LMDB_META_PSIZE, 4);
    memcpy(&m->last_pg, b + LMDB_META_LAST_PG, 8);
    memcpy(&m->txnid, b + LMDB_META_TXNID, 8);
    return magic == LMDB_MAGIC && version == LMDB_VERSION && m->psize >= 512 && m->psize <= 65536 &&
           (m->psize & (m->psize - 1)) == 0;
}

/* 0 when dir/data.mdb holds an LMDB database whose pages are all in the file; -ENOENT when there is
 * no data.mdb or it is empty; -EBADMSG (damaged: not LMDB, truncated) or -errno, with err naming the
 * file. A truncated file would make LMDB fault (SIGBUS) when it touches a missing page. */
static int check_data_file(const char *dir, char *err, size_t err_size)
{
    char path[PATH_MAX];
    struct stat sb;
    struct lmdb_meta m[2];
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path)) {
        snprintf(err, err_size, "database path too long: %s", dir);
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return -ENOENT;
        snprintf(err, err_size, "%s: cannot open the database file: %s", path, strerror(e));
        return -e;
    }
    int ret = 0;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, err_size, "%s: not a regular file", path);
        ret = -EINVAL;
        goto out;
    }
    if (sb.st_size == 0) {
        ret = -ENOENT;
        goto out;
    }
    bool ok0 = read_lmdb_meta(fd, 0, &m[0]);
    bool ok1 = ok0 && read_lmdb_meta(fd, (off_t)m[0].psize, &m[1]) && m[1].psize == m[0].psize;
    if (!ok0 || !ok1) {
        snprintf(err, err_size, "%s: damaged database file: %s (%lld bytes)", path,
                 ok0 ? "its second meta page is missing or invalid" : "not an LMDB database or its first page is damaged",
                 (long long)sb.st_size);
        ret = -EBADMSG;
        goto out;
    }
    const struct lmdb_meta *cur = m[1].txnid > m[0].txnid ? &m[1] : &m[0];
    uint64_t need = (cur->last_pg + 1) * (uint64_t)cur->psize;
    if (cur->last_pg > (1ull << 40) || (uint64_t)sb.st_size < need) {
        snprintf(err, err_size, "%s: damaged database file: truncated to %lld bytes, its last transaction needs %llu",
                 path, (long long)sb.st_size, (unsigned long long)need);
        ret = -EBADMSG;
    }
out:
    close(fd);
    return ret;
}

/* LMDB writes its lock file through a shared mapping: on a full file system a page of it that was
 * never allocated faults (SIGBUS) instead of failing. Allocate it for real first. */
static int prepare_lock_file(const char *dir, char *err, size_t err_size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_size, "%s: cannot create the lock file: %s", path, strerror(e));
        return -e;
    }
    int e = posix_fallocate(fd, 0, 65536);
    close(fd);
    if (e != 0) {
        snprintf(err, err_size, "%s: cannot allocate the lock file: %s%s", path, strerror(e),
                 e == ENOSPC ? " (disk full)" : "");
        return -e;
    }
    return 0;
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
                            name_key_) < 0 ? -EBADMSG : 0;
}

/* ---- opening -------------------------------------------------------------------------------- */

static int derive(const uint8_t dbkey[32], const char *info, uint8_t out[32])
{
    return custos_hkdf_sha256(dbkey, CAS_DB_KEY_SIZE, NULL, 0, (const uint8_t *)info, strlen(info), out, 32) < 0
               ? -EIO
               : 0;
}

/* The environment, without keys. create: a new data file may be made. */
static int env_open(const char *dir, bool create, struct cas_db **out, char *err, size_t err_size)
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
    ret = check_data_file(dir, err, err_size);
    /* create over an existing file only when it holds no record (cas_db_create checks): what a crash
     * right after LMDB made the file leaves */
    if (ret == -ENOENT && !create)
        snprintf(err, err_size, "%s: no database (data.mdb is missing or empty)", dir);
    if (ret < 0 && !(ret == -ENOENT && create))
        goto out;
    if ((ret = prepare_lock_file(dir, err, err_size)) < 0)
        goto out;
    ret = mdb_to_errno(mdb_env_create(&db->env));
    if (ret < 0) {
        db->env = NULL;
        snprintf(err, err_size, "%s: cannot create an LMDB environment: %s", dir, strerror(-ret));
        goto out;
    }
    int rc = mdb_env_set_mapsize(db->env, CAS_DB_MAP_SIZE);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_open(db->env, dir, MDB_NOTLS, 0600);
    if (rc != MDB_SUCCESS) {
        ret = mdb_to_errno(rc);
        if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED)
            ret = -EBADMSG;
        snprintf(err, err_size, "%s: cannot open the LMDB environment: %s%s", dir, mdb_strerror(rc),
                 rc == ENOSPC ? " (disk full)" : "");
        goto out;
    }
    if (create) {
        /* New data.mdb / lock.mdb entries, and a new directory, must survive a crash too. */
        char parent[PATH_MAX];
        fsync_dir(dir);
        if (strlen(dir) < sizeof(parent)) {
            strcpy(parent, dir);
            fsync_dir(dirname(parent));
        }
    }
    MDB_txn *txn = NULL;
    ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn));
    if (ret == 0) {
        ret = mdb_to_errno(mdb_dbi_open(txn, NULL, 0, &db->dbi));
        if (ret == 0)
            ret = mdb_to_errno(mdb_txn_commit(txn)); /* keeps the dbi handle */
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
    int ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn));
    if (ret < 0)
        return ret;
    ret = mdb_to_errno(mdb_get(txn, db->dbi, &k, &v));
    if (ret == -ENOENT)
        ret = -ENODATA;
    else if (ret == 0)
        ret = authenticate ? meta_open(db->keys->record, &v, m, name_key_) : meta_parse(&v, m);
    mdb_txn_abort(txn);
    return ret;
}

int cas_db_peek(const char *dir, struct cas_db_meta *out, char *err, size_t err_size)
{
    struct cas_db *db = NULL;
    if (!dir || !*dir || !out) {
        snprintf(err, err_size, "cas_db_peek: missing argument");
        return -EINVAL;
    }
    int ret = env_open(dir, false, &db, err, err_size);
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

int cas_db_open(const char *dir, const uint8_t dbkey[CAS_DB_KEY_SIZE], struct cas_db **out, char *err,
                size_t err_size)
{
    struct cas_db *db = NULL;
    if (!dir || !*dir || !dbkey || !out) {
        snprintf(err, err_size, "cas_db_open: missing argument");
        return -EINVAL;
    }
    int ret = env_open(dir, false, &db, err, err_size);
    if (ret < 0)
        return ret;
    if ((ret = derive(dbkey, "custos-db-records-v1", db->keys->record)) < 0) {
        snprintf(err, err_size, "%s: cannot derive the database keys", dir);
        goto out;
    }
    ret = read_meta(db, true, &db->meta, db->keys->name);
    if (ret == -ENODATA) { /* format 1: names from the key itself, proven by the sentinel */
        memset(&db->meta, 0, sizeof(db->meta));
        if ((ret = derive(dbkey, "custos-db-names-v1", db->keys->name)) == 0)
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
static int put_meta(struct cas_db *db, MDB_txn *txn, const struct cas_db_meta *m, const uint8_t record_key[32])
{
    uint8_t val[META_VALUE_SIZE];
    MDB_val k = {META_KEY_SIZE, (void *)META_KEY}, v = {sizeof(val), val};
    int ret = meta_seal(record_key, m, db->keys->name, val);
    if (ret == 0)
        ret = mdb_to_errno(mdb_put(txn, db->dbi, &k, &v, 0));
    return ret;
}

static int commit_meta(struct cas_db *db, const struct cas_db_meta *m)
{
    MDB_txn *txn = NULL;
    int ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, 0, &txn));
    if (ret < 0)
        return ret;
    ret = put_meta(db, txn, m, db->keys->record);
    if (ret == 0)
        ret = mdb_to_errno(mdb_txn_commit(txn));
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
    int ret = env_open(dir, true, &db, err, err_size);
    if (ret < 0)
        return ret;
    struct cas_db_meta m = {.generation = 1};
    memcpy(m.id, id, CAS_DB_ID_SIZE);
    MDB_stat ms;
    MDB_txn *txn = NULL;
    ret = derive(dbkey, "custos-db-records-v1", db->keys->record);
    if (ret == 0)
        ret = derive(dbkey, "custos-db-names-v1", db->keys->name);
    if (ret == 0)
        ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn));
    if (ret == 0) {
        ret = mdb_to_errno(mdb_stat(txn, db->dbi, &ms));
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

/* Replaces data.mdb with a compact copy of itself: the pages a rotation freed still hold the records
 * under the old key, and LMDB reuses free pages only as it needs them. The copy holds live pages only.
 * Called with key_lock held exclusively (no transaction of this process is open). A crash leaves
 * the old file (the same data, with its stale pages) or the new one. */
static int compact(struct cas_db *db)
{
    const char *dir = NULL;
    char path[PATH_MAX], tmp[PATH_MAX];
    int ret = mdb_to_errno(mdb_env_get_path(db->env, &dir));
    if (ret < 0)
        return ret;
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/data.mdb.compact", dir) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    (void)unlink(tmp); /* left by a crash during an earlier compaction */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    ret = mdb_to_errno(mdb_env_copyfd2(db->env, fd, MDB_CP_COMPACT));
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
    int oret = env_open(dcopy, false, &fresh, err, sizeof(err));
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
    int ret = derive(new_key, "custos-db-records-v1", record);
    if (ret < 0)
        return ret;
    pthread_rwlock_wrlock(&db->key_lock);
    ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, 0, &txn));
    if (ret < 0) {
        txn = NULL;
        goto out;
    }
    ret = mdb_to_errno(mdb_cursor_open(txn, db->dbi, &cur));
    if (ret < 0)
        goto out;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc != MDB_NOTFOUND; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if ((ret = mdb_to_errno(rc)) < 0)
            goto out;
        if (k.mv_size == META_KEY_SIZE && memcmp(k.mv_data, META_KEY, META_KEY_SIZE) == 0)
            continue;
        if (k.mv_size != 32) {
            ret = -EBADMSG;
            goto out;
        }
        uint8_t lkey[32];
        memcpy(lkey, k.mv_data, 32);
        ret = open_record(db, lkey, v.mv_data, v.mv_size, &pt, &pt_size);
        if (ret == 0)
            ret = seal_record_with(record, lkey, pt, pt_size, &rec, &rec_size);
        cas_db_value_free(pt, pt_size);
        pt = NULL;
        if (ret < 0)
            goto out;
        MDB_val nv = {rec_size, rec};
        ret = mdb_to_errno(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT));
        free(rec);
        rec = NULL;
        if (ret < 0)
            goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    struct cas_db_meta m = db->meta;
    m.generation = generation;
    if ((ret = put_meta(db, txn, &m, record)) < 0)
        goto out;
    if (custos_atomic_write_hook)
        custos_atomic_write_hook(10);
    ret = mdb_to_errno(mdb_txn_commit(txn));
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
