/* SPDX-License-Identifier: Apache-2.0 */
/* casd internals: the state of a running CAS, its start-up, its HTTPS API and its handlers. */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <microhttpd.h>

#include "custos.h"
#include "backup_proto.h"
#include "db.h"
#include "keystore.h"
#include "validate.h"

#define CAS_LOG "cas"
#define CAS_SEAL_LABEL "cas-db"
#define CAS_MAX_BODY (1u << 20)
#define CAS_MAX_URL 8192u              /* longer request URIs: 414 (JSON) */
#define CAS_HEADER_MEMORY (128u << 10) /* libmicrohttpd's per-connection pool */

#define REC_IDENTITY "cas/identity-key"
#define REC_TOKEN "cas/provisioning-token"
#define REC_OWNER "cas/owner"
#define REC_POLICY "cas/policy"
#define REC_REGISTRARS "cas/registrars"
#define CAS_REGISTRAR_MAX 64
#define REC_AUDIT_NEXT "audit/next"
#define CAS_PENDING_MAX 32
#define CAS_REQUEST_MAX_AGE 600 /* seconds a backup request stays valid */
#define CAS_BACKUP_LINGER_S 60  /* a completed backup waits this long for the relay's "finished" */

struct http_request;
struct http_response;
struct cas_state;
typedef void (*cas_route_fn)(struct cas_state *st, struct http_request *req, struct http_response *resp);

/* route.c: the route table and its central checks */
enum cas_route_flags {
    ROUTE_OWNER = 1u << 0,       /* the owner's client certificate (401/403; 409 before provisioning) */
    ROUTE_BODY = 1u << 1,        /* a JSON object body (400 otherwise); routes without it refuse a body */
    ROUTE_PREFIX = 1u << 2,      /* the path is a prefix; the rest names the resource */
    ROUTE_PRIMARY = 1u << 3,     /* served by a primary CAS */
    ROUTE_BACKUP = 1u << 4,      /* served by a backup CAS (casd --backup) */
    ROUTE_REGISTRAR = 1u << 5,   /* with ROUTE_OWNER: a registrar the owner allowed may call it too */
    ROUTE_CLIENT = 1u << 6,      /* any client certificate (401 without; 409 before provisioning): the
                                    handler judges the identity (a session's access_policy) */
    ROUTE_PROVISIONED = 1u << 7, /* 409 before provisioning (no identity needed) */
};
struct cas_route {
    const char *method;
    const char *path;
    unsigned flags;
    cas_route_fn fn;
};
extern const struct cas_route cas_routes[];
extern const size_t cas_route_count;
void cas_dispatch(struct cas_state *st, struct http_request *req, struct http_response *r);

/* A registration between its offer and its confirmation (primary side, memory only). */
struct cas_pending {
    bool used;
    char request_id[65];
    uint8_t transcript[32];
    struct backup_request request;
    time_t expires;
    json_t *offer; /* the offer made, sent again to a retry of the same request */
};

/* The ephemeral backup CAS's one registration (backup side). */
struct cas_backup_session {
    uint8_t private_key[32];
    struct backup_request request;
    bool done;
    time_t deadline;
    uint8_t offer_key[32]; /* the primary's ephemeral key of the offer it completed */
    json_t *completion;    /* sent again to a retry of the same offer (no secret in it) */
};

/* This node's LAS, behind a table of function pointers (las.c has the real one, on lasd's socket), so
 * handlers and start-up can be tested with a fake LAS. */
struct cas_las_ops {
    int (*quote)(void *ctx, const uint8_t report_data[CUSTOS_REPORT_DATA_SIZE], struct custos_quote *out, char *err,
                 size_t err_size);
    int (*seal_key)(void *ctx, const char *label, uint8_t out[32], char *err, size_t err_size);
};
extern const struct cas_las_ops cas_las_socket; /* ctx: the socket path */

/* What casd was told at start (both modes). */
struct cas_config {
    const char *las;
    const char *db_dir;
    const char *node_name;
    const char *listen;
    const char *cas_key_hash; /* backup mode: accept offers of this CAS only (NULL: any) */
    unsigned threads, max_connections, timeout_s, header_timeout_s, max_per_address;
};

