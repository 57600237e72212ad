/* SPDX-License-Identifier: Apache-2.0 */
/* cas-backup-controller: keeps a registered CAS backup for every eligible node of a cluster. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "custos.h"
#include "kube.h"

#define CTL_LOG "cbc"
#define CTL_NAME_MAX 253   /* a DNS-1123 subdomain (node and pod names) */
#define CTL_UID_MAX 64     /* metadata.uid */
#define CTL_BOOT_ID_MAX 64 /* status.nodeInfo.bootID (a UUID; longer values are refused) */
#define CTL_PLATFORM_LEN 66
#define CTL_IP_MAX 45
#define CTL_LABEL_MAX 317 /* prefix (253) + '/' + name (63) */

struct ctl_settings {
    const char *config, *session, *cas, *kubeconfig;
    const char *image, *backup_name, *namespace, *las_addr, *las_host_dir;
    const char *selector, *las_selector, *las_namespace;
    const char *sgx_resource, *sgx_quantity, *cas_cli, *metrics_addr, *identity, *lease_name;
    const char *run_as_user;
    const char *measurement; /* BACKUP_CAS_MEASUREMENT: the casd of `image` (64 hex, lowercased); NULL: CAS's own */
    const char *cas_run, *list_service, *key_hash_opt, *cas_name_opt, *run_las; /* --session mode */
    long long interval, max_parallel, min_backups, ready_timeout, register_timeout, backup_port;
    long long retry_base, retry_max, lease_seconds;
    bool leader_election;
    /* derived */
    const char *cas_name;   /* the CAS's name in the CLI configuration (session mode: CAS_NAME or the host) */
    char session_list[260]; /* session mode: SESSION/LIST_SERVICE, for `cas backups list` */
    char cas_label[64];     /* the same, label-safe */
    char cas_key_hash[65];  /* pinned in the CLI configuration; passed to every backup pod */
    char label_key[CTL_LABEL_MAX + 1];
    char annot_platform[CTL_LABEL_MAX + 1], annot_boot[CTL_LABEL_MAX + 1];
    char managed_selector[600]; /* the labels of the pods this controller creates */
};

#define CTL_MEASUREMENT_LEN 64

/* An entry of CAS's key-store: a platform and the casd measurement it opens for ("": any, an entry of
 * a version 2 key-store). */
struct ctl_backup {
    char platform[CTL_PLATFORM_LEN + 1], measurement[CTL_MEASUREMENT_LEN + 1];
};

/* What the controller keeps of a Node (parsed and bounded by ctl_node_parse). */
struct ctl_node_view {
    char name[CTL_NAME_MAX + 1], uid[CTL_UID_MAX + 1], boot_id[CTL_BOOT_ID_MAX + 1], ip[CTL_IP_MAX + 1];
    bool control_plane, unschedulable, ready, labelled;
    char reg_platform[CTL_PLATFORM_LEN + 1], reg_boot[CTL_BOOT_ID_MAX + 1]; /* our annotations */
};

/* What the controller keeps of a Pod. */
struct ctl_pod_view {
    char name[CTL_NAME_MAX + 1], uid[CTL_UID_MAX + 1], node[CTL_NAME_MAX + 1], ip[CTL_IP_MAX + 1];
    char phase[16], waiting[128];
    bool ready, deleting;
    long long restarts;
};

enum ctl_job { JOB_NONE, JOB_QUEUED, JOB_RUNNING };

struct ctl_node {
    struct ctl_node_view v;
    bool seen; /* during a relist */
    /* LAS: the public key read from the log of the node's LAS pod */
    char las_pod_uid[CTL_UID_MAX + 1];
    long long las_restarts;
    bool las_stale;        /* the LAS pod changed: read its log again */
    unsigned las_attempts; /* reads that found no key yet (a LAS pod logs it just after it starts) */
    double las_retry_at;   /* when to read again (0: no retry pending) */
    char las_key[CTL_PLATFORM_LEN + 1];
    /* registration */
    enum ctl_job job;
    unsigned failures;
    double next_try; /* monotonic seconds */
    bool registered; /* last decision */
};

struct ctl_pod {
    struct ctl_pod_view v;
    bool seen;
};

struct ctl_metrics {
    unsigned long ok, failed;
    unsigned long hist[10]; /* registration duration buckets, see metrics.c */
    double hist_sum;
    unsigned eligible, registered, backup_nodes;
    bool below_minimum;
};

