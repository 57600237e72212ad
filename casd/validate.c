/* SPDX-License-Identifier: Apache-2.0 */
/* Checks of what the owner sends: the owner configuration and the trust policy. Pure functions,
 * shared by the API and the fuzzers. */
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
            snprintf(err, err_size, "[api_identity]: unknown key '%.64s' (expected common_name, alt_names)",
                     key);
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
    json_t *trust = NULL, *debug = NULL, *platforms = NULL, *measurements = NULL, *v;
    json_error_t e;
    size_t i;
    if (!json_is_object(policy) ||
        json_unpack_ex((json_t *)policy, &e, JSON_STRICT, "{s?o, s?o, s?o, s?o}", "trust_any_platform", &trust,
                       "allow_debug", &debug, "platforms", &platforms, "measurements", &measurements) < 0) {
        snprintf(err, err_size, "policy: %s", json_is_object(policy) ? e.text : "not a JSON object");
        return -EINVAL;
    }
    if ((trust && !json_is_boolean(trust)) || (debug && !json_is_boolean(debug))) {
        snprintf(err, err_size, "policy: 'trust_any_platform' and 'allow_debug' must be booleans");
        return -EINVAL;
    }
    if ((platforms && (!json_is_array(platforms) || json_array_size(platforms) > 256)) ||
        (measurements && (!json_is_array(measurements) || json_array_size(measurements) > 256))) {
        snprintf(err, err_size, "policy: 'platforms' and 'measurements' must be arrays of at most 256");
        return -EINVAL;
    }
    json_array_foreach(platforms, i, v) {
        uint8_t pub[CUSTOS_P256_PUB_SIZE];
        if (!json_is_string(v) || custos_platform_id_parse(json_string_value(v), pub) < 0) {
            snprintf(err, err_size, "policy: platforms[%zu] is not a platform ID (66 hex digits)", i);
            return -EINVAL;
        }
    }
    json_array_foreach(measurements, i, v) {
        uint8_t m[32];
        if (!json_is_string(v) || custos_hex_decode(json_string_value(v), m, sizeof(m)) < 0) {
            snprintf(err, err_size, "policy: measurements[%zu] is not 64 hex digits", i);
            return -EINVAL;
        }
    }
    *out = json_pack("{s:b, s:b, s:o, s:o}", "trust_any_platform", json_is_true(trust), "allow_debug",
                     json_is_true(debug), "platforms", platforms ? json_deep_copy(platforms) : json_array(),
                     "measurements", measurements ? json_deep_copy(measurements) : json_array());
    return *out ? 0 : -ENOMEM;
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
    else if (n == 0 || n > CAS_SECRET_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                 "0123456789._-") != n)
        what = "is not 1 to 128 characters of A-Z a-z 0-9 . _ -";
    if (!what)
        return 0;
    snprintf(err, err_size, "secret name '%.*s' %s (names are 1 to %d characters of A-Z a-z 0-9 . _ -, "
             "not '.' or '..'; the CLI percent-encodes them)", n > 140 ? 140 : (int)n, name, what,
             CAS_SECRET_NAME_MAX);
    return -EINVAL;
}