/* This node, as its lasd reports it (both modes). */
struct cas_node {
    const struct cas_las_ops *las_ops;
    void *las_ctx;
    char platform_id[CUSTOS_PLATFORM_ID_LEN + 1];
    char platform_kind[8];
    uint32_t tcb;
    uint32_t uid; /* the user casd runs as, as lasd sees it */
    uint8_t measurement[CUSTOS_MEASUREMENT_SIZE];
    char measurement_hex[2 * CUSTOS_MEASUREMENT_SIZE + 1]; /* the same, lowercase hex (key-store entries) */
};

/* The TLS identity (both modes; a primary's key lives in its database, a backup's is ephemeral). */
struct cas_tls {
    EVP_PKEY *key;
    char *key_pem;
    char *cert_pem;     /* guarded by cas_state.lock once serving */
    char *old_certs[8]; /* replaced certificates, kept until exit (a reader may hold one) */
    size_t old_cert_count;
    char key_hash[65];
};

/* A primary CAS: its database, key-store, owner and pending registrations. */
struct cas_primary {
    char keystore_path[PATH_MAX];
    int lock_fd; /* flock on DIR.lock: one casd per database */
    /* secrets (mlock'ed with the structure, wiped at exit) */
    uint8_t dbkey[32];
    char token[65];
    struct cas_db *db;
    atomic_bool provisioned; /* published after owner_hash (release/acquire) */
    char owner_hash[65];
    atomic_bool cert_changed; /* the certificate's names changed: renew it */
    atomic_uint policy_gen;   /* advanced by every change of the owner's policy (caches follow it) */
    /* guarded by cas_state.lock */
    struct cas_keystore ks;
    struct cas_pending pending[CAS_PENDING_MAX];
    char registrars[CAS_REGISTRAR_MAX][65]; /* key hashes of the registrars the owner allowed */
    size_t registrar_count;
};

struct cas_state {
    struct cas_config cfg;
    struct cas_node node;
    struct cas_tls tls;
    pthread_mutex_t lock;
    struct cas_primary pri;            /* primary mode */
    struct cas_backup_session *backup; /* backup mode (NULL on a primary) */
    atomic_bool backup_done, backup_finished;
};

/* startup.c */
/* Platform ID, kind, TCB, measurement and uid of this CAS, from a quote lasd made for it. */
void cas_node_from_quote(struct cas_state *st, const struct custos_quote *q);
int cas_open_database(struct cas_state *st);
int cas_load_identity(struct cas_state *st);
int cas_make_certificate(struct cas_state *st);
int cas_certificate_for(struct cas_state *st, const json_t *config, char **out);
int cas_load_ownership(struct cas_state *st);
void cas_state_wipe(struct cas_state *st);

