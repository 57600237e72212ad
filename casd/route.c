/* SPDX-License-Identifier: Apache-2.0 */
/* casd's routes: one table says who may call each endpoint, whether it takes a body, and in which
 * process mode it exists; cas_dispatch checks all of it before a handler runs (in the manner of
 * OpenSSH's monitor table), so no handler repeats a permission check. */
#include <stdio.h>
#include <string.h>

#include "casd.h"

const struct cas_route cas_routes[] = {
    /* primary */
    {"GET", "/healthz", ROUTE_PRIMARY, cas_get_healthz},
    {"GET", "/v1/attestation", ROUTE_PRIMARY, cas_get_attestation},
    {"POST", "/v1/provision", ROUTE_PRIMARY | ROUTE_BODY, cas_post_provision},
    {"GET", "/v1/owner", ROUTE_PRIMARY | ROUTE_OWNER, cas_get_owner},
    {"PUT", "/v1/secrets/", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_BODY | ROUTE_PREFIX, cas_put_secret},
    {"GET", "/v1/secrets/", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_PREFIX, cas_get_secret},
    /* a registrar (cas owner allow-registrar) may call these three and nothing else */
    {"POST", "/v1/backups/register", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_REGISTRAR | ROUTE_BODY, cas_backups_register},
    {"POST", "/v1/backups/confirm", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_REGISTRAR | ROUTE_BODY, cas_backups_confirm},
    {"GET", "/v1/backups", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_REGISTRAR, cas_backups_list},
    {"DELETE", "/v1/backups/", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_PREFIX, cas_backups_remove},
    {"DELETE", "/v1/backups", ROUTE_PRIMARY | ROUTE_OWNER, cas_backups_prune},
    {"POST", "/v1/owner/allowed-measurements", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_BODY, cas_policy_allow},
    {"POST", "/v1/owner/allowed-platforms", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_BODY, cas_policy_allow},
    {"POST", "/v1/owner/registrars", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_BODY, cas_registrar_allow},
    {"DELETE", "/v1/owner/registrars/", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_PREFIX, cas_registrar_deny},
    {"POST", "/v1/owner/allowed-launchers", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_BODY, cas_policy_allow},
    /* sessions: the owner creates; who reads and updates is each session's access_policy */
    {"POST", "/v1/sessions", ROUTE_PRIMARY | ROUTE_OWNER | ROUTE_BODY, cas_sessions_create},
    {"GET", "/v1/sessions", ROUTE_PRIMARY | ROUTE_CLIENT, cas_sessions_list},
    {"PUT", "/v1/sessions/", ROUTE_PRIMARY | ROUTE_CLIENT | ROUTE_BODY | ROUTE_PREFIX, cas_sessions_update},
    {"GET", "/v1/sessions/", ROUTE_PRIMARY | ROUTE_CLIENT | ROUTE_PREFIX, cas_sessions_read},
    /* attested configuration: no identity; the launcher's quote carries the trust */
    {"POST", "/v1/run", ROUTE_PRIMARY | ROUTE_PROVISIONED | ROUTE_BODY, cas_run_post},
    /* backup (casd --backup): anyone who reaches it; the request's quote and the offer's signature
     * carry the trust */
    {"GET", "/healthz", ROUTE_BACKUP, cas_backup_get_healthz},
    {"GET", "/v1/backup/request", ROUTE_BACKUP, cas_backup_get_request},
    {"POST", "/v1/backup/complete", ROUTE_BACKUP | ROUTE_BODY, cas_backup_post_complete},
    {"POST", "/v1/backup/finish", ROUTE_BACKUP | ROUTE_BODY, cas_backup_post_finish},
};
const size_t cas_route_count = sizeof(cas_routes) / sizeof(cas_routes[0]);

/* 401 without a client certificate, 403 with another identity, 409 before provisioning. The owner
 * check is lock-free: the owner's hash is written before `provisioned` is published
 * (release/acquire). A registrar passes on ROUTE_REGISTRAR routes only; elsewhere its 403 says what
 * it may do. */
static bool require_owner(struct cas_state *st, const struct http_request *req, unsigned flags, struct http_response *r)
{
    bool provisioned = atomic_load_explicit(&st->pri.provisioned, memory_order_acquire);
    bool owner = provisioned && req->has_caller && custos_ct_equal(req->caller, st->pri.owner_hash, 64);
    if (!provisioned)
        http_error(r, 409, "not_provisioned", "this CAS has no owner yet; provision it first");
    else if (!req->has_caller)
        http_error(r, 401, "no_client_certificate", "this request needs the owner's client certificate");
    if (!provisioned || !req->has_caller || owner)
        return owner;
    if (!cas_is_registrar(st, req->caller))
        http_error(r, 403, "forbidden", "only the CAS owner may do this; your identity is %s", req->caller);
    else if (flags & ROUTE_REGISTRAR)
        return true;
    else
        http_error(r, 403, "registrar_only",
                   "identity %s is a registrar: it may only register backups and list them (cas register-backup, "
                   "cas backups list); this needs the CAS owner",
                   req->caller);
    return false;
}

static bool require_provisioned(struct cas_state *st, const struct http_request *req, unsigned flags,
                                struct http_response *r)
{
    if (!atomic_load_explicit(&st->pri.provisioned, memory_order_acquire))
        http_error(r, 409, "not_provisioned", "this CAS has no owner yet; provision it first");
    else if ((flags & ROUTE_CLIENT) && !req->has_caller)
        http_error(r, 401, "no_client_certificate", "this request needs a client certificate (a CAS CLI identity)");
    else
        return true;
    return false;
}

static bool path_matches(const struct cas_route *rt, const char *url)
{
    if (rt->flags & ROUTE_PREFIX)
        return strncmp(rt->path, url, strlen(rt->path)) == 0;
    return strcmp(rt->path, url) == 0;
}

void cas_dispatch(struct cas_state *st, struct http_request *req, struct http_response *r)
{
    unsigned mode = st->backup ? ROUTE_BACKUP : ROUTE_PRIMARY;
    bool path_known = false;
    for (size_t i = 0; i < cas_route_count; i++) {
        const struct cas_route *rt = &cas_routes[i];
        if (!(rt->flags & mode) || !path_matches(rt, req->url))
            continue;
        path_known = true;
        if (strcmp(rt->method, req->method) != 0)
            continue;
        if ((rt->flags & ROUTE_OWNER) && !require_owner(st, req, rt->flags, r))
            return;
        if ((rt->flags & (ROUTE_CLIENT | ROUTE_PROVISIONED)) && !require_provisioned(st, req, rt->flags, r))
            return;
        if (rt->flags & ROUTE_BODY) {
            req->json = http_json_body(req, r);
            if (!req->json)
                return;
        } else if (req->body_size) {
            http_error(r, 400, "unexpected_body", "%s %s takes no request body", rt->method, rt->path);
            return;
        }
        rt->fn(st, req, r);
        json_decref(req->json);
        req->json = NULL;
        return;
    }
    if (path_known)
        http_error(r, 405, "method_not_allowed", "%s is not allowed on %.200s", req->method, req->url);
    else
        http_error(r, 404, "not_found", "no such endpoint: %.200s", req->url);
}
