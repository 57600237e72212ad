/* SPDX-License-Identifier: Apache-2.0 */
/* Checks of what the owner sends: the owner configuration and the trust policy. Pure functions,
 * shared by the API and the fuzzers. */
#include <arpa/inet.h>
#include <limits.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "validate.h"

/* Checks the owner configuration; fills ignored with the tables this platform does not use. */
int cas_owner_config_check(json_t *cfg, json_t *ignored, char *err, size_t err_size)
{
    json_t *api = json_object_get(cfg, "api_identity");
    if (!json_is_object(api)) {
        snprintf(err, err_size, "owner configuration needs an [api_identity] table");
        return -EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(api, key, v) {
        if (strcmp(key, "common_name") && strcmp(key, "alt_names")) {
            snprintf(err, err_size, "[api_identity]: unknown key '%.64s' (expected common_name, alt_names)", key);
            return -EINVAL;
        }
    }
    json_t *cn = json_object_get(api, "common_name");
    if (!json_is_string(cn) || json_string_length(cn) == 0 || json_string_length(cn) > 64) {
        snprintf(err, err_size, "[api_identity] common_name must be a string of 1 to 64 characters");
        return -EINVAL;
    }
    json_t *alts = json_object_get(api, "alt_names");
    if (alts && (!json_is_array(alts) || json_array_size(alts) > 64)) {
        snprintf(err, err_size, "[api_identity] alt_names must be an array of at most 64 names");
        return -EINVAL;
    }
    size_t i;
    json_array_foreach(alts, i, v) {
        const char *s = json_string_value(v);
        if (!s || !*s || strlen(s) > 253 || strpbrk(s, ", \t\r\n")) {
            snprintf(err, err_size, "[api_identity] alt_names[%zu] is not a host name or address", i);
            return -EINVAL;
        }
    }
    json_object_foreach(cfg, key, v) {
        if (strcmp(key, "api_identity") != 0)
            json_array_append_new(ignored, json_string(key));
    }
    return 0;
}

int cas_policy_check(const json_t *policy, json_t **out, char *err, size_t err_size)
{
    json_t *trust = NULL, *debug = NULL, *platforms = NULL, *measurements = NULL, *launchers = NULL, *v;
    json_error_t e;
    size_t i;
    if (!json_is_object(policy) ||
        json_unpack_ex((json_t *)policy, &e, JSON_STRICT, "{s?o, s?o, s?o, s?o, s?o}", "trust_any_platform", &trust,
                       "allow_debug", &debug, "platforms", &platforms, "measurements", &measurements, "launchers",
                       &launchers) < 0) {
        snprintf(err, err_size, "policy: %s", json_is_object(policy) ? e.text : "not a JSON object");
        return -EINVAL;
    }
    if ((trust && !json_is_boolean(trust)) || (debug && !json_is_boolean(debug))) {
        snprintf(err, err_size, "policy: 'trust_any_platform' and 'allow_debug' must be booleans");
        return -EINVAL;
    }
    if ((platforms && (!json_is_array(platforms) || json_array_size(platforms) > 256)) ||
        (measurements && (!json_is_array(measurements) || json_array_size(measurements) > 256)) ||
        (launchers && (!json_is_array(launchers) || json_array_size(launchers) > 256))) {
        snprintf(err, err_size, "policy: 'platforms', 'measurements' and 'launchers' must be arrays of at most 256");
        return -EINVAL;
    }
    json_array_foreach(platforms, i, v) {
        uint8_t pub[CUSTOS_P256_PUB_SIZE];
        if (!json_is_string(v) || custos_platform_id_parse(json_string_value(v), pub) < 0) {
            snprintf(err, err_size, "policy: platforms[%zu] is not a platform ID (66 hex digits)", i);
            return -EINVAL;
        }
    }
    const json_t *lists[2] = {measurements, launchers};
    for (int l = 0; l < 2; l++) {
        json_array_foreach(lists[l], i, v) {
            uint8_t m[1][32];
            const char *hex = json_string_value(v);
            if (custos_measurements_decode(&hex, 1, m, NULL) < 0) {
                snprintf(err, err_size, "policy: %s[%zu] is not 64 hex digits", l ? "launchers" : "measurements", i);
                return -EINVAL;
            }
        }
    }
    *out = json_pack("{s:b, s:b, s:o, s:o, s:o}", "trust_any_platform", json_is_true(trust), "allow_debug",
                     json_is_true(debug), "platforms", platforms ? json_deep_copy(platforms) : json_array(),
                     "measurements", measurements ? json_deep_copy(measurements) : json_array(), "launchers",
                     launchers ? json_deep_copy(launchers) : json_array());
    return *out ? 0 : -ENOMEM;
}

int cas_listen_parse(const char *listen, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon || (size_t)(colon - listen) >= sizeof(host))
        return -EINVAL;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!*(colon + 1) || *end || colon[1] == '-' || colon[1] == '+' || colon[1] == ' ' || port < 1 || port > 65535)
        return -EINVAL;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

