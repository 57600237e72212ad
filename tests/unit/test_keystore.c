/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for casd/keystore.c: save/load, MAC, sealing with metadata binding, editing, strict
 * parsing, corrupt files left alone, and crash safety of saves. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "custos.h"
#include "keystore.h"

struct fixture {
    char dir[1024];
    char path[1100]; /* <dir>/db.key-store */
};

static const uint8_t DBKEY[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/custos-test-ks-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/db.key-store", f->dir);
    umask(022);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[PATH_MAX];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int ret = system(cmd);
    free(f);
    return ret == 0 ? 0 : -1;
}

static void seal_key_for(int i, uint8_t key[32])
{
    for (int k = 0; k < 32; k++)
        key[k] = (uint8_t)(i * 31 + k);
}

static struct cas_keystore_entry make_entry(int i, const uint8_t dbkey[32])
{
    struct cas_keystore_entry e;
    uint8_t pub[33], sk[32];
    memset(&e, 0, sizeof(e));
    pub[0] = (uint8_t)(2 + (i & 1));
    for (int k = 1; k < 33; k++)
        pub[k] = (uint8_t)(i + k * 13);
    pub[1] = (uint8_t)i;
    pub[2] = (uint8_t)(i >> 8);
    custos_hex_encode(pub, sizeof(pub), e.platform_id, true);
    strcpy(e.kind, i % 3 == 0 ? "sim" : i % 3 == 1 ? "tpm2" : "sgx");
    snprintf(e.node, sizeof(e.node), "node-%d.example", i);
    e.tcb = (uint32_t)(i + 1);
    e.time = 1700000000 + i;
    seal_key_for(i, sk);
    assert_int_equal(cas_keystore_seal(&e, sk, dbkey), 0);
    return e;
}

static void make_store(struct cas_keystore *ks, int n, const uint8_t dbkey[32])
{
    memset(ks, 0, sizeof(*ks));
    ks->version = 2;
    ks->generation = 1;
    memset(ks->database_id, 0x5a, sizeof(ks->database_id));
    for (int i = 0; i < n; i++) {
        struct cas_keystore_entry e = make_entry(i, dbkey);
        assert_int_equal(cas_keystore_upsert(ks, &e), 0);
    }
    assert_int_equal(ks->count, (size_t)n);
}

static void assert_entries_equal(const struct cas_keystore *a, const struct cas_keystore *b)
{
    assert_int_equal(a->count, b->count);
    for (size_t i = 0; i < a->count; i++) {
        const struct cas_keystore_entry *x = &a->entries[i], *y = &b->entries[i];
        assert_string_equal(x->platform_id, y->platform_id);
        assert_string_equal(x->kind, y->kind);
        assert_string_equal(x->node, y->node);
        assert_int_equal(x->tcb, y->tcb);
        assert_int_equal(x->time, y->time);
        assert_memory_equal(x->nonce, y->nonce, sizeof(x->nonce));
        assert_memory_equal(x->sealed, y->sealed, sizeof(x->sealed));
    }
}

static char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = malloc(CAS_KS_MAX_FILE + 1);
    assert_non_null(buf);
    *size = fread(buf, 1, CAS_KS_MAX_FILE, fp);
    buf[*size] = '\0';
    fclose(fp);
    return buf;
}

static void spew(const char *path, const char *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, size, fp), size);
    assert_int_equal(fclose(fp), 0);
}

static void test_path(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(cas_keystore_path("/var/lib/cas/db", out, sizeof(out)), 0);
    assert_string_equal(out, "/var/lib/cas/db.key-store");
    assert_int_equal(cas_keystore_path("/var/lib/cas/db///", out, sizeof(out)), 0);
    assert_string_equal(out, "/var/lib/cas/db.key-store");
    assert_int_equal(cas_keystore_path("db", out, sizeof(out)), 0);
    assert_string_equal(out, "db.key-store");
    assert_int_equal(cas_keystore_path("/", out, sizeof(out)), -EINVAL);
    assert_int_equal(cas_keystore_path("", out, sizeof(out)), -EINVAL);
    assert_int_equal(cas_keystore_path(NULL, out, sizeof(out)), -EINVAL);
    assert_int_equal(cas_keystore_path("/var/lib/cas/db", out, 25), -ENAMETOOLONG);
    assert_int_equal(cas_keystore_path("/var/lib/cas/db", out, 26), 0);
}

static void test_save_load(void **state)
{
    struct fixture *f = *state;
    struct cas_keystore ks, back;
    char err[512] = "";
    make_store(&ks, 3, DBKEY);

    assert_int_equal(cas_keystore_load(f->path, &back, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, f->path));
    assert_int_equal(cas_keystore_save(f->path, &ks, DBKEY), 0);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    if (cas_keystore_load(f->path, &back, err, sizeof(err)) != 0)
        fail_msg("load: %s", err);
    assert_entries_equal(&ks, &back);
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), 0);
    uint8_t other[32];
    memcpy(other, DBKEY, 32);
    other[0] ^= 0x80;
    assert_int_equal(cas_keystore_verify_mac(&back, other), -EBADMSG);

    /* Each platform gets the db key back with its own seal key. */
    for (size_t i = 0; i < back.count; i++) {
        uint8_t sk[32], got[32];
        seal_key_for((int)i, sk);
        assert_int_equal(cas_keystore_unseal(&back.entries[i], sk, got), 0);
        assert_memory_equal(got, DBKEY, 32);
    }
    cas_keystore_free(&back);

    /* An empty store round-trips too. */
    struct cas_keystore empty = {.version = 2, .generation = 1};
    assert_int_equal(cas_keystore_save(f->path, &empty, DBKEY), 0);
    assert_int_equal(cas_keystore_load(f->path, &back, err, sizeof(err)), 0);
    assert_int_equal(back.count, 0);
    assert_null(back.entries);
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), 0);
    cas_keystore_free(&back);

    /* Invalid stores are not written. */
    struct cas_keystore_entry dup[2] = {ks.entries[0], ks.entries[0]};
    struct cas_keystore bad = {.entries = dup, .count = 2, .generation = 1};
    assert_int_equal(cas_keystore_save(f->path, &bad, DBKEY), -EINVAL);
    dup[1] = ks.entries[1];
    dup[1].node[0] = ' ';
    assert_int_equal(cas_keystore_save(f->path, &bad, DBKEY), -EINVAL);

    cas_keystore_free(&ks);
    cas_keystore_free(&ks);
    cas_keystore_free(NULL);
}

