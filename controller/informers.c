/* SPDX-License-Identifier: Apache-2.0 */
/* Three list+watch loops keep the controller's view current: the nodes (filtered by SELECTOR_LABEL on
 * the server), the backup pods this controller creates (by their labels) and, with
 * LAS_SELECTOR_LABEL, the LAS pods. Each change wakes the reconciler. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller.h"

static struct ctl_node *node_find(struct ctl *c, const char *uid)
{
    for (size_t i = 0; i < c->n_nodes; i++)
        if (!strcmp(c->nodes[i].v.uid, uid))
            return &c->nodes[i];
    return NULL;
}

struct ctl_node *ctl_node_by_name(struct ctl *c, const char *name)
{
    for (size_t i = 0; i < c->n_nodes; i++)
        if (!strcmp(c->nodes[i].v.name, name))
            return &c->nodes[i];
    return NULL;
}

static void node_remove(struct ctl *c, size_t i)
{
    c->nodes[i] = c->nodes[--c->n_nodes];
}

/* Rate-limits the "skipped" messages of bad objects: one per object and problem. */
static void bad_object(const char *kind, const json_t *obj, const char *err)
{
    static char last[512];
    char line[512];
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    snprintf(line, sizeof(line), "%s %.64s skipped: %s", kind, name && strlen(name) < 300 ? name : "(unnamed)", err);
    if (strcmp(line, last) != 0)
        LOG_MODULE_WARN(CTL_LOG, "%s", line);
    snprintf(last, sizeof(last), "%s", line);
}

/* ---- nodes ------------------------------------------------------------------------------------ */
static void nodes_event(void *ctx, enum kube_event type, json_t *obj)
{
    struct ctl *c = ctx;
    struct ctl_node_view v;
    char err[512];
    if (ctl_node_parse(obj, &c->s, &v, err, sizeof(err)) < 0) {
        bad_object("node", obj, err);
        return;
    }
    pthread_mutex_lock(&c->lock);
    struct ctl_node *n = node_find(c, v.uid);
    if (type == KUBE_DELETED) {
        if (n && n->job == JOB_NONE) /* a running job removes it when it ends */
            node_remove(c, (size_t)(n - c->nodes));
        else if (n)
            n->v.ready = false;
    } else {
        if (!n) {
            if (c->n_nodes == c->cap_nodes) {
                size_t cap = c->cap_nodes ? c->cap_nodes * 2 : 64;
                struct ctl_node *a = realloc(c->nodes, cap * sizeof(*a));
                if (!a) {
                    pthread_mutex_unlock(&c->lock);
                    return;
                }
                c->nodes = a;
                c->cap_nodes = cap;
            }
            n = &c->nodes[c->n_nodes++];
            memset(n, 0, sizeof(*n));
        }
        n->v = v;
        n->seen = true;
    }
    c->changed = true;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

static void nodes_begin(void *ctx)
{
    struct ctl *c = ctx;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n_nodes; i++)
        c->nodes[i].seen = false;
    pthread_mutex_unlock(&c->lock);
}

static void nodes_end(void *ctx)
{
    struct ctl *c = ctx;
    pthread_mutex_lock(&c->lock);
    for (size_t i = c->n_nodes; i-- > 0;)
        if (!c->nodes[i].seen && c->nodes[i].job == JOB_NONE)
            node_remove(c, i);
    c->nodes_synced = true;
    c->changed = true;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
}

static void watch_failed(void *ctx, const char *err)
{
    (void)ctx;
    LOG_MODULE_WARN(CTL_LOG, "Kubernetes API: %s (retrying)", err);
}

/* ---- pods (backup pods and LAS pods share the code; two tables) ----------------------------- */
struct pod_table {
    struct ctl *c;
    struct ctl_pod **pods;
    size_t *n, *cap;
    bool *synced;
    bool las;
};

