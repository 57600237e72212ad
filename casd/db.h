/* SPDX-License-Identifier: Apache-2.0 */
/* casd record store: an LMDB environment whose keys are keyed hashes of the record names and whose
 * values are authenticated ciphertexts bound to those hashes.
 *
 * Layout: LMDB key = HMAC-SHA256(name key, name) (32 bytes); LMDB value = 0x01 || nonce (12, random)
 * || AES-256-GCM(record key, nonce, aad = LMDB key, plaintext) || tag (16). The name key and the
 * record key are HKDF-SHA256 of the 32-byte database key (infos "custos-db-names-v1" and
 * "custos-db-records-v1"); the database key itself is not kept. A sentinel record (reserved name
 * "\x01custos-db-sentinel") is written when the database is created and checked at every open.
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

/* Opens (creating if needed, mode 0700 dir / 0600 files) the LMDB environment in dir, with the
 * 32-byte database key. -EBADMSG with "the database key does not open <dir>" when the sentinel
 * record does not authenticate. */
int cas_db_open(const char *dir, const uint8_t dbkey[CAS_DB_KEY_SIZE], struct cas_db **out, char *err,
                size_t err_size);

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
int cas_db_del(struct cas_db *db, const char *name); /* -ENOENT when absent */

/* Caller frees *value with cas_db_value_free (wipes it); the value is followed by a NUL byte not
 * counted in *size. -ENOENT when absent, -EBADMSG when a record fails authentication (tampered,
 * swapped, or another database key). */
int cas_db_get(struct cas_db *db, const char *name, uint8_t **value, size_t *size);
void cas_db_value_free(uint8_t *value, size_t size);

/* Closes the environment and wipes the derived keys. Accepts NULL. */
void cas_db_close(struct cas_db *db);