/* Replaces the first occurrence of from by to (same length) in the file. */
static void edit_file(const char *path, const char *from, const char *to)
{
    size_t size;
    char *text = slurp(path, &size);
    char *p = strstr(text, from);
    assert_non_null(p);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(p, to, strlen(to));
    spew(path, text, size);
    free(text);
}

static void test_mac_detects_edits(void **state)
{
    struct fixture *f = *state;
    struct cas_keystore ks, back;
    char err[512];
    make_store(&ks, 3, DBKEY);
    const char *const edits[][2] = {
        {"node-1.example", "node-9.example"},
        {"\"tcb\": 2", "\"tcb\": 7"},
        {"\"time\": 1700000002", "\"time\": 1700000009"},
        {"\"tpm2\"", "\"sim\" "},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        assert_int_equal(cas_keystore_save(f->path, &ks, DBKEY), 0);
        edit_file(f->path, edits[i][0], edits[i][1]);
        if (cas_keystore_load(f->path, &back, err, sizeof(err)) != 0)
            fail_msg("edit %zu: load: %s", i, err);
        if (cas_keystore_verify_mac(&back, DBKEY) != -EBADMSG)
            fail_msg("edit %zu (%s) not detected", i, edits[i][1]);
        cas_keystore_free(&back);
    }
    /* Reordering or removing entries is an edit too. */
    assert_int_equal(cas_keystore_save(f->path, &ks, DBKEY), 0);
    assert_int_equal(cas_keystore_load(f->path, &back, err, sizeof(err)), 0);
    struct cas_keystore_entry t = back.entries[0];
    back.entries[0] = back.entries[1];
    back.entries[1] = t;
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), -EBADMSG);
    back.entries[1] = back.entries[0];
    back.entries[0] = t;
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), 0);
    back.count--;
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), -EBADMSG);
    back.count++;
    cas_keystore_free(&back);
    cas_keystore_free(&ks);
}

static void test_seal_unseal(void **state)
{
    (void)state;
    struct cas_keystore_entry e = make_entry(5, DBKEY), m;
    uint8_t sk[32], other[32], got[32], untouched[32];
    seal_key_for(5, sk);
    seal_key_for(6, other);
    memset(untouched, 0xEE, sizeof(untouched));

    assert_int_equal(cas_keystore_unseal(&e, sk, got), 0);
    assert_memory_equal(got, DBKEY, 32);

    memcpy(got, untouched, 32);
    assert_int_equal(cas_keystore_unseal(&e, other, got), -EBADMSG);
    assert_memory_equal(got, untouched, 32);

    m = e;
    m.node[5] = '8';
    assert_int_equal(cas_keystore_unseal(&m, sk, got), -EBADMSG);
    m = e;
    m.tcb++;
    assert_int_equal(cas_keystore_unseal(&m, sk, got), -EBADMSG);
    m = e;
    strcpy(m.kind, "sim");
    assert_int_equal(cas_keystore_unseal(&m, sk, got), -EBADMSG);
    m = e;
    m.platform_id[10] = m.platform_id[10] == 'A' ? 'B' : 'A';
    assert_int_equal(cas_keystore_unseal(&m, sk, got), -EBADMSG);
    m = e;
    m.sealed[0] ^= 1;
    assert_int_equal(cas_keystore_unseal(&m, sk, got), -EBADMSG);
    m = e;
    m.nonce[11] ^= 1;
    assert_int_equal(cas_keystore_unseal(&m, sk, got), -EBADMSG);
    assert_memory_equal(got, untouched, 32);
    /* The registration time is not bound by the seal (the MAC covers it). */
    m = e;
    m.time++;
    assert_int_equal(cas_keystore_unseal(&m, sk, got), 0);

    /* Sealing twice uses fresh nonces. */
    m = e;
    assert_int_equal(cas_keystore_seal(&m, sk, DBKEY), 0);
    assert_memory_not_equal(m.nonce, e.nonce, sizeof(e.nonce));
    assert_memory_not_equal(m.sealed, e.sealed, sizeof(e.sealed));

    /* Invalid metadata is refused without touching the entry. */
    m = e;
    strcpy(m.kind, "nope");
    assert_int_equal(cas_keystore_seal(&m, sk, DBKEY), -EINVAL);
    assert_memory_equal(m.sealed, e.sealed, sizeof(e.sealed));
    assert_int_equal(cas_keystore_unseal(&m, sk, got), -EINVAL);
}

