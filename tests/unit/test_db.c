/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for casd/db.c: round trips, atomic batches, reopen, wrong key, confidentiality of the
 * raw LMDB file, and tampering at the LMDB level (swapped and flipped values). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "custos.h"
#include "db.h"

struct fixture {
    char tmp[1024];
    char dir[1100];
    uint8_t key[32];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(f->tmp, sizeof(f->tmp), "%s/custos-test-db-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->tmp)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/db", f->tmp);
    for (size_t i = 0; i < sizeof(f->key); i++)
        f->key[i] = (uint8_t)(0xA0 + i);
    umask(022);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->tmp);
    int ret = system(cmd);
    free(f);
    return ret == 0 ? 0 : -1;
}

static struct cas_db *open_ok(const struct fixture *f)
{
    char err[512] = "";
    struct cas_db *db = NULL;
    static const uint8_t id[CAS_DB_ID_SIZE] = {1, 2, 3};
    int ret = cas_db_open(f->dir, f->key, &db, err, sizeof(err));
    if (ret == -ENOENT)
        ret = cas_db_create(f->dir, f->key, id, &db, err, sizeof(err));
    if (ret != 0)
        fail_msg("cas_db_open/create: %d %s", ret, err);
    assert_non_null(db);
    return db;
}

static void expect_record(struct cas_db *db, const char *name, const char *want)
{
    uint8_t *v = NULL;
    size_t n = 0;
    int ret = cas_db_get(db, name, &v, &n);
    if (ret != 0)
        fail_msg("get %s: %d", name, ret);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(v, want, n);
    assert_int_equal(v[n], 0);
    cas_db_value_free(v, n);
}

static int get_ret(struct cas_db *db, const char *name)
{
    uint8_t *v = (uint8_t *)(uintptr_t)1;
    size_t n = 77;
    int ret = cas_db_get(db, name, &v, &n);
    if (ret == 0) {
        cas_db_value_free(v, n);
    } else {
        /* Outputs are written only on success. */
        assert_ptr_equal(v, (uint8_t *)(uintptr_t)1);
        assert_int_equal(n, 77);
    }
    return ret;
}

static void test_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    assert_int_equal(get_ret(db, "alpha"), -ENOENT);
    assert_int_equal(cas_db_put(db, "alpha", "one", 3), 0);
    expect_record(db, "alpha", "one");
    assert_int_equal(cas_db_put(db, "alpha", "a longer second value", 21), 0);
    expect_record(db, "alpha", "a longer second value");
    assert_int_equal(cas_db_put(db, "empty", "", 0), 0);
    expect_record(db, "empty", "");
    assert_int_equal(cas_db_del(db, "alpha"), 0);
    assert_int_equal(get_ret(db, "alpha"), -ENOENT);
    assert_int_equal(cas_db_del(db, "alpha"), -ENOENT);
    expect_record(db, "empty", "");

    /* Binary values. */
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)(i * 7);
    assert_int_equal(cas_db_put(db, "bin", bin, sizeof(bin)), 0);
    uint8_t *v = NULL;
    size_t n = 0;
    assert_int_equal(cas_db_get(db, "bin", &v, &n), 0);
    assert_int_equal(n, sizeof(bin));
    assert_memory_equal(v, bin, n);
    cas_db_value_free(v, n);

    /* Bad arguments; the sentinel's reserved name cannot be read or written. */
    assert_int_equal(cas_db_put(db, NULL, "x", 1), -EINVAL);
    assert_int_equal(cas_db_put(db, "", "x", 1), -EINVAL);
    assert_int_equal(cas_db_put(db, "x", NULL, 0), -EINVAL);
    assert_int_equal(cas_db_put(db,
                                "\x01"
                                "custos-db-sentinel",
                                "x", 1),
                     -EINVAL);
    assert_int_equal(get_ret(db, "\x01"
                                 "custos-db-sentinel"),
                     -EINVAL);
    assert_int_equal(cas_db_write(db, NULL, 0), 0);
    assert_int_equal(cas_db_write(NULL, NULL, 0), -EINVAL);
    cas_db_value_free(NULL, 0);
    cas_db_close(db);
    cas_db_close(NULL);
}

