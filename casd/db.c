/* SPDX-License-Identifier: Apache-2.0 */
/* casd record store: encrypted, authenticated records in LMDB (see db.h for the layout). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
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

struct cas_db {
    MDB_env *env;
    MDB_dbi dbi;
    struct db_keys *keys;
    bool keys_locked;
};

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
static int seal_record(const struct cas_db *db, const uint8_t lkey[32], const void *value, size_t size,
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
    ret = custos_aead_seal(db->keys->record, rec + 1, lkey, 32, value, size, rec + 1 + CUSTOS_AEAD_NONCE_SIZE);
    if (ret < 0)
        goto out;
    *out = rec;
    *out_size = REC_OVERHEAD + size;
    rec = NULL;
out:
    free(rec); /* ciphertext only: nothing to wipe */
    return ret;
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

static int write_ops(struct cas_db *db, const struct cas_db_op *ops, size_t count, bool allow_reserved)
{
    int ret = 0;
    struct prepared *p = NULL;
    MDB_txn *txn = NULL;
    if (!db || (!ops && count))
        return -EINVAL;
    if (count == 0)
        return 0;
    if (count > CAS_DB_MAX_OPS)
        return -E2BIG;
    p = calloc(count, sizeof(*p));
    if (!p)
        return -ENOMEM;
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
    ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, 0, &txn));
    if (ret < 0) {
        txn = NULL;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        MDB_val k = {sizeof(p[i].key), p[i].key};
        if (p[i].rec) {
            MDB_val v = {p[i].rec_size, p[i].rec};
            ret = mdb_to_errno(mdb_put(txn, db->dbi, &k, &v, 0));
        } else {
            ret = mdb_to_errno(mdb_del(txn, db->dbi, &k, NULL));
        }
        if (ret < 0)
            goto out;
    }
    ret = mdb_to_errno(mdb_txn_commit(txn)); /* fsyncs data and meta pages (no MDB_NOSYNC) */
    txn = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
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
    ret = name_key(db, name, len, lkey);
    if (ret < 0)
        return ret;
    ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn));
    if (ret < 0)
        return ret;
    ret = mdb_to_errno(mdb_get(txn, db->dbi, &k, &v));
    if (ret < 0)
        goto out;
    ret = open_record(db, lkey, v.mv_data, v.mv_size, value, size);
out:
    mdb_txn_abort(txn);
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

/* Writes the sentinel into an empty database, or checks it. Runs the check in a write transaction
 * when it has to create it, so two processes creating the same database agree. */
static int check_sentinel(struct cas_db *db, const char *dir, char *err, size_t err_size)
{
    int ret;
    uint8_t lkey[32], *val = NULL;
    size_t val_size = 0;
    MDB_txn *txn = NULL;
    MDB_stat st;
    bool creating = false;
    ret = name_key(db, SENTINEL_NAME, strlen(SENTINEL_NAME), lkey);
    if (ret < 0)
        goto out;
    for (;;) {
        MDB_val k = {sizeof(lkey), lkey}, v;
        ret = mdb_to_errno(mdb_txn_begin(db->env, NULL, creating ? 0 : MDB_RDONLY, &txn));
        if (ret < 0) {
            txn = NULL;
            snprintf(err, err_size, "%s: cannot begin an LMDB transaction: %s", dir, strerror(-ret));
            goto out;
        }
        ret = mdb_to_errno(mdb_dbi_open(txn, NULL, 0, &db->dbi));
        if (ret < 0) {
            snprintf(err, err_size, "%s: cannot open the LMDB database: %s", dir, strerror(-ret));
            goto out;
        }
        ret = mdb_to_errno(mdb_get(txn, db->dbi, &k, &v));
        if (ret == 0) {
            ret = open_record(db, lkey, v.mv_data, v.mv_size, &val, &val_size);
            if (ret == -EBADMSG || (ret == 0 && (val_size != strlen(SENTINEL_VALUE) ||
                                                 memcmp(val, SENTINEL_VALUE, val_size) != 0))) {
                ret = -EBADMSG;
                snprintf(err, err_size, "the database key does not open %s (its sentinel record does not "
                         "authenticate)", dir);
            } else if (ret < 0) {
                snprintf(err, err_size, "%s: cannot read the sentinel record: %s", dir, strerror(-ret));
            }
            goto out;
        }
        if (ret != -ENOENT) {
            snprintf(err, err_size, "%s: cannot read the sentinel record: %s", dir, strerror(-ret));
            goto out;
        }
        ret = mdb_to_errno(mdb_stat(txn, db->dbi, &st));
        if (ret < 0) {
            snprintf(err, err_size, "%s: cannot read the LMDB statistics: %s", dir, strerror(-ret));
            goto out;
        }
        if (st.ms_entries != 0) {
            /* Records, but none under our sentinel's hashed name: another name key. */
            ret = -EBADMSG;
            snprintf(err, err_size, "the database key does not open %s (no sentinel record under this key)",
                     dir);
            goto out;
        }
        if (creating)
            break;
        mdb_txn_abort(txn);
        txn = NULL;
        creating = true;
    }
    /* A new, empty database: write the sentinel in this write transaction. */
    {
        uint8_t *rec = NULL;
        size_t rec_size = 0;
        ret = seal_record(db, lkey, SENTINEL_VALUE, strlen(SENTINEL_VALUE), &rec, &rec_size);
        if (ret == 0) {
            MDB_val k = {sizeof(lkey), lkey}, v = {rec_size, rec};
            ret = mdb_to_errno(mdb_put(txn, db->dbi, &k, &v, 0));
            if (ret == 0)
                ret = mdb_to_errno(mdb_txn_commit(txn));
            else
                mdb_txn_abort(txn);
            txn = NULL;
        }
        free(rec);
        if (ret < 0)
            snprintf(err, err_size, "%s: cannot write the sentinel record: %s", dir, strerror(-ret));
    }
out:
    if (txn) {
        if (ret == 0)
            ret = mdb_to_errno(mdb_txn_commit(txn)); /* nothing written; keeps the dbi handle */
        else
            mdb_txn_abort(txn);
    }
    cas_db_value_free(val, val_size);
    custos_wipe(lkey, sizeof(lkey));
    return ret;
}