static void test_upsert_remove(void **state)
{
    (void)state;
    struct cas_keystore ks;
    make_store(&ks, 3, DBKEY);
    struct cas_keystore_entry e = ks.entries[1];
    strcpy(e.node, "moved-node");
    e.tcb = 99;
    assert_int_equal(cas_keystore_upsert(&ks, &e), 0);
    assert_int_equal(ks.count, 3);
    const struct cas_keystore_entry *found = cas_keystore_find(&ks, e.platform_id, NULL);
    assert_non_null(found);
    assert_ptr_equal(found, &ks.entries[1]);
    assert_string_equal(found->node, "moved-node");
    assert_int_equal(found->tcb, 99);

    struct cas_keystore_entry bad = e;
    bad.platform_id[0] = '4';
    assert_int_equal(cas_keystore_upsert(&ks, &bad), -EINVAL);
    bad = e;
    bad.platform_id[5] = 'a'; /* lowercase */
    assert_int_equal(cas_keystore_upsert(&ks, &bad), -EINVAL);
    bad = e;
    bad.node[0] = '\0';
    assert_int_equal(cas_keystore_upsert(&ks, &bad), -EINVAL);
    assert_int_equal(ks.count, 3);

    char id0[67];
    strcpy(id0, ks.entries[0].platform_id);
    assert_int_equal(cas_keystore_remove(&ks, id0, NULL), 0);
    assert_int_equal(ks.count, 2);
    assert_null(cas_keystore_find(&ks, id0, NULL));
    assert_int_equal(cas_keystore_remove(&ks, id0, NULL), -ENOENT);
    assert_non_null(cas_keystore_find(&ks, e.platform_id, NULL));
    assert_string_equal(ks.entries[0].platform_id, e.platform_id); /* order kept */
    assert_int_equal(cas_keystore_remove(&ks, e.platform_id, NULL), 0);
    assert_int_equal(cas_keystore_remove(&ks, ks.entries[0].platform_id, NULL), 0);
    assert_int_equal(ks.count, 0);
    assert_null(cas_keystore_find(&ks, e.platform_id, NULL));
    cas_keystore_free(&ks);

    /* Full. */
    make_store(&ks, CAS_KS_MAX_ENTRIES, DBKEY);
    struct cas_keystore_entry extra = make_entry(CAS_KS_MAX_ENTRIES, DBKEY);
    assert_int_equal(cas_keystore_upsert(&ks, &extra), -E2BIG);
    assert_int_equal(cas_keystore_upsert(&ks, &ks.entries[7]), 0); /* replacing still works */
    assert_int_equal(ks.count, CAS_KS_MAX_ENTRIES);
    cas_keystore_free(&ks);
}

#define PID "02AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define PID2 "03AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define NONCE "AAAAAAAAAAAAAAAA"
#define SEALED "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define MAC "0000000000000000000000000000000000000000000000000000000000000000"
#define ENTRY_WITH(pid, kind, node, tcb, time, nonce, sealed, extra)                                                   \
    "{\"platform_id\":" pid ",\"kind\":" kind ",\"node\":" node ",\"tcb\":" tcb ",\"time\":" time ",\"nonce\":" nonce  \
    ",\"sealed\":" sealed extra "}"
#define ENTRY ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "1", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")
#define DOC(entries) "{\"version\":1,\"entries\":[" entries "],\"mac\":\"" MAC "\"}"

struct refusal {
    const char *name;
    const char *text;
    const char *want;
};

