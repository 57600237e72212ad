/* SPDX-License-Identifier: Apache-2.0 */
/* The reconciler: wakes on every change the informers see and at least every
 * CONTROLLER_LOOP_INTERVAL_SECONDS (the resync, which also reads CAS's list of backups), decides for
 * each eligible node whether it holds a registered backup, queues registrations, keeps the
 * `cas-registered-<cas>.<namespace>` labels right and prints the reference's summary.
 *
 * A node is registered when CAS lists an entry of (its platform, the measurement of the backup
 * image's casd: BACKUP_CAS_MEASUREMENT, else the primary's current one; an entry without a
 * measurement counts for any), its platform being
 *   - its LAS key (from its LAS pod's log) (the primary's own included), or
 *   - without a LAS key: the platform of its last registration (annotation), when its boot ID has not
 *     changed since (the reference's fallback).
 * So during a CAS upgrade (a new measurement) every node, CAS's own included, is registered again.
 * Its label is removed only when its platform is known to differ from the registered one (a new LAS
 * key), or CAS lists no entry of the registered platform at all: a restart of every node (new boot
 * IDs, same platforms) keeps every label, and so does an upgrade in progress. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller.h"

/* `cas backups list --json`: which platforms can open CAS's database. */
static void fetch_cas(struct ctl *c)
{
    const char *args[] = {"backups", "list", "--json", "--cas", c->s.cas_name, NULL};
    char *out = NULL, err[512];
    size_t size = 0, all = 0;
    int ret = ctl_run_cas(c, args, c->s.register_timeout, NULL, &out, &all, &size);
    struct ctl_backup *list = NULL;
    size_t n = 0;
    char primary[CTL_PLATFORM_LEN + 1], measurement[CTL_MEASUREMENT_LEN + 1];
    if (ret == 0 && out && ctl_backups_parse(out, size, &list, &n, primary, measurement, err, sizeof(err)) == 0) {
        pthread_mutex_lock(&c->lock);
        free(c->cas_platforms);
        c->cas_platforms = list;
        c->n_cas_platforms = n;
        memcpy(c->primary_platform, primary, sizeof(primary));
        if (!c->s.measurement && strcmp(c->primary_measurement, measurement) != 0)
            LOG_MODULE_INFO(CTL_LOG, "Registering backups for measurement %s (CAS's current casd)",
                            measurement[0] ? measurement : "any (CAS does not say its own)");
        memcpy(c->primary_measurement, measurement, sizeof(measurement));
        if (!c->cas_known)
            LOG_MODULE_INFO(CTL_LOG, "CAS %s lists %zu key-store entries that can open its database", c->s.cas_name, n);
        c->cas_known = true;
        c->cas_fetched = ctl_now();
        pthread_mutex_unlock(&c->lock);
    } else {
        pthread_mutex_lock(&c->lock);
        c->cas_fetched = ctl_now(); /* the time of the attempt: the next one waits */
        pthread_mutex_unlock(&c->lock);
        if (ret == 0)
            LOG_MODULE_ERROR(CTL_LOG, "cannot read the backups of CAS %s: %s", c->s.cas_name, err);
        else
            LOG_MODULE_ERROR(CTL_LOG, "cannot read the backups of CAS %s: `cas backups list` %s: %.300s", c->s.cas_name,
                             ret == -ETIMEDOUT ? "timed out" : "failed", out ? out : "");
    }
    free(out);
}

#define LAS_ATTEMPTS 10 /* one per second: a LAS pod is Ready a moment before it logs its key */

/* Whether a node's LAS log should be read now (under c->lock). */
static bool las_due(const struct ctl_node *n, double now)
{
    return n->las_stale || (n->las_retry_at > 0 && now >= n->las_retry_at);
}

/* Reads the LAS key of every node whose LAS pod changed. A log without a key (yet), or an error, is
 * read again each second; the node keeps its last key meanwhile, and falls back to its boot ID only
 * when the attempts are used up. */
