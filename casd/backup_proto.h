/* SPDX-License-Identifier: Apache-2.0 */
/* Backup registration messages, shared by the primary CAS, the backup CAS, the CLI's relay and the
 * fuzzers. Every parser here takes untrusted input and names the field it refuses.
 *
 * 1. request  (backup -> CLI -> primary): {quote, public_key, node_name, created_at}; the quote's
 *    report data is SHA-256("custos-backup-request-v1" || public_key || created_at (8 bytes BE) ||
 *    node_name) followed by 32 zero bytes.
 * 2. offer    (primary -> CLI -> backup): {request_id, primary_platform_id, primary_key_hash,
 *    primary_public_key, ephemeral_key, nonce, wrapped, signature}: signed over the transcript by the
 *    primary's identity key (whose SHA-256 is primary_key_hash); the database key wrapped with AES-256-GCM under
 *    HKDF-SHA256(X25519(primary ephemeral, backup key), salt = transcript, info = "custos-backup-wrap-v1"),
 *    aad = transcript.
 * 3. completion (backup -> CLI -> primary): {request_id, entry, proof}: the backup's node entry (a new
 *    X25519 key pair whose private key it sealed with its node's seal key; see keystore.h) and
 *    HMAC-SHA256(HKDF(db key, info = "custos-backup-proof-v1"), transcript || platform_id || kind || 0
 *    || node || 0 || tcb || nonce || sealed || public_key || measurement (64 lowercase hex: the entry
 *    states the backup's casd measurement, which must equal its quote's)) proving it holds the key. The
 *    primary wraps the database key for the entry's public key itself.
 * transcript = SHA-256("custos-backup-transcript-v1" || quote body || public_key || node_name || 0 ||
 *   created_at || primary platform ID || primary key hash || primary ephemeral key). */
#pragma once

#include <stdint.h>

#include "custos.h"
#include "keystore.h"

#define BACKUP_NODE_MAX 253

struct backup_request {
    struct custos_quote quote;
    uint8_t public_key[32];
    char node_name[BACKUP_NODE_MAX + 1];
    int64_t created_at;
    char id[65]; /* hex SHA-256 of public_key */
};

struct backup_offer {
    char request_id[65];
    char primary_platform_id[CUSTOS_PLATFORM_ID_LEN + 1];
    char primary_key_hash[65];
    uint8_t ephemeral_key[32];
    uint8_t nonce[12];
    uint8_t wrapped[32 + 16];
    uint8_t primary_spki[160]; /* the primary CAS's identity public key (DER SubjectPublicKeyInfo) */
    size_t primary_spki_size;
    uint8_t signature[160]; /* by that key, over the transcript */
    size_t signature_size;
};

struct backup_completion {
    char request_id[65];
    struct cas_keystore_entry entry;
    uint8_t proof[32];
};

void backup_request_report_data(const uint8_t public_key[32], int64_t created_at, const char *node_name,
                                uint8_t out[CUSTOS_REPORT_DATA_SIZE]);
json_t *backup_request_to_json(const struct backup_request *r);
/* Parses and checks the form (and that the quote binds public key, time and node name). It does
 * not check the quote's signature or trust: the primary does. */
int backup_request_from_json(const json_t *j, struct backup_request *out, char *err, size_t err_size);

json_t *backup_offer_to_json(const struct backup_offer *o);
/* Parses and checks the form, and that primary_public_key hashes to primary_key_hash. The
 * signature is checked by backup_offer_verify once the transcript is known. */
int backup_offer_from_json(const json_t *j, struct backup_offer *out, char *err, size_t err_size);
int backup_offer_verify(const struct backup_offer *o, const uint8_t transcript[32]);

json_t *backup_completion_to_json(const struct backup_completion *c);
int backup_completion_from_json(const json_t *j, struct backup_completion *out, char *err, size_t err_size);

void backup_transcript(const struct backup_request *r, const char *primary_platform_id, const char *primary_key_hash,
                       const uint8_t primary_ephemeral[32], uint8_t out[32]);
/* Wrap key for the database key from an X25519 shared secret. */
int backup_wrap_key(const uint8_t shared[32], const uint8_t transcript[32], uint8_t out[32]);
/* Proof that the sender holds the database key and sealed this entry. */
int backup_proof(const uint8_t dbkey[32], const uint8_t transcript[32], const struct cas_keystore_entry *e,
                 uint8_t out[32]);