static const struct refusal refusals[] = {
    {"not JSON", "{\"version\":1,", "not JSON"},
    {"empty", "", "not JSON"},
    {"trailing garbage", DOC(ENTRY) "x", "not JSON"},
    {"not an object", "[1]", "not a JSON object"},
    {"missing version", "{\"entries\":[],\"mac\":\"" MAC "\"}", "missing field \"version\""},
    {"missing mac", "{\"version\":1,\"entries\":[]}", "missing field \"mac\""},
    {"unknown top field", "{\"version\":1,\"entries\":[],\"mac\":\"" MAC "\",\"x\":1}", "unknown field \"x\""},
    {"wrong version", "{\"version\":4,\"entries\":[],\"mac\":\"" MAC "\"}", "unsupported version"},
    {"v2 without database_id", "{\"version\":2,\"entries\":[],\"mac\":\"" MAC "\",\"generation\":1}",
     "missing field \"database_id\""},
    {"v2 generation 0",
     "{\"version\":2,\"database_id\":\"00112233445566778899aabbccddeeff\",\"generation\":0,"
     "\"entries\":[],\"mac\":\"" MAC "\"}",
     "field \"generation\""},
    {"v2 short id", "{\"version\":2,\"database_id\":\"0011\",\"generation\":1,\"entries\":[],\"mac\":\"" MAC "\"}",
     "field \"database_id\""},
    {"v2 creating false",
     "{\"version\":2,\"database_id\":\"00112233445566778899aabbccddeeff\",\"generation\":1,"
     "\"creating\":false,\"entries\":[],\"mac\":\"" MAC "\"}",
     "field \"creating\""},
    {"v1 with database_id",
     "{\"version\":1,\"database_id\":\"00112233445566778899aabbccddeeff\",\"entries\":[],"
     "\"mac\":\"" MAC "\"}",
     "unknown field \"database_id\""},
    {"version as string", "{\"version\":\"1\",\"entries\":[],\"mac\":\"" MAC "\"}", "unsupported version"},
    {"entries not array", "{\"version\":1,\"entries\":{},\"mac\":\"" MAC "\"}", "field \"entries\""},
    {"mac bad hex",
     "{\"version\":1,\"entries\":[],\"mac\":\""
     "g" MAC "\"}",
     "field \"mac\""},
    {"mac short", "{\"version\":1,\"entries\":[],\"mac\":\"00\"}", "field \"mac\""},
    {"mac uppercase",
     "{\"version\":1,\"entries\":[],\"mac\":\""
     "ABCDEF" MAC "\"}",
     "field \"mac\""},
    {"entry not object", DOC(ENTRY ",3"), "entry 1: not an object"},
    {"missing field",
     DOC("{\"platform_id\":\"" PID "\",\"kind\":\"sim\",\"node\":\"n\",\"tcb\":1,\"nonce\":\"" NONCE
         "\",\"sealed\":\"" SEALED "\"}"),
     "entry 0: missing field \"time\""},
    {"unknown field",
     DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "1", "2", "\"" NONCE "\"", "\"" SEALED "\"",
                    ",\"extra\":true")),
     "entry 0: unknown field \"extra\""},
    {"platform_id bad hex",
     DOC(ENTRY_WITH("\"02G" PID "\"", "\"sim\"", "\"n1\"", "1", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"platform_id\""},
    {"platform_id lowercase",
     DOC(ENTRY_WITH("\"02aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "\"sim\"", "\"n1\"", "1",
                    "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"platform_id\""},
    {"platform_id prefix",
     DOC(ENTRY_WITH("\"04AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"", "\"sim\"", "\"n1\"", "1",
                    "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"platform_id\""},
    {"platform_id number", DOC(ENTRY_WITH("7", "\"sim\"", "\"n1\"", "1", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"platform_id\""},
    {"kind", DOC(ENTRY_WITH("\"" PID "\"", "\"vm\"", "\"n1\"", "1", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"kind\""},
    {"node empty", DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"\"", "1", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"node\""},
    {"node space",
     DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"a b\"", "1", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"node\""},
    {"node NUL",
     DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"a\\u0000b\"", "1", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "not JSON"},
    {"tcb negative",
     DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "-1", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"tcb\""},
    {"tcb too big",
     DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "4294967296", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"tcb\""},
    {"tcb real", DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "1.0", "2", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"tcb\""},
    {"time negative",
     DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "1", "-5", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"time\""},
    {"time string",
     DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "1", "\"2\"", "\"" NONCE "\"", "\"" SEALED "\"", "")),
     "entry 0: field \"time\""},
    {"nonce not base64",
     DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "1", "2", "\"AAAA AAAAAAAAAAA\"", "\"" SEALED "\"", "")),
     "entry 0: field \"nonce\": not base64"},
    {"nonce size", DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "1", "2", "\"AAAA\"", "\"" SEALED "\"", "")),
     "entry 0: field \"nonce\": 3 bytes, want 12"},
    {"wrong sealed size",
     DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "1", "2", "\"" NONCE "\"",
                    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"", "")),
     "entry 0: field \"sealed\": 47 bytes, want 48"},
    {"sealed not string", DOC(ENTRY_WITH("\"" PID "\"", "\"sim\"", "\"n1\"", "1", "2", "\"" NONCE "\"", "null", "")),
     "entry 0: field \"sealed\": not a string"},
    {"duplicate platform_id",
     DOC(ENTRY_WITH("\"" PID2 "\"", "\"sim\"", "\"n0\"", "1", "2", "\"" NONCE "\"", "\"" SEALED "\"",
                    "") "," ENTRY "," ENTRY_WITH("\"" PID "\"", "\"tpm2\"", "\"n2\"", "1", "2", "\"" NONCE "\"",
                                                 "\"" SEALED "\"", "")),
     "entry 2: field \"platform_id\": duplicate platform " PID " with measurement any (also entry 1)"},
    {"duplicate key", "{\"version\":1,\"version\":1,\"entries\":[],\"mac\":\"" MAC "\"}", "not JSON"},
};

static void test_parse_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        char err[512] = "";
        struct cas_keystore ks = {.entries = (struct cas_keystore_entry *)(uintptr_t)1, .count = 77};
        int ret = cas_keystore_parse(refusals[i].text, strlen(refusals[i].text), &ks, err, sizeof(err));
        if (ret != -EBADMSG)
            fail_msg("%s: got %d (%s)", refusals[i].name, ret, err);
        if (!strstr(err, refusals[i].want))
            fail_msg("%s: error '%s' lacks '%s'", refusals[i].name, err, refusals[i].want);
        assert_int_equal(ks.count, 77); /* untouched */
    }
    /* The valid base document parses. */
    char err[512] = "";
    struct cas_keystore ks;
    static const char ok[] = DOC(ENTRY);
    if (cas_keystore_parse(ok, strlen(ok), &ks, err, sizeof(err)) != 0)
        fail_msg("valid document refused: %s", err);
    assert_int_equal(ks.count, 1);
    assert_string_equal(ks.entries[0].platform_id, PID);
    assert_string_equal(ks.entries[0].node, "n1");
    cas_keystore_free(&ks);
}

static char *doc_with_entries(size_t n)
{
    size_t cap = 64 + n * 256;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = (size_t)snprintf(text, cap, "{\"version\":1,\"entries\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "%s{\"platform_id\":\"02%064zX\",\"kind\":\"sim\",\"node\":\"n\",\"tcb\":1,"
                                "\"time\":2,\"nonce\":\"" NONCE "\",\"sealed\":\"" SEALED "\"}",
                                i ? "," : "", i);
    snprintf(text + len, cap - len, "],\"mac\":\"" MAC "\"}");
    return text;
}

static void test_parse_limits(void **state)
{
    (void)state;
    char err[512];
    struct cas_keystore ks;
    char *text = doc_with_entries(CAS_KS_MAX_ENTRIES);
    if (cas_keystore_parse(text, strlen(text), &ks, err, sizeof(err)) != 0)
        fail_msg("%d entries refused: %s", CAS_KS_MAX_ENTRIES, err);
    assert_int_equal(ks.count, CAS_KS_MAX_ENTRIES);
    cas_keystore_free(&ks);
    free(text);

    text = doc_with_entries(CAS_KS_MAX_ENTRIES + 1);
    assert_int_equal(cas_keystore_parse(text, strlen(text), &ks, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "too many entries"));
    free(text);

    size_t big = CAS_KS_MAX_FILE + 1;
    text = malloc(big);
    assert_non_null(text);
    memset(text, ' ', big);
    assert_int_equal(cas_keystore_parse(text, big, &ks, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "too large"));
    free(text);

    /* Not NUL-terminated input: only size bytes are read. */
    static const char ok[] = DOC(ENTRY) "garbage";
    assert_int_equal(cas_keystore_parse(ok, strlen(ok) - 7, &ks, err, sizeof(err)), 0);
    cas_keystore_free(&ks);
}

static void test_corrupt_file_untouched(void **state)
{
    struct fixture *f = *state;
    struct cas_keystore ks, back;
    char err[512];
    make_store(&ks, 2, DBKEY);
    assert_int_equal(cas_keystore_save(f->path, &ks, DBKEY), 0);
    size_t size;
    char *full = slurp(f->path, &size);
    size_t cuts[] = {0, 1, size / 2, size - 3};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        spew(f->path, full, cuts[i]);
        struct stat before, after;
        assert_int_equal(stat(f->path, &before), 0);
        memset(err, 0, sizeof(err));
        int ret = cas_keystore_load(f->path, &back, err, sizeof(err));
        if (ret != -EBADMSG)
            fail_msg("cut at %zu: got %d", cuts[i], ret);
        assert_non_null(strstr(err, f->path));
        assert_int_equal(stat(f->path, &after), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
        size_t n;
        char *now = slurp(f->path, &n);
        assert_int_equal(n, cuts[i]);
        assert_memory_equal(now, full, n);
        free(now);
    }
    /* Larger than the limit. */
    char *huge = malloc(CAS_KS_MAX_FILE + 1);
    assert_non_null(huge);
    memset(huge, ' ', CAS_KS_MAX_FILE + 1);
    spew(f->path, huge, CAS_KS_MAX_FILE + 1);
    free(huge);
    assert_int_equal(cas_keystore_load(f->path, &back, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, f->path));
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, CAS_KS_MAX_FILE + 1);

    /* A symlink is not followed. */
    char link[1200];
    snprintf(link, sizeof(link), "%s/link.key-store", f->dir);
    assert_int_equal(symlink(f->path, link), 0);
    assert_int_equal(cas_keystore_load(link, &back, err, sizeof(err)), -ELOOP);
    assert_non_null(strstr(err, link));
    free(full);
    cas_keystore_free(&ks);
}