static void refresh_las_keys(struct ctl *c)
{
    double now = ctl_now();
    for (;;) {
        char node_uid[CTL_UID_MAX + 1] = "", node_name[CTL_NAME_MAX + 1], pod[CTL_NAME_MAX + 1],
                                    pod_uid[CTL_UID_MAX + 1];
        long long restarts = 0;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n_nodes && !node_uid[0]; i++) {
            struct ctl_node *n = &c->nodes[i];
            if (!las_due(n, now))
                continue;
            n->las_stale = false;
            n->las_retry_at = 0;
            for (size_t j = 0; j < c->n_las; j++) {
                const struct ctl_pod_view *p = &c->las_pods[j].v;
                if (!strcmp(p->node, n->v.name) && p->ready && !p->deleting) {
                    strcpy(node_uid, n->v.uid);
                    strcpy(node_name, n->v.name);
                    strcpy(pod, p->name);
                    strcpy(pod_uid, p->uid);
                    restarts = p->restarts;
                    break;
                }
            }
        }
        pthread_mutex_unlock(&c->lock);
        if (!node_uid[0])
            return;
        char path[800], *log = NULL, err[512], key[CTL_PLATFORM_LEN + 1] = "";
        size_t size = 0;
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/log?limitBytes=1048576", c->s.las_namespace, pod);
        int st = kube_get_text(c->kube, path, 1u << 20, &log, &size, err, sizeof(err));
        bool found = st == 200 && ctl_las_key_parse(log, size, key) == 0;
        if (st == 200 && !found)
            snprintf(err, sizeof(err), "its log holds no public key");
        free(log);
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n_nodes; i++) {
            struct ctl_node *n = &c->nodes[i];
            if (strcmp(n->v.uid, node_uid) != 0)
                continue;
            strcpy(n->las_pod_uid, pod_uid);
            n->las_restarts = restarts;
            if (!found && ++n->las_attempts < LAS_ATTEMPTS) {
                n->las_retry_at = ctl_now() + 1.0;
                break;
            }
            if (!found) {
                LOG_MODULE_WARN(CTL_LOG, "cannot read the LAS key of node %s from pod %s: %s; using its boot ID",
                                node_name, pod, err);
                n->las_key[0] = 0;
            } else if (n->las_key[0] && strcmp(key, n->las_key) != 0) {
                LOG_MODULE_INFO(CTL_LOG, "LAS key of node %s changed: %.16s... -> %.16s...", n->v.name, n->las_key,
                                key);
            }
            if (found)
                strcpy(n->las_key, key);
            n->las_attempts = 0;
        }
        pthread_mutex_unlock(&c->lock);
    }
}

struct label_change {
    char node[CTL_NAME_MAX + 1];
    bool add;
};

static void apply_label(struct ctl *c, const struct label_change *l)
{
    char path[600], err[512];
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", l->node);
    json_t *patch = l->add ? json_pack("{s:{s:{s:s}}}", "metadata", "labels", c->s.label_key, "true")
                           : json_pack("{s:{s:{s:n}}}", "metadata", "labels", c->s.label_key);
    int st = patch ? kube_request(c->kube, "PATCH", path, patch, "application/merge-patch+json", NULL, err, sizeof(err))
                   : -ENOMEM;
    json_decref(patch);
    if (st != 200)
        LOG_MODULE_WARN(CTL_LOG, "cannot %s label %s on node %s: %s", l->add ? "set" : "remove", c->s.label_key,
                        l->node, err);
    else if (!l->add)
        LOG_MODULE_INFO(CTL_LOG, "node %s: label %s removed (its platform no longer matches a registered backup)",
                        l->node, c->s.label_key);
}

