/* SPDX-License-Identifier: Apache-2.0 */
/* A small Kubernetes API client on libcurl + jansson: credentials (kubeconfig or in-cluster), one
 * shared connection pool, bounded requests whose errors keep the API's Status message, and
 * list+watch with resourceVersion, bookmarks and relist on 410 Gone. Thread-safe: any number of
 * threads may call into one client. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/* Bounds on what the API may send us. */
#define KUBE_MAX_RESPONSE (16u << 20) /* one answer (a page of a list, a log) */
#define KUBE_MAX_EVENT (4u << 20)     /* one watch event line (etcd stores objects of at most 1.5 MiB) */
#define KUBE_LIST_PAGE 100            /* objects per list page (?limit=): bounds memory while listing */

struct kube_config {
    char *server;      /* https://host:port, no trailing slash */
    char *ca_pem;      /* CA bundle (PEM) or NULL (system store) */
    char *cert_pem;    /* client certificate (PEM) or NULL */
    char *key_pem;     /* client key (PEM, secret) or NULL */
    char *token;       /* bearer token (secret) or NULL */
    char *token_file;  /* re-read when it changes (in-cluster service-account token) */
    char *namespace;   /* the context's namespace, or NULL */
    bool insecure;     /* insecure-skip-tls-verify: true in the kubeconfig */
    char source[4096]; /* where it came from, for messages: a file path or "in-cluster" */
};

/* Parses a kubeconfig (YAML or JSON) and selects its current context (or `context` if not NULL).
 * Relative file references are taken from base_dir. Every field is checked; errors name the field
 * path (e.g. "users[0].user.client-key: file ... cannot be read"). */
int kube_config_parse(const char *text, size_t size, const char *base_dir, const char *context, struct kube_config *out,
                      char *err, size_t err_size);
/* In-cluster credentials: KUBERNETES_SERVICE_HOST/PORT and the service-account directory (token, CA,
 * namespace; `sa_dir` NULL means /var/run/secrets/kubernetes.io/serviceaccount). */
int kube_config_in_cluster(const char *sa_dir, struct kube_config *out, char *err, size_t err_size);
/* The usual order: `path` if given, else $KUBECONFIG (first file), else ~/.kube/config if it exists,
 * else in-cluster (from $KUBE_SERVICE_ACCOUNT_DIR if set, else the standard directory). */
int kube_config_load(const char *path, struct kube_config *out, char *err, size_t err_size);
void kube_config_free(struct kube_config *c);

struct kube_client;
struct kube_stats {
    unsigned long requests, errors, watch_events, relists;
};

/* Takes over *cfg (the caller's copy is cleared). Timeouts in seconds. */
struct kube_client *kube_client_new(struct kube_config *cfg, long connect_timeout, long request_timeout, char *err,
                                    size_t err_size);
void kube_client_free(struct kube_client *c);
void kube_client_stats(struct kube_client *c, struct kube_stats *out);

/* One request. `body` may be NULL; content_type NULL means application/json. Returns the HTTP status
 * (the body, if JSON, in *out, may be NULL) or a negative errno for a transport failure. For a
 * non-2xx status err holds "HTTP <code>: <Status message> (<reason>)". */
int kube_request(struct kube_client *c, const char *method, const char *path, const json_t *body,
                 const char *content_type, json_t **out, char *err, size_t err_size);
/* A plain-text GET (e.g. pods/log) of at most `max` bytes: *out is NUL-terminated, caller frees. */
int kube_get_text(struct kube_client *c, const char *path, size_t max, char **out, size_t *out_size, char *err,
                  size_t err_size);

/* Writes "message (reason)" from an API Status object, or a generic text for `status`. */
void kube_status_text(const json_t *body, int status, char *out, size_t out_size);

/* ---- list + watch ----------------------------------------------------------------------------- */
enum kube_event { KUBE_ADDED, KUBE_MODIFIED, KUBE_DELETED, KUBE_BOOKMARK, KUBE_ERROR };

/* Parses one line of a watch stream: {"type": ..., "object": {...}}. For KUBE_ERROR *obj is the Status
 * and *code its code (410: the resourceVersion is too old). Caller frees *obj. */
int kube_watch_event_parse(const char *line, size_t size, enum kube_event *type, json_t **obj, int *code, char *err,
                           size_t err_size);

/* Splits a byte stream into lines, bounded: a line longer than `max` is dropped whole and counted. */
struct kube_lines {
    char *buf;
    size_t len, cap, max;
    bool dropping;
    unsigned long dropped;
};
typedef int (*kube_line_fn)(void *ctx, const char *line, size_t size);
int kube_lines_feed(struct kube_lines *l, const char *data, size_t size, kube_line_fn fn, void *ctx);
void kube_lines_free(struct kube_lines *l);

/* Informer callbacks. A (re)list calls list_begin, event(KUBE_ADDED) for every object, then list_end:
 * objects not seen since list_begin are gone. Watch events follow. */
struct kube_watch_ops {
    void (*event)(void *ctx, enum kube_event type, json_t *obj);
    void (*list_begin)(void *ctx);
    void (*list_end)(void *ctx);
    void (*failed)(void *ctx, const char *err); /* an error; the watcher retries with back-off */
};

/* Lists `path` (e.g. "/api/v1/nodes") with `selector` (labelSelector, may be NULL) page by page, then
 * watches from the list's resourceVersion with bookmarks, relisting on 410 Gone, until *stop is set.
 * Errors are reported through ops->failed and retried with exponential back-off (1 s .. 30 s). */
void kube_reflect(struct kube_client *c, const char *path, const char *selector, const struct kube_watch_ops *ops,
                  void *ctx, volatile int *stop);

/* Percent-encodes a query value (label selectors hold '=' and ','). */
void kube_query_escape(const char *in, char *out, size_t out_size);
