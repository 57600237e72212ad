/* SPDX-License-Identifier: Apache-2.0 */
/* POST /v1/run: a launcher (cas-run) asks for its service's configuration. Every check runs and each
 * failure is one line of the answer (as the reference lists them); only a request that passes all of
 * them gets the configuration, encrypted to the launcher's ephemeral key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "casd.h"
#include "cas_run_measurement.h"
#include "session.h"

static void addf(json_t *errors, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(json_t *errors, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    json_array_append_new(errors, json_string(line));
}

static bool in_list(const json_t *list, const char *value, bool nocase)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        if (json_is_string(v) && (nocase ? strcasecmp : strcmp)(json_string_value(v), value) == 0)
            return true;
    return false;
}

static bool tolerated(const json_t *session, const char *what)
{
    return in_list(json_object_get(json_object_get(json_object_get(session, "security"), "attestation"), "tolerate"),
                   what, false);
}

/* This CAS's own platform, a registered backup's, or one the owner allowed. */
static bool platform_trusted(struct cas_state *st, const json_t *policy, const char *got)
{
    bool ok = in_list(json_object_get(policy, "platforms"), got, true);
    pthread_mutex_lock(&st->lock);
    ok = ok || strcasecmp(st->node.platform_id, got) == 0;
    for (size_t i = 0; i < st->pri.ks.count && !ok; i++)
        ok = strcasecmp(st->pri.ks.entries[i].platform_id, got) == 0;
    pthread_mutex_unlock(&st->lock);
    return ok;
}

/* The owner's policy, read from the database again only after it changed (read-only, shared). */
static json_t *current_policy(struct cas_state *st)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static json_t *cached;
    static unsigned gen;
    unsigned now = atomic_load(&st->pri.policy_gen);
    pthread_mutex_lock(&lock);
    if (!cached || gen != now) {
        json_decref(cached);
        cached = cas_policy_load(st);
        gen = now;
    }
    json_t *p = json_incref(cached);
    pthread_mutex_unlock(&lock);
    return p;
}

/* The launcher: the cas-run of this build, or one the owner allowed. */
static void check_launcher(const json_t *policy, const char *got, json_t *errors)
{
    if (strcmp(got, CAS_RUN_MEASUREMENT) == 0 || in_list(json_object_get(policy, "launchers"), got, true))
        return;
    addf(errors,
         "Unexpected launcher measurement (cas-run, %s) - Expected the cas-run of this CAS (%s) or one the owner "
         "allowed (cas owner allow-launcher)",
         got, CAS_RUN_MEASUREMENT);
}

static void check_platform(struct cas_state *st, const json_t *policy, const json_t *service, const char *got,
                           json_t *errors)
{
    const json_t *wanted = json_object_get(service, "platforms");
    if (wanted) {
        if (!in_list(wanted, got, true))
            addf(errors, "Unexpected platform (%s) - Expected one of the service's %zu platforms", got,
                 json_array_size(wanted));
        return;
    }
    if (json_is_true(json_object_get(policy, "trust_any_platform")))
        return;
    if (!platform_trusted(st, policy, got))
        addf(errors,
             "Unexpected platform (%s) - Expected this CAS's platform, a registered backup's or one the owner "
             "allowed",
             got);
}

static void check_program(const json_t *service, const char *got, json_t *errors)
{
    const json_t *wanted = json_object_get(service, "mrenclaves");
    if (in_list(wanted, got, true))
        return;
    size_t i;
    json_t *v;
    json_array_foreach(wanted, i, v)
        addf(errors, "Unexpected enclave measurement (MRENCLAVE, %s) - Expected %s", got, json_string_value(v));
    if (json_array_size(wanted) == 0)
        addf(errors, "Unexpected enclave measurement (MRENCLAVE, %s) - the service allows none (mrenclaves is empty)",
             got);
}

/* Each protected file: the command word that names it must have been measured with its hash. */
static void check_files(const json_t *service, const struct custos_run_request *rq, json_t *errors)
{
    const json_t *command = json_object_get(service, "command");
    size_t i;
    json_t *pf;
    json_array_foreach(json_object_get(service, "protected_files"), i, pf) {
        const char *path = json_string_value(json_object_get(pf, "path"));
        const char *want = json_string_value(json_object_get(pf, "sha256"));
        size_t arg = 0, j;
        json_t *w;
        json_array_foreach(command, j, w)
            if (j > 0 && !arg && strcmp(json_string_value(w), path) == 0)
                arg = j;
        const struct custos_run_file *got = NULL;
        for (size_t k = 0; k < rq->file_count; k++)
            if (rq->files[k].arg == arg)
                got = &rq->files[k];
        char hex[65];
        if (!got) {
            addf(errors, "Protected file %s (command word %zu) was not measured by the launcher", path, arg);
            continue;
        }
        custos_hex_encode(got->sha256, 32, hex, false);
        if (strcasecmp(hex, want) != 0)
            addf(errors, "Unexpected file hash (%s, %s) - Expected %s", path, hex, want);
    }
}

