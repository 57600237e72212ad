/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for sessions: text -> parse -> hash. Refusals explain themselves; an accepted
 * session's normal form parses back to itself (the same hash); every service matches its own command;
 * and when it holds no key or x509 secret (slow to make), its secrets are made and every environment
 * value, command word and injection file expands, but for imports (none here) and the 1 MiB bound. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const json_t *no_import(void *ctx, const char *session, const char *secret, char *err, size_t err_size)
{
    (void)ctx;
    (void)session;
    (void)secret;
    snprintf(err, err_size, "no import in the fuzzer");
    return NULL;
}

static void expand_ok(const struct cas_secret_source *src, const char *s, bool text)
{
    char err[512] = "";
    uint8_t *out = NULL;
    size_t size = 0;
    int ret = cas_session_expand(src, s, strlen(s), text, &out, &size, err, sizeof(err));
    if (ret == 0) {
        if (!out || out[size] != '\0' || (text && memchr(out, '\0', size)))
            abort();
        custos_wipe(out, size);
        free(out);
        return;
    }
    if (out || !err[0] || (ret != -E2BIG && !strstr(err, "cannot import")))
        abort();
}

static bool slow_secrets(const json_t *session)
{
    size_t i, total = 0;
    json_t *s;
    json_array_foreach(json_object_get(session, "secrets"), i, s) {
        const char *kind = json_string_value(json_object_get(s, "kind"));
        if (kind && (!strcmp(kind, "key") || !strcmp(kind, "x509")))
            return true;
        total += (size_t)json_integer_value(json_object_get(s, "size"));
    }
    return total > (1u << 20);
}

static void secrets_and_expansion(const json_t *session)
{
    char err[512] = "";
    json_t *secrets = NULL, *again = NULL;
    if (slow_secrets(session))
        return;
    if (cas_session_secrets(session, NULL, &secrets, err, sizeof(err)) != 0)
        abort();
    /* kept: the same definitions give the same values */
    if (cas_session_secrets(session, secrets, &again, err, sizeof(err)) != 0 || !json_equal(secrets, again))
        abort();
    json_decref(again);
    struct cas_secret_source src = {session, secrets, no_import, NULL};
    size_t i, j;
    json_t *e;
    const char *key;
    json_array_foreach(json_object_get(session, "services"), i, e) {
        json_t *w, *v, *filled = NULL, *errors = json_array();
        json_array_foreach(json_object_get(e, "command"), j, w)
            expand_ok(&src, json_string_value(w), true);
        json_object_foreach(json_object_get(e, "environment"), key, v)
            expand_ok(&src, json_string_value(v), true);
        if (!cas_service_match_command(e, json_object_get(e, "command"), errors, &filled) || json_array_size(errors) ||
            !json_equal(filled, json_object_get(e, "command")))
            abort();
        json_decref(filled);
        json_decref(errors);
    }
    json_array_foreach(json_object_get(session, "images"), i, e) {
        json_t *f;
        json_array_foreach(json_object_get(e, "injection_files"), j, f)
            expand_ok(&src, json_string_value(json_object_get(f, "content")), false);
    }
    json_decref(secrets);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "", h1[65], h2[65];
    json_t *session = (json_t *)1, *back = NULL;
    int ret = cas_session_parse((const char *)data, size, &session, err, sizeof(err));
    if (ret < 0) {
        if (session || !err[0] || !memchr(err, '\0', sizeof(err)) || (ret != -EINVAL && ret != -ENOMEM))
            abort();
        return 0;
    }
    if (!session || cas_session_hash(session, h1) != 0)
        abort();
    /* the normal form is a session text of its own, and a fixed point */
    char *text = json_dumps(session, JSON_SORT_KEYS | JSON_COMPACT);
    if (!text || cas_session_parse(text, strlen(text), &back, err, sizeof(err)) != 0 ||
        cas_session_hash(back, h2) != 0 || strcmp(h1, h2) || !json_equal(session, back))
        abort();
    custos_wipe(text, strlen(text));
    free(text);
    json_decref(back);
    secrets_and_expansion(session);
    json_decref(session);
    return 0;
}
