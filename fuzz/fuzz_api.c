/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for casd's request bodies: the provisioning request (JSON with a TOML owner
 * configuration and a policy) goes through the same checks as in the API; the same bytes as a
 * percent-encoded secret name in a URL. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bytes as a URL path part: decoding never makes it longer nor puts a NUL inside it, and an
 * accepted secret name is 1..128 bytes with no '/' and is not a dot segment. */
static void url_name(const uint8_t *data, size_t size)
{
    char buf[512], err[512];
    if (size >= sizeof(buf))
        return;
    memcpy(buf, data, size);
    buf[size] = '\0';
    size_t before = strlen(buf), after = cas_url_unescape(buf);
    if (after > before || strlen(buf) != after)
        abort();
    if (cas_secret_name_check(buf, err, sizeof(err)) == 0 &&
        (after == 0 || after > CAS_SECRET_NAME_MAX || strchr(buf, '/') || strchr(buf, '%') || !strcmp(buf, ".") ||
         !strcmp(buf, "..")))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    url_name(data, size);
    char err[512];
    json_t *body = NULL, *policy = NULL, *cfg = NULL, *ignored = json_array(), *pin = NULL;
    const char *token = NULL, *toml = NULL;
    json_error_t e;
    if (custos_json_parse((const char *)data, size, &body, err, sizeof(err)) < 0)
        goto out;
    if (json_unpack_ex(body, &e, JSON_STRICT, "{s:s, s:s, s?o}", "token", &token, "owner_config", &toml, "policy",
                       &pin) < 0)
        goto out;
    if (pin && cas_policy_check(pin, &policy, err, sizeof(err)) == 0) {
        json_t *again = NULL;
        if (cas_policy_check(policy, &again, err, sizeof(err)) < 0 || !json_equal(policy, again))
            abort(); /* a normalized policy is a fixed point */
        json_decref(again);
    }
    if (custos_toml_parse(toml, strlen(toml), &cfg, err, sizeof(err)) == 0) {
        if (!json_is_object(cfg))
            abort();
        if (cas_owner_config_check(cfg, ignored, err, sizeof(err)) == 0 &&
            json_array_size(ignored) + 1 != json_object_size(cfg))
            abort();
    }
out:
    json_decref(cfg);
    json_decref(policy);
    json_decref(ignored);
    json_decref(body);
    return 0;
}