static void test_batch_atomic(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    assert_int_equal(cas_db_put(db, "keep", "kept", 4), 0);

    /* A failing delete undoes the whole batch. */
    struct cas_db_op bad[] = {
        {"a", "A", 1},
        {"b", "B", 1},
        {"keep", NULL, 0},
        {"missing", NULL, 0},
    };
    assert_int_equal(cas_db_write(db, bad, 4), -ENOENT);
    assert_int_equal(get_ret(db, "a"), -ENOENT);
    assert_int_equal(get_ret(db, "b"), -ENOENT);
    expect_record(db, "keep", "kept");

    /* An oversize value, or a bad name, refuses the whole batch before anything is written. */
    static char big[CAS_DB_MAX_VALUE + 1];
    struct cas_db_op too_big[] = {{"a", "A", 1}, {"big", big, sizeof(big)}};
    assert_int_equal(cas_db_write(db, too_big, 2), -E2BIG);
    struct cas_db_op bad_name[] = {{"a", "A", 1}, {"", "B", 1}};
    assert_int_equal(cas_db_write(db, bad_name, 2), -EINVAL);
    assert_int_equal(get_ret(db, "a"), -ENOENT);

    /* A good batch applies in order (the later put of the same name wins). */
    struct cas_db_op good[] = {
        {"a", "A", 1},
        {"b", "B", 1},
        {"keep", NULL, 0},
        {"a", "A2", 2},
    };
    assert_int_equal(cas_db_write(db, good, 4), 0);
    expect_record(db, "a", "A2");
    expect_record(db, "b", "B");
    assert_int_equal(get_ret(db, "keep"), -ENOENT);
    cas_db_close(db);
}

static void test_reopen(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    assert_int_equal(cas_db_put(db, "persist", "across reopen", 13), 0);
    cas_db_close(db);
    db = open_ok(f);
    expect_record(db, "persist", "across reopen");
    cas_db_close(db);
    /* A trailing slash names the same database. */
    char with_slash[PATH_MAX];
    snprintf(with_slash, sizeof(with_slash), "%s/", f->dir);
    char err[512];
    assert_int_equal(cas_db_open(with_slash, f->key, &db, err, sizeof(err)), 0);
    expect_record(db, "persist", "across reopen");
    cas_db_close(db);
}

static void test_wrong_key(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    assert_int_equal(cas_db_put(db, "x", "y", 1), 0);
    cas_db_close(db);

    uint8_t other[32];
    memcpy(other, f->key, sizeof(other));
    other[31] ^= 1;
    char err[512] = "";
    struct cas_db *sentinel = (struct cas_db *)(uintptr_t)1;
    db = sentinel;
    assert_int_equal(cas_db_open(f->dir, other, &db, err, sizeof(err)), -EBADMSG);
    assert_ptr_equal(db, sentinel);
    assert_non_null(strstr(err, "the database key does not open"));
    assert_non_null(strstr(err, f->dir));

    /* Even an empty database (only the sentinel) refuses another key. */
    snprintf(f->dir + strlen(f->dir), sizeof(f->dir) - strlen(f->dir), "2");
    db = open_ok(f);
    cas_db_close(db);
    assert_int_equal(cas_db_open(f->dir, other, &db, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "the database key does not open"));

    /* A path that is not a directory. */
    char file[PATH_MAX];
    snprintf(file, sizeof(file), "%s/file", f->tmp);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(cas_db_open(file, f->key, &db, err, sizeof(err)), -ENOTDIR);
    assert_non_null(strstr(err, file));
}

static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n > 0);
    rewind(fp);
    uint8_t *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

