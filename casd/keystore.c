/* SPDX-License-Identifier: Apache-2.0 */
/* casd key-store: sealed copies of the database key per (platform, casd measurement), MAC'ed with
 * the database key (format in keystore.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "custos.h"
#include "keystore.h"
#include "validate.h"

#define KS_VERSION CAS_KS_VERSION
#define MAC_INFO_V1 "custos-keystore-mac-v1"
#define MAC_INFO_V2 "custos-keystore-mac-v2"
#define MAC_INFO "custos-keystore-mac-v3"
#define DBKEY_SIZE 32
/* Canonical form: per entry platform_id, len+kind, len+node, tcb, time, nonce, sealed. */
#define CANON_ENTRY_MAX                                                                                                \
    (66 + 1 + 7 + 1 + CAS_KS_NODE_MAX + 4 + 8 + 12 + 48 + 1 + 32 + CAS_KS_WRAPPED_SIZE + 1 + CAS_KS_MEASUREMENT_HEX)

static bool platform_id_valid(const char *id)
{
    uint8_t pub[CUSTOS_P256_PUB_SIZE];
    char canon[CUSTOS_PLATFORM_ID_LEN + 1];
    if (strnlen(id, CUSTOS_PLATFORM_ID_LEN + 1) != CUSTOS_PLATFORM_ID_LEN || custos_platform_id_parse(id, pub) < 0)
        return false;
    custos_platform_id(pub, canon);
    return strcmp(canon, id) == 0;
}

static bool kind_valid(const char *kind, size_t cap)
{
    if (!memchr(kind, '\0', cap))
        return false;
    return !strcmp(kind, "sim") || !strcmp(kind, "tpm2") || !strcmp(kind, "sgx");
}

static bool node_valid(const char *node, size_t cap)
{
    return memchr(node, '\0', cap) && cas_node_name_valid(node);
}

/* "" (any) or 64 lowercase hex digits. */
static bool measurement_valid(const char *m, size_t cap)
{
    size_t len = strnlen(m, cap);
    return len < cap && (len == 0 || (len == CAS_KS_MEASUREMENT_HEX && strspn(m, "0123456789abcdef") == len));
}

static bool same_measurement(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

int cas_keystore_entry_check(const struct cas_keystore_entry *e, char *err, size_t err_size)
{
    if (!e) {
        snprintf(err, err_size, "no entry");
        return -EINVAL;
    }
    if (!platform_id_valid(e->platform_id)) {
        snprintf(err, err_size,
                 "field \"platform_id\": not 66 uppercase hex digits of a compressed P-256 key "
                 "(02/03 prefix)");
        return -EINVAL;
    }
    if (!kind_valid(e->kind, sizeof(e->kind))) {
        snprintf(err, err_size, "field \"kind\": not one of sim, tpm2, sgx");
        return -EINVAL;
    }
    if (!node_valid(e->node, sizeof(e->node))) {
        snprintf(err, err_size, "field \"node\": not 1..%d characters of A-Z a-z 0-9 . - _", CAS_KS_NODE_MAX);
        return -EINVAL;
    }
    if (e->time < 0) {
        snprintf(err, err_size, "field \"time\": negative");
        return -EINVAL;
    }
    if (!measurement_valid(e->measurement, sizeof(e->measurement))) {
        snprintf(err, err_size, "field \"measurement\": not %d lowercase hex digits", CAS_KS_MEASUREMENT_HEX);
        return -EINVAL;
    }
    return 0;
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* Refuses unknown keys and reports the first missing one. */
static int check_fields_opt(const json_t *obj, const char *const *names, size_t count, const char *const *opt,
                            size_t opt_count, const char *where, char *err, size_t err_size)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool known = false;
        for (size_t i = 0; i < count && !known; i++)
            known = !strcmp(k, names[i]);
        for (size_t i = 0; i < opt_count && !known; i++)
            known = !strcmp(k, opt[i]);
        if (!known) {
            snprintf(err, err_size, "%sunknown field \"%.64s\"", where, k);
            return -EBADMSG;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (!json_object_get(obj, names[i])) {
            snprintf(err, err_size, "%smissing field \"%s\"", where, names[i]);
            return -EBADMSG;
        }
    }
    return 0;
}

static int check_fields(const json_t *obj, const char *const *names, size_t count, const char *where, char *err,
                        size_t err_size)
{
    return check_fields_opt(obj, names, count, NULL, 0, where, err, err_size);
}

/* A JSON string without NUL characters, or NULL. */
static const char *str_field(const json_t *obj, const char *name, size_t *len)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    *len = json_string_length(v);
    return strlen(s) == *len ? s : NULL;
}

