/* SPDX-License-Identifier: Apache-2.0 */
/* casd key-store: the file <db>.key-store next to the database directory. It lists, per platform
 * (and, from version 3, per casd measurement on it), the database key sealed with that CAS seal
 * key, and a MAC over the list keyed by the database key (so only a holder of the database key can
 * change it undetected).
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
 * kind || 0x00 || node || 0x00 || u32 tcb (big-endian): the metadata cannot be changed.
 *
 * Version 2 (written by every casd since key rotation; version 1 files are read and migrated):
 *   {"version": 2, "database_id": "<32 hex>", "generation": <u64 >= 1>, ["creating": true,]
 *    "entries": [{...the fields above..., ["public_key": "<base64 of 32>", "wrapped": "<base64 of 92>"]}],
 *    "mac": "<64 hex>"}
 * database_id and generation bind the file to one database and one database key (the database's
 * meta record holds the same pair). "creating" marks a first start that has not finished creating
 * its database. An entry with public_key is a node entry: `sealed` holds that node's X25519 private
 * key, sealed with aad = "custos-keystore-node-v2" || platform_id || kind || 0 || node || 0 || tcb,
 * and `wrapped` holds the database key for that node: ephemeral X25519 public key (32) || nonce (12)
 * || AES-256-GCM(HKDF-SHA256(X25519, salt = ephemeral || public_key, info "custos-keystore-wrap-v2"),
 * aad = "custos-keystore-wrap-v2" || database_id || u64 generation || platform_id || kind || 0 || node
 * || 0 || tcb, dbkey) (48). Anyone holding the entries can wrap a new database key for each node
 * (rotation); only the node can unwrap it. An entry without public_key is a legacy entry (version 1
 * form: `sealed` is the database key itself); it cannot follow a rotation.
 * MAC (version 2) = HMAC-SHA256(HKDF(dbkey, info "custos-keystore-mac-v2"), "custos-keystore-mac-v2"
 * || u32 version || database_id || u64 generation || u8 creating || u32 count || per entry: the
 * version 1 fields || u8 node entry || [public_key || wrapped]).
 *
 * Version 3 (written by every casd since upgrades; versions 1 and 2 are read and rewritten as 3): the
 * version 2 form, and each entry may carry "measurement": "<64 lowercase hex>", the casd measurement
 * whose seal key sealed it (a new casd build has a new measurement, hence a new seal key). An entry
 * without it (from a version 1 or 2 file) is for "any" measurement: it is tried as before. Entries are
 * unique by (platform_id, measurement): one platform has one entry per casd build registered on it.
 * MAC (version 3) = HMAC-SHA256(HKDF(dbkey, info "custos-keystore-mac-v3"), "custos-keystore-mac-v3"
 * || the version 2 canonical form after its label || per entry, after its version 2 fields: u8 len ||
 * measurement (len 0 or 64)). The sealing and wrapping bindings are those of version 2 (the seal key
 * itself differs per measurement). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "custos.h"

#define CAS_KS_MAX_ENTRIES 1024
#define CAS_KS_MAX_FILE ((size_t)1 << 20)
#define CAS_KS_NODE_MAX 253
#define CAS_KS_ID_SIZE 16
#define CAS_KS_WRAPPED_SIZE (32 + 12 + 32 + 16)
#define CAS_KS_VERSION 3
#define CAS_KS_MEASUREMENT_HEX (2 * CUSTOS_MEASUREMENT_SIZE)

struct cas_keystore_entry {
    char platform_id[67]; /* 66 uppercase hex (SEC1 compressed P-256: 02/03 prefix) */
    char kind[8];         /* "sim" | "tpm2" | "sgx" */
    char node[254];       /* 1..253 bytes of [A-Za-z0-9._-] */
    uint32_t tcb;
    int64_t time; /* registration time, seconds since epoch (>= 0) */
    uint8_t nonce[12];
    uint8_t sealed[48]; /* AES-256-GCM of the 32-byte db key (legacy) or node private key + tag */
    bool node_key;      /* a node entry (public_key, wrapped); false: legacy */
    uint8_t public_key[32];
    uint8_t wrapped[CAS_KS_WRAPPED_SIZE];
    /* 64 lowercase hex: the casd measurement this entry was sealed for; "" = any (version 1/2 entry) */
    char measurement[CAS_KS_MEASUREMENT_HEX + 1];
};

struct cas_keystore {
    struct cas_keystore_entry *entries;
    size_t count;
    uint8_t mac[32];
    int version; /* as read (1, 2 or 3); always written as 3 */
    uint8_t database_id[CAS_KS_ID_SIZE];
    uint64_t generation; /* 0 in a version 1 file */
    bool creating;
};

/* <db_dir without trailing slashes>.key-store. -EINVAL (empty, or "/"), -ENAMETOOLONG. */
int cas_keystore_path(const char *db_dir, char *out, size_t out_size);

/* Checks one entry's fields (platform_id form, kind, node, time, measurement: "" or 64 lowercase hex).
 * -EINVAL with the field named. */
int cas_keystore_entry_check(const struct cas_keystore_entry *e, char *err, size_t err_size);

/* The one codec of an entry's JSON form, for the file and for backup completions. */
enum cas_ks_form {
    CAS_KS_FORM_V1,     /* a version 1 file: no public_key/wrapped */
    CAS_KS_FORM_V2,     /* a version 2 file: public_key and wrapped together, or neither (legacy) */
    CAS_KS_FORM_V3,     /* a version 3 file: the version 2 form and an optional measurement */
    CAS_KS_FORM_BACKUP, /* a backup's completion: public_key and measurement required, no wrapped */
};
/* Strict: unknown fields refused, every field checked; -EBADMSG with err = where + the field and the
 * problem. */