static int g_crash_step;

static void crash_hook(int step)
{
    if (step == g_crash_step)
        _exit(0);
}

static size_t count_temps(const struct fixture *f)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *de;
    size_t n = 0;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp-"))
            n++;
    closedir(d);
    return n;
}

static void age_temps(const struct fixture *f)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *de;
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp-"))
            assert_int_equal(utimensat(dirfd(d), de->d_name, old, AT_SYMLINK_NOFOLLOW), 0);
    closedir(d);
}

static void test_crash_safety(void **state)
{
    struct fixture *f = *state;
    struct cas_keystore old_ks, new_ks, back;
    char err[512];
    make_store(&old_ks, 2, DBKEY);
    make_store(&new_ks, 5, DBKEY);
    strcpy(new_ks.entries[0].node, "renamed-node");

    for (int step = 1; step <= 4; step++) {
        assert_int_equal(cas_keystore_save(f->path, &old_ks, DBKEY), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            g_crash_step = step;
            custos_atomic_write_hook = crash_hook;
            cas_keystore_save(f->path, &new_ks, DBKEY);
            _exit(1); /* the hook did not fire */
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != 0)
            fail_msg("step %d: the hook was not called", step);
        if (cas_keystore_load(f->path, &back, err, sizeof(err)) != 0)
            fail_msg("step %d: %s", step, err);
        assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), 0);
        if (step >= 3)
            assert_entries_equal(&back, &new_ks);
        else
            assert_entries_equal(&back, &old_ks);
        cas_keystore_free(&back);
        /* The next save is not blocked by what the crash left. */
        assert_int_equal(cas_keystore_save(f->path, &new_ks, DBKEY), 0);
        assert_int_equal(cas_keystore_load(f->path, &back, err, sizeof(err)), 0);
        assert_entries_equal(&back, &new_ks);
        cas_keystore_free(&back);
    }
    /* Crashes before the rename left temp files; recent ones are kept (a save may be in progress),
     * stale ones are removed by the next save. */
    assert_int_equal(count_temps(f), 2);
    assert_int_equal(cas_keystore_save(f->path, &old_ks, DBKEY), 0);
    assert_int_equal(count_temps(f), 2);
    age_temps(f);
    assert_int_equal(cas_keystore_save(f->path, &old_ks, DBKEY), 0);
    assert_int_equal(count_temps(f), 0);
    assert_int_equal(cas_keystore_load(f->path, &back, err, sizeof(err)), 0);
    assert_entries_equal(&back, &old_ks);
    cas_keystore_free(&back);
    cas_keystore_free(&old_ks);
    cas_keystore_free(&new_ks);
}

static void test_serialize_roundtrip(void **state)
{
    (void)state;
    struct cas_keystore ks, back;
    char *text = NULL, err[512];
    size_t size = 0;
    make_store(&ks, 4, DBKEY);
    assert_int_equal(cas_keystore_serialize(&ks, DBKEY, &text, &size), 0);
    assert_int_equal(size, strlen(text));
    assert_int_equal(cas_keystore_parse(text, size, &back, err, sizeof(err)), 0);
    assert_entries_equal(&ks, &back);
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), 0);
    /* The text names no secret. */
    char hex[65];
    custos_hex_encode(DBKEY, 32, hex, false);
    assert_null(strstr(text, hex));
    free(text);
    cas_keystore_free(&back);
    cas_keystore_free(&ks);
}

/* Node entries: the private key sealed for the node, the database key wrapped to its public key and
 * bound to the database ID and generation; the MAC covers all of it. */