bool cas_node_name_valid(const char *name)
{
    size_t n = name ? strnlen(name, CAS_NODE_NAME_MAX + 1) : 0;
    if (n == 0 || n > CAS_NODE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return false;
    }
    return true;
}

int cas_args_check(const char *db, const char *listen, const char *node_name, const char *las, char *err,
                   size_t err_size)
{
    struct sockaddr_in sa;
    struct stat sb;
    size_t len = db && db != CAS_ARGS_NO_DB ? strlen(db) : 0;
    while (len > 1 && db[len - 1] == '/')
        len--;
    if (db == CAS_ARGS_NO_DB)
        goto no_db;
    if (!db || len == 0 || (len == 1 && db[0] == '/')) {
        snprintf(err, err_size,
                 "--db '%s' is not a database directory path (give a directory, e.g. "
                 "/var/lib/custos/cas/db)",
                 db ? db : "");
        return -EINVAL;
    }
    if (len + sizeof(".key-store.next") + sizeof("/data.mdb.compact") >= PATH_MAX) {
        snprintf(err, err_size, "--db '%.80s...' is too long (%zu bytes, at most %zu)", db, len,
                 PATH_MAX - sizeof(".key-store.next") - sizeof("/data.mdb.compact") - 1);
        return -ENAMETOOLONG;
    }
    if (stat(db, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        snprintf(err, err_size,
                 "--db '%s' exists and is not a directory (the database is a directory; its key-store "
                 "is written beside it as '%s.key-store')",
                 db, db);
        return -ENOTDIR;
    }
no_db:
    if (!listen || cas_listen_parse(listen, &sa) < 0) {
        snprintf(err, err_size,
                 "--listen '%s' is not IPV4-ADDRESS:PORT (e.g. 0.0.0.0:8081; port 1..65535; IPv6 is "
                 "not supported)",
                 listen ? listen : "");
        return -EINVAL;
    }
    if (!cas_node_name_valid(node_name)) {
        snprintf(err, err_size, "--node-name '%.300s' is not a node name: 1..%d characters of A-Z a-z 0-9 . _ -",
                 node_name ? node_name : "", CAS_NODE_NAME_MAX);
        return -EINVAL;
    }
    return custos_las_path_check(las, err, err_size);
}

/* Percent-decoding of a URL path or query part, in place, as MHD's own but for %00: a NUL byte
 * would cut the C string the handlers get ("s1%00junk" read as "s1"), so it stays the three
 * characters "%00", which no name check accepts. Malformed escapes are kept as they are. */
size_t cas_url_unescape(char *s)
{
    static const char hex[] = "0123456789abcdef0123456789ABCDEF";
    char *out = s;
    for (const char *in = s; *in;) {
        const char *h = in[0] == '%' && in[1] ? strchr(hex, in[1]) : NULL;
        const char *l = h && in[2] ? strchr(hex, in[2]) : NULL;
        if (!l || (h - hex) % 16 + (l - hex) % 16 == 0) {
            *out++ = *in++;
            continue;
        }
        *out++ = (char)(((h - hex) % 16) << 4 | (l - hex) % 16);
        in += 3;
    }
    *out = '\0';
    return (size_t)(out - s);
}

int cas_secret_name_check(const char *name, char *err, size_t err_size)
{
    size_t n = strlen(name);
    const char *what = NULL;
    if (strstr(name, "%00"))
        what = "holds a NUL byte (%00)";
    else if (strchr(name, '/'))
        what = "holds '/'";
    else if (!strcmp(name, ".") || !strcmp(name, ".."))
        what = "is '.' or '..'";
    else if (n == 0 || n > CAS_SECRET_NAME_MAX ||
             strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789._-") != n)
        what = "is not 1 to 128 characters of A-Z a-z 0-9 . _ -";
    if (!what)
        return 0;
    snprintf(err, err_size,
             "secret name '%.*s' %s (names are 1 to %d characters of A-Z a-z 0-9 . _ -, "
             "not '.' or '..'; the CLI percent-encodes them)",
             n > 140 ? 140 : (int)n, name, what, CAS_SECRET_NAME_MAX);
    return -EINVAL;
}