/* http.c */
struct http_request {
    const char *method;
    const char *url;
    struct MHD_Connection *conn;
    char *body;
    size_t body_size;
    bool has_caller;
    char caller[65];   /* key hash of the client certificate's public key */
    json_t *json;      /* the parsed body of a ROUTE_BODY route (owned by cas_dispatch) */
    json_t *test_args; /* unit tests (conn NULL): the query arguments */
};
/* A query argument (NULL when absent), and how many there are. */
const char *http_arg(const struct http_request *req, const char *name);
int http_arg_count(const struct http_request *req);
struct http_response {
    unsigned status;
    json_t *body;
};
void http_error(struct http_response *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Parses the body as a JSON object; on failure fills r with a 400 naming the problem. */
json_t *http_json_body(const struct http_request *req, struct http_response *r);
struct MHD_Daemon *cas_http_start(struct cas_state *st, char *err, size_t err_size);
/* Publishes st's current certificate for new TLS handshakes (no restart needed). */
int cas_http_set_certificate(struct cas_state *st);
/* Frees every TLS key generation (after the listener stopped). */
void cas_http_wipe(void);
/* MHD_OPTION_UNESCAPE_CALLBACK: percent-decoding that keeps %00 (api.c). */
size_t cas_mhd_unescape(void *cls, struct MHD_Connection *conn, char *s);

/* http_guard.c: the request-header deadline (libmicrohttpd's timeout is an idle timeout).
 * notify stores the connection's entry in *entry (http.c keeps it in its per-connection state). */
int cas_http_guard_init(size_t max_connections, unsigned deadline_s);
void cas_http_guard_free(void);
void cas_http_guard_notify(void *cls, struct MHD_Connection *conn, void **entry,
                           enum MHD_ConnectionNotificationCode toe);
void cas_http_guard_mark(void *entry, bool waiting);
/* Shuts down connections past the deadline; returns how many. */
unsigned cas_http_guard_reap(void);

/* api.c */
void cas_get_healthz(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_get_attestation(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_post_provision(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_get_owner(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_put_secret(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_get_secret(struct cas_state *st, struct http_request *req, struct http_response *r);

/* sessions.c: sessions (policies) and their secrets; run.c: attested configuration for cas-run */
void cas_sessions_create(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_sessions_update(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_sessions_read(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_sessions_list(struct cas_state *st, struct http_request *req, struct http_response *r);
/* A session's stored record ({hash, session, creator, created, updated, version}) and its secrets;
 * -ENOENT when there is no such session. Shared with a cache: read-only; caller json_decref's. */
int cas_session_load(struct cas_state *st, const char *name, json_t **record, json_t **secrets);
void cas_run_post(struct cas_state *st, struct http_request *req, struct http_response *r);

/* policy.c: the owner's trust policy (a default one when none is stored); caller json_decref's */
json_t *cas_policy_load(struct cas_state *st);
/* policy.c: registrars, identities the owner allowed to register and list backups and nothing else.
 * Loaded at start (-EBADMSG: the record is damaged); is_registrar takes st->lock. */
int cas_registrars_load(struct cas_state *st);
bool cas_is_registrar(struct cas_state *st, const char *key_hash);
void cas_registrar_allow(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_registrar_deny(struct cas_state *st, struct http_request *req, struct http_response *r);
/* The registrars for GET /v1/owner: [{key_hash, allowed_at}]; NULL when the record is damaged. */
json_t *cas_registrars_list(struct cas_state *st);

/* register.c, backups.c: the primary's side of backup registration, listing and removal */
void cas_backups_register(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backups_confirm(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backups_list(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backups_remove(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backups_prune(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_policy_allow(struct cas_state *st, struct http_request *req, struct http_response *r);
/* audit.c: appends an audit record (takes details), in one database transaction with the extra ops
 * (at most 6): a change and its record are written together or not at all. */
int cas_audit(struct cas_state *st, const char *event, json_t *details, const struct cas_db_op *extra,
              size_t extra_count);

/* rotate.c: removes a platform's entry and rotates the database key (st->lock held). -ENOENT when
 * the platform has no entry. */
/* Removes the entries m matches and rotates the database key (one rotation however many go). */
int cas_rotate_key(struct cas_state *st, const struct cas_ks_match *m);

/* las_gate.c: lasd requests of the HTTP workers go through one thread; a worker waits at most 1 s
 * and gets -ETIMEDOUT at once while lasd is stuck. */
int cas_las_gate_start(const struct cas_las_ops *ops, void *ctx, const char *what);
int cas_las_gate_quote(const uint8_t report_data[CUSTOS_REPORT_DATA_SIZE], struct custos_quote *out, char *err,
                       size_t err_size);

/* backup.c: the ephemeral backup CAS */
void cas_backup_get_healthz(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backup_get_request(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backup_post_complete(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backup_post_finish(struct cas_state *st, struct http_request *req, struct http_response *r);
/* Makes the quoted request and the TLS identity. */
int cas_backup_prepare(struct cas_state *st);
/* While the HTTPS server runs: returns when the registration is done (and relayed as finished, or
 * after CAS_BACKUP_LINGER_S), at the timeout (-ETIMEDOUT), or when *stop becomes non-zero. */
int cas_backup_wait(struct cas_state *st, long long timeout_s, const volatile sig_atomic_t *stop);
void cas_backup_wipe(struct cas_state *st);