/* Imports at use: the exporting session must still export the secret to this one. */
struct import_ctx {
    struct cas_state *st;
    const char *to;
    json_t *held; /* sessions loaded for imports, freed at the end */
};

static const json_t *import_secret(void *ctx, const char *session, const char *secret, char *err, size_t err_size)
{
    struct import_ctx *ic = ctx;
    json_t *rec = NULL, *secrets = NULL;
    if (cas_session_load(ic->st, session, &rec, &secrets) < 0) {
        snprintf(err, err_size, "imported secret %s: session '%s' is gone", secret, session);
        return NULL;
    }
    json_array_append_new(ic->held, rec);
    json_array_append_new(ic->held, secrets);
    if (!cas_session_exports(json_object_get(rec, "session"), secret, ic->to)) {
        snprintf(err, err_size, "imported secret %s: session '%s' does not export it to '%s'", secret, session, ic->to);
        return NULL;
    }
    const json_t *value = json_object_get(secrets, secret);
    if (!value)
        snprintf(err, err_size, "imported secret %s: session '%s' has no such secret", secret, session);
    return value;
}

static json_t *expand_string(const struct cas_secret_source *src, const char *in, size_t size, bool text,
                             json_t *errors)
{
    uint8_t *out = NULL;
    size_t n = 0;
    char err[512];
    if (cas_session_expand(src, in, size, text, &out, &n, err, sizeof(err)) < 0) {
        json_array_append_new(errors, json_string(err));
        return NULL;
    }
    json_t *v = NULL;
    if (text) {
        v = json_stringn((const char *)out, n);
    } else {
        char *b = custos_base64_encode(out, n);
        v = b ? json_string(b) : NULL;
        if (b) {
            custos_wipe(b, strlen(b));
            free(b);
        }
    }
    custos_wipe(out, n);
    free(out);
    if (!v)
        json_array_append_new(errors, json_string("a secret reference gave a value that is not UTF-8 text"));
    return v;
}

/* The configuration the launcher gets: argv, env, pwd, files (secrets filled in). NULL with errors. */
static json_t *build_config(const struct cas_secret_source *src, const json_t *service, const json_t *filled,
                            const char *session_hash, json_t *errors)
{
    json_t *argv = json_array(), *env = json_array(), *files = json_array(), *w;
    size_t i;
    json_array_foreach(filled, i, w) {
        json_t *v = expand_string(src, json_string_value(w), json_string_length(w), true, errors);
        if (v)
            json_array_append_new(argv, v);
    }
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)json_object_get(service, "environment"), k, val) {
        if (strncmp(k, "@@", 2) == 0) {
            json_array_append_new(env, json_pack("{s:s, s:b}", "name", k + 2, "from_caller", 1));
            continue;
        }
        json_t *v = expand_string(src, json_string_value(val), json_string_length(val), true, errors);
        if (v)
            json_array_append_new(env, json_pack("{s:s, s:o}", "name", k, "value", v));
    }
    const char *image = json_string_value(json_object_get(service, "image_name"));
    const json_t *img = image ? cas_session_image(src->session, image) : NULL;
    json_t *f;
    json_array_foreach(json_object_get(img, "injection_files"), i, f) {
        const json_t *c = json_object_get(f, "content");
        json_t *v = expand_string(src, json_string_value(c), json_string_length(c), false, errors);
        if (v)
            json_array_append_new(files, json_pack("{s:O, s:o}", "path", json_object_get(f, "path"), "content", v));
    }
    json_t *config = json_pack("{s:o, s:o, s:O, s:o, s:s}", "argv", argv, "env", env, "pwd",
                               json_object_get(service, "pwd"), "files", files, "session_hash", session_hash);
    if (json_array_size(errors)) {
        json_decref(config);
        return NULL;
    }
    return config;
}

