/* SPDX-License-Identifier: Apache-2.0 */
/* casd's HTTPS server (libmicrohttpd with GnuTLS): bounded bodies, connections and time; clients
 * are identified by the key hash of their TLS client certificate; every answer is JSON.
 * The identity is computed once per connection: it is kept with the certificate it came from and
 * computed again only if the peer's certificate differs at a later request. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "casd.h"

/* Per request (libmicrohttpd's con_cls). */
struct conn_ctx {
    char *body;
    size_t size;
    bool too_large;
};

/* Per connection (libmicrohttpd's socket context). */
struct conn_state {
    void *guard;   /* http_guard.c's entry */
    uint8_t *cert; /* DER of the peer certificate the identity below was computed from */
    size_t cert_size;
    char caller[65]; /* its key hash */
};

static struct conn_state *conn_state(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The key hash of the peer's certificate, as the TLS session has it now. It is kept in cs with a
 * copy of the certificate: a later request on the connection compares the certificate (bytes) and
 * reuses the hash; a different certificate is parsed again. */
static void caller_identity(struct conn_state *cs, struct http_request *req)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session)
        return;
    unsigned int n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &n);
    if (!certs || n == 0)
        return;
    if (cs && cs->cert && cs->cert_size == certs[0].size && memcmp(cs->cert, certs[0].data, cs->cert_size) == 0) {
        memcpy(req->caller, cs->caller, sizeof(req->caller));
        req->has_caller = true;
        return;
    }
    uint8_t hash[32];
    if (custos_cert_key_hash(certs[0].data, certs[0].size, hash) < 0)
        return;
    custos_hex_encode(hash, sizeof(hash), req->caller, false);
    req->has_caller = true;
    if (!cs)
        return;
    free(cs->cert);
    cs->cert = malloc(certs[0].size);
    cs->cert_size = cs->cert ? certs[0].size : 0; /* without memory: computed again next time */
    if (cs->cert) {
        memcpy(cs->cert, certs[0].data, certs[0].size);
        memcpy(cs->caller, req->caller, sizeof(cs->caller));
    }
}

/* Connection start and end: the per-connection state around http_guard's entry. Without memory
 * for it the connection is shut down (libmicrohttpd closes it). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct conn_state *cs = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        cs = calloc(1, sizeof(*cs));
        *socket_context = cs;
        if (cs) {
            cas_http_guard_notify(cls, conn, &cs->guard, toe);
            return;
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            (void)shutdown(ci->connect_fd, SHUT_RDWR);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && cs) {
        cas_http_guard_notify(cls, conn, &cs->guard, toe);
        free(cs->cert);
        free(cs);
        *socket_context = NULL;
    }
}

/* An answer may hold a secret (GET /v1/secrets/NAME): its text is wiped when libmicrohttpd lets go. */
static void wipe_free(void *text)
{
    custos_wipe(text, strlen(text));
    free(text);
}