/* A base64 field of exactly `want` bytes; err prefixed with where. */
static int b64_field(const json_t *obj, const char *name, uint8_t *out, size_t want, const char *where, char *err,
                     size_t err_size)
{
    char e[200];
    int ret = custos_json_b64_bytes(obj, name, out, want, want, NULL, e, sizeof(e));
    if (ret < 0)
        snprintf(err, err_size, "%s%s", where, e);
    return ret == -EINVAL ? -EBADMSG : ret;
}

int cas_keystore_entry_from_json(const json_t *j, enum cas_ks_form form, const char *where,
                                 struct cas_keystore_entry *e, char *err, size_t err_size)
{
    static const char *const names[] = {"platform_id", "kind", "node", "tcb", "time", "nonce", "sealed"};
    static const char *const file_names[] = {"public_key", "wrapped", "measurement"}, *const backup_names[] =
                                                                                          {"public_key", "measurement"};
    size_t len;
    const char *s;
    const json_t *v;
    int ret;
    memset(e, 0, sizeof(*e));
    if (!json_is_object(j)) {
        snprintf(err, err_size, "%snot an object", where);
        return -EBADMSG;
    }
    if (form == CAS_KS_FORM_BACKUP) {
        ret = check_fields_opt(j, names, 7, backup_names, 2, where, err, err_size);
        for (size_t i = 0; ret == 0 && i < 2; i++) {
            if (!json_object_get(j, backup_names[i])) {
                snprintf(err, err_size, "%smissing field \"%s\"", where, backup_names[i]);
                ret = -EBADMSG;
            }
        }
    } else {
        size_t opt = form == CAS_KS_FORM_V3 ? 3 : form == CAS_KS_FORM_V2 ? 2 : 0;
        ret = check_fields_opt(j, names, 7, file_names, opt, where, err, err_size);
    }
    if (ret < 0)
        return ret;
    e->node_key = json_object_get(j, "public_key") != NULL;
    bool file_v2 = form == CAS_KS_FORM_V2 || form == CAS_KS_FORM_V3;
    if (file_v2 && e->node_key != (json_object_get(j, "wrapped") != NULL)) {
        snprintf(err, err_size, "%sfields \"public_key\" and \"wrapped\" go together", where);
        return -EBADMSG;
    }
    if (e->node_key) {
        if ((ret = b64_field(j, "public_key", e->public_key, sizeof(e->public_key), where, err, err_size)) < 0)
            return ret;
        if (file_v2 && (ret = b64_field(j, "wrapped", e->wrapped, sizeof(e->wrapped), where, err, err_size)) < 0)
            return ret;
    }

    s = str_field(j, "platform_id", &len);
    if (!s || len != CUSTOS_PLATFORM_ID_LEN || !platform_id_valid(s)) {
        snprintf(err, err_size,
                 "%sfield \"platform_id\": not 66 uppercase hex digits of a compressed "
                 "P-256 key (02/03 prefix)",
                 where);
        return -EBADMSG;
    }
    memcpy(e->platform_id, s, len + 1);

    s = str_field(j, "kind", &len);
    if (!s || len >= sizeof(e->kind) || !kind_valid(s, len + 1)) {
        snprintf(err, err_size, "%sfield \"kind\": not one of sim, tpm2, sgx", where);
        return -EBADMSG;
    }
    memcpy(e->kind, s, len + 1);

    s = str_field(j, "node", &len);
    if (!s || len >= sizeof(e->node) || !node_valid(s, len + 1)) {
        snprintf(err, err_size, "%sfield \"node\": not 1..%d characters of A-Z a-z 0-9 . - _", where, CAS_KS_NODE_MAX);
        return -EBADMSG;
    }
    memcpy(e->node, s, len + 1);