static void test_node_entries(void **state)
{
    struct fixture *f = *state;
    struct cas_keystore ks, back;
    uint8_t sk[32], other[32], got[32], newkey[32];
    char err[512] = "";
    make_store(&ks, 2, DBKEY);
    seal_key_for(0, sk);
    seal_key_for(1, other);
    struct cas_keystore_entry *e = &ks.entries[0];
    assert_int_equal(cas_keystore_seal_node(e, sk), 0);
    assert_true(e->node_key);
    assert_int_equal(cas_keystore_wrap(&ks, e, DBKEY), 0);
    assert_int_equal(cas_keystore_open(&ks, e, sk, got), 0);
    assert_memory_equal(got, DBKEY, 32);
    assert_int_equal(cas_keystore_open(&ks, e, other, got), -EBADMSG); /* another node's seal key */
    /* the legacy entry still opens with its own key */
    assert_int_equal(cas_keystore_open(&ks, &ks.entries[1], other, got), 0);
    assert_memory_equal(got, DBKEY, 32);
    /* bound to the generation and the database ID */
    ks.generation++;
    assert_int_equal(cas_keystore_open(&ks, e, sk, got), -EBADMSG);
    ks.generation--;
    ks.database_id[3] ^= 1;
    assert_int_equal(cas_keystore_open(&ks, e, sk, got), -EBADMSG);
    ks.database_id[3] ^= 1;
    /* and to the entry's metadata */
    e->tcb++;
    assert_int_equal(cas_keystore_open(&ks, e, sk, got), -EBADMSG);
    e->tcb--;
    /* a rotation wraps a new key for the same node without its seal key */
    memset(newkey, 0x42, sizeof(newkey));
    ks.generation++;
    assert_int_equal(cas_keystore_wrap(&ks, e, newkey), 0);
    assert_int_equal(cas_keystore_open(&ks, e, sk, got), 0);
    assert_memory_equal(got, newkey, 32);
    /* round trip through the file, MAC over the new fields */
    assert_int_equal(cas_keystore_save(f->path, &ks, newkey), 0);
    assert_int_equal(cas_keystore_load(f->path, &back, err, sizeof(err)), 0);
    assert_int_equal(back.version, CAS_KS_VERSION);
    assert_int_equal(back.generation, ks.generation);
    assert_memory_equal(back.database_id, ks.database_id, sizeof(ks.database_id));
    assert_true(back.entries[0].node_key && !back.entries[1].node_key);
    assert_int_equal(cas_keystore_verify_mac(&back, newkey), 0);
    assert_int_equal(cas_keystore_open(&back, &back.entries[0], sk, got), 0);
    assert_memory_equal(got, newkey, 32);
    uint8_t *fields[] = {back.entries[0].public_key, back.entries[0].wrapped, back.database_id};
    for (size_t i = 0; i < 3; i++) {
        fields[i][5] ^= 1;
        assert_int_equal(cas_keystore_verify_mac(&back, newkey), -EBADMSG);
        fields[i][5] ^= 1;
    }
    back.generation++;
    assert_int_equal(cas_keystore_verify_mac(&back, newkey), -EBADMSG);
    back.generation--;
    back.creating = true;
    assert_int_equal(cas_keystore_verify_mac(&back, newkey), -EBADMSG);
    cas_keystore_free(&back);
    cas_keystore_free(&ks);
}

/* The one entry codec, in its three forms. */
static void test_entry_codec_forms(void **state)
{
    (void)state;
    struct cas_keystore ks;
    struct cas_keystore_entry e;
    uint8_t sk[32];
    char err[512];
    make_store(&ks, 1, DBKEY);
    seal_key_for(0, sk);
    memset(ks.entries[0].measurement, 'a', CAS_KS_MEASUREMENT_HEX);
    assert_int_equal(cas_keystore_seal_node(&ks.entries[0], sk), 0);
    assert_int_equal(cas_keystore_wrap(&ks, &ks.entries[0], DBKEY), 0);
    json_t *file = cas_keystore_entry_to_json(&ks.entries[0], true),
           *backup = cas_keystore_entry_to_json(&ks.entries[0], false);
    assert_non_null(json_object_get(file, "wrapped"));
    assert_null(json_object_get(backup, "wrapped"));
    /* round trips */
    assert_int_equal(cas_keystore_entry_from_json(file, CAS_KS_FORM_V3, "", &e, err, sizeof(err)), 0);
    assert_memory_equal(e.wrapped, ks.entries[0].wrapped, sizeof(e.wrapped));
    assert_int_equal(cas_keystore_entry_from_json(backup, CAS_KS_FORM_BACKUP, "", &e, err, sizeof(err)), 0);
    assert_true(e.node_key);
    assert_memory_equal(e.public_key, ks.entries[0].public_key, 32);
    /* a backup's entry must carry a public key and no wrapped key; a v1 file neither */
    assert_int_equal(cas_keystore_entry_from_json(file, CAS_KS_FORM_BACKUP, "c: ", &e, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "c: unknown field \"wrapped\""));
    assert_int_equal(cas_keystore_entry_from_json(file, CAS_KS_FORM_V1, "", &e, err, sizeof(err)), -EBADMSG);
    json_t *nokey = json_deep_copy(backup);
    json_object_del(nokey, "public_key");
    assert_int_equal(cas_keystore_entry_from_json(nokey, CAS_KS_FORM_BACKUP, "", &e, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "missing field \"public_key\""));
    /* a backup's entry states its measurement */
    json_t *nom = json_deep_copy(backup);
    json_object_del(nom, "measurement");
    assert_int_equal(cas_keystore_entry_from_json(nom, CAS_KS_FORM_BACKUP, "", &e, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "missing field \"measurement\""));
    json_object_set_new(nom, "measurement", json_string("AA"));
    assert_int_equal(cas_keystore_entry_from_json(nom, CAS_KS_FORM_BACKUP, "", &e, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "field \"measurement\": not 64 lowercase hex digits"));
    json_decref(nom);
    /* a version 3 file may carry it, a version 2 file may not */
    assert_int_equal(cas_keystore_entry_from_json(file, CAS_KS_FORM_V3, "", &e, err, sizeof(err)), 0);
    assert_string_equal(e.measurement, ks.entries[0].measurement);
    assert_int_equal(cas_keystore_entry_from_json(file, CAS_KS_FORM_V2, "", &e, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "unknown field \"measurement\""));
    json_object_del(file, "measurement");
    assert_int_equal(cas_keystore_entry_from_json(file, CAS_KS_FORM_V3, "", &e, err, sizeof(err)), 0);
    assert_string_equal(e.measurement, "");
    /* a v2 file: public_key and wrapped together or neither */
    json_object_del(file, "wrapped");
    assert_int_equal(cas_keystore_entry_from_json(file, CAS_KS_FORM_V2, "", &e, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "go together"));
    json_object_del(nokey, "measurement");
    assert_int_equal(cas_keystore_entry_from_json(nokey, CAS_KS_FORM_V2, "", &e, err, sizeof(err)), 0);
    assert_false(e.node_key);
    /* a wrong-size public key is named */
    json_object_set_new(backup, "public_key", json_string("AAAA"));
    assert_int_equal(cas_keystore_entry_from_json(backup, CAS_KS_FORM_BACKUP, "", &e, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "field \"public_key\": 3 bytes, want 32"));
    json_decref(file);
    json_decref(backup);
    json_decref(nokey);
    cas_keystore_free(&ks);
}