/* One decision pass over the nodes (under c->lock). Label changes are collected for after the lock. */
static json_t *decide(struct ctl *c, struct label_change **labels, size_t *n_labels)
{
    json_t *summary = json_object();
    double now = ctl_now();
    unsigned eligible = 0, registered = 0, backups = 0;
    const char *measurement = ctl_target_measurement(c);
    *labels = calloc(c->n_nodes ? c->n_nodes : 1, sizeof(**labels));
    *n_labels = 0;
    for (size_t i = 0; i < c->n_nodes; i++) {
        struct ctl_node *n = &c->nodes[i];
        if (n->v.control_plane)
            continue;
        bool has_las = false;
        for (size_t j = 0; j < c->n_las && !has_las; j++)
            has_las = !strcmp(c->las_pods[j].v.node, n->v.name);
        if (!has_las)
            n->las_key[0] = 0; /* no LAS pod: fall back to the boot ID */
        const char *platform = n->las_key[0] ? n->las_key : n->v.reg_platform;
        bool reg;
        if (n->las_key[0])
            reg = ctl_cas_lists(c, n->las_key, measurement);
        else
            reg = n->v.reg_platform[0] && (!c->cas_known || ctl_cas_lists(c, n->v.reg_platform, measurement)) &&
                  !strcmp(n->v.reg_boot, n->v.boot_id);
        /* the label goes only when no build can open the database there: during an upgrade a node
         * not yet registered for the new build still holds the running one's entry */
        bool differs = (n->las_key[0] && n->v.reg_platform[0] && strcmp(n->las_key, n->v.reg_platform) != 0) ||
                       (c->cas_known && n->v.reg_platform[0] && !ctl_cas_lists(c, n->v.reg_platform, NULL));
        if (n->job != JOB_NONE)
            reg = false;
        n->registered = reg;
        eligible++;
        if (reg) {
            registered++;
            if (strcmp(platform, c->primary_platform) != 0)
                backups++;
        }
        json_object_set_new(summary, n->v.name, json_boolean(reg));
        /* a node under registration keeps its label until the outcome is known */
        if (*labels && n->job == JOB_NONE && ((reg && !n->v.labelled) || (!reg && differs && n->v.labelled))) {
            strcpy((*labels)[*n_labels].node, n->v.name);
            (*labels)[(*n_labels)++].add = reg;
            n->v.labelled = reg;
        }
        if (!reg && n->job == JOB_NONE && n->v.ready && !n->v.unschedulable && now >= n->next_try && c->cas_known &&
            c->leader) {
            n->job = JOB_QUEUED;
            c->running++;
        }
    }
    c->m.eligible = eligible;
    c->m.registered = registered;
    c->m.backup_nodes = backups;
    pthread_cond_broadcast(&c->wake);
    return summary;
}

static void print_summary(json_t *summary)
{
    char *text = json_dumps(summary, JSON_INDENT(4) | JSON_SORT_KEYS);
    LOG_MODULE_INFO(CTL_LOG, "Nodes with registered CAS backups (check logs for failed registrations):");
    if (text) {
        fprintf(stderr, "%s\n", text);
        fflush(stderr);
    }
    free(text);
}

static void check_minimum(struct ctl *c, bool periodic)
{
    pthread_mutex_lock(&c->lock);
    if (c->running || !c->cas_known) { /* judged once CAS's list is known and nothing runs */
        pthread_mutex_unlock(&c->lock);
        return;
    }
    unsigned have = c->m.backup_nodes;
    bool below = have < (unsigned)c->s.min_backups, was = c->m.below_minimum;
    c->m.below_minimum = below;
    pthread_mutex_unlock(&c->lock);
    if (below && (periodic || !was))
        LOG_MODULE_WARN(CTL_LOG,
                        "only %u node(s) other than CAS's own hold a registered backup (MIN_BACKUPS=%lld): if CAS's "
                        "node is lost, CAS may have nowhere to move",
                        have, c->s.min_backups);
    if (below && !was && c->lease_uid[0]) { /* the Event is about the Lease (with leader election) */
        struct ctl_object lease = {"coordination.k8s.io/v1", "Lease", c->s.lease_name, c->lease_uid, c->s.namespace};
        ctl_event(c, &lease, true, "TooFewBackups",
                  "CAS %s (namespace %s): %u node(s) besides its own hold a backup, fewer than %lld", c->s.cas_name,
                  c->s.namespace, have, c->s.min_backups);
    }
}