    v = json_object_get(j, "tcb");
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)UINT32_MAX) {
        snprintf(err, err_size, "%sfield \"tcb\": not an integer in 0..%u", where, UINT32_MAX);
        return -EBADMSG;
    }
    e->tcb = (uint32_t)json_integer_value(v);

    v = json_object_get(j, "time");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        snprintf(err, err_size, "%sfield \"time\": not a non-negative integer", where);
        return -EBADMSG;
    }
    e->time = (int64_t)json_integer_value(v);

    if (json_object_get(j, "measurement")) {
        s = str_field(j, "measurement", &len);
        if (!s || len != CAS_KS_MEASUREMENT_HEX || !measurement_valid(s, len + 1)) {
            snprintf(err, err_size, "%sfield \"measurement\": not %d lowercase hex digits", where,
                     CAS_KS_MEASUREMENT_HEX);
            return -EBADMSG;
        }
        memcpy(e->measurement, s, len + 1);
    }

    ret = b64_field(j, "nonce", e->nonce, sizeof(e->nonce), where, err, err_size);
    if (ret < 0)
        return ret;
    return b64_field(j, "sealed", e->sealed, sizeof(e->sealed), where, err, err_size);
}

int cas_keystore_parse(const char *text, size_t size, struct cas_keystore *out, char *err, size_t err_size)
{
    static const char *const names[] = {"version", "entries", "mac"};
    static const char *const names_v2[] = {"version", "entries", "mac", "database_id", "generation"};
    static const char *const opt_v2[] = {"creating"};
    int ret;
    json_t *root = NULL;
    struct cas_keystore ks = {0};
    char jerr[200];
    const json_t *v, *entries;
    size_t len, count;
    const char *s;
    if ((!text && size) || !out) {
        snprintf(err, err_size, "cas_keystore_parse: missing argument");
        return -EINVAL;
    }
    if (size > CAS_KS_MAX_FILE) {
        snprintf(err, err_size, "key-store too large (%zu bytes, limit %zu)", size, CAS_KS_MAX_FILE);
        return -EBADMSG;
    }
    ret = custos_json_parse(text ? text : "", size, &root, jerr, sizeof(jerr));
    if (ret < 0) {
        snprintf(err, err_size, "not JSON: %s", jerr);
        ret = -EBADMSG;
        goto out;
    }
    ret = -EBADMSG;
    if (!json_is_object(root)) {
        snprintf(err, err_size, "not a JSON object");
        goto out;
    }
    v = json_object_get(root, "version");
    if (!v) {
        snprintf(err, err_size, "missing field \"version\"");
        goto out;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > KS_VERSION) {
        snprintf(err, err_size, "field \"version\": unsupported version (want 1 to %d)", KS_VERSION);
        goto out;
    }
    ks.version = (int)json_integer_value(v);
    if (ks.version == 1 ? check_fields(root, names, 3, "", err, err_size) < 0
                        : check_fields_opt(root, names_v2, 5, opt_v2, 1, "", err, err_size) < 0)
        goto out;
    if (ks.version >= 2) {
        s = str_field(root, "database_id", &len);
        if (!s || len != 2 * CAS_KS_ID_SIZE || strspn(s, "0123456789abcdef") != len ||
            custos_hex_decode(s, ks.database_id, CAS_KS_ID_SIZE) < 0) {
            snprintf(err, err_size, "field \"database_id\": not %d lowercase hex digits", 2 * CAS_KS_ID_SIZE);
            goto out;
        }
        v = json_object_get(root, "generation");
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            snprintf(err, err_size, "field \"generation\": not a positive integer");
            goto out;
        }
        ks.generation = (uint64_t)json_integer_value(v);
        v = json_object_get(root, "creating");
        if (v && !json_is_true(v)) {
            snprintf(err, err_size, "field \"creating\": only true is allowed (absent when done)");
            goto out;
        }
        ks.creating = v != NULL;
    }
    s = str_field(root, "mac", &len);
    if (!s || len != 64 || strspn(s, "0123456789abcdef") != 64 || custos_hex_decode(s, ks.mac, 32) < 0) {
        snprintf(err, err_size, "field \"mac\": not 64 lowercase hex digits");
        goto out;
    }
    entries = json_object_get(root, "entries");
    if (!json_is_array(entries)) {
        snprintf(err, err_size, "field \"entries\": not an array");
        goto out;
    }
    count = json_array_size(entries);
    if (count > CAS_KS_MAX_ENTRIES) {
        snprintf(err, err_size, "field \"entries\": too many entries (%zu, limit %d)", count, CAS_KS_MAX_ENTRIES);
        goto out;
    }
    if (count) {
        ks.entries = calloc(count, sizeof(*ks.entries));
        if (!ks.entries) {
            snprintf(err, err_size, "out of memory");
            ret = -ENOMEM;
            goto out;
        }
        ks.count = count;
    }
    for (size_t i = 0; i < count; i++) {
        char where[48];
        snprintf(where, sizeof(where), "entry %zu: ", i);
        enum cas_ks_form form = ks.version >= 3 ? CAS_KS_FORM_V3 : ks.version == 2 ? CAS_KS_FORM_V2 : CAS_KS_FORM_V1;
        ret = cas_keystore_entry_from_json(json_array_get(entries, i), form, where, &ks.entries[i], err, err_size);
        if (ret < 0) {
            if (ret == -ENOMEM)
                snprintf(err, err_size, "out of memory");
            goto out;
        }
        for (size_t k = 0; k < i; k++) {
            if (!strcmp(ks.entries[k].platform_id, ks.entries[i].platform_id) &&
                same_measurement(ks.entries[k].measurement, ks.entries[i].measurement)) {
                snprintf(err, err_size,
                         "entry %zu: field \"platform_id\": duplicate platform %s with measurement %s (also entry "
                         "%zu)",
                         i, ks.entries[i].platform_id, ks.entries[i].measurement[0] ? ks.entries[i].measurement : "any",
                         k);
                ret = -EBADMSG;
                goto out;
            }
        }
    }
    *out = ks;
    ks = (struct cas_keystore){0};
    ret = 0;