int cas_db_open(const char *dir, const uint8_t dbkey[CAS_DB_KEY_SIZE], struct cas_db **out, char *err,
                size_t err_size)
{
    int ret;
    struct cas_db *db = NULL;
    static const char names_info[] = "custos-db-names-v1", records_info[] = "custos-db-records-v1";
    if (!dir || !*dir || !dbkey || !out) {
        snprintf(err, err_size, "cas_db_open: missing argument");
        return -EINVAL;
    }
    db = calloc(1, sizeof(*db));
    if (!db) {
        ret = -ENOMEM;
        snprintf(err, err_size, "%s: out of memory", dir);
        goto out;
    }
    void *page = mmap(NULL, KEY_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        ret = -ENOMEM;
        snprintf(err, err_size, "%s: cannot map a page for the keys: %s", dir, strerror(errno));
        goto out;
    }
    db->keys = page;
    db->keys_locked = mlock(page, KEY_PAGE) == 0; /* best effort: RLIMIT_MEMLOCK may forbid it */
    (void)madvise(page, KEY_PAGE, MADV_DONTDUMP);
    if (custos_hkdf_sha256(dbkey, CAS_DB_KEY_SIZE, NULL, 0, (const uint8_t *)names_info,
                           sizeof(names_info) - 1, db->keys->name, sizeof(db->keys->name)) < 0 ||
        custos_hkdf_sha256(dbkey, CAS_DB_KEY_SIZE, NULL, 0, (const uint8_t *)records_info,
                           sizeof(records_info) - 1, db->keys->record, sizeof(db->keys->record)) < 0) {
        ret = -EIO;
        snprintf(err, err_size, "%s: cannot derive the database keys", dir);
        goto out;
    }
    ret = custos_mkdirs(dir, 0700);
    if (ret < 0) {
        snprintf(err, err_size, "cannot create the database directory %s: %s", dir, strerror(-ret));
        goto out;
    }
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
        snprintf(err, err_size, "%s: cannot open the LMDB environment: %s", dir, mdb_strerror(rc));
        goto out;
    }
    /* New data.mdb / lock.mdb entries, and a new directory, must survive a crash too. */
    fsync_dir(dir);
    {
        char parent[PATH_MAX];
        if (strlen(dir) < sizeof(parent)) {
            strcpy(parent, dir);
            fsync_dir(dirname(parent));
        }
    }
    ret = check_sentinel(db, dir, err, err_size);
    if (ret < 0)
        goto out;
    *out = db;
    db = NULL;
out:
    cas_db_close(db);
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
    free(db);
}
