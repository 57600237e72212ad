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
#define CAS_MAX_URL 8192u                 /* longer request URIs: 414 (JSON) */
#define CAS_HEADER_MEMORY (128u << 10)    /* libmicrohttpd's per-connection pool */

#define REC_IDENTITY "cas/identity-key"
#define REC_TOKEN "cas/provisioning-token"
#define REC_OWNER "cas/owner"
#define REC_POLICY "cas/policy"
#define REC_AUDIT_NEXT "audit/next"
#define CAS_PENDING_MAX 32
#define CAS_REQUEST_MAX_AGE 600 /* seconds a backup request stays valid */
#define CAS_BACKUP_LINGER_S 60  /* a completed backup waits this long for the relay's "finished" */

struct http_request;
struct http_response;
struct cas_state;
typedef void (*cas_route_fn)(struct cas_state *st, struct http_request *req, struct http_response *resp);

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

struct cas_state {
    cas_route_fn route;
    /* configuration */
    const char *las;
    const char *db_dir;
    const char *node_name;
    const char *listen;
    const char *cas_key_hash; /* backup mode: accept offers of this CAS only (NULL: any) */
    unsigned threads, max_connections, timeout_s, header_timeout_s, max_per_address;
    char keystore_path[PATH_MAX];
    int lock_fd; /* flock on DIR.lock: one casd per database */
    /* this node, as lasd reports it */
    char platform_id[CUSTOS_PLATFORM_ID_LEN + 1];
    char platform_kind[8];
    uint32_t tcb;
    uint32_t uid; /* the user casd runs as, as lasd sees it */
    uint8_t measurement[CUSTOS_MEASUREMENT_SIZE];
    /* secrets (mlock'ed with the structure, wiped at exit) */
    uint8_t dbkey[32];
    char token[65];
    struct cas_db *db;
    /* TLS identity */
    EVP_PKEY *tls_key;
    char *tls_key_pem;
    char *tls_cert_pem;      /* guarded by lock once serving */
    char *old_certs[8];      /* replaced certificates, kept until exit (a reader may hold one) */
    size_t old_cert_count;
    char key_hash[65];
    /* ownership; changed under lock. Set once: owner_hash is written before provisioned becomes
     * true, so a reader that sees provisioned (an atomic load) may read owner_hash without lock. */
    pthread_mutex_t lock;
    atomic_bool provisioned;
    char owner_hash[65];
    atomic_bool cert_changed; /* the certificate's names changed: restart the TLS listener */
    /* backups (primary); guarded by lock */
    struct cas_keystore ks;
    struct cas_pending pending[CAS_PENDING_MAX];
    /* backup mode */
    struct cas_backup_session *backup;
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
    char caller[65]; /* key hash of the client certificate's public key */
};
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
void cas_route(struct cas_state *st, struct http_request *req, struct http_response *resp);
bool cas_require_owner(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_attestation_report_data(const uint8_t key_hash[32], const uint8_t *nonce, size_t nonce_size,
                                 uint8_t out[CUSTOS_REPORT_DATA_SIZE]);

/* register.c: the primary's side of backup registration, the key-store and the owner's policy */
void cas_backups_register(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backups_confirm(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backups_list(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_backups_remove(struct cas_state *st, struct http_request *req, struct http_response *r);
void cas_policy_allow(struct cas_state *st, struct http_request *req, struct http_response *r);
/* Appends an audit record (takes details), in one database transaction with the extra ops (at most
 * 6): a change and its record are written together or not at all. */
int cas_audit(struct cas_state *st, const char *event, json_t *details, const struct cas_db_op *extra,
              size_t extra_count);

/* rotate.c: removes a platform's entry and rotates the database key (st->lock held). -ENOENT when
 * the platform has no entry. */
int cas_rotate_key(struct cas_state *st, const char *remove_id);

/* las_gate.c: lasd requests of the HTTP workers go through one thread; a worker waits at most 1 s
 * and gets -ETIMEDOUT at once while lasd is stuck. */
int cas_las_gate_start(const char *socket);
int cas_las_gate_quote(const uint8_t report_data[CUSTOS_REPORT_DATA_SIZE], struct custos_quote *out, char *err,
                       size_t err_size);

/* main.c */
extern volatile sig_atomic_t g_stop;

/* backup.c: the ephemeral backup CAS */
int cas_backup_run(struct cas_state *st, long long timeout_s);
