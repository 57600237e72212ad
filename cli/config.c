/* SPDX-License-Identifier: Apache-2.0 */
/* The CLI configuration file: the caller's identity (key and certificate) and the known CAS
 * instances. JSON, 0600, written crash-safely; a group/world-readable file holding a private key is
 * refused. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "cli.h"

#define CONFIG_MAX (4u << 20)

const char *cli_config_path(const char *override, char *buf, size_t size)
{
    if (override && *override)
        return override;
    const char *env = getenv("CAS_CLI_CONFIG");
    if (!env || !*env)
        env = getenv("SCONE_CLI_CONFIG");
    if (env && *env)
        return env;
    /* ~/.cas/config as the reference has it; a ~/.cas/config.json of earlier versions is still used
     * (and written back there) while ~/.cas/config does not exist. */
    const char *home = getenv("HOME");
    struct stat st;
    snprintf(buf, size, "%s/.cas/config.json", home && *home ? home : ".");
    if (lstat(buf, &st) == 0) {
        snprintf(buf, size, "%s/.cas/config", home && *home ? home : ".");
        if (lstat(buf, &st) < 0 && errno == ENOENT)
            snprintf(buf, size, "%s/.cas/config.json", home && *home ? home : ".");
        return buf;
    }
    snprintf(buf, size, "%s/.cas/config", home && *home ? home : ".");
    return buf;
}

bool cli_cas_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

int cli_config_parse(const char *text, size_t size, json_t **out, char *err, size_t err_size)
{
    json_t *j = NULL;
    char perr[256];
    if (custos_json_parse(text, size, &j, perr, sizeof(perr)) < 0 || !json_is_object(j)) {
        snprintf(err, err_size, "%s", j ? "not a JSON object" : perr);
        json_decref(j);
        return -EINVAL;
    }
    json_t *id = json_object_get(j, "identity");
    json_t *cas = json_object_get(j, "cas");
    if ((id && (!json_is_object(id) || !json_is_string(json_object_get(id, "private_key")) ||
                !json_is_string(json_object_get(id, "certificate")))) ||
        (cas && !json_is_object(cas))) {
        snprintf(err, err_size, "field '%s' has the wrong form", cas && !json_is_object(cas) ? "cas" : "identity");
        json_decref(j);
        return -EINVAL;
    }
    const char *name;
    json_t *entry;
    json_object_foreach(cas, name, entry) {
        if (!json_is_object(entry) || !json_is_string(json_object_get(entry, "url")) ||
            !json_is_string(json_object_get(entry, "key_hash"))) {
            snprintf(err, err_size, "CAS entry '%.64s' needs string fields url and key_hash", name);
            json_decref(j);
            return -EINVAL;
        }
    }
    if (!cas)
        json_object_set_new(j, "cas", json_object());
    *out = j;
    return 0;
}

int cli_config_load(const char *path, json_t **out, char *err, size_t err_size)
{
    uint8_t *text = NULL;
    size_t size = 0;
    struct stat st;
    int ret = custos_read_file(path, CONFIG_MAX, &text, &size);
    if (ret == -ENOENT) {
        *out = json_pack("{s:i, s:{}}", "version", 1, "cas");
        return *out ? 0 : -ENOMEM;
    }
    if (ret < 0) {
        snprintf(err, err_size, "cannot read CLI configuration %s: %s", path,
                 ret == -ELOOP ? "it is a symlink" : strerror(-ret));
        return ret;
    }
    json_t *j = NULL;
    char perr[256];
    ret = cli_config_parse((const char *)text, size, &j, perr, sizeof(perr));
    custos_wipe(text, size);
    free(text);
    if (ret < 0) {
        snprintf(err, err_size, "CLI configuration %s is damaged: %s", path, perr);
        return ret;
    }
    if (json_object_get(j, "identity") && stat(path, &st) == 0 && (st.st_mode & 077)) {
        snprintf(err, err_size,
                 "CLI configuration %s holds a private key but is readable by others (mode %03o); fix "
                 "with: chmod 600 %s",
                 path, st.st_mode & 0777, path);
        json_decref(j);
        return -EPERM;
    }
    *out = j;
    return 0;
}

