/* SPDX-License-Identifier: Apache-2.0 */
/* Key-store entries' cryptography: a legacy entry seals the database key itself; a node entry seals
 * the node's X25519 private key and carries the database key wrapped to its public key (format and
 * additional data in keystore.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "custos.h"
#include "keystore.h"

#define DBKEY_SIZE 32
#define SEAL_AAD_PREFIX "custos-keystore-v1"
#define NODE_AAD_PREFIX "custos-keystore-node-v2"
#define WRAP_INFO "custos-keystore-wrap-v2"
#define AAD_MAX (sizeof(WRAP_INFO) - 1 + CAS_KS_ID_SIZE + 8 + 66 + 7 + 1 + CAS_KS_NODE_MAX + 1 + 4)

/* ---- sealing ------------------------------------------------------------------------------- */

int cas_keystore_put_binding(struct custos_buf *b, const struct cas_keystore_entry *e)
{
    custos_buf_put(b, e->platform_id, CUSTOS_PLATFORM_ID_LEN);
    custos_buf_put_str0(b, e->kind);
    custos_buf_put_str0(b, e->node);
    return custos_buf_put_u32(b, e->tcb);
}

/* prefix || [database ID || generation] || the entry's binding */
static size_t build_aad_ex(const char *prefix, const struct cas_keystore *ks, const struct cas_keystore_entry *e,
                           uint8_t out[AAD_MAX])
{
    struct custos_buf b;
    custos_buf_init(&b, out, AAD_MAX);
    custos_buf_put(&b, prefix, strlen(prefix));
    if (ks) {
        custos_buf_put(&b, ks->database_id, CAS_KS_ID_SIZE);
        custos_buf_put_u64(&b, ks->generation);
    }
    cas_keystore_put_binding(&b, e);
    return custos_buf_ok(&b) ? custos_buf_len(&b) : 0; /* sized for the longest; entries are checked first */
}

static size_t build_aad(const struct cas_keystore_entry *e, uint8_t out[AAD_MAX])
{
    return build_aad_ex(SEAL_AAD_PREFIX, NULL, e, out);
}

int cas_keystore_seal(struct cas_keystore_entry *e, const uint8_t seal_key[32], const uint8_t dbkey[32])
{
    uint8_t aad[AAD_MAX], nonce[12], sealed[48];
    char err[160];
    if (!seal_key || !dbkey || cas_keystore_entry_check(e, err, sizeof(err)) < 0)
        return -EINVAL;
    size_t aad_size = build_aad(e, aad);
    int ret = custos_random(nonce, sizeof(nonce));
    if (ret == 0)
        ret = custos_aead_seal(seal_key, nonce, aad, aad_size, dbkey, DBKEY_SIZE, sealed);
    if (ret == 0) {
        memcpy(e->nonce, nonce, sizeof(nonce));
        memcpy(e->sealed, sealed, sizeof(sealed));
    }
    return ret;
}

int cas_keystore_unseal(const struct cas_keystore_entry *e, const uint8_t seal_key[32], uint8_t dbkey[32])
{
    uint8_t aad[AAD_MAX], key[DBKEY_SIZE];
    char err[160];
    if (!seal_key || !dbkey || cas_keystore_entry_check(e, err, sizeof(err)) < 0)
        return -EINVAL;
    size_t aad_size = build_aad(e, aad);
    int ret = custos_aead_open(seal_key, e->nonce, aad, aad_size, e->sealed, sizeof(e->sealed), key);
    if (ret == 0)
        memcpy(dbkey, key, sizeof(key));
    custos_wipe(key, sizeof(key));
    return ret;
}