static void test_raw_file_opaque(void **state)
{
    struct fixture *f = *state;
    static const char name[] = "Distinctive-Record-Name-7f3a9c";
    static const char value[] = "Distinctive-Secret-Value-91c2e4";
    char big[8192];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = "Repeated-Plaintext-Pattern-"[i % 27];
    struct cas_db *db = open_ok(f);
    assert_int_equal(cas_db_put(db, name, value, strlen(value)), 0);
    assert_int_equal(cas_db_put(db, "big", big, sizeof(big)), 0);
    cas_db_close(db);

    char path[PATH_MAX];
    size_t size;
    snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
    uint8_t *raw = slurp(path, &size);
    assert_null(memmem(raw, size, name, strlen(name)));
    assert_null(memmem(raw, size, value, strlen(value)));
    assert_null(memmem(raw, size, "Distinctive", 11));
    assert_null(memmem(raw, size, "Repeated-Plaintext", 18));
    assert_null(memmem(raw, size, "custos-db-sentinel", 18));
    assert_null(memmem(raw, size, f->key, sizeof(f->key)));
    free(raw);
}

/* The LMDB key of a name, computed independently from the documented layout. */
static void lmdb_key(const struct fixture *f, const char *name, uint8_t out[32])
{
    uint8_t nk[32];
    assert_int_equal(custos_hkdf_sha256(f->key, 32, NULL, 0, (const uint8_t *)"custos-db-names-v1", 18, nk, 32), 0);
    assert_int_equal(custos_hmac_sha256(nk, 32, name, strlen(name), out), 0);
}

static MDB_env *raw_open(const struct fixture *f, MDB_txn **txn, MDB_dbi *dbi)
{
    MDB_env *env = NULL;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_mapsize(env, CAS_DB_MAP_SIZE), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, txn), 0);
    assert_int_equal(mdb_dbi_open(*txn, NULL, 0, dbi), 0);
    return env;
}

