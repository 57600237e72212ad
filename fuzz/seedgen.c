/* SPDX-License-Identifier: Apache-2.0 */
/* Writes the fuzzers' "gen-*" seeds from the real code: signed quotes (custos-quote-v1, the body as
 * the library serializes it), a backup request / offer / completion of one registration, key-stores
 * MAC'ed under the key the keystore fuzzer uses, and a provisioning body. Every seed is accepted by
 * its parser, which tests/unit/test_seeds.c checks on the committed files.
 *
 * Usage: seedgen CORPUS_DIR   (e.g. build/tests/seedgen fuzz/corpus, then commit the changes) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "backup_proto.h"
#include "custos.h"
#include "keystore.h"

/* The keystore fuzzer's MAC key (fuzz/fuzz_keystore.c): its seeds verify under it. */
static const uint8_t FUZZ_KS_KEY[32] = {0x42};

static int write_seed(const char *dir, const char *sub, const char *name, const void *data, size_t size)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) {
        fprintf(stderr, "seedgen: cannot write %s\n", path);
        if (f)
            fclose(f);
        return -EIO;
    }
    fclose(f);
    printf("%s (%zu bytes)\n", path, size);
    return 0;
}

static int write_json(const char *dir, const char *sub, const char *name, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    int ret = s ? write_seed(dir, sub, name, s, strlen(s)) : -ENOMEM;
    free(s);
    json_decref(j);
    return ret;
}

/* A quote signed by a platform key derived from `seed`. */
static int make_quote(const char *seed, uint8_t kind, uint8_t debug, const uint8_t rd[CUSTOS_REPORT_DATA_SIZE],
                      struct custos_quote *q)
{
    custos_p256 *key = NULL;
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE];
    memset(q, 0, sizeof(*q));
    int ret = custos_p256_from_seed((const uint8_t *)seed, strlen(seed), &key);
    if (ret == 0)
        ret = custos_p256_public(key, q->platform_pub);
    if (ret == 0) {
        q->kind = kind;
        memset(q->measurement, 0x5a, sizeof(q->measurement));
        q->tcb = 3;
        q->debug = debug;
        memcpy(q->report_data, rd, CUSTOS_REPORT_DATA_SIZE);
        q->uid = 1000;
        custos_quote_body(q, body);
        ret = custos_p256_sign(key, body, sizeof(body), q->sig, &q->sig_size);
    }
    custos_p256_free(key);
    return ret;
}

static int quote_seeds(const char *dir)
{
    struct custos_quote q;
    uint8_t rd[CUSTOS_REPORT_DATA_SIZE], body[CUSTOS_QUOTE_BODY_SIZE];
    memset(rd, 0x17, sizeof(rd));
    int ret = make_quote("seedgen platform sim", CUSTOS_PLATFORM_SIM, 0, rd, &q);
    if (ret == 0)
        ret = write_json(dir, "quote", "gen-valid.json", custos_quote_to_json(&q));
    if (ret == 0) {
        custos_quote_body(&q, body);
        ret = write_seed(dir, "quote", "gen-body.bin", body, sizeof(body));
    }
    if (ret == 0)
        ret = make_quote("seedgen platform tpm2", CUSTOS_PLATFORM_TPM2, 1, rd, &q);
    if (ret == 0)
        ret = write_json(dir, "quote", "gen-debug-tpm2.json", custos_quote_to_json(&q));
    return ret;
}

/* cas-run's attestation request, bound into a quote as cas-run binds it. */
static int run_seed(const char *dir)
{
    uint8_t priv[32], pub[32], salt[32], rd[CUSTOS_REPORT_DATA_SIZE];
    struct custos_quote q;
    char *key = NULL;
    int ret = custos_x25519_keypair(priv, pub);
    key = ret == 0 ? custos_base64_encode(pub, 32) : NULL;
    json_t *r = key ? json_pack("{s:I, s:s, s:s, s:s, s:[s, s], s:[{s:i, s:s}]}", "time", (json_int_t)1764460800, "key",
                                key, "cas_key_hash", "5f1c0e3a9b7d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6",
                                "program", "0e62020589972fba3ae70225cf6cd958897bbdd5eee878c5badf5928d95cfaae", "argv",
                                "python3", "/app/print_env.py", "files", "arg", 1, "sha256",
                                "8e51357d6424cf8b20c36f567ebbd4afa07c9e58912107c0beda436602c1d342")
                    : NULL;
    ret = r ? custos_run_binding(r, salt, rd) : -ENOMEM;
    if (ret == 0)
        ret = make_quote("seedgen launcher node", CUSTOS_PLATFORM_SIM, 0, rd, &q);
    if (ret == 0)
        ret = write_json(dir, "run_request", "gen-request.json",
                         json_pack("{s:s, s:O, s:o}", "service", "hello/app", "request", r, "quote",
                                   custos_quote_to_json(&q)));
    json_decref(r);
    free(key);
    custos_wipe(priv, sizeof(priv));
    return ret;
}