out:
    cas_keystore_free(&ks);
    json_decref(root);
    return ret;
}

/* ---- MAC and serialization ----------------------------------------------------------------- */

/* The MAC of the file form `version` (1: as casd wrote before key rotation; 2: before upgrades; 3: today). */
static int compute_mac(const struct cas_keystore *ks, int version, const uint8_t dbkey[32], uint8_t mac[32])
{
    int ret = -EIO;
    uint8_t key[32], *buf = NULL;
    struct custos_buf b;
    const char *info = version == 1 ? MAC_INFO_V1 : version == 2 ? MAC_INFO_V2 : MAC_INFO;
    size_t info_len = strlen(info);
    if (!ks || !dbkey || ks->count > CAS_KS_MAX_ENTRIES || (ks->count && !ks->entries))
        return -EINVAL;
    size_t cap = info_len + 4 + CAS_KS_ID_SIZE + 8 + 1 + 4 + ks->count * CANON_ENTRY_MAX;
    if (!(buf = malloc(cap)))
        return -ENOMEM;
    custos_buf_init(&b, buf, cap);
    custos_buf_put(&b, info, info_len);
    custos_buf_put_u32(&b, (uint32_t)version);
    if (version >= 2) {
        custos_buf_put(&b, ks->database_id, CAS_KS_ID_SIZE);
        custos_buf_put_u64(&b, ks->generation);
        custos_buf_put_u8(&b, ks->creating ? 1 : 0);
    }
    custos_buf_put_u32(&b, (uint32_t)ks->count);
    for (size_t i = 0; i < ks->count; i++) {
        const struct cas_keystore_entry *e = &ks->entries[i];
        size_t kind_len = strnlen(e->kind, sizeof(e->kind) - 1), node_len = strnlen(e->node, CAS_KS_NODE_MAX);
        custos_buf_put(&b, e->platform_id, CUSTOS_PLATFORM_ID_LEN);
        custos_buf_put_u8(&b, (uint8_t)kind_len);
        custos_buf_put(&b, e->kind, kind_len);
        custos_buf_put_u8(&b, (uint8_t)node_len);
        custos_buf_put(&b, e->node, node_len);
        custos_buf_put_u32(&b, e->tcb);
        custos_buf_put_u64(&b, (uint64_t)e->time);
        custos_buf_put(&b, e->nonce, sizeof(e->nonce));
        custos_buf_put(&b, e->sealed, sizeof(e->sealed));
        if (version >= 2) {
            custos_buf_put_u8(&b, e->node_key ? 1 : 0);
            if (e->node_key) {
                custos_buf_put(&b, e->public_key, sizeof(e->public_key));
                custos_buf_put(&b, e->wrapped, sizeof(e->wrapped));
            }
        }
        if (version >= 3) {
            size_t m_len = strnlen(e->measurement, CAS_KS_MEASUREMENT_HEX);
            custos_buf_put_u8(&b, (uint8_t)m_len);
            custos_buf_put(&b, e->measurement, m_len);
        }
    }
    if (!custos_buf_ok(&b) ||
        custos_hkdf_sha256(dbkey, DBKEY_SIZE, NULL, 0, (const uint8_t *)info, info_len, key, sizeof(key)) < 0 ||
        custos_hmac_sha256(key, sizeof(key), buf, custos_buf_len(&b), mac) < 0)
        goto out;
    ret = 0;
out:
    custos_wipe(key, sizeof(key));
    free(buf);
    return ret;
}