static void raw_commit(MDB_env *env, MDB_txn *txn)
{
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_swapped_records(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    assert_int_equal(cas_db_put(db, "role/alice", "admin", 5), 0);
    assert_int_equal(cas_db_put(db, "role/bob", "guest", 5), 0);
    cas_db_close(db);

    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_env *env = raw_open(f, &txn, &dbi);
    uint8_t ka[32], kb[32];
    lmdb_key(f, "role/alice", ka);
    lmdb_key(f, "role/bob", kb);
    MDB_val a = {32, ka}, b = {32, kb}, va, vb;
    assert_int_equal(mdb_get(txn, dbi, &a, &va), 0);
    assert_int_equal(mdb_get(txn, dbi, &b, &vb), 0);
    assert_int_equal(va.mv_size, vb.mv_size);
    uint8_t *ca = malloc(va.mv_size), *cb = malloc(vb.mv_size);
    assert_non_null(ca);
    assert_non_null(cb);
    memcpy(ca, va.mv_data, va.mv_size);
    memcpy(cb, vb.mv_data, vb.mv_size);
    MDB_val na = {vb.mv_size, cb}, nb = {va.mv_size, ca};
    assert_int_equal(mdb_put(txn, dbi, &a, &na, 0), 0);
    assert_int_equal(mdb_put(txn, dbi, &b, &nb, 0), 0);
    raw_commit(env, txn);
    free(ca);
    free(cb);

    db = open_ok(f);
    assert_int_equal(get_ret(db, "role/alice"), -EBADMSG);
    assert_int_equal(get_ret(db, "role/bob"), -EBADMSG);
    cas_db_close(db);
}

static void test_flipped_bytes(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    assert_int_equal(cas_db_put(db, "victim", "some value", 10), 0);
    cas_db_close(db);
    uint8_t k[32];
    lmdb_key(f, "victim", k);
    /* version byte, nonce, ciphertext, tag, and a truncated record. */
    const size_t positions[] = {0, 1, 12, 13, 18, 22, 37, 38};
    for (size_t i = 0; i <= sizeof(positions) / sizeof(positions[0]); i++) {
        MDB_txn *txn;
        MDB_dbi dbi;
        MDB_env *env = raw_open(f, &txn, &dbi);
        MDB_val key = {32, k}, v;
        assert_int_equal(mdb_get(txn, dbi, &key, &v), 0);
        assert_int_equal(v.mv_size, 1 + 12 + 10 + 16);
        uint8_t rec[39], orig[39];
        memcpy(rec, v.mv_data, sizeof(rec));
        memcpy(orig, rec, sizeof(rec));
        MDB_val nv = {sizeof(rec), rec};
        if (i < sizeof(positions) / sizeof(positions[0]))
            rec[positions[i]] ^= 0x01;
        else
            nv.mv_size = 20;
        assert_int_equal(mdb_put(txn, dbi, &key, &nv, 0), 0);
        raw_commit(env, txn);

        db = open_ok(f);
        if (get_ret(db, "victim") != -EBADMSG)
            fail_msg("tampering at case %zu was not detected", i);
        cas_db_close(db);

        env = raw_open(f, &txn, &dbi);
        MDB_val ov = {sizeof(orig), orig};
        assert_int_equal(mdb_put(txn, dbi, &key, &ov, 0), 0);
        raw_commit(env, txn);
        db = open_ok(f);
        expect_record(db, "victim", "some value");
        cas_db_close(db);
    }
}

static void test_sizes(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    char name[CAS_DB_MAX_NAME + 2];
    memset(name, 'n', sizeof(name));
    name[CAS_DB_MAX_NAME + 1] = '\0';
    assert_int_equal(cas_db_put(db, name, "x", 1), -E2BIG);
    assert_int_equal(get_ret(db, name), -E2BIG);
    assert_int_equal(cas_db_del(db, name), -E2BIG);
    name[CAS_DB_MAX_NAME] = '\0';
    assert_int_equal(cas_db_put(db, name, "x", 1), 0);
    expect_record(db, name, "x");

    uint8_t *big = malloc(CAS_DB_MAX_VALUE + 1);
    assert_non_null(big);
    for (size_t i = 0; i < CAS_DB_MAX_VALUE + 1; i++)
        big[i] = (uint8_t)(i ^ (i >> 8));
    assert_int_equal(cas_db_put(db, "big", big, CAS_DB_MAX_VALUE + 1), -E2BIG);
    assert_int_equal(get_ret(db, "big"), -ENOENT);
    assert_int_equal(cas_db_put(db, "big", big, CAS_DB_MAX_VALUE), 0);
    uint8_t *v = NULL;
    size_t n = 0;
    assert_int_equal(cas_db_get(db, "big", &v, &n), 0);
    assert_int_equal(n, CAS_DB_MAX_VALUE);
    assert_memory_equal(v, big, n);
    cas_db_value_free(v, n);
    free(big);
    cas_db_close(db);
}

struct worker {
    struct cas_db *db;
    int id;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[32], value[64];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "w%d/%d", w->id, i % 8);
        int len = snprintf(value, sizeof(value), "value %d of worker %d", i, w->id);
        if (cas_db_put(w->db, name, value, (size_t)len) != 0)
            w->failures++;
        uint8_t *v = NULL;
        size_t n = 0;
        if (cas_db_get(w->db, name, &v, &n) != 0 || n != (size_t)len || memcmp(v, value, n))
            w->failures++;
        cas_db_value_free(v, n);
        if (cas_db_get(w->db, "shared", &v, &n) != 0 || n != 6)
            w->failures++;
        cas_db_value_free(v, n);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    assert_int_equal(cas_db_put(db, "shared", "shared", 6), 0);
    pthread_t t[6];
    struct worker w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (struct worker){db, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    expect_record(db, "w3/7", "value 39 of worker 3");
    cas_db_close(db);
}

/* Group commit: concurrent batches share commits, yet each stays all-or-nothing on its own. A
 * batch that fails (a delete of an absent name) leaves nothing behind, and the batches committed
 * with it are kept; after a reopen every successful batch is there. */
static void *group_worker_main(void *arg)
{
    struct worker *w = arg;
    char a[32], b[32], absent[32];
    for (int i = 0; i < 30; i++) {
        snprintf(a, sizeof(a), "g%d/%d/a", w->id, i);
        snprintf(b, sizeof(b), "g%d/%d/b", w->id, i);
        snprintf(absent, sizeof(absent), "absent/%d/%d", w->id, i);
        bool bad = i % 3 == 1;
        struct cas_db_op ops[] = {{a, "A", 1}, {bad ? absent : b, bad ? NULL : "B", bad ? 0 : 1}};
        int ret = cas_db_write(w->db, ops, 2);
        if (ret != (bad ? -ENOENT : 0) || get_ret(w->db, a) != (bad ? -ENOENT : 0))
            w->failures++;
    }
    return NULL;
}

static void test_group_commit(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    pthread_t t[6];
    struct worker w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (struct worker){db, i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, group_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    cas_db_close(db);
    db = open_ok(f);
    for (int id = 0; id < 6; id++) {
        for (int i = 0; i < 30; i++) {
            char a[32], b[32];
            snprintf(a, sizeof(a), "g%d/%d/a", id, i);
            snprintf(b, sizeof(b), "g%d/%d/b", id, i);
            assert_int_equal(get_ret(db, a), i % 3 == 1 ? -ENOENT : 0);
            assert_int_equal(get_ret(db, b), i % 3 == 1 ? -ENOENT : 0);
        }
    }
    cas_db_close(db);
}

static const uint8_t g_key2[32] = {7, 7, 7};

/* A rotation over records whose values live on LMDB overflow pages (over ~2 KiB): every record is
 * found by name afterwards, before and after the compaction and after a reopen. (The rotation once
 * gave LMDB a key that pointed into the page being rewritten: some keys came out garbled and out of
 * order, still listed but never found.) */
/* Record i's value in buf (NUL-terminated): every fifth 2.5 to 8 KiB, the others short. */
static size_t large_value(char *buf, int i)
{
    size_t n = i % 5 == 2 ? 2500 + (size_t)i * 97 : 20 + (size_t)i;
    memset(buf, 'a' + i % 26, n);
    buf[n] = '\0';
    return n;
}

static void test_rekey_with_large_values(void **state)
{
    struct fixture *f = *state;
    struct cas_db *db = open_ok(f);
    char name[32], *big = malloc(9000);
    assert_non_null(big);
    for (int i = 0; i < 60; i++) {
        size_t n = large_value(big, i);
        snprintf(name, sizeof(name), "r%02d", i);
        assert_int_equal(cas_db_put(db, name, big, n), 0);
    }
    char err[1024] = "";
    assert_int_equal(cas_db_rekey(db, g_key2, 2), 0);
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1 && cas_db_compact(db, err, sizeof(err)) != 0)
            fail_msg("compaction: %s", err);
        if (pass == 2) {
            cas_db_close(db);
            db = NULL;
            if (cas_db_open(f->dir, g_key2, &db, err, sizeof(err)) != 0)
                fail_msg("reopen: %s", err);
        }
        for (int i = 0; i < 60; i++) {
            large_value(big, i);
            snprintf(name, sizeof(name), "r%02d", i);
            if (get_ret(db, name) != 0)
                fail_msg("pass %d: record %s not found after the rotation", pass, name);
            expect_record(db, name, big);
        }
    }
    cas_db_close(db);
    free(big);
}