int cas_keystore_seal_node(struct cas_keystore_entry *e, const uint8_t seal_key[32])
{
    uint8_t aad[AAD_MAX], priv[32], pub[32], nonce[12];
    char err[160];
    if (!seal_key || cas_keystore_entry_check(e, err, sizeof(err)) < 0)
        return -EINVAL;
    size_t aad_size = build_aad_ex(NODE_AAD_PREFIX, NULL, e, aad);
    int ret = custos_x25519_keypair(priv, pub);
    if (ret == 0)
        ret = custos_random(nonce, sizeof(nonce));
    if (ret == 0)
        ret = custos_aead_seal(seal_key, nonce, aad, aad_size, priv, sizeof(priv), e->sealed);
    if (ret == 0) {
        memcpy(e->nonce, nonce, sizeof(nonce));
        memcpy(e->public_key, pub, sizeof(pub));
        memset(e->wrapped, 0, sizeof(e->wrapped));
        e->node_key = true;
    }
    custos_wipe(priv, sizeof(priv));
    return ret;
}

static int wrap_key(const uint8_t shared[32], const uint8_t eph_pub[32], const uint8_t node_pub[32], uint8_t out[32])
{
    uint8_t salt[64];
    memcpy(salt, eph_pub, 32);
    memcpy(salt + 32, node_pub, 32);
    return custos_hkdf_sha256(shared, 32, salt, sizeof(salt), (const uint8_t *)WRAP_INFO, strlen(WRAP_INFO), out, 32);
}

int cas_keystore_wrap(const struct cas_keystore *ks, struct cas_keystore_entry *e, const uint8_t dbkey[32])
{
    uint8_t aad[AAD_MAX], eph[32], shared[32], key[32];
    char err[160];
    if (!ks || !dbkey || cas_keystore_entry_check(e, err, sizeof(err)) < 0 || !e->node_key)
        return -EINVAL;
    size_t aad_size = build_aad_ex(WRAP_INFO, ks, e, aad);
    uint8_t *w = e->wrapped;
    int ret = custos_x25519_keypair(eph, w);
    if (ret == 0)
        ret = custos_x25519(eph, e->public_key, shared);
    if (ret == 0)
        ret = wrap_key(shared, w, e->public_key, key);
    if (ret == 0)
        ret = custos_random(w + 32, 12);
    if (ret == 0)
        ret = custos_aead_seal(key, w + 32, aad, aad_size, dbkey, DBKEY_SIZE, w + 44);
    custos_wipe(eph, sizeof(eph));
    custos_wipe(shared, sizeof(shared));
    custos_wipe(key, sizeof(key));
    return ret;
}

int cas_keystore_open(const struct cas_keystore *ks, const struct cas_keystore_entry *e, const uint8_t seal_key[32],
                      uint8_t dbkey[32])
{
    uint8_t aad[AAD_MAX], priv[32], shared[32], key[32], out[32];
    char err[160];
    if (!ks || !seal_key || !dbkey || cas_keystore_entry_check(e, err, sizeof(err)) < 0)
        return -EINVAL;
    if (!e->node_key)
        return cas_keystore_unseal(e, seal_key, dbkey);
    size_t aad_size = build_aad_ex(NODE_AAD_PREFIX, NULL, e, aad);
    int ret = custos_aead_open(seal_key, e->nonce, aad, aad_size, e->sealed, sizeof(e->sealed), priv);
    if (ret == 0)
        ret = custos_x25519(priv, e->wrapped, shared);
    if (ret == 0)
        ret = wrap_key(shared, e->wrapped, e->public_key, key);
    if (ret == 0) {
        aad_size = build_aad_ex(WRAP_INFO, ks, e, aad);
        ret = custos_aead_open(key, e->wrapped + 32, aad, aad_size, e->wrapped + 44, DBKEY_SIZE + 16, out);
    }
    if (ret == 0)
        memcpy(dbkey, out, sizeof(out));
    custos_wipe(priv, sizeof(priv));
    custos_wipe(shared, sizeof(shared));
    custos_wipe(key, sizeof(key));
    custos_wipe(out, sizeof(out));
    return ret < 0 ? -EBADMSG : 0;
}