static enum MHD_Result send_json(struct MHD_Connection *conn, struct http_response *r)
{
    char *text = r->body ? json_dumps(r->body, JSON_COMPACT) : strdup("{}");
    json_decref(r->body);
    r->body = NULL;
    if (!text)
        return MHD_NO;
    size_t n = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(n, text, wipe_free);
    if (!resp) {
        wipe_free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

size_t cas_mhd_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return cas_url_unescape(s);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct cas_state *st = cls;
    struct conn_ctx *ctx = *con_cls;
    struct conn_state *cs = conn_state(conn);
    (void)version;
    if (!ctx) {
        ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
            return MHD_NO;
        *con_cls = ctx;
        if (cs)
            cas_http_guard_mark(cs->guard, false); /* the headers are in */
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ctx->too_large || ctx->size + n > CAS_MAX_BODY) {
            ctx->too_large = true;
            return MHD_YES;
        }
        char *nb = realloc(ctx->body, ctx->size + n + 1);
        if (!nb)
            return MHD_NO;
        ctx->body = nb;
        memcpy(ctx->body + ctx->size, upload_data, n);
        ctx->size += n;
        ctx->body[ctx->size] = '\0';
        return MHD_YES;
    }
    struct http_response r = {.status = 200};
    if (strlen(url) > CAS_MAX_URL) {
        http_error(&r, 414, "uri_too_long", "request URI of %zu bytes exceeds %u", strlen(url), CAS_MAX_URL);
        return send_json(conn, &r);
    }
    if (ctx->too_large) {
        http_error(&r, 413, "body_too_large", "request body exceeds %u bytes", CAS_MAX_BODY);
        return send_json(conn, &r);
    }
    struct http_request req = {.method = method, .url = url, .conn = conn, .body = ctx->body, .body_size = ctx->size};
    caller_identity(cs, &req);
    cas_dispatch(st, &req, &r);
    if (!r.body)
        http_error(&r, 500, "internal", "no answer");
    LOG_MODULE_DEBUG(CAS_LOG, "%s %.200s -> %u (client %.16s)", method, url, r.status,
                     req.has_caller ? req.caller : "without certificate");
    return send_json(conn, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct conn_ctx *ctx = *con_cls;
    struct conn_state *cs = conn_state(conn);
    (void)cls;
    (void)toe;
    if (cs)
        cas_http_guard_mark(cs->guard, true); /* the next request's headers are due from now */
    if (!ctx)
        return;
    if (ctx->body) {
        custos_wipe(ctx->body, ctx->size);
        free(ctx->body);
    }
    free(ctx);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    LOG_MODULE_DEBUG(CAS_LOG, "http: %s", msg);
}

/* TLS certificates are handed to GnuTLS per handshake, so the owner's names can replace the first
 * certificate without restarting the listener. Generations are kept until exit: a handshake in
 * flight may still use the previous one. */
#define TLS_GENERATIONS 4

struct tls_generation {
    gnutls_pcert_st pcert;
    gnutls_privkey_t key;
};

static struct tls_generation g_tls[TLS_GENERATIONS];
static atomic_int g_tls_current = -1;
static int g_tls_count;

int cas_http_set_certificate(struct cas_state *st)
{
    if (g_tls_count == TLS_GENERATIONS)
        return -ENOSPC;
    struct tls_generation *g = &g_tls[g_tls_count];
    gnutls_datum_t cert = {(unsigned char *)st->tls.cert_pem, (unsigned int)strlen(st->tls.cert_pem)};
    gnutls_datum_t key = {(unsigned char *)st->tls.key_pem, (unsigned int)strlen(st->tls.key_pem)};
    if (gnutls_pcert_import_x509_raw(&g->pcert, &cert, GNUTLS_X509_FMT_PEM, 0) < 0)
        return -EINVAL;
    if (gnutls_privkey_init(&g->key) < 0 ||
        gnutls_privkey_import_x509_raw(g->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
        gnutls_pcert_deinit(&g->pcert);
        return -EINVAL;
    }
    atomic_store(&g_tls_current, g_tls_count++);
    return 0;
}

void cas_http_wipe(void)
{
    for (int i = 0; i < g_tls_count; i++) {
        gnutls_privkey_deinit(g_tls[i].key);
        gnutls_pcert_deinit(&g_tls[i].pcert);
    }
    g_tls_count = 0;
    atomic_store(&g_tls_current, -1);
    cas_http_guard_free();
}

static int tls_certificate(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                           const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
                           unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)session;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    int i = atomic_load(&g_tls_current);
    if (i < 0) {
        *pcert_length = 0;
        return -1;
    }
    *pcert = &g_tls[i].pcert;
    *pcert_length = 1;
    *pkey = g_tls[i].key;
    return 0;
}

struct MHD_Daemon *cas_http_start(struct cas_state *st, char *err, size_t err_size)
{
    struct sockaddr_in sa;
    if (cas_listen_parse(st->cfg.listen, &sa) < 0) {
        snprintf(err, err_size, "--listen '%s' is not IPv4-ADDRESS:PORT", st->cfg.listen);
        return NULL;
    }
    if (atomic_load(&g_tls_current) < 0 && cas_http_set_certificate(st) < 0) {
        snprintf(err, err_size, "cannot load the TLS certificate");
        return NULL;
    }
    /* The trust list only makes the server ask for a client certificate; any certificate is
     * accepted (the TLS handshake proves its key) and identified by its key hash. */
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL,
                         NULL, &on_request, st, MHD_OPTION_EXTERNAL_LOGGER, &on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&sa, MHD_OPTION_HTTPS_CERT_CALLBACK, &tls_certificate,
                         MHD_OPTION_HTTPS_MEM_TRUST, st->tls.cert_pem, MHD_OPTION_THREAD_POOL_SIZE, st->cfg.threads,
                         MHD_OPTION_CONNECTION_LIMIT, st->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                         st->cfg.timeout_s, MHD_OPTION_NOTIFY_COMPLETED, &on_completed, NULL,
                         MHD_OPTION_NOTIFY_CONNECTION, &on_connection, NULL, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                         st->cfg.max_per_address, MHD_OPTION_HTTPS_PRIORITIES,
                         "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_UNESCAPE_CALLBACK, &cas_mhd_unescape,
                         NULL,
                         /* headers up to this size reach the handlers (which answer 414/431 in JSON); beyond it
                          * libmicrohttpd answers on its own */
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CAS_HEADER_MEMORY, MHD_OPTION_END);
    if (!d)
        snprintf(err, err_size, "cannot listen on %s (address in use or not available?)", st->cfg.listen);
    return d;
}