/* Another process with the environment open (an operator's mdb_stat, say) while casd rotates the
 * key and compacts the file. The compact copy's transaction counter restarts at 1; reopened through
 * the old lock region (not reset: the other process holds it), LMDB would choose the copy's empty meta
 * page for one parity of the old counter, and every record would be gone, the next commit included.
 * Each round has another number of commits before, so both parities are met. */
static pid_t hold_env(const char *dir, int *release_fd)
{
    int ready[2], release[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(release), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(release[1]); /* else its read never sees the end */
        MDB_env *env = NULL;
        int rc = mdb_env_create(&env);
        if (rc == 0)
            rc = mdb_env_open(env, dir, MDB_RDONLY, 0600);
        (void)!write(ready[1], rc == 0 ? "y" : "n", 1);
        char c;
        (void)!read(release[0], &c, 1);
        mdb_env_close(env);
        _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    close(ready[0]);
    *release_fd = release[1];
    return pid;
}

static void release_env(pid_t pid, int release_fd)
{
    int status = 0;
    close(release_fd);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A round's database: "secret" and n more records, in 1 + n commits. */
static struct cas_db *round_db(struct fixture *f, int round, int n)
{
    snprintf(f->dir, sizeof(f->dir), "%s/db%d", f->tmp, round);
    struct cas_db *db = open_ok(f);
    assert_int_equal(cas_db_put(db, "secret", "s3cret", 6), 0);
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "e%d", i);
        assert_int_equal(cas_db_put(db, name, "v", 1), 0);
    }
    return db;
}