static void refuse(struct http_response *r, const struct custos_run_request *rq, json_t *errors)
{
    LOG_MODULE_INFO(CAS_LOG, "service %s/%s refused: %zu check(s) failed, first: %s", rq->session, rq->service,
                    json_array_size(errors), json_string_value(json_array_get(errors, 0)));
    http_error(r, 403, "attestation_failed", "%zu check(s) failed: %s", json_array_size(errors),
               json_string_value(json_array_get(errors, 0)));
    json_object_set(json_object_get(r->body, "error"), "errors", errors);
}

void cas_run_post(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    struct custos_run_request rq;
    char err[512], got[65], platform[CUSTOS_PLATFORM_ID_LEN + 1];
    uint8_t salt[32], rd[CUSTOS_REPORT_DATA_SIZE];
    json_t *rec = NULL, *secrets = NULL, *policy = NULL, *errors = json_array(), *filled = NULL, *config = NULL;
    struct import_ctx ic = {st, NULL, json_array()};
    if (custos_run_request_parse(req->json, &rq, err, sizeof(err)) < 0) {
        http_error(r, 400, "invalid_request", "%s", err);
        goto out;
    }
    if (custos_quote_verify_signature(&rq.quote) < 0) {
        http_error(r, 400, "bad_quote", "the quote's signature does not verify with its platform key");
        goto out;
    }
    int ret = cas_session_load(st, rq.session, &rec, &secrets);
    const json_t *session = json_object_get(rec, "session");
    const json_t *service = ret == 0 ? cas_session_service(session, rq.service) : NULL;
    if (ret < 0 && ret != -ENOENT) {
        http_error(r, 500, "storage", "cannot read session '%s': %s", rq.session, strerror(-ret));
        goto out;
    }
    if (!service) {
        http_error(r, 404, "not_found", "no service %s/%s in this CAS", rq.session, rq.service);
        goto out;
    }
    policy = current_policy(st);
    if (custos_run_binding(rq.request, salt, rd) < 0) {
        http_error(r, 500, "internal", "cannot compute the request's binding");
        goto out;
    }
    if (!custos_ct_equal(rd, rq.quote.report_data, sizeof(rd)))
        addf(errors, "The quote does not bind this request (report data differs)");
    long long now = (long long)time(NULL);
    if (rq.time < now - CUSTOS_RUN_MAX_AGE || rq.time > now + CUSTOS_RUN_MAX_AGE)
        addf(errors, "Request time %lld is more than %d s away from CAS's time %lld", rq.time, CUSTOS_RUN_MAX_AGE, now);
    if (strcmp(rq.cas_key_hash, st->tls.key_hash) != 0)
        addf(errors, "The request is for CAS %s - this CAS is %s", rq.cas_key_hash, st->tls.key_hash);
    custos_hex_encode(rq.quote.measurement, 32, got, false);
    check_launcher(policy, got, errors);
    custos_platform_id(rq.quote.platform_pub, platform);
    check_platform(st, policy, service, platform, errors);
    if (rq.quote.debug && !tolerated(session, "debug-mode"))
        addf(errors, "Debug mode is not tolerated (the platform runs in debug mode; tolerate: [debug-mode])");
    if (rq.quote.tcb < st->node.tcb && !tolerated(session, "outdated-tcb"))
        addf(errors, "Outdated TCB (TCB %u) - Expected at least %u (tolerate: [outdated-tcb])", rq.quote.tcb,
             st->node.tcb);
    custos_hex_encode(rq.program, 32, got, false);
    check_program(service, got, errors);
    check_files(service, &rq, errors);
    cas_service_match_command(service, rq.argv, errors, &filled);
    if (json_array_size(errors)) {
        refuse(r, &rq, errors);
        goto out;
    }
    ic.to = rq.session;
    struct cas_secret_source src = {session, secrets, import_secret, &ic};
    config = build_config(&src, service, filled, json_string_value(json_object_get(rec, "hash")), errors);
    if (!config) {
        refuse(r, &rq, errors);
        goto out;
    }
    char *text = json_dumps(config, JSON_COMPACT);
    ret = text ? custos_run_seal(rq.key, salt, text, strlen(text), &r->body) : -ENOMEM;
    if (text) {
        custos_wipe(text, strlen(text));
        free(text);
    }
    if (ret < 0)
        http_error(r, 500, "internal", "cannot encrypt the configuration: %s", strerror(-ret));
    else
        LOG_MODULE_DEBUG(CAS_LOG, "service %s/%s attested (platform %s, program %s)", rq.session, rq.service, platform,
                         got);
out:
    json_decref(config);
    json_decref(filled);
    json_decref(errors);
    json_decref(policy);
    json_decref(secrets);
    json_decref(rec);
    json_decref(ic.held);
}