int cli_config_save(const char *path, json_t *cfg, char *err, size_t err_size)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    int ret = custos_mkdirs(dirname(dir), 0700);
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (ret == 0)
        ret = text ? custos_write_file_atomic(path, text, strlen(text), 0600) : -ENOMEM;
    if (text) {
        custos_wipe(text, strlen(text));
        free(text);
    }
    if (ret < 0)
        snprintf(err, err_size, "cannot write CLI configuration %s: %s", path, strerror(-ret));
    return ret;
}

int cli_identity(json_t *cfg, const char *import_file, struct cli_identity *out, char *err, size_t err_size)
{
    json_t *id = json_object_get(cfg, "identity");
    const char *key_pem = json_string_value(json_object_get(id, "private_key"));
    const char *cert_pem = json_string_value(json_object_get(id, "certificate"));
    uint8_t *file = NULL;
    size_t file_size = 0;
    EVP_PKEY *key = NULL;
    char *new_key_pem = NULL, *new_cert_pem = NULL;
    int ret;
    memset(out, 0, sizeof(*out));
    if (import_file) {
        if ((ret = custos_read_file(import_file, 1u << 20, &file, &file_size)) < 0) {
            snprintf(err, err_size, "cannot read identity %s: %s", import_file, strerror(-ret));
            return ret;
        }
        ret = custos_key_from_pem((const char *)file, file_size, &key, err, err_size);
        custos_wipe(file, file_size);
        free(file);
        if (ret < 0) {
            char tmp[256];
            snprintf(tmp, sizeof(tmp), "%s", err);
            snprintf(err, err_size, "identity %s: %s", import_file, tmp);
            return ret;
        }
        /* Never replace another identity: it may be the only copy of a CAS owner's key. */
        EVP_PKEY *old = NULL;
        char tmp[256];
        if (key_pem && custos_key_from_pem(key_pem, strlen(key_pem), &old, tmp, sizeof(tmp)) == 0) {
            uint8_t h_old[32], h_new[32];
            bool same =
                custos_key_hash(old, h_old) == 0 && custos_key_hash(key, h_new) == 0 && memcmp(h_old, h_new, 32) == 0;
            EVP_PKEY_free(old);
            if (!same) {
                char hex[65];
                custos_hex_encode(h_old, 32, hex, false);
                snprintf(err, err_size,
                         "the CLI configuration already holds another identity (key hash %s), which may own a CAS; "
                         "it is not replaced: use another --cli-config for identity %s",
                         hex, import_file);
                EVP_PKEY_free(key);
                return -EEXIST;
            }
            if (cert_pem) { /* the same key: keep its certificate */
                out->key = key;
                out->key_pem = strdup(key_pem);
                out->cert_pem = strdup(cert_pem);
                goto hash;
            }
        }
    } else if (key_pem && cert_pem) {
        if ((ret = custos_key_from_pem(key_pem, strlen(key_pem), &key, err, err_size)) < 0)
            return ret;
        out->key = key;
        out->key_pem = strdup(key_pem);
        out->cert_pem = strdup(cert_pem);
        goto hash;
    } else if ((ret = custos_key_generate(&key)) < 0) {
        snprintf(err, err_size, "cannot create an identity key");
        return ret;
    }
    /* A new or imported key: make its certificate and record both in the configuration. */
    if ((ret = custos_key_to_pem(key, &new_key_pem)) < 0 ||
        (ret = custos_cert_self_signed(key, "cas-cli identity", NULL, 0, &new_cert_pem)) < 0) {
        snprintf(err, err_size, "cannot make the identity certificate");
        EVP_PKEY_free(key);
        free(new_key_pem);
        return ret;
    }
    json_object_set_new(cfg, "identity",
                        json_pack("{s:s, s:s}", "private_key", new_key_pem, "certificate", new_cert_pem));
    out->key = key;
    out->key_pem = new_key_pem;
    out->cert_pem = new_cert_pem;
    out->changed = true;
hash:;
    uint8_t h[32];
    if (!out->key_pem || !out->cert_pem || custos_key_hash(out->key, h) < 0) {
        cli_identity_free(out);
        return -ENOMEM;
    }
    custos_hex_encode(h, sizeof(h), out->key_hash, false);
    return 0;
}