/* Every record of the round, read through a fresh handle with the new key. */
static void expect_round(struct fixture *f, int n, bool after)
{
    char err[512] = "";
    struct cas_db *db = NULL;
    if (cas_db_open(f->dir, g_key2, &db, err, sizeof(err)) != 0)
        fail_msg("reopen with the new key: %s", err);
    expect_record(db, "secret", "s3cret");
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "e%d", i);
        expect_record(db, name, "v");
    }
    if (after)
        expect_record(db, "after", "x");
    cas_db_close(db);
}

static void test_compact_with_another_process(void **state)
{
    struct fixture *f = *state;
    for (int round = 0; round < 4; round++) {
        struct cas_db *db = round_db(f, round, round);
        int release;
        pid_t pid = hold_env(f->dir, &release);
        char err[1024] = "";
        assert_int_equal(cas_db_rekey(db, g_key2, 2), 0);
        if (cas_db_compact(db, err, sizeof(err)) != 0)
            fail_msg("round %d: compaction: %s", round, err);
        expect_record(db, "secret", "s3cret");
        assert_int_equal(cas_db_put(db, "after", "x", 1), 0);
        expect_record(db, "secret", "s3cret");
        release_env(pid, release);
        cas_db_close(db);
        expect_round(f, round, true);
    }
}

/* The check after the reopen: the old lock file put back (hook 12) while the other process holds it,
 * so the reopen goes through the stale region. For the parity that shows the empty meta page the
 * compaction answers -ESTALE and the handle reads and writes nothing; either way the file is whole. */
static char g_lock[1200], g_keep[1200];

static void put_back_old_lock(int step)
{
    if (step == 12)
        assert_int_equal(rename(g_keep, g_lock), 0);
}

static void test_compact_refuses_a_wrong_view(void **state)
{
    struct fixture *f = *state;
    int refused = 0;
    for (int round = 0; round < 4; round++) {
        struct cas_db *db = round_db(f, round, round);
        int release;
        pid_t pid = hold_env(f->dir, &release);
        snprintf(g_lock, sizeof(g_lock), "%s/lock.mdb", f->dir);
        snprintf(g_keep, sizeof(g_keep), "%s/lock.keep", f->dir);
        assert_int_equal(link(g_lock, g_keep), 0);
        char err[1024] = "";
        assert_int_equal(cas_db_rekey(db, g_key2, 2), 0);
        custos_atomic_write_hook = put_back_old_lock;
        int ret = cas_db_compact(db, err, sizeof(err));
        custos_atomic_write_hook = NULL;
        if (ret == -ESTALE) {
            refused++;
            assert_non_null(strstr(err, "does not show generation 2's meta record"));
            assert_int_equal(get_ret(db, "secret"), -EIO);
            assert_int_equal(cas_db_put(db, "after", "x", 1), -EIO);
        } else {
            assert_int_equal(ret, 0);
            expect_record(db, "secret", "s3cret");
        }
        release_env(pid, release);
        cas_db_close(db);
        expect_round(f, round, false);
    }
    assert_true(refused > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_file_opaque, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swapped_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rekey_with_large_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_with_another_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_refuses_a_wrong_view, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