int cas_keystore_verify_mac(const struct cas_keystore *ks, const uint8_t dbkey[32])
{
    uint8_t mac[32];
    int ret = ks ? compute_mac(ks, ks->version >= 1 && ks->version <= KS_VERSION ? ks->version : KS_VERSION, dbkey, mac)
                 : -EINVAL;
    if (ret == 0 && !custos_ct_equal(mac, ks->mac, sizeof(mac)))
        ret = -EBADMSG;
    return ret;
}

/* Validates the whole store as the parser would. */
static int check_store(const struct cas_keystore *ks)
{
    char err[160];
    if (!ks || (ks->count && !ks->entries))
        return -EINVAL;
    if (ks->count > CAS_KS_MAX_ENTRIES)
        return -E2BIG;
    for (size_t i = 0; i < ks->count; i++) {
        if (cas_keystore_entry_check(&ks->entries[i], err, sizeof(err)) < 0)
            return -EINVAL;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(ks->entries[k].platform_id, ks->entries[i].platform_id) &&
                same_measurement(ks->entries[k].measurement, ks->entries[i].measurement))
                return -EINVAL;
    }
    return 0;
}

static int set_new(json_t *obj, const char *name, json_t *v)
{
    return v && json_object_set_new(obj, name, v) == 0 ? 0 : -ENOMEM;
}

static int set_b64(json_t *obj, const char *name, const uint8_t *data, size_t size)
{
    char *s = custos_base64_encode(data, size);
    if (!s)
        return -ENOMEM;
    int ret = set_new(obj, name, json_string(s));
    free(s);
    return ret;
}