int cas_keystore_entry_from_json(const json_t *j, enum cas_ks_form form, const char *where,
                                 struct cas_keystore_entry *e, char *err, size_t err_size);
/* NULL when out of memory. with_wrapped: include `wrapped` (the file form). */
json_t *cas_keystore_entry_to_json(const struct cas_keystore_entry *e, bool with_wrapped);

/* Strict parse of the file's text; every field validated, no unknown fields, no two entries with the
 * same (platform ID, measurement), at most CAS_KS_MAX_ENTRIES entries and CAS_KS_MAX_FILE bytes. -EBADMSG with an error
 * naming the entry index and field; -ENOMEM. Free *out with cas_keystore_free. */
int cas_keystore_parse(const char *text, size_t size, struct cas_keystore *out, char *err, size_t err_size);

/* Reads the file: -ENOENT when absent (a new database), otherwise parse; a truncated/corrupt file
 * gives -EBADMSG with "<path>: ..." and is never modified. */
int cas_keystore_load(const char *path, struct cas_keystore *out, char *err, size_t err_size);

/* The file's text with a fresh MAC (what cas_keystore_save writes). Caller frees *text.
 * -EINVAL when an entry is invalid or two share a (platform ID, measurement), -E2BIG when too many entries. */
int cas_keystore_serialize(const struct cas_keystore *ks, const uint8_t dbkey[32], char **text, size_t *size);

/* Serializes with a fresh MAC and writes it crash-safely (custos_write_file_atomic, 0600). Temp
 * files left by a crashed earlier save (older than 10 minutes) are removed. */
int cas_keystore_save(const char *path, const struct cas_keystore *ks, const uint8_t dbkey[32]);

/* -EBADMSG when ks->mac does not match (file edited by someone without the db key). */
int cas_keystore_verify_mac(const struct cas_keystore *ks, const uint8_t dbkey[32]);

/* Legacy (version 1) entries: seals dbkey itself for e's platform (fresh nonce); e's metadata must be
 * set first. Kept for tests and migration only. */
int cas_keystore_seal(struct cas_keystore_entry *e, const uint8_t seal_key[32], const uint8_t dbkey[32]);
/* -EBADMSG when the seal key or the metadata differ. dbkey is written only on success. */
int cas_keystore_unseal(const struct cas_keystore_entry *e, const uint8_t seal_key[32], uint8_t dbkey[32]);

/* What ties a sealed or wrapped key to its entry: platform_id || kind || 0 || node || 0 || u32 tcb. */
#define CAS_KS_BINDING_MAX (CUSTOS_PLATFORM_ID_LEN + 8 + CAS_KS_NODE_MAX + 1 + 4)
int cas_keystore_put_binding(struct custos_buf *b, const struct cas_keystore_entry *e);

/* Makes e a node entry: a new X25519 key pair, its private key sealed with the node's seal key.
 * e's metadata must be set first; `wrapped` is left for cas_keystore_wrap. */
int cas_keystore_seal_node(struct cas_keystore_entry *e, const uint8_t seal_key[32]);
/* Wraps dbkey for node entry e, bound to the key-store's database ID and generation. */
int cas_keystore_wrap(const struct cas_keystore *ks, struct cas_keystore_entry *e, const uint8_t dbkey[32]);
/* The database key from e (node or legacy entry) with the node's seal key. -EBADMSG when it does not
 * open (other seal key, changed metadata, another database or generation). */
int cas_keystore_open(const struct cas_keystore *ks, const struct cas_keystore_entry *e, const uint8_t seal_key[32],
                      uint8_t dbkey[32]);

/* The entry of exactly (platform_id, measurement); measurement NULL or "" finds the entry without one. */
const struct cas_keystore_entry *cas_keystore_find(const struct cas_keystore *ks, const char *platform_id,
                                                   const char *measurement);
/* The entry a casd of `measurement` on platform_id opens: the entry of that pair, else the entry of
 * that platform without a measurement (version 1/2: "any"), else NULL. */
const struct cas_keystore_entry *cas_keystore_find_for(const struct cas_keystore *ks, const char *platform_id,
                                                       const char *measurement);
/* Replaces the entry with the same (platform_id, measurement), or appends (another measurement on the
 * same platform is added beside). -EINVAL (invalid entry), -E2BIG (full). */
int cas_keystore_upsert(struct cas_keystore *ks, const struct cas_keystore_entry *e);
/* Which entries a removal takes: every field NULL matches anything; keep_* names one pair never
 * taken (the primary's own current entry). measurement "" matches entries without a measurement. */
struct cas_ks_match {
    const char *platform_id;
    const char *measurement;
    const char *keep_platform_id, *keep_measurement;
};
bool cas_keystore_match(const struct cas_keystore_entry *e, const struct cas_ks_match *m);
/* Removes every matching entry: the number removed (> 0), or -ENOENT when none matched. */
int cas_keystore_remove_matching(struct cas_keystore *ks, const struct cas_ks_match *m);
/* Removes (platform_id, measurement), or with measurement NULL every entry of platform_id. 0 or -ENOENT. */
int cas_keystore_remove(struct cas_keystore *ks, const char *platform_id, const char *measurement);
/* Frees entries, wipes the struct; accepts NULL / empty. */
void cas_keystore_free(struct cas_keystore *ks);