static void set_measurement(struct cas_keystore_entry *e, char c)
{
    memset(e->measurement, c, CAS_KS_MEASUREMENT_HEX);
    e->measurement[CAS_KS_MEASUREMENT_HEX] = '\0';
}

/* Version 3: entries carry the measurement they were sealed for, covered by the MAC. */
static void test_v3_measurement_file(void **state)
{
    struct fixture *f = *state;
    struct cas_keystore ks, back;
    char err[512] = "";
    make_store(&ks, 3, DBKEY);
    set_measurement(&ks.entries[0], 'a');
    set_measurement(&ks.entries[1], 'b');
    /* entry 2 stays without one: "any" (from a version 2 file) */
    assert_int_equal(cas_keystore_save(f->path, &ks, DBKEY), 0);
    assert_int_equal(cas_keystore_load(f->path, &back, err, sizeof(err)), 0);
    assert_int_equal(back.version, 3);
    assert_string_equal(back.entries[0].measurement, ks.entries[0].measurement);
    assert_string_equal(back.entries[1].measurement, ks.entries[1].measurement);
    assert_string_equal(back.entries[2].measurement, "");
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), 0);
    /* the MAC covers the measurement: changed, added, removed */
    back.entries[0].measurement[7] = 'c';
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), -EBADMSG);
    back.entries[0].measurement[7] = 'a';
    set_measurement(&back.entries[2], 'd');
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), -EBADMSG);
    back.entries[2].measurement[0] = '\0';
    back.entries[1].measurement[0] = '\0';
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), -EBADMSG);
    set_measurement(&back.entries[1], 'b');
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), 0);
    /* and the version: a version 3 list is not accepted as version 2 */
    back.version = 2;
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), -EBADMSG);
    cas_keystore_free(&back);
    /* an edit of the file is detected */
    char from[80], to[80];
    snprintf(from, sizeof(from), "\"%s\"", ks.entries[1].measurement);
    snprintf(to, sizeof(to), "\"%s\"", ks.entries[0].measurement);
    edit_file(f->path, from, to);
    assert_int_equal(cas_keystore_load(f->path, &back, err, sizeof(err)), 0);
    assert_int_equal(cas_keystore_verify_mac(&back, DBKEY), -EBADMSG);
    cas_keystore_free(&back);
    /* invalid measurements are refused when written and read */
    ks.entries[0].measurement[3] = 'A';
    char *text = NULL;
    size_t size = 0;
    assert_int_equal(cas_keystore_serialize(&ks, DBKEY, &text, &size), -EINVAL);
    ks.entries[0].measurement[3] = 'a';
    assert_int_equal(cas_keystore_serialize(&ks, DBKEY, &text, &size), 0);
    char *at = strstr(text, ks.entries[0].measurement);
    assert_non_null(at);
    at[3] = 'A';
    assert_int_equal(cas_keystore_parse(text, size, &back, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "entry 0: field \"measurement\": not 64 lowercase hex digits"));
    at[3] = 'a';
    /* a version 2 file cannot carry it */
    char *v = strstr(text, "\"version\": 3");
    assert_non_null(v);
    v[strlen("\"version\": ")] = '2';
    assert_int_equal(cas_keystore_parse(text, size, &back, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "unknown field \"measurement\""));
    free(text);
    cas_keystore_free(&ks);
}

/* Uniqueness is (platform, measurement): the same pair replaces, another measurement is added beside. */
static void test_pair_uniqueness(void **state)
{
    (void)state;
    struct cas_keystore ks;
    char *text = NULL, err[512] = "";
    size_t size = 0;
    make_store(&ks, 2, DBKEY);
    set_measurement(&ks.entries[0], 'a');
    struct cas_keystore_entry e = ks.entries[0];
    set_measurement(&e, 'b');
    e.tcb = 40;
    assert_int_equal(cas_keystore_upsert(&ks, &e), 0); /* beside */
    assert_int_equal(ks.count, 3);
    e.tcb = 41;
    assert_int_equal(cas_keystore_upsert(&ks, &e), 0); /* replaces */
    assert_int_equal(ks.count, 3);
    assert_int_equal(ks.entries[2].tcb, 41);
    assert_int_equal(ks.entries[0].tcb, 1);
    struct cas_keystore_entry any = ks.entries[0];
    any.measurement[0] = '\0';
    assert_int_equal(cas_keystore_upsert(&ks, &any), 0); /* "any" is a value of its own */
    assert_int_equal(ks.count, 4);
    assert_int_equal(cas_keystore_serialize(&ks, DBKEY, &text, &size), 0);
    struct cas_keystore back;
    assert_int_equal(cas_keystore_parse(text, size, &back, err, sizeof(err)), 0);
    assert_int_equal(back.count, 4);
    cas_keystore_free(&back);
    free(text);
    /* two entries of one pair are refused when written and read */
    set_measurement(&ks.entries[2], 'a');
    assert_int_equal(cas_keystore_serialize(&ks, DBKEY, &text, &size), -EINVAL);
    set_measurement(&ks.entries[2], 'b');
    assert_int_equal(cas_keystore_serialize(&ks, DBKEY, &text, &size), 0);
    char *second = strstr(text, "\"bbbb");
    assert_non_null(second);
    memset(second + 1, 'a', CAS_KS_MEASUREMENT_HEX);
    assert_int_equal(cas_keystore_parse(text, size, &back, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "duplicate platform"));
    assert_non_null(strstr(err, "with measurement aaaa"));
    free(text);
    cas_keystore_free(&ks);
}

