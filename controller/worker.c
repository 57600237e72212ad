/* SPDX-License-Identifier: Apache-2.0 */
/* One registration: an ephemeral backup CAS pod pinned to the node, wait for it to be Ready, run
 * `cas register-backup` against it as a child process with a timeout, delete the pod whatever
 * happened, record the outcome on the node (annotations, label, Event) and in the metrics. Up to
 * MAX_PARALLEL_REGISTRATIONS run at once; a failure is retried with exponential back-off and jitter. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "controller.h"

double ctl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ctl_wait_ms(pthread_cond_t *cv, pthread_mutex_t *lock, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cv, lock, &ts);
}

bool ctl_cas_lists(const struct ctl *c, const char *platform, const char *measurement)
{
    for (size_t i = 0; i < c->n_cas_platforms; i++) {
        const struct ctl_backup *b = &c->cas_platforms[i];
        if (!strcmp(b->platform, platform) &&
            (!measurement || !b->measurement[0] || !strcmp(b->measurement, measurement)))
            return true;
    }
    return false;
}

const char *ctl_target_measurement(const struct ctl *c)
{
    if (c->s.measurement)
        return c->s.measurement;
    return c->primary_measurement[0] ? c->primary_measurement : NULL;
}

/* ---- child processes -------------------------------------------------------------------------- */
static void log_lines(const char *prefix, char *buf, size_t *len, bool flush)
{
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', *len - (size_t)(start - buf)))) {
        *nl = 0;
        if (*start && prefix)
            LOG_MODULE_INFO(CTL_LOG, "%s%s", prefix, start);
        start = nl + 1;
    }
    size_t rest = *len - (size_t)(start - buf);
    if (flush && rest) {
        start[rest] = 0;
        if (prefix)
            LOG_MODULE_INFO(CTL_LOG, "%s%s", prefix, start);
        rest = 0;
    }
    memmove(buf, start, rest);
    *len = rest;
}

/* This process's environment with CUSTOS_LOG=warn (the strings are environ's own; free the array). */
static char **quiet_environment(void)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof(*envp));
    if (!envp)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CUSTOS_LOG=", 11) != 0)
            envp[k++] = environ[i];
    envp[k] = (char *)"CUSTOS_LOG=warn";
    return envp;
}