void cli_identity_free(struct cli_identity *id)
{
    if (!id)
        return;
    EVP_PKEY_free(id->key);
    if (id->key_pem) {
        custos_wipe(id->key_pem, strlen(id->key_pem));
        free(id->key_pem);
    }
    free(id->cert_pem);
    memset(id, 0, sizeof(*id));
}

/* "a, b, c" (at most err_size bytes), or "none". */
static void known_names(json_t *all, char *out, size_t size)
{
    const char *k;
    json_t *v;
    size_t n = 0;
    out[0] = '\0';
    json_object_foreach(all, k, v) {
        int w = snprintf(out + n, size - n, "%s%s", n ? ", " : "", k);
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
    if (!n)
        snprintf(out, size, "none: attest or provision one first");
}

int cli_find_cas(json_t *cfg, const char *which, const char **url, const char **key_hash, char *err, size_t err_size)
{
    json_t *all = json_object_get(cfg, "cas");
    const char *def = json_string_value(json_object_get(cfg, "default_cas"));
    const char *name = which && *which ? which : def;
    json_t *entry = name ? json_object_get(all, name) : NULL;
    char known[1024];
    if (!entry && which && *which) {
        /* not a name: an address, matched after normalization */
        char u[512], host[300];
        if (cli_normalize_address(which, u, sizeof(u), host, sizeof(host)) == 0) {
            const char *k;
            json_t *v;
            json_object_foreach(all, k, v)
                if (!strcmp(json_string_value(json_object_get(v, "url")) ?: "", u))
                    entry = v;
        }
    }
    *url = json_string_value(json_object_get(entry, "url"));
    *key_hash = json_string_value(json_object_get(entry, "key_hash"));
    if (*url && *key_hash)
        return 0;
    known_names(all, known, sizeof(known));
    if (which && *which)
        snprintf(err, err_size,
                 "CAS '%.300s' is neither the name nor the address of a CAS in the CLI configuration (known CAS: "
                 "%s); to add one: cas attest ADDR --name NAME",
                 which, known);
    else if (def)
        snprintf(err, err_size,
                 "the default CAS '%.300s' is not in the CLI configuration (known CAS: %s); name one "
                 "with --cas NAME or SCONE_CAS_ADDR",
                 def, known);
    else
        snprintf(err, err_size,
                 "no default CAS in the CLI configuration: name one with --cas NAME|ADDR or SCONE_CAS_ADDR (known "
                 "CAS: %s)",
                 known);
    return -ENOENT;
}

void cli_record_cas(json_t *cfg, const char *name, json_t *entry, bool make_default)
{
    json_t *all = json_object_get(cfg, "cas");
    const char *url = json_string_value(json_object_get(entry, "url"));
    /* one name per CAS: an entry of the same URL under another name is this one renamed */
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(all, tmp, k, v)
    {
        if (strcmp(k, name) != 0 && url && !strcmp(json_string_value(json_object_get(v, "url")) ?: "", url))
            json_object_del(all, k);
    }
    json_object_set_new(all, name, entry);
    const char *def = json_string_value(json_object_get(cfg, "default_cas"));
    if (make_default || !def || !json_object_get(all, def))
        json_object_set_new(cfg, "default_cas", json_string(name));
}

const char *cli_name_taken(json_t *cfg, const char *name, const char *url)
{
    json_t *old = json_object_get(json_object_get(cfg, "cas"), name);
    const char *old_url = json_string_value(json_object_get(old, "url"));
    return old_url && strcmp(old_url, url) != 0 ? old_url : NULL;
}