void ctl_cleanup_pods(struct ctl *c, const char *why)
{
    char path[1200], sel[700], err[512];
    kube_query_escape(c->s.managed_selector, sel, sizeof(sel));
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?labelSelector=%s", c->s.namespace, sel);
    json_t *list = NULL;
    int st = kube_request(c->kube, "GET", path, NULL, NULL, &list, err, sizeof(err));
    if (st != 200) {
        LOG_MODULE_WARN(CTL_LOG, "cannot list backup pods left behind: %s", err);
        json_decref(list);
        pthread_mutex_lock(&c->lock);
        c->delete_failed = true;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(list, "items"), i, p) {
        const json_t *meta = json_object_get(p, "metadata");
        const char *name = json_string_value(json_object_get(meta, "name"));
        if (!name || !ctl_name_valid(name, CTL_NAME_MAX) || json_object_get(meta, "deletionTimestamp"))
            continue;
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", c->s.namespace, name);
        st = kube_request(c->kube, "DELETE", path, NULL, NULL, NULL, err, sizeof(err));
        if (st == 200 || st == 202)
            LOG_MODULE_INFO(CTL_LOG, "deleted backup pod %s (%s)", name, why);
        else if (st != 404) {
            LOG_MODULE_WARN(CTL_LOG, "cannot delete backup pod %s: %s", name, err);
            pthread_mutex_lock(&c->lock);
            c->delete_failed = true;
            pthread_mutex_unlock(&c->lock);
        }
    }
    json_decref(list);
}

void ctl_reconcile_loop(struct ctl *c)
{
    double next_pass = 0;
    bool was_leader = false;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        double now = ctl_now();
        bool synced = c->nodes_synced && c->pods_synced && c->las_synced;
        bool cas_due = !c->cas_known && now - c->cas_fetched >= 5, due = cas_due; /* unknown: every 5 s */
        for (size_t i = 0; i < c->n_nodes && !due; i++) {
            const struct ctl_node *n = &c->nodes[i];
            due = las_due(n, now) || (!n->registered && n->job == JOB_NONE && n->next_try > 0 && now >= n->next_try);
        }
        if (!(c->changed || due || now >= next_pass) || !synced || !c->leader) {
            ctl_wait_ms(&c->wake, &c->lock, 1000);
            continue;
        }
        bool periodic = now >= next_pass || !was_leader;
        bool first = !was_leader;
        /* a deletion that failed (e.g. the API was away) is done again when nothing runs */
        bool cleanup = periodic && !c->running && c->delete_failed;
        if (cleanup)
            c->delete_failed = false;
        was_leader = true;
        c->changed = false;
        pthread_mutex_unlock(&c->lock);
        if (first || cleanup)
            ctl_cleanup_pods(c, first ? "left by an earlier run" : "its deletion had failed");
        if (periodic || cas_due) { /* CAS's list */
            fetch_cas(c);
            pthread_mutex_lock(&c->lock);
            for (size_t i = 0; i < c->n_nodes; i++)
                if (!c->nodes[i].las_key[0] && !c->nodes[i].las_retry_at) /* read again what failed */
                    c->nodes[i].las_stale = true;
            pthread_mutex_unlock(&c->lock);
        }
        refresh_las_keys(c);
        pthread_mutex_lock(&c->lock);
        if (!c->leader) {
            was_leader = false;
            continue;
        }
        struct label_change *labels = NULL;
        size_t n_labels = 0;
        json_t *summary = decide(c, &labels, &n_labels);
        bool report = periodic || (c->running == 0 && c->completed_since_summary > 0);
        if (report)
            c->completed_since_summary = 0;
        if (periodic)
            next_pass = ctl_now() + (double)c->s.interval;
        pthread_mutex_unlock(&c->lock);
        for (size_t i = 0; i < n_labels; i++)
            apply_label(c, &labels[i]);
        free(labels);
        if (report && summary) {
            print_summary(summary);
            check_minimum(c, periodic);
        }
        json_decref(summary);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
}
