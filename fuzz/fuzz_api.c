/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for casd's request bodies: the provisioning request (JSON with a TOML owner
 * configuration and a policy) goes through the same checks as in the API. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