json_t *cas_keystore_entry_to_json(const struct cas_keystore_entry *e, bool with_wrapped)
{
    json_t *o = json_object();
    if (!o || set_new(o, "platform_id", json_string(e->platform_id)) < 0 ||
        set_new(o, "kind", json_string(e->kind)) < 0 || set_new(o, "node", json_string(e->node)) < 0 ||
        set_new(o, "tcb", json_integer((json_int_t)e->tcb)) < 0 ||
        set_new(o, "time", json_integer((json_int_t)e->time)) < 0 ||
        set_b64(o, "nonce", e->nonce, sizeof(e->nonce)) < 0 || set_b64(o, "sealed", e->sealed, sizeof(e->sealed)) < 0 ||
        (e->node_key && set_b64(o, "public_key", e->public_key, sizeof(e->public_key)) < 0) ||
        (e->node_key && with_wrapped && set_b64(o, "wrapped", e->wrapped, sizeof(e->wrapped)) < 0) ||
        (e->measurement[0] && set_new(o, "measurement", json_string(e->measurement)) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int cas_keystore_serialize(const struct cas_keystore *ks, const uint8_t dbkey[32], char **text, size_t *size)
{
    int ret;
    uint8_t mac[32];
    char mac_hex[65];
    json_t *root = NULL, *arr = NULL;
    char *dump = NULL;
    if (!dbkey || !text || !size)
        return -EINVAL;
    ret = check_store(ks);
    if (ret < 0)
        return ret;
    if (ks->generation == 0)
        return -EINVAL; /* a version 2 or 3 file is bound to a database and a generation */
    ret = compute_mac(ks, KS_VERSION, dbkey, mac);
    if (ret < 0)
        return ret;
    ret = -ENOMEM;
    root = json_object();
    arr = json_array();
    if (!root || !arr)
        goto out;
    for (size_t i = 0; i < ks->count; i++) {
        json_t *o = cas_keystore_entry_to_json(&ks->entries[i], true);
        if (!o || json_array_append_new(arr, o) != 0)
            goto out;
    }
    custos_hex_encode(mac, sizeof(mac), mac_hex, false);
    char id_hex[2 * CAS_KS_ID_SIZE + 1];
    custos_hex_encode(ks->database_id, CAS_KS_ID_SIZE, id_hex, false);
    if (set_new(root, "version", json_integer(KS_VERSION)) < 0 ||
        set_new(root, "database_id", json_string(id_hex)) < 0 ||
        set_new(root, "generation", json_integer((json_int_t)ks->generation)) < 0 ||
        (ks->creating && set_new(root, "creating", json_true()) < 0))
        goto out;
    ret = set_new(root, "entries", arr);
    arr = NULL; /* owned by root (or freed) now */
    if (ret < 0 || (ret = set_new(root, "mac", json_string(mac_hex))) < 0)
        goto out;
    ret = -ENOMEM;
    dump = json_dumps(root, JSON_INDENT(2));
    if (!dump)
        goto out;
    size_t n = strlen(dump);
    char *t = malloc(n + 2);
    if (!t)
        goto out;
    memcpy(t, dump, n);
    t[n] = '\n';
    t[n + 1] = '\0';
    *text = t;
    *size = n + 1;
    ret = 0;
out:
    free(dump);
    json_decref(arr);
    json_decref(root);
    return ret;
}

/* ---- editing ------------------------------------------------------------------------------- */

static ssize_t find_index(const struct cas_keystore *ks, const char *platform_id, const char *measurement)
{
    if (!ks || !platform_id || (ks->count && !ks->entries))
        return -1;
    for (size_t i = 0; i < ks->count; i++)
        if (!strncmp(ks->entries[i].platform_id, platform_id, sizeof(ks->entries[i].platform_id)) &&
            same_measurement(ks->entries[i].measurement, measurement))
            return (ssize_t)i;
    return -1;
}

const struct cas_keystore_entry *cas_keystore_find(const struct cas_keystore *ks, const char *platform_id,
                                                   const char *measurement)
{
    ssize_t i = find_index(ks, platform_id, measurement);
    return i < 0 ? NULL : &ks->entries[i];
}

const struct cas_keystore_entry *cas_keystore_find_for(const struct cas_keystore *ks, const char *platform_id,
                                                       const char *measurement)
{
    const struct cas_keystore_entry *e =
        measurement && measurement[0] ? cas_keystore_find(ks, platform_id, measurement) : NULL;
    return e ? e : cas_keystore_find(ks, platform_id, "");
}

int cas_keystore_upsert(struct cas_keystore *ks, const struct cas_keystore_entry *e)
{
    char err[160];
    if (!ks || (ks->count && !ks->entries) || cas_keystore_entry_check(e, err, sizeof(err)) < 0)
        return -EINVAL;
    ssize_t i = find_index(ks, e->platform_id, e->measurement);
    if (i >= 0) {
        ks->entries[i] = *e;
        return 0;
    }
    if (ks->count >= CAS_KS_MAX_ENTRIES)
        return -E2BIG;
    struct cas_keystore_entry *grown = realloc(ks->entries, (ks->count + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    ks->entries = grown;
    ks->entries[ks->count++] = *e;
    return 0;
}

bool cas_keystore_match(const struct cas_keystore_entry *e, const struct cas_ks_match *m)
{
    if (!e || !m)
        return false;
    if (m->keep_platform_id && !strcmp(e->platform_id, m->keep_platform_id) &&
        same_measurement(e->measurement, m->keep_measurement))
        return false;
    return (!m->platform_id || !strcmp(e->platform_id, m->platform_id)) &&
           (!m->measurement || same_measurement(e->measurement, m->measurement));
}

int cas_keystore_remove_matching(struct cas_keystore *ks, const struct cas_ks_match *m)
{
    if (!ks || !m || (ks->count && !ks->entries))
        return -EINVAL;
    size_t kept = 0, removed = 0;
    for (size_t i = 0; i < ks->count; i++) {
        if (cas_keystore_match(&ks->entries[i], m)) {
            removed++;
            continue;
        }
        if (kept != i)
            ks->entries[kept] = ks->entries[i];
        kept++;
    }
    if (removed == 0)
        return -ENOENT;
    custos_wipe(&ks->entries[kept], removed * sizeof(ks->entries[0]));
    ks->count = kept;
    if (ks->count == 0) {
        free(ks->entries);
        ks->entries = NULL;
    }
    return removed > INT32_MAX ? INT32_MAX : (int)removed;
}

int cas_keystore_remove(struct cas_keystore *ks, const char *platform_id, const char *measurement)
{
    if (!ks || !platform_id)
        return -EINVAL;
    struct cas_ks_match m = {.platform_id = platform_id, .measurement = measurement};
    int ret = cas_keystore_remove_matching(ks, &m);
    return ret < 0 ? ret : 0;
}

void cas_keystore_free(struct cas_keystore *ks)
{
    if (!ks)
        return;
    if (ks->entries) {
        custos_wipe(ks->entries, ks->count * sizeof(ks->entries[0]));
        free(ks->entries);
    }
    custos_wipe(ks, sizeof(*ks));
}
