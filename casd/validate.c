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