int ctl_run_cas(struct ctl *c, const char *const *args, long long timeout, const char *log_prefix, char **out,
                size_t *out_size, size_t *stdout_size)
{
    const char *argv[40];
    size_t k = 0;
    if (c->s.session) { /* cas-run ... -- cas ARGS: CAS checks the command and injects the identity */
        bool list = strcmp(args[0], "backups") == 0;
        const char *pre[] = {c->s.cas_run,
                             "--cas",
                             c->s.cas,
                             "--cas-key-hash",
                             c->s.cas_key_hash,
                             "--las",
                             c->s.run_las,
                             "--session",
                             list ? c->s.session_list : c->s.session,
                             "--",
                             c->s.cas_cli};
        for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
            argv[k++] = pre[i];
        /* the session's command fixes the words: no --cas NAME (the injected configuration's default) */
        for (size_t i = 0; args[i] && k < 36; i++) {
            if (strcmp(args[i], "--cas") == 0 && args[i + 1]) {
                i++;
                continue;
            }
            argv[k++] = args[i];
        }
    } else {
        argv[k++] = c->s.cas_cli;
        for (size_t i = 0; args[i] && k < 20; i++)
            argv[k++] = args[i];
        argv[k++] = "--cli-config";
        argv[k++] = c->s.config;
    }
    argv[k] = NULL;
    /* stdout and stderr apart: a list's JSON is on stdout, log lines (cas-run's, cas's) on stderr */
    int fds[2][2];
    if (pipe2(fds[0], O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(fds[1], O_CLOEXEC) < 0) {
        int e = errno;
        close(fds[0][0]);
        close(fds[0][1]);
        return -e;
    }
    /* A list runs at every resync: its launcher says only what went wrong, unless this controller
     * logs at debug level (CUSTOS_LOG is passed on unchanged then). Built before fork: the child of a
     * threaded process must not allocate. */
    char **envp = NULL;
    if (c->s.session && strcmp(args[0], "backups") == 0 && !custos_log_enabled(CTL_LOG, CUSTOS_LOG_DEBUG))
        envp = quiet_environment();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        free(envp);
        for (int k2 = 0; k2 < 2; k2++) {
            close(fds[k2][0]);
            close(fds[k2][1]);
        }
        return -e;
    }
    if (pid == 0) {
        dup2(fds[0][1], 1);
        dup2(fds[1][1], 2);
        setpgid(0, 0);
        if (envp)
            execvpe(argv[0], (char *const *)argv, envp);
        else
            execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    free(envp);
    close(fds[0][1]);
    close(fds[1][1]);
    struct stream {
        int fd;
        char *buf;
        size_t len, line_len;
        char line[4097];
    } st[2] = {{.fd = fds[0][0]}, {.fd = fds[1][0]}};
    const size_t cap = 65536;
    const char *prefix = log_prefix ? log_prefix : "[cas] ";
    st[0].buf = malloc(cap + 1);
    st[1].buf = malloc(cap + 1);
    double deadline = ctl_now() + (double)timeout;
    bool timed_out = false;
    while (st[0].fd >= 0 || st[1].fd >= 0) {
        double left = deadline - ctl_now();
        if (left <= 0 || c->stop) {
            timed_out = left <= 0;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd p[2] = {{st[0].fd, POLLIN, 0}, {st[1].fd, POLLIN, 0}};
        if (poll(p, 2, left > 0.5 ? 500 : (int)(left * 1000) + 1) <= 0)
            continue;
        for (int k2 = 0; k2 < 2; k2++) {
            if (st[k2].fd < 0 || !(p[k2].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[4096];
            ssize_t n = read(st[k2].fd, buf, sizeof(buf));
            if (n <= 0) {
                close(st[k2].fd);
                st[k2].fd = -1;
                continue;
            }
            if (st[k2].buf && st[k2].len + (size_t)n <= cap) {
                memcpy(st[k2].buf + st[k2].len, buf, (size_t)n);
                st[k2].len += (size_t)n;
            }
            /* stdout is logged when a prefix was given; stderr always (failures must be visible) */
            if (k2 == 0 && !log_prefix)
                continue;
            for (ssize_t i = 0; i < n; i++) {
                if (st[k2].line_len == sizeof(st[k2].line) - 1)
                    log_lines(prefix, st[k2].line, &st[k2].line_len, true);
                st[k2].line[st[k2].line_len++] = buf[i];
            }
            log_lines(prefix, st[k2].line, &st[k2].line_len, false);
        }
    }
    for (int k2 = 0; k2 < 2; k2++) {
        log_lines(prefix, st[k2].line, &st[k2].line_len, true);
        if (st[k2].fd >= 0)
            close(st[k2].fd);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* *out: stdout, then stderr */
    char *all = st[0].buf && st[1].buf ? realloc(st[0].buf, st[0].len + st[1].len + 1) : NULL;
    if (all) {
        memcpy(all + st[0].len, st[1].buf, st[1].len);
        all[st[0].len + st[1].len] = 0;
    } else {
        free(st[0].buf);
    }
    free(st[1].buf);
    if (out) {
        *out = all;
        *out_size = all ? st[0].len + st[1].len : 0;
        if (stdout_size)
            *stdout_size = all ? st[0].len : 0;
    } else {
        free(all);
    }
    if (timed_out)
        return -ETIMEDOUT;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return -ENOENT;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- Kubernetes objects ----------------------------------------------------------------------- */
static void iso_now(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void ctl_event(struct ctl *c, const struct ctl_object *obj, bool warning, const char *reason, const char *fmt, ...)
{
    char msg[1024], now[32], path[512], err[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    iso_now(now, sizeof(now));
    char gen[300];
    snprintf(gen, sizeof(gen), "%.200s.", obj->name);
    json_t *ev =
        json_pack("{s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:i, s:s}", "metadata",
                  "generateName", gen, "namespace", c->s.namespace, "involvedObject", "apiVersion", obj->api_version,
                  "kind", obj->kind, "name", obj->name, "uid", obj->uid, "reason", reason, "message", msg, "type",
                  warning ? "Warning" : "Normal", "source", "component", "cas-backup-controller", "firstTimestamp", now,
                  "lastTimestamp", now, "count", 1, "reportingComponent", "cas-backup-controller");
    /* an Event lives in its object's namespace; those of cluster-scoped objects (nodes) in "default" */
    const char *ns = obj->namespace ? obj->namespace : "default";
    if (ev) {
        json_object_set_new(json_object_get(ev, "metadata"), "namespace", json_string(ns));
        if (obj->namespace)
            json_object_set_new(json_object_get(ev, "involvedObject"), "namespace", json_string(ns));
    }
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
    int st = ev ? kube_request(c->kube, "POST", path, ev, NULL, NULL, err, sizeof(err)) : -ENOMEM;
    if (st != 201 && st != 200)
        LOG_MODULE_WARN(CTL_LOG, "cannot record event %s on %s %s: %s", reason, obj->kind, obj->name, err);
    json_decref(ev);
}

/* `<BACKUP_CAS_NAME>-<node>`, shortened with a hash when longer than a pod name may be. */
static void pod_name(const struct ctl_settings *s, const char *node, char *out, size_t size)
{
    char full[600];
    snprintf(full, sizeof(full), "%s-%s", s->backup_name, node);
    if (strlen(full) <= CTL_NAME_MAX) {
        snprintf(out, size, "%s", full);
        return;
    }
    uint8_t h[32];
    char hex[65];
    custos_sha256(full, strlen(full), h);
    custos_hex_encode(h, 4, hex, false);
    snprintf(out, size, "%.*s-%.8s", CTL_NAME_MAX - 9, full, hex);
    size_t n = strlen(out) - 9; /* no dot or dash before the hash */
    while (n > 0 && (out[n - 1] == '.' || out[n - 1] == '-'))
        memmove(out + n - 1, out + n, strlen(out + n) + 1), n--;
}

json_t *ctl_backup_pod(const struct ctl_settings *s, const char *node, const char *name)
{
    char listen[64], port[16], las_dir[4096];
    snprintf(listen, sizeof(listen), "$(POD_IP):%lld", s->backup_port);
    snprintf(port, sizeof(port), "%lld", s->backup_port);
    snprintf(las_dir, sizeof(las_dir), "%s", s->las_addr);
    char *slash = strrchr(las_dir, '/');
    if (slash && slash != las_dir)
        *slash = 0;
    json_t *container =
        json_pack("{s:s, s:s, s:[s], s:[s,s,s,s,s,s,s,s,s,s,s], s:[{s:s, s:{s:{s:s}}}, {s:s, s:{s:{s:s}}}], "
                  "s:{s:{s:s, s:I, s:s}, s:i, s:i, s:i}, s:[{s:s, s:s}]}",
                  "name", "cas-backup", "image", s->image, "command", "casd", "args", "--backup", "--listen", listen,
                  "--cas-key-hash", s->cas_key_hash, "--node-name", "$(NODE_NAME)", "--las", s->las_addr, "--timeout",
                  "900", "env", "name", "POD_IP", "valueFrom", "fieldRef", "fieldPath", "status.podIP", "name",
                  "NODE_NAME", "valueFrom", "fieldRef", "fieldPath", "spec.nodeName", "readinessProbe", "httpGet",
                  "path", "/healthz", "port", (json_int_t)s->backup_port, "scheme", "HTTPS", "periodSeconds", 1,
                  "timeoutSeconds", 2, "failureThreshold", 3, "volumeMounts", "name", "las-socket", "mountPath",
                  las_dir);
    if (!container)
        return NULL;
    if (s->sgx_resource && *s->sgx_resource) {
        const char *q = s->sgx_quantity && *s->sgx_quantity ? s->sgx_quantity : "1";
        json_object_set_new(container, "resources",
                            json_pack("{s:{s:s}, s:{s:s}}", "limits", s->sgx_resource, q, "requests", s->sgx_resource,
                                      q));
    }
    json_t *pod =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s, s:s}}, s:{s:s, s:s, s:i, s:b, s:[o], "
                  "s:[{s:s, s:{s:s, s:s}}], s:[{s:s}]}}",
                  "apiVersion", "v1", "kind", "Pod", "metadata", "name", name, "namespace", s->namespace, "labels",
                  "app.kubernetes.io/name", "cas-backup", "app.kubernetes.io/managed-by", "cas-backup-controller",
                  "custos.io/cas", s->cas_label, "custos.io/cas-namespace", s->namespace, "spec", "nodeName", node,
                  "restartPolicy", "Never", "terminationGracePeriodSeconds", 5, "automountServiceAccountToken", 0,
                  "containers", container, "volumes", "name", "las-socket", "hostPath", "path",
                  s->las_host_dir && *s->las_host_dir ? s->las_host_dir : las_dir, "type", "Directory", "tolerations",
                  "operator", "Exists");
    if (pod && s->run_as_user && *s->run_as_user) {
        long long uid = strtoll(s->run_as_user, NULL, 10);
        json_object_set_new(json_object_get(pod, "spec"), "securityContext",
                            json_pack("{s:I, s:b}", "runAsUser", (json_int_t)uid, "runAsNonRoot", uid != 0));
    }
    return pod;
}

/* The pod of this name, as the pods informer sees it (under c->lock). */
static struct ctl_pod *pod_find(struct ctl *c, const char *name)
{
    for (size_t i = 0; i < c->n_pods; i++)
        if (!strcmp(c->pods[i].v.name, name))
            return &c->pods[i];
    return NULL;
}

static int delete_pod(struct ctl *c, const char *name, char *err, size_t err_size)
{
    char path[600];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", c->s.namespace, name);
    int st = kube_request(c->kube, "DELETE", path, NULL, NULL, NULL, err, err_size);
    return st == 200 || st == 202 || st == 404 ? 0 : st < 0 ? st : -EIO;
}

/* Waits (on the informer's view) until `name` is gone, or the deadline. */
static bool wait_pod_gone(struct ctl *c, const char *name, double deadline)
{
    pthread_mutex_lock(&c->lock);
    while (pod_find(c, name) && ctl_now() < deadline && !c->stop) {
        ctl_wait_ms(&c->pods_cv, &c->lock, 200);
    }
    bool gone = !pod_find(c, name);
    pthread_mutex_unlock(&c->lock);
    return gone;
}

/* Waits until the pod with this uid is Ready; its IP in ip. */
static int wait_pod_ready(struct ctl *c, const char *name, const char *uid, char *ip, char *err, size_t err_size)
{
    double deadline = ctl_now() + (double)c->s.ready_timeout;
    int ret = -ETIMEDOUT;
    char waiting[128] = "";
    pthread_mutex_lock(&c->lock);
    for (;;) {
        struct ctl_pod *p = pod_find(c, name);
        if (p && !strcmp(p->v.uid, uid)) {
            snprintf(waiting, sizeof(waiting), "%s", p->v.waiting);
            if (p->v.ready && p->v.ip[0]) {
                strcpy(ip, p->v.ip);
                ret = 0;
                break;
            }
            if (!strcmp(p->v.phase, "Failed") || !strcmp(p->v.phase, "Succeeded")) {
                snprintf(err, err_size, "backup pod %s ended (phase %s) before it was Ready", name, p->v.phase);
                ret = -EIO;
                break;
            }
        }
        if (c->stop || ctl_now() >= deadline) {
            if (c->stop)
                snprintf(err, err_size, "stopping");
            else
                snprintf(err, err_size, "backup pod %s was not Ready within %lld s%s%s", name, c->s.ready_timeout,
                         waiting[0] ? ", waiting: " : "", waiting);
            break;
        }
        ctl_wait_ms(&c->pods_cv, &c->lock, 1000);
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}

/* Annotates and labels a node after a registration. */
static int mark_node(struct ctl *c, const char *node, const char *platform, const char *boot, char *err,
                     size_t err_size)
{
    char path[600];
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", node);
    json_t *patch = json_pack("{s:{s:{s:s}, s:{s:s, s:s}}}", "metadata", "labels", c->s.label_key, "true",
                              "annotations", c->s.annot_platform, platform, c->s.annot_boot, boot);
    int st = patch ? kube_request(c->kube, "PATCH", path, patch, "application/merge-patch+json", NULL, err, err_size)
                   : -ENOMEM;
    json_decref(patch);
    return st == 200 ? 0 : -EIO;
}

static int register_node(struct ctl *c, const struct ctl_node_view *node, char *platform, char *err, size_t err_size)
{
    char name[CTL_NAME_MAX + 1], path[600], ip[CTL_IP_MAX + 1], url[128], perr[512];
    pod_name(&c->s, node->name, name, sizeof(name));
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods", c->s.namespace);
    /* a pod of the same name left from before: delete it first */
    pthread_mutex_lock(&c->lock);
    bool exists = pod_find(c, name) != NULL;
    pthread_mutex_unlock(&c->lock);
    if (exists) {
        delete_pod(c, name, perr, sizeof(perr));
        wait_pod_gone(c, name, ctl_now() + 30);
    }
    json_t *pod = ctl_backup_pod(&c->s, node->name, name), *created = NULL;
    LOG_MODULE_INFO(CTL_LOG, "Provisioning backup CAS on node %s: %s", node->name, name);
    int st = pod ? kube_request(c->kube, "POST", path, pod, NULL, &created, perr, sizeof(perr)) : -ENOMEM;
    if (st == 409) { /* one of that name is still being deleted: wait for it, then once more */
        json_decref(created);
        created = NULL;
        wait_pod_gone(c, name, ctl_now() + 30);
        st = kube_request(c->kube, "POST", path, pod, NULL, &created, perr, sizeof(perr));
    }
    json_decref(pod);
    if (st != 201) {
        snprintf(err, err_size, "cannot create backup pod %s: %s", name, perr);
        json_decref(created);
        return -EIO;
    }
    char uid[CTL_UID_MAX + 1];
    snprintf(uid, sizeof(uid), "%s",
             json_string_value(json_object_get(json_object_get(created, "metadata"), "uid")) ?: "");
    json_decref(created);
    int ret = wait_pod_ready(c, name, uid, ip, err, err_size);
    if (ret == 0) {
        snprintf(url, sizeof(url), strchr(ip, ':') ? "https://[%s]:%lld" : "https://%s:%lld", ip, c->s.backup_port);
        const char *args[] = {"register-backup", url, "--cas", c->s.cas_name, NULL};
        char *out = NULL, prefix[300];
        size_t out_size = 0;
        snprintf(prefix, sizeof(prefix), "[%.200s] ", node->name);
        ret = ctl_run_cas(c, args, c->s.register_timeout, prefix, &out, &out_size, NULL);
        if (ret == 0 && (!out || ctl_register_output_platform(out, out_size, platform) < 0)) {
            snprintf(err, err_size, "cas register-backup did not name the registered platform");
            ret = -EPROTO;
        } else if (ret != 0) {
            snprintf(err, err_size, "cas register-backup %s", ret == -ETIMEDOUT ? "timed out" : "failed");
            if (ret > 0)
                snprintf(err + strlen(err), err_size - strlen(err), " (exit status %d)", ret);
            if (ret == -ENOENT)
                snprintf(err, err_size, "cannot run %s", c->s.cas_cli);
            ret = ret < 0 ? ret : -EIO;
        }
        free(out);
    }
    if (delete_pod(c, name, perr, sizeof(perr)) < 0) {
        LOG_MODULE_WARN(CTL_LOG, "cannot delete backup pod %s: %s (deleted again at the next pass)", name, perr);
        pthread_mutex_lock(&c->lock);
        c->delete_failed = true;
        pthread_mutex_unlock(&c->lock);
    }
    return ret;
}

static void run_job(struct ctl *c, struct ctl_node_view *node)
{
    char platform[CTL_PLATFORM_LEN + 1] = "", err[1024] = "", perr[512];
    double t0 = ctl_now();
    int ret = register_node(c, node, platform, err, sizeof(err));
    if (ret == 0) { /* CAS lists it now: known before the node's new annotation comes back by watch */
        pthread_mutex_lock(&c->lock);
        const char *m = ctl_target_measurement(c);
        struct ctl_backup *a =
            ctl_cas_lists(c, platform, m) ? NULL : realloc(c->cas_platforms, (c->n_cas_platforms + 1) * sizeof(*a));
        if (a) {
            c->cas_platforms = a;
            memset(&a[c->n_cas_platforms], 0, sizeof(*a));
            memcpy(a[c->n_cas_platforms].platform, platform, CTL_PLATFORM_LEN + 1);
            snprintf(a[c->n_cas_platforms++].measurement, CTL_MEASUREMENT_LEN + 1, "%s", m ? m : "");
        }
        pthread_mutex_unlock(&c->lock);
    }
    if (ret == 0 && mark_node(c, node->name, platform, node->boot_id, perr, sizeof(perr)) < 0)
        LOG_MODULE_WARN(CTL_LOG, "node %s: registered, but its annotations could not be written: %s", node->name, perr);
    double took = ctl_now() - t0;
    ctl_metrics_observe(c, took, ret == 0);
    pthread_mutex_lock(&c->lock);
    struct ctl_node *n = NULL;
    for (size_t i = 0; i < c->n_nodes; i++)
        if (!strcmp(c->nodes[i].v.uid, node->uid))
            n = &c->nodes[i];
    unsigned failures = 0;
    double delay = 0;
    if (n) {
        n->job = JOB_NONE;
        if (ret == 0) {
            n->failures = 0;
            n->next_try = 0;
            n->registered = true;
            snprintf(n->v.reg_platform, sizeof(n->v.reg_platform), "%s", platform);
            snprintf(n->v.reg_boot, sizeof(n->v.reg_boot), "%s", node->boot_id);
        } else {
            failures = ++n->failures;
            delay = (double)c->s.retry_base * (double)(1u << (failures > 10 ? 10 : failures - 1));
            if (delay > (double)c->s.retry_max)
                delay = (double)c->s.retry_max;
            uint32_t r = 0;
            custos_random(&r, sizeof(r));
            delay *= 0.5 + (double)r / 4294967296.0; /* jitter: 0.5x .. 1.5x */
            n->next_try = ctl_now() + delay;
        }
    }
    c->running--;
    c->completed_since_summary++;
    c->changed = true;
    pthread_cond_broadcast(&c->wake);
    pthread_mutex_unlock(&c->lock);
    if (ret == 0) {
        LOG_MODULE_INFO(CTL_LOG, "Successfully registered backup on node %s", node->name);
        ctl_event(c, &CTL_NODE_OBJECT(node), false, "BackupRegistered",
                  "CAS %s (namespace %s): backup registered for platform %s in %.1f s", c->s.cas_name, c->s.namespace,
                  platform, took);
    } else if (!c->stop) {
        LOG_MODULE_ERROR(CTL_LOG, "Failed to register backup on node %s: %s (attempt %u; retrying in %.1f s)",
                         node->name, err, failures, delay);
        ctl_event(c, &CTL_NODE_OBJECT(node), true, "BackupRegistrationFailed", "CAS %s (namespace %s): %s",
                  c->s.cas_name, c->s.namespace, err);
    }
}

static void *worker_thread(void *arg)
{
    struct ctl *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct ctl_node *job = NULL;
        for (size_t i = 0; i < c->n_nodes && !job; i++)
            if (c->nodes[i].job == JOB_QUEUED)
                job = &c->nodes[i];
        if (!job) {
            pthread_cond_wait(&c->wake, &c->lock);
            continue;
        }
        job->job = JOB_RUNNING;
        struct ctl_node_view v = job->v;
        pthread_mutex_unlock(&c->lock);
        run_job(c, &v);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int ctl_workers_start(struct ctl *c, pthread_t *threads, size_t *n)
{
    for (long long i = 0; i < c->s.max_parallel; i++) {
        int ret = pthread_create(&threads[*n], NULL, worker_thread, c);
        if (ret != 0)
            return -ret;
        (*n)++;
    }
    return 0;
}