/* A casd finds the entry of its pair, else its platform's entry without a measurement. */
static void test_find_rules(void **state)
{
    (void)state;
    struct cas_keystore ks;
    char ma[65], mb[65], mc[65];
    memset(ma, 'a', 64);
    memset(mb, 'b', 64);
    memset(mc, 'c', 64);
    ma[64] = mb[64] = mc[64] = '\0';
    make_store(&ks, 2, DBKEY);
    char p0[67];
    strcpy(p0, ks.entries[0].platform_id);
    /* only an entry without measurement (version 2): any casd of the platform tries it */
    assert_ptr_equal(cas_keystore_find_for(&ks, p0, ma), &ks.entries[0]);
    assert_ptr_equal(cas_keystore_find(&ks, p0, ""), &ks.entries[0]);
    assert_ptr_equal(cas_keystore_find(&ks, p0, NULL), &ks.entries[0]);
    assert_null(cas_keystore_find(&ks, p0, ma));
    /* with measurements: the exact pair first */
    set_measurement(&ks.entries[0], 'a');
    struct cas_keystore_entry e = ks.entries[0];
    set_measurement(&e, 'b');
    assert_int_equal(cas_keystore_upsert(&ks, &e), 0);
    assert_ptr_equal(cas_keystore_find_for(&ks, p0, ma), &ks.entries[0]);
    assert_ptr_equal(cas_keystore_find_for(&ks, p0, mb), &ks.entries[2]);
    assert_null(cas_keystore_find_for(&ks, p0, mc)); /* only other measurements: none */
    assert_null(cas_keystore_find(&ks, p0, NULL));
    /* an entry without measurement is the fallback, never preferred over the pair */
    struct cas_keystore_entry any = ks.entries[0];
    any.measurement[0] = '\0';
    assert_int_equal(cas_keystore_upsert(&ks, &any), 0);
    assert_ptr_equal(cas_keystore_find_for(&ks, p0, mc), &ks.entries[3]);
    assert_ptr_equal(cas_keystore_find_for(&ks, p0, ma), &ks.entries[0]);
    /* another platform is never found */
    assert_ptr_equal(cas_keystore_find_for(&ks, ks.entries[1].platform_id, ma), &ks.entries[1]);
    cas_keystore_free(&ks);
}

/* Removal by pair, by platform, by measurement, and the pair a removal keeps. */
static void test_remove_rules(void **state)
{
    (void)state;
    struct cas_keystore ks;
    char ma[65], mb[65];
    memset(ma, 'a', 64);
    memset(mb, 'b', 64);
    ma[64] = mb[64] = '\0';
    make_store(&ks, 3, DBKEY);
    for (int i = 0; i < 3; i++)
        set_measurement(&ks.entries[i], 'a');
    for (int i = 0; i < 3; i++) {
        struct cas_keystore_entry e = ks.entries[i];
        set_measurement(&e, 'b');
        assert_int_equal(cas_keystore_upsert(&ks, &e), 0);
    }
    assert_int_equal(ks.count, 6);
    char p0[67], p1[67], p2[67];
    strcpy(p0, ks.entries[0].platform_id);
    strcpy(p1, ks.entries[1].platform_id);
    strcpy(p2, ks.entries[2].platform_id);
    /* by pair: only that entry */
    assert_int_equal(cas_keystore_remove(&ks, p1, ma), 0);
    assert_int_equal(ks.count, 5);
    assert_null(cas_keystore_find(&ks, p1, ma));
    assert_non_null(cas_keystore_find(&ks, p1, mb));
    assert_int_equal(cas_keystore_remove(&ks, p1, ma), -ENOENT);
    /* by platform: every entry of it */
    assert_int_equal(cas_keystore_remove(&ks, p2, NULL), 0);
    assert_int_equal(ks.count, 3);
    assert_null(cas_keystore_find_for(&ks, p2, ma));
    assert_null(cas_keystore_find_for(&ks, p2, mb));
    /* by measurement, keeping the primary's current pair (p0, a) */
    struct cas_ks_match prune = {.measurement = ma, .keep_platform_id = p0, .keep_measurement = ma};
    assert_false(cas_keystore_match(cas_keystore_find(&ks, p0, ma), &prune));
    assert_true(cas_keystore_match(cas_keystore_find(&ks, p0, ma), &(struct cas_ks_match){.measurement = ma}));
    assert_int_equal(cas_keystore_remove_matching(&ks, &prune), -ENOENT); /* (p1, a) is gone already */
    struct cas_ks_match prune_b = {.measurement = mb, .keep_platform_id = p0, .keep_measurement = ma};
    assert_int_equal(cas_keystore_remove_matching(&ks, &prune_b), 2); /* (p0, b) and (p1, b): one call */
    assert_int_equal(ks.count, 1);
    assert_non_null(cas_keystore_find(&ks, p0, ma));
    struct cas_ks_match keep_all = {.platform_id = p0, .keep_platform_id = p0, .keep_measurement = ma};
    assert_int_equal(cas_keystore_remove_matching(&ks, &keep_all), -ENOENT);
    assert_int_equal(ks.count, 1);
    assert_int_equal(cas_keystore_remove(&ks, p0, NULL), 0);
    assert_int_equal(ks.count, 0);
    assert_null(ks.entries);
    cas_keystore_free(&ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mac_detects_edits, setup, teardown),
        cmocka_unit_test(test_seal_unseal),
        cmocka_unit_test(test_upsert_remove),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test_setup_teardown(test_corrupt_file_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
        cmocka_unit_test(test_serialize_roundtrip),
        cmocka_unit_test_setup_teardown(test_node_entries, setup, teardown),
        cmocka_unit_test(test_entry_codec_forms),
        cmocka_unit_test_setup_teardown(test_v3_measurement_file, setup, teardown),
        cmocka_unit_test(test_pair_uniqueness),
        cmocka_unit_test(test_find_rules),
        cmocka_unit_test(test_remove_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
