/* SPDX-License-Identifier: Apache-2.0 */
/* casd internals: the state of a running CAS, its start-up, its HTTPS API and its handlers. */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <microhttpd.h>

#include "custos.h"
#include "db.h"
#include "keystore.h"

#define CAS_LOG "cas"
#define CAS_SEAL_LABEL "cas-db"
#define CAS_MAX_BODY (1u << 20)

#define REC_IDENTITY "cas/identity-key"
#define REC_TOKEN "cas/provisioning-token"
#define REC_OWNER "cas/owner"

struct cas_state {
    /* configuration */
    const char *las;
    const char *db_dir;
    const char *node_name;
    const char *listen;
    unsigned threads, max_connections, timeout_s;
    char keystore_path[PATH_MAX];
    /* this node, as lasd reports it */
    char platform_id[CUSTOS_PLATFORM_ID_LEN + 1];
    char platform_kind[8];
    uint32_t tcb;
    uint8_t measurement[CUSTOS_MEASUREMENT_SIZE];
    /* secrets (mlock'ed with the structure, wiped at exit) */
    uint8_t dbkey[32];
    char token[65];
    struct cas_db *db;
    /* TLS identity */
    EVP_PKEY *tls_key;
    char *tls_key_pem;
    char *tls_cert_pem;
    char key_hash[65];
    /* ownership; guarded by lock */
    pthread_mutex_t lock;
    bool provisioned;
    char owner_hash[65];
    atomic_bool cert_changed; /* the certificate's names changed: restart the TLS listener */
};

/* startup.c */
int cas_open_database(struct cas_state *st);
int cas_load_identity(struct cas_state *st);
int cas_make_certificate(struct cas_state *st);
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

/* api.c */
void cas_route(struct cas_state *st, struct http_request *req, struct http_response *resp);
