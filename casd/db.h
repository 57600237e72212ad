/* SPDX-License-Identifier: Apache-2.0 */
/* casd record store: an LMDB environment whose keys are keyed hashes of the record names and whose
 * values are authenticated ciphertexts bound to those hashes.
 *
 * Layout: LMDB key = HMAC-SHA256(name key, name) (32 bytes); LMDB value = 0x01 || nonce (12, random)
 * || AES-256-GCM(record key, nonce, aad = LMDB key, plaintext) || tag (16). The name key and the
 * record key are HKDF-SHA256 of the 32-byte database key (infos "custos-db-names-v1" and
 * "custos-db-records-v1"); the database key itself is not kept.
 *
 * Meta record (format 2): LMDB key "\0custos-db-meta" (15 bytes, never the length of a name hash),
 * value "CDBM" || 0x02 || database ID (16) || generation (u64 BE) || nonce (12) || AES-256-GCM(record
 * key, nonce, aad = "custos-db-meta-v2" || ID || generation, name key) || tag. The ID and generation
 * are readable without the key (for clear refusals); the key authenticates them. The name key is kept
 * here, so rotating the database key (cas_db_rekey) re-encrypts every value but keeps the record
 * names' hashes. A database of format 1 (casd before key rotation) has no meta record but a
 * sentinel record (reserved name "\x01custos-db-sentinel"); cas_db_migrate adds the meta record and
 * keeps its name key (HKDF of the key it was made with).
 *
 * Thread safety: one struct cas_db may be used by many threads at once (MDB_NOTLS read
 * transactions; writers are serialized by LMDB's write lock, also across processes). A process must
 * not open the same directory twice at the same time (an LMDB rule). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CAS_DB_KEY_SIZE 32
#ifndef CAS_DB_MAP_SIZE
#define CAS_DB_MAP_SIZE ((size_t)1 << 30) /* 1 GiB: the most the database can hold */
#endif
#define CAS_DB_MAX_VALUE ((size_t)16 << 20) /* bytes of plaintext per record */
#define CAS_DB_MAX_NAME 1024                /* bytes per name */
#define CAS_DB_MAX_OPS 65536                /* operations per cas_db_write */

struct cas_db;

#define CAS_DB_ID_SIZE 16

/* What the meta record says. generation 0: a format-1 database (no meta record yet). */
struct cas_db_meta {
    uint8_t id[CAS_DB_ID_SIZE];
    uint64_t generation;
};

/* Creates a new database in dir (mode 0700 dir, 0600 files) with its meta record (id, generation 1)
 * under the 32-byte key. -EEXIST when dir already holds a database (never overwritten). */
int cas_db_create(const char *dir, const uint8_t dbkey[CAS_DB_KEY_SIZE], const uint8_t id[CAS_DB_ID_SIZE],
                  struct cas_db **out, char *err, size_t err_size);

/* Opens the existing database in dir. -ENOENT when there is none (no data.mdb, or an empty one: never
 * created here); -EBADMSG with "the database key does not open <dir>" when the meta (or format-1
 * sentinel) record does not authenticate; -EBADMSG naming the damage when the file is truncated or
 * not an LMDB file. Errors name the file and the cause. */
int cas_db_open(const char *dir, const uint8_t dbkey[CAS_DB_KEY_SIZE], struct cas_db **out, char *err, size_t err_size);

/* Reads the meta record's clear part without the key (for messages and to choose between key-stores;
 * nothing is trusted until cas_db_open authenticates it). 0; -ENODATA for a format-1 database;
 * -ENOENT when there is no database; -EBADMSG when damaged. */
int cas_db_peek(const char *dir, struct cas_db_meta *out, char *err, size_t err_size);

/* The open database's meta (generation 0 before cas_db_migrate). */
void cas_db_get_meta(const struct cas_db *db, struct cas_db_meta *out);

/* Format 1 -> 2: writes the meta record (id, generation 1) in one transaction. -EALREADY when the
 * database has one. */
int cas_db_migrate(struct cas_db *db, const uint8_t id[CAS_DB_ID_SIZE]);

/* Re-encrypts every record under new_key and sets the generation, in one LMDB transaction: after a
 * crash the database is wholly under the old key or wholly under the new one. Readers and writers of
 * this process wait while it runs. Test hook: custos_atomic_write_hook(10) before the commit. */
int cas_db_rekey(struct cas_db *db, const uint8_t new_key[CAS_DB_KEY_SIZE], uint64_t generation);

/* Rewrites data.mdb with its live pages only (after cas_db_rekey: the freed pages still hold the
 * records under the old key), through a temporary file renamed over it; reopens it with a fresh
 * lock file and checks the meta record. Readers and writers of this process wait. -ESTALE: the
 * reopen or its check failed and the handle is unusable (every call answers -EIO) until the database
 * is opened again; the file itself is whole. Any other error: nothing changed. err says what failed.
 * Test hook: custos_atomic_write_hook(12) between removing the old lock file and the reopen. */
int cas_db_compact(struct cas_db *db, char *err, size_t err_size);

/* One operation of a batch; value NULL = delete. */
struct cas_db_op {
    const char *name;
    const void *value;
    size_t size;
};

/* Applies ops in one LMDB write transaction, all or nothing; durable (fsynced) when it returns 0.
 * Names are 1..CAS_DB_MAX_NAME bytes and must not start with byte 0x01 (reserved) (-EINVAL, -E2BIG);
 * values are at most CAS_DB_MAX_VALUE bytes (-E2BIG). A delete of an absent name fails the whole
 * batch with -ENOENT. -ENOSPC when the map is full. */
int cas_db_write(struct cas_db *db, const struct cas_db_op *ops, size_t count);
int cas_db_put(struct cas_db *db, const char *name, const void *value, size_t size); /* value non-NULL */
int cas_db_del(struct cas_db *db, const char *name);                                 /* -ENOENT when absent */

/* Caller frees *value with cas_db_value_free (wipes it); the value is followed by a NUL byte not
 * counted in *size. -ENOENT when absent, -EBADMSG when a record fails authentication (tampered,
 * swapped, or another database key). */
int cas_db_get(struct cas_db *db, const char *name, uint8_t **value, size_t *size);
void cas_db_value_free(uint8_t *value, size_t size);

/* Closes the environment and wipes the derived keys. Accepts NULL. */
void cas_db_close(struct cas_db *db);