/* One registration, as casd computes it: request (backup), offer (primary), completion (backup). */
static int backup_seeds(const char *dir)
{
    struct backup_request req;
    struct backup_offer off;
    struct backup_completion comp;
    uint8_t bpriv[32], epriv[32], shared[32], transcript[32], wrap[32], dbkey[32], seal[32], hash[32];
    uint8_t rd[CUSTOS_REPORT_DATA_SIZE];
    EVP_PKEY *ident = NULL;
    custos_p256 *primary = NULL;
    uint8_t primary_pub[CUSTOS_P256_PUB_SIZE];
    memset(&req, 0, sizeof(req));
    memset(&off, 0, sizeof(off));
    memset(&comp, 0, sizeof(comp));
    memset(dbkey, 0x33, sizeof(dbkey));
    memset(seal, 0x44, sizeof(seal));

    int ret = custos_x25519_keypair(bpriv, req.public_key);
    snprintf(req.node_name, sizeof(req.node_name), "node-2");
    req.created_at = 1764460800; /* 2025-11-30 */
    backup_request_report_data(req.public_key, req.created_at, req.node_name, rd);
    if (ret == 0)
        ret = make_quote("seedgen backup node", CUSTOS_PLATFORM_SIM, 0, rd, &req.quote);
    custos_sha256(req.public_key, 32, hash);
    custos_hex_encode(hash, 32, req.id, false);
    if (ret == 0)
        ret = write_json(dir, "backup", "gen-request.json", backup_request_to_json(&req));
    if (ret == 0)
        ret = write_json(dir, "backup", "gen-relayed-request.json",
                         json_pack("{s:o}", "request", backup_request_to_json(&req)));

    /* the primary: its platform, identity key, ephemeral key; the wrapped database key, signed */
    if (ret == 0)
        ret = custos_p256_from_seed((const uint8_t *)"seedgen primary", 15, &primary);
    if (ret == 0)
        ret = custos_p256_public(primary, primary_pub);
    if (ret == 0)
        ret = custos_key_generate(&ident);
    if (ret == 0)
        ret = custos_key_spki(ident, off.primary_spki, sizeof(off.primary_spki), &off.primary_spki_size);
    if (ret == 0)
        ret = custos_key_hash(ident, hash);
    if (ret == 0)
        ret = custos_x25519_keypair(epriv, off.ephemeral_key);
    if (ret == 0)
        ret = custos_x25519(epriv, req.public_key, shared);
    if (ret == 0) {
        strcpy(off.request_id, req.id);
        custos_platform_id(primary_pub, off.primary_platform_id);
        custos_hex_encode(hash, 32, off.primary_key_hash, false);
        backup_transcript(&req, off.primary_platform_id, off.primary_key_hash, off.ephemeral_key, transcript);
        ret = backup_wrap_key(shared, transcript, wrap);
    }
    if (ret == 0)
        ret = custos_random(off.nonce, sizeof(off.nonce));
    if (ret == 0)
        ret = custos_aead_seal(wrap, off.nonce, transcript, 32, dbkey, 32, off.wrapped);
    if (ret == 0)
        ret = custos_key_sign(ident, transcript, 32, off.signature, &off.signature_size);
    if (ret == 0)
        ret = write_json(dir, "backup", "gen-offer.json", json_pack("{s:o}", "offer", backup_offer_to_json(&off)));

    /* the backup: its key-store entry and the proof */
    if (ret == 0) {
        strcpy(comp.request_id, req.id);
        custos_platform_id(req.quote.platform_pub, comp.entry.platform_id);
        strcpy(comp.entry.kind, "sim");
        strcpy(comp.entry.node, req.node_name);
        comp.entry.tcb = req.quote.tcb;
        comp.entry.time = req.created_at;
        custos_hex_encode(req.quote.measurement, sizeof(req.quote.measurement), comp.entry.measurement, false);
        ret = cas_keystore_seal_node(&comp.entry, seal);
    }
    if (ret == 0)
        ret = backup_proof(dbkey, transcript, &comp.entry, comp.proof);
    if (ret == 0)
        ret = write_json(dir, "backup", "gen-completion.json",
                         json_pack("{s:o}", "completion", backup_completion_to_json(&comp)));
    EVP_PKEY_free(ident);
    custos_p256_free(primary);
    custos_wipe(bpriv, sizeof(bpriv));
    custos_wipe(epriv, sizeof(epriv));
    custos_wipe(shared, sizeof(shared));
    custos_wipe(wrap, sizeof(wrap));
    return ret;
}