static void pods_event(void *ctx, enum kube_event type, json_t *obj)
{
    struct pod_table *t = ctx;
    struct ctl *c = t->c;
    struct ctl_pod_view v;
    char err[512];
    if (ctl_pod_parse(obj, &v, err, sizeof(err)) < 0) {
        bad_object("pod", obj, err);
        return;
    }
    pthread_mutex_lock(&c->lock);
    size_t i;
    for (i = 0; i < *t->n; i++)
        if (!strcmp((*t->pods)[i].v.uid, v.uid))
            break;
    if (type == KUBE_DELETED) {
        if (i < *t->n)
            (*t->pods)[i] = (*t->pods)[--*t->n];
    } else {
        if (i == *t->n) {
            if (*t->n == *t->cap) {
                size_t cap = *t->cap ? *t->cap * 2 : 16;
                struct ctl_pod *a = realloc(*t->pods, cap * sizeof(*a));
                if (!a) {
                    pthread_mutex_unlock(&c->lock);
                    return;
                }
                *t->pods = a;
                *t->cap = cap;
            }
            (*t->n)++;
        }
        (*t->pods)[i].v = v;
        (*t->pods)[i].seen = true;
    }
    if (t->las) {
        /* a LAS pod that is new, restarted or became ready may hold a new key: read its log again */
        struct ctl_node *n = ctl_node_by_name(c, v.node);
        if (n && type != KUBE_DELETED && v.ready &&
            (strcmp(n->las_pod_uid, v.uid) != 0 || n->las_restarts != v.restarts)) {
            n->las_stale = true;
            c->changed = true;
            pthread_cond_broadcast(&c->wake);
        }
    }
    pthread_cond_broadcast(&c->pods_cv);
    pthread_mutex_unlock(&c->lock);
}

static void pods_begin(void *ctx)
{
    struct pod_table *t = ctx;
    pthread_mutex_lock(&t->c->lock);
    for (size_t i = 0; i < *t->n; i++)
        (*t->pods)[i].seen = false;
    pthread_mutex_unlock(&t->c->lock);
}

static void pods_end(void *ctx)
{
    struct pod_table *t = ctx;
    pthread_mutex_lock(&t->c->lock);
    for (size_t i = *t->n; i-- > 0;)
        if (!(*t->pods)[i].seen)
            (*t->pods)[i] = (*t->pods)[--*t->n];
    *t->synced = true;
    t->c->changed = true;
    pthread_cond_broadcast(&t->c->wake);
    pthread_cond_broadcast(&t->c->pods_cv);
    pthread_mutex_unlock(&t->c->lock);
}

static const struct kube_watch_ops g_node_ops = {nodes_event, nodes_begin, nodes_end, watch_failed};
static const struct kube_watch_ops g_pod_ops = {pods_event, pods_begin, pods_end, watch_failed};

struct informer {
    struct ctl *c;
    char path[512];
    const char *selector;
    const struct kube_watch_ops *ops;
    void *ctx;
};

static void *informer_thread(void *arg)
{
    struct informer *in = arg;
    kube_reflect(in->c->kube, in->path, in->selector, in->ops, in->ctx, &in->c->stop);
    return NULL;
}

int ctl_informers_start(struct ctl *c, pthread_t *threads, size_t *n)
{
    static struct informer inf[3];
    static struct pod_table backup_pods, las_pods;
    backup_pods = (struct pod_table){c, &c->pods, &c->n_pods, &c->cap_pods, &c->pods_synced, false};
    las_pods = (struct pod_table){c, &c->las_pods, &c->n_las, &c->cap_las, &c->las_synced, true};
    size_t k = 0;
    inf[k] = (struct informer){c, "/api/v1/nodes", c->s.selector, &g_node_ops, c};
    k++;
    inf[k] = (struct informer){c, "", c->s.managed_selector, &g_pod_ops, &backup_pods};
    snprintf(inf[k].path, sizeof(inf[k].path), "/api/v1/namespaces/%s/pods", c->s.namespace);
    k++;
    if (c->s.las_selector && *c->s.las_selector) {
        inf[k] = (struct informer){c, "", c->s.las_selector, &g_pod_ops, &las_pods};
        snprintf(inf[k].path, sizeof(inf[k].path), "/api/v1/namespaces/%s/pods", c->s.las_namespace);
        k++;
    } else {
        c->las_synced = true;
    }
    for (size_t i = 0; i < k; i++) {
        int ret = pthread_create(&threads[*n], NULL, informer_thread, &inf[i]);
        if (ret != 0)
            return -ret;
        (*n)++;
    }
    return 0;
}
