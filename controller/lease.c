/* SPDX-License-Identifier: Apache-2.0 */
/* Leader election on a coordination.k8s.io/v1 Lease: replicas race to write their identity into it;
 * the holder renews it every lease/3 seconds, the others take it over when it has not changed for a
 * whole lease duration (measured on our own monotonic clock, as client-go does, so clock skew between
 * nodes does not matter). Writes carry the resourceVersion they read, so two replicas cannot both win.
 * On SIGTERM the holder releases it (empty holder) so a standby takes over at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller.h"

static void micro_now(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%.19s.%06dZ", base, (int)(ts.tv_nsec / 1000) % 1000000);
}

static void set_leader(struct ctl *c, bool leader)
{
    pthread_mutex_lock(&c->lock);
    bool was = c->leader;
    c->leader = leader;
    c->changed = true;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
    if (leader && !was)
        LOG_MODULE_INFO(CTL_LOG, "became the leader (Lease %s/%s, identity %s)", c->s.namespace, c->s.lease_name,
                        c->self);
    else if (!leader && was)
        LOG_MODULE_WARN(CTL_LOG, "lost the leadership (Lease %s/%s)", c->s.namespace, c->s.lease_name);
}

/* One attempt to acquire or renew; returns whether we hold the lease afterwards. */
static bool try_lease(struct ctl *c, char *observed, size_t observed_size, double *observed_at)
{
    char path[600], err[512], now[40];
    snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", c->s.namespace,
             c->s.lease_name);
    json_t *lease = NULL;
    int st = kube_request(c->kube, "GET", path, NULL, NULL, &lease, err, sizeof(err));
    micro_now(now, sizeof(now));
    if (st == 404) {
        json_decref(lease);
        char coll[600];
        snprintf(coll, sizeof(coll), "/apis/coordination.k8s.io/v1/namespaces/%s/leases", c->s.namespace);
        json_t *nl =
            json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:I, s:s, s:s, s:i}}", "apiVersion", "coordination.k8s.io/v1",
                      "kind", "Lease", "metadata", "name", c->s.lease_name, "namespace", c->s.namespace, "spec",
                      "holderIdentity", c->self, "leaseDurationSeconds", (json_int_t)c->s.lease_seconds, "acquireTime",
                      now, "renewTime", now, "leaseTransitions", 0);
        json_t *created = NULL;
        st = nl ? kube_request(c->kube, "POST", coll, nl, NULL, &created, err, sizeof(err)) : -ENOMEM;
        json_decref(nl);
        if (st == 201)
            snprintf(c->lease_uid, sizeof(c->lease_uid), "%s",
                     json_string_value(json_object_get(json_object_get(created, "metadata"), "uid")) ?: "");
        json_decref(created);
        return st == 201;
    }
    if (st != 200) {
        LOG_MODULE_WARN(CTL_LOG, "leader election: %s", err);
        json_decref(lease);
        return false;
    }
    json_t *spec = json_object_get(lease, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(lease, "spec", spec);
    }
    snprintf(c->lease_uid, sizeof(c->lease_uid), "%s",
             json_string_value(json_object_get(json_object_get(lease, "metadata"), "uid")) ?: "");
    const char *holder = json_string_value(json_object_get(spec, "holderIdentity")) ?: "";
    const char *renew = json_string_value(json_object_get(spec, "renewTime")) ?: "";
    json_int_t duration = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
    if (duration <= 0 || duration > 3600)
        duration = c->s.lease_seconds;
    char record[600];
    snprintf(record, sizeof(record), "%.200s|%.64s", holder, renew);
    if (strcmp(record, observed) != 0) {
        snprintf(observed, observed_size, "%s", record);
        *observed_at = ctl_now();
    }
    bool mine = !strcmp(holder, c->self);
    bool free_ = !holder[0] || ctl_now() - *observed_at > (double)duration;
    if (!mine && !free_) {
        json_decref(lease);
        return false;
    }
    if (!mine) {
        json_object_set_new(spec, "acquireTime", json_string(now));
        json_object_set_new(spec, "leaseTransitions",
                            json_integer(json_integer_value(json_object_get(spec, "leaseTransitions")) + 1));
    }
    json_object_set_new(spec, "holderIdentity", json_string(c->self));
    json_object_set_new(spec, "leaseDurationSeconds", json_integer(c->s.lease_seconds));
    json_object_set_new(spec, "renewTime", json_string(now));
    st = kube_request(c->kube, "PUT", path, lease, NULL, NULL, err, sizeof(err));
    json_decref(lease);
    if (st != 200 && st != 409)
        LOG_MODULE_WARN(CTL_LOG, "leader election: %s", err);
    return st == 200;
}

void *ctl_lease_thread(void *arg)
{
    struct ctl *c = arg;
    char observed[600] = "";
    double observed_at = ctl_now(), last_renew = 0;
    double period = (double)c->s.lease_seconds / 3.0;
    while (!c->stop) {
        bool held = try_lease(c, observed, sizeof(observed), &observed_at);
        double now = ctl_now();
        if (held)
            last_renew = now;
        /* a holder that cannot renew gives up before anyone else may take over */
        set_leader(c, held || (c->leader && now - last_renew < (double)c->s.lease_seconds * 2.0 / 3.0));
        for (int i = 0; i < (int)(period * 10) && !c->stop; i++)
            nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
    return NULL;
}

void ctl_lease_release(struct ctl *c)
{
    if (!c->s.leader_election || !c->leader)
        return;
    char path[600], err[512];
    snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", c->s.namespace,
             c->s.lease_name);
    json_t *lease = NULL;
    if (kube_request(c->kube, "GET", path, NULL, NULL, &lease, err, sizeof(err)) == 200 &&
        !strcmp(json_string_value(json_object_get(json_object_get(lease, "spec"), "holderIdentity")) ?: "", c->self)) {
        json_t *spec = json_object_get(lease, "spec");
        json_object_set_new(spec, "holderIdentity", json_string(""));
        json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
        if (kube_request(c->kube, "PUT", path, lease, NULL, NULL, err, sizeof(err)) == 200)
            LOG_MODULE_INFO(CTL_LOG, "Lease %s/%s released", c->s.namespace, c->s.lease_name);
        else
            LOG_MODULE_WARN(CTL_LOG, "cannot release Lease %s/%s: %s", c->s.namespace, c->s.lease_name, err);
    }
    json_decref(lease);
}