static int keystore_seed(const char *dir, const char *name, size_t count)
{
    static const char *const kinds[] = {"sim", "tpm2", "sgx"};
    struct cas_keystore_entry entries[3];
    struct cas_keystore ks = {.entries = entries, .count = count, .version = CAS_KS_VERSION, .generation = 3};
    uint8_t seal[32], dbkey[32];
    char *text = NULL;
    size_t size = 0;
    int ret = 0;
    memset(entries, 0, sizeof(entries));
    memset(dbkey, 0x33, sizeof(dbkey));
    memset(ks.database_id, 0x77, sizeof(ks.database_id));
    for (size_t i = 0; i < count && ret == 0; i++) {
        custos_p256 *key = NULL;
        uint8_t pub[CUSTOS_P256_PUB_SIZE];
        char seed[32];
        /* version 3: the second entry is the first's platform under a new casd build (an upgrade) */
        snprintf(seed, sizeof(seed), "seedgen node %zu", i == 1 ? (size_t)0 : i);
        ret = custos_p256_from_seed((const uint8_t *)seed, strlen(seed), &key);
        if (ret == 0)
            ret = custos_p256_public(key, pub);
        custos_p256_free(key);
        if (ret < 0)
            break;
        custos_platform_id(pub, entries[i].platform_id);
        strcpy(entries[i].kind, kinds[i % 3]);
        snprintf(entries[i].node, sizeof(entries[i].node), i ? "worker-%zu.cluster.local" : "node-%zu", i + 1);
        entries[i].tcb = (uint32_t)(i + 1);
        entries[i].time = 1764460800 + (int64_t)i;
        if (i < 2) /* the third has none: an entry of a version 2 file, for any measurement */
            memset(entries[i].measurement, i ? 'b' : 'a', CAS_KS_MEASUREMENT_HEX);
        memset(seal, (int)(0x50 + i), sizeof(seal));
        /* node entries (the form casd writes) and, last of three, a legacy entry (migrated files) */
        if (i < 2) {
            ret = cas_keystore_seal_node(&entries[i], seal);
            if (ret == 0)
                ret = cas_keystore_wrap(&ks, &entries[i], dbkey);
        } else {
            ret = cas_keystore_seal(&entries[i], seal, dbkey);
        }
    }
    if (ret == 0)
        ret = cas_keystore_serialize(&ks, FUZZ_KS_KEY, &text, &size);
    if (ret == 0)
        ret = write_seed(dir, "keystore", name, text, size);
    free(text);
    return ret;
}

static int api_seed(const char *dir)
{
    const char *toml = "[api_identity]\ncommon_name = \"mycas\"\nalt_names = [\"mycas\", \"cas\", \"127.0.0.1\"]\n\n"
                       "[dcap]\nsubscription_key = \"00000000000000000000000000000000\"\n";
    char platform[CUSTOS_PLATFORM_ID_LEN + 1], measurement[65];
    uint8_t pub[CUSTOS_P256_PUB_SIZE], m[32];
    custos_p256 *key = NULL;
    int ret = custos_p256_from_seed((const uint8_t *)"seedgen node 0", 14, &key);
    if (ret == 0)
        ret = custos_p256_public(key, pub);
    custos_p256_free(key);
    if (ret < 0)
        return ret;
    custos_platform_id(pub, platform);
    memset(m, 0x5a, sizeof(m));
    custos_hex_encode(m, sizeof(m), measurement, false);
    return write_json(dir, "api", "gen-provision.json",
                      json_pack("{s:s, s:s, s:{s:b, s:b, s:[s], s:[s]}}", "token",
                                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "owner_config",
                                toml, "policy", "trust_any_platform", 0, "allow_debug", 0, "platforms", platform,
                                "measurements", measurement));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR (writes the gen-* seeds into its subdirectories)\n", argv[0]);
        return 2;
    }
    int ret = quote_seeds(argv[1]);
    if (ret == 0)
        ret = backup_seeds(argv[1]);
    if (ret == 0)
        ret = keystore_seed(argv[1], "gen-one-entry.json", 1);
    if (ret == 0)
        ret = keystore_seed(argv[1], "gen-three-entries.json", 3);
    if (ret == 0)
        ret = api_seed(argv[1]);
    if (ret == 0)
        ret = run_seed(argv[1]);
    if (ret < 0) {
        fprintf(stderr, "seedgen: failed: %s\n", strerror(-ret));
        return 1;
    }
    return 0;
}
