/* SPDX-License-Identifier: Apache-2.0 */
/* /metrics (Prometheus text format), /healthz and /readyz over plain HTTP (libmicrohttpd, one
 * thread). Nothing secret is served: counts, durations and the leader flag. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "controller.h"

static const double g_buckets[] = {1, 2, 5, 10, 20, 30, 60, 120, 300};
#define N_BUCKETS (sizeof(g_buckets) / sizeof(g_buckets[0]))
static struct MHD_Daemon *g_daemon;

void ctl_metrics_observe(struct ctl *c, double seconds, bool ok)
{
    pthread_mutex_lock(&c->lock);
    if (ok)
        c->m.ok++;
    else
        c->m.failed++;
    for (size_t i = 0; i < N_BUCKETS; i++)
        if (seconds <= g_buckets[i])
            c->m.hist[i]++;
    c->m.hist[N_BUCKETS]++; /* +Inf */
    c->m.hist_sum += seconds;
    pthread_mutex_unlock(&c->lock);
}

static char *render(struct ctl *c)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return NULL;
    struct kube_stats ks;
    kube_client_stats(c->kube, &ks);
    pthread_mutex_lock(&c->lock);
    struct ctl_metrics m = c->m;
    bool leader = c->leader;
    pthread_mutex_unlock(&c->lock);
    const char *p = "custos_backup_controller";
    fprintf(f, "# HELP %s_nodes_eligible Nodes that should hold a backup (not control-plane, selector matched).\n", p);
    fprintf(f, "# TYPE %s_nodes_eligible gauge\n%s_nodes_eligible %u\n", p, p, m.eligible);
    fprintf(f, "# HELP %s_nodes_registered Eligible nodes whose platform can open CAS's database.\n", p);
    fprintf(f, "# TYPE %s_nodes_registered gauge\n%s_nodes_registered %u\n", p, p, m.registered);
    fprintf(f, "# HELP %s_backup_nodes Registered nodes other than CAS's own.\n", p);
    fprintf(f, "# TYPE %s_backup_nodes gauge\n%s_backup_nodes %u\n", p, p, m.backup_nodes);
    fprintf(f, "# HELP %s_backups_below_minimum 1 when fewer than MIN_BACKUPS nodes besides CAS's own hold a backup.\n",
            p);
    fprintf(f, "# TYPE %s_backups_below_minimum gauge\n%s_backups_below_minimum %d\n", p, p, m.below_minimum);
    fprintf(f, "# HELP %s_registrations_total Registrations by result.\n# TYPE %s_registrations_total counter\n", p, p);
    fprintf(f, "%s_registrations_total{result=\"success\"} %lu\n", p, m.ok);
    fprintf(f, "%s_registrations_total{result=\"failure\"} %lu\n", p, m.failed);
    fprintf(f, "# HELP %s_registration_duration_seconds Time from pod creation to the end of a registration.\n", p);
    fprintf(f, "# TYPE %s_registration_duration_seconds histogram\n", p);
    for (size_t i = 0; i < N_BUCKETS; i++)
        fprintf(f, "%s_registration_duration_seconds_bucket{le=\"%g\"} %lu\n", p, g_buckets[i], m.hist[i]);
    fprintf(f, "%s_registration_duration_seconds_bucket{le=\"+Inf\"} %lu\n", p, m.hist[N_BUCKETS]);
    fprintf(f, "%s_registration_duration_seconds_sum %.3f\n", p, m.hist_sum);
    fprintf(f, "%s_registration_duration_seconds_count %lu\n", p, m.hist[N_BUCKETS]);
    fprintf(f, "# HELP %s_api_requests_total Requests sent to the Kubernetes API.\n", p);
    fprintf(f, "# TYPE %s_api_requests_total counter\n%s_api_requests_total %lu\n", p, p, ks.requests);
    fprintf(f, "# HELP %s_api_errors_total Kubernetes API requests that failed or were refused.\n", p);
    fprintf(f, "# TYPE %s_api_errors_total counter\n%s_api_errors_total %lu\n", p, p, ks.errors);
    fprintf(f, "# HELP %s_api_watch_events_total Watch events received.\n", p);
    fprintf(f, "# TYPE %s_api_watch_events_total counter\n%s_api_watch_events_total %lu\n", p, p, ks.watch_events);
    fprintf(f, "# HELP %s_api_relists_total Full lists (start, 410 Gone).\n", p);
    fprintf(f, "# TYPE %s_api_relists_total counter\n%s_api_relists_total %lu\n", p, p, ks.relists);
    fprintf(f, "# HELP %s_leader 1 on the replica that holds the Lease.\n", p);
    fprintf(f, "# TYPE %s_leader gauge\n%s_leader %d\n", p, p, leader);
    fclose(f);
    return text;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    struct ctl *c = cls;
    char *body = NULL;
    unsigned status = 200;
    if (strcmp(method, "GET") != 0) {
        status = 405;
        body = strdup("method not allowed\n");
    } else if (!strcmp(url, "/metrics")) {
        body = render(c);
    } else if (!strcmp(url, "/healthz")) {
        body = strdup("ok\n");
    } else if (!strcmp(url, "/readyz")) {
        pthread_mutex_lock(&c->lock);
        bool ready = c->nodes_synced && c->pods_synced && c->las_synced;
        pthread_mutex_unlock(&c->lock);
        status = ready ? 200 : 503;
        body = strdup(ready ? "ok\n" : "caches not synced\n");
    } else {
        status = 404;
        body = strdup("not found\n");
    }
    if (!body)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type",
                            !strcmp(url, "/metrics") ? "text/plain; version=0.0.4" : "text/plain; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

int ctl_metrics_start(struct ctl *c, char *err, size_t err_size)
{
    if (!c->s.metrics_addr || !*c->s.metrics_addr || !strcmp(c->s.metrics_addr, "off"))
        return 0;
    char host[64];
    const char *colon = strrchr(c->s.metrics_addr, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (!colon || *end || port < 0 || port > 65535 || (size_t)(colon - c->s.metrics_addr) >= sizeof(host)) {
        snprintf(err, err_size, "--metrics-addr '%s' is not IPv4-ADDRESS:PORT", c->s.metrics_addr);
        return -EINVAL;
    }
    snprintf(host, sizeof(host), "%.*s", (int)(colon - c->s.metrics_addr), c->s.metrics_addr);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, err_size, "--metrics-addr '%s': '%s' is not an IPv4 address", c->s.metrics_addr, host);
        return -EINVAL;
    }
    sa.sin_port = htons((uint16_t)port);
    g_daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL, answer,
                                c, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                                (unsigned)32, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!g_daemon) {
        snprintf(err, err_size, "cannot listen on %s for metrics: %s", c->s.metrics_addr, strerror(errno));
        return -EADDRINUSE;
    }
    LOG_MODULE_INFO(CTL_LOG, "metrics, /healthz and /readyz on http://%s/", c->s.metrics_addr);
    return 0;
}

void ctl_metrics_stop(void)
{
    if (g_daemon)
        MHD_stop_daemon(g_daemon);
    g_daemon = NULL;
}