struct ctl {
    struct ctl_settings s;
    struct kube_client *kube;
    pthread_mutex_t lock;
    pthread_cond_t wake;    /* the reconciler: something changed */
    pthread_cond_t pods_cv; /* a backup pod changed */
    struct ctl_node *nodes;
    size_t n_nodes, cap_nodes;
    struct ctl_pod *pods;
    size_t n_pods, cap_pods;
    struct ctl_pod *las_pods;
    size_t n_las, cap_las;
    bool nodes_synced, pods_synced, las_synced;
    bool changed;
    /* CAS's key-store entries (primary and backups), from `cas backups list` */
    struct ctl_backup *cas_platforms;
    size_t n_cas_platforms;
    char primary_platform[CTL_PLATFORM_LEN + 1];
    char primary_measurement[CTL_MEASUREMENT_LEN + 1]; /* of the entry CAS runs on ("": unknown) */
    bool cas_known;
    double cas_fetched;
    /* jobs */
    unsigned running, completed_since_summary;
    bool delete_failed; /* a backup pod could not be deleted: the next pass deletes what is left */
    bool leader;
    char lease_uid[CTL_UID_MAX + 1];
    struct ctl_metrics m;
    volatile int stop;
    char self[256];
};

/* worker.c: monotonic seconds; a condition wait of at most ms (lock held); whether CAS's list holds
 * an entry of `platform` for `measurement` (NULL: any measurement; an entry without one counts for
 * every measurement) (lock held); the measurement nodes are registered for: BACKUP_CAS_MEASUREMENT,
 * else the primary's current one, else NULL (unknown: any entry of the platform counts) (lock held) */
double ctl_now(void);
void ctl_wait_ms(pthread_cond_t *cv, pthread_mutex_t *lock, long ms);
bool ctl_cas_lists(const struct ctl *c, const char *platform, const char *measurement);
const char *ctl_target_measurement(const struct ctl *c);

/* parse.c: untrusted API objects into bounded views (fuzzed by fuzz_controller). */
int ctl_node_parse(const json_t *node, const struct ctl_settings *s, struct ctl_node_view *out, char *err,
                   size_t err_size);
int ctl_pod_parse(const json_t *pod, struct ctl_pod_view *out, char *err, size_t err_size);
/* The LAS public key (platform ID) in a LAS log: the last "public key: <66 hex>" line. */
int ctl_las_key_parse(const char *log, size_t size, char out[CTL_PLATFORM_LEN + 1]);
/* The platform ID in the output of `cas register-backup` ("node N, platform P, TCB T"). */
int ctl_register_output_platform(const char *out, size_t size, char platform[CTL_PLATFORM_LEN + 1]);
/* The entries (platform, measurement) of a `cas backups list --json` answer; primary and
 * primary_measurement get those of the entry CAS runs on ("current", else "primary" for the platform;
 * "" when absent). Measurements are lowercased; "" for an entry without one (null or "any"). */
int ctl_backups_parse(const char *text, size_t size, struct ctl_backup **out, size_t *count,
                      char primary[CTL_PLATFORM_LEN + 1], char primary_measurement[CTL_MEASUREMENT_LEN + 1], char *err,
                      size_t err_size);
/* Whether s is 64 hex digits. */
bool ctl_measurement_valid(const char *s);
bool ctl_name_valid(const char *s, size_t max);

/* informers.c */
struct ctl_node *ctl_node_by_name(struct ctl *c, const char *name);
int ctl_informers_start(struct ctl *c, pthread_t *threads, size_t *n);

/* reconcile.c */
void ctl_reconcile_loop(struct ctl *c);
void ctl_cleanup_pods(struct ctl *c, const char *why);
/* worker.c: runs the cas CLI with the controller's configuration (through cas-run in session mode);
 * its stdout lines are logged with log_prefix (NULL: not logged), its stderr lines always (with
 * "[cas] " when log_prefix is NULL). *out holds stdout then stderr (*out_size bytes in all,
 * *stdout_size of them stdout's, when stdout_size is not NULL). Returns its exit status, or
 * -ETIMEDOUT/-ENOENT. */
int ctl_run_cas(struct ctl *c, const char *const *args, long long timeout, const char *log_prefix, char **out,
                size_t *out_size, size_t *stdout_size);

/* worker.c */
int ctl_workers_start(struct ctl *c, pthread_t *threads, size_t *n);
json_t *ctl_backup_pod(const struct ctl_settings *s, const char *node, const char *pod_name);
/* The object an Event is about. */
struct ctl_object {
    const char *api_version, *kind, *name, *uid, *namespace;
};
#define CTL_NODE_OBJECT(n) ((struct ctl_object){"v1", "Node", (n)->name, (n)->uid, NULL})
void ctl_event(struct ctl *c, const struct ctl_object *obj, bool warning, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* lease.c */
void *ctl_lease_thread(void *arg);
void ctl_lease_release(struct ctl *c);

/* metrics.c */
int ctl_metrics_start(struct ctl *c, char *err, size_t err_size);
void ctl_metrics_stop(void);
void ctl_metrics_observe(struct ctl *c, double seconds, bool ok);
