/* SPDX-License-Identifier: Apache-2.0 */
/* casd key-store: the file <db>.key-store next to the database directory. It lists, per platform,
 * the database key sealed with that platform's CAS seal key, and a MAC over the list keyed by the
 * database key (so only a holder of the database key can change it undetected).
 *
 * File (JSON, at most CAS_KS_MAX_FILE bytes):
 *   {"version": 1,
 *    "entries": [{"platform_id": "<66 uppercase hex>", "kind": "sim"|"tpm2"|"sgx", "node": "<name>",
 *                 "tcb": <u32>, "time": <i64 >= 0>, "nonce": "<base64 of 12>",
 *                 "sealed": "<base64 of 48>"}, ...],
 *    "mac": "<64 lowercase hex>"}
 * MAC = HMAC-SHA256(HKDF-SHA256(dbkey, info "custos-keystore-mac-v1"), canonical form), where the
 * canonical form is "custos-keystore-mac-v1" || u32 version || u32 count || per entry, in order:
 * platform_id (66) || u8 len || kind || u8 len || node || u32 tcb || u64 time || nonce || sealed
 * (integers big-endian).
 * Sealing: AES-256-GCM(seal key, nonce, aad, dbkey), aad = "custos-keystore-v1" || platform_id ||
 * kind || 0x00 || node || 0x00 || u32 tcb (big-endian): the metadata cannot be changed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CAS_KS_MAX_ENTRIES 1024
#define CAS_KS_MAX_FILE ((size_t)1 << 20)
#define CAS_KS_NODE_MAX 253

struct cas_keystore_entry {
    char platform_id[67]; /* 66 uppercase hex (SEC1 compressed P-256: 02/03 prefix) */
    char kind[8];         /* "sim" | "tpm2" | "sgx" */
    char node[254];       /* 1..253 bytes of [A-Za-z0-9._-] */
    uint32_t tcb;
    int64_t time; /* registration time, seconds since epoch (>= 0) */
    uint8_t nonce[12];
    uint8_t sealed[48]; /* AES-256-GCM of the 32-byte db key + tag */
};

struct cas_keystore {
    struct cas_keystore_entry *entries;
    size_t count;
    uint8_t mac[32];
};

/* <db_dir without trailing slashes>.key-store. -EINVAL (empty, or "/"), -ENAMETOOLONG. */
int cas_keystore_path(const char *db_dir, char *out, size_t out_size);

/* Checks one entry's fields (platform_id form, kind, node, time). -EINVAL with the field named. */
int cas_keystore_entry_check(const struct cas_keystore_entry *e, char *err, size_t err_size);

/* Strict parse of the file's text; every field validated, no unknown fields, no duplicate platform
 * IDs, at most CAS_KS_MAX_ENTRIES entries and CAS_KS_MAX_FILE bytes. -EBADMSG with an error naming the
 * entry index and field; -ENOMEM. Free *out with cas_keystore_free. */
int cas_keystore_parse(const char *text, size_t size, struct cas_keystore *out, char *err, size_t err_size);

/* Reads the file: -ENOENT when absent (a new database), otherwise parse; a truncated/corrupt file
 * gives -EBADMSG with "<path>: ..." and is never modified. */
int cas_keystore_load(const char *path, struct cas_keystore *out, char *err, size_t err_size);

/* The file's text with a fresh MAC (what cas_keystore_save writes). Caller frees *text.
 * -EINVAL when an entry is invalid or two share a platform ID, -E2BIG when too many entries. */
int cas_keystore_serialize(const struct cas_keystore *ks, const uint8_t dbkey[32], char **text, size_t *size);

/* Serializes with a fresh MAC and writes it crash-safely (custos_write_file_atomic, 0600). Temp
 * files left by a crashed earlier save (older than 10 minutes) are removed. */
int cas_keystore_save(const char *path, const struct cas_keystore *ks, const uint8_t dbkey[32]);

/* -EBADMSG when ks->mac does not match (file edited by someone without the db key). */
int cas_keystore_verify_mac(const struct cas_keystore *ks, const uint8_t dbkey[32]);

/* Seals dbkey for e's platform (fresh nonce); e's metadata must be set first. */
int cas_keystore_seal(struct cas_keystore_entry *e, const uint8_t seal_key[32], const uint8_t dbkey[32]);
/* -EBADMSG when the seal key or the metadata differ. dbkey is written only on success. */
int cas_keystore_unseal(const struct cas_keystore_entry *e, const uint8_t seal_key[32], uint8_t dbkey[32]);

const struct cas_keystore_entry *cas_keystore_find(const struct cas_keystore *ks, const char *platform_id);
/* Replaces the entry with the same platform_id, or appends. -EINVAL (invalid entry), -E2BIG (full). */
int cas_keystore_upsert(struct cas_keystore *ks, const struct cas_keystore_entry *e);
int cas_keystore_remove(struct cas_keystore *ks, const char *platform_id); /* -ENOENT */
/* Frees entries, wipes the struct; accepts NULL / empty. */
void cas_keystore_free(struct cas_keystore *ks);
