/* SPDX-License-Identifier: Apache-2.0 */
/* cas-backup-controller: settings, start-up, threads and an orderly stop. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controller.h"

#ifndef CUSTOS_VERSION
#define CUSTOS_VERSION "0.1.0"
#endif

static struct ctl g_ctl;

static void on_signal(int sig)
{
    (void)sig;
    g_ctl.stop = 1;
}

/* A label-safe form of `in`: [a-z0-9.-], starting and ending alphanumeric, at most max chars. */
static void label_safe(const char *in, char *out, size_t max)
{
    size_t o = 0;
    for (; *in && o < max; in++) {
        char ch = *in;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        out[o++] = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ? ch : '-';
    }
    while (o && (out[o - 1] == '-' || out[o - 1] == '.'))
        o--;
    out[o] = 0;
    size_t skip = strspn(out, "-.");
    memmove(out, out + skip, o - skip + 1);
    if (!out[0])
        snprintf(out, max + 1, "cas");
}

/* The CAS entry of the CLI configuration: its name (the default one if none was given) and the key
 * hash pinned in it, which every backup pod gets so it takes offers from this CAS only. */
static int read_cli_config(struct ctl_settings *s, char *err, size_t err_size)
{
    uint8_t *text = NULL;
    size_t size = 0;
    int ret = custos_read_file(s->config, 4u << 20, &text, &size);
    if (ret < 0) {
        snprintf(err, err_size, "cannot read the CLI configuration %s: %s", s->config,
                 ret == -ELOOP ? "it is a symlink" : strerror(-ret));
        return ret;
    }
    json_t *j = NULL;
    char perr[256];
    ret = custos_json_parse((const char *)text, size, &j, perr, sizeof(perr));
    custos_wipe(text, size);
    free(text);
    if (ret < 0 || !json_is_object(j)) {
        snprintf(err, err_size, "CLI configuration %s: %s", s->config, ret < 0 ? perr : "not a JSON object");
        json_decref(j);
        return -EINVAL;
    }
    json_t *cas = json_object_get(j, "cas");
    const char *name = s->cas && *s->cas ? s->cas : json_string_value(json_object_get(j, "default_cas"));
    if (!name && json_object_size(cas) == 1)
        name = json_object_iter_key(json_object_iter(cas));
    json_t *entry = name ? json_object_get(cas, name) : NULL;
    const char *kh = json_string_value(json_object_get(entry, "key_hash"));
    if (!entry || !kh || strlen(kh) != 64 || strspn(kh, "0123456789abcdefABCDEF") != 64) {
        char names[512] = "";
        const char *k;
        json_t *v;
        json_object_foreach(cas, k, v)
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", names[0] ? ", " : "", k);
        if (!name)
            snprintf(err, err_size, "CLI configuration %s names no default CAS: set CAS (one of: %s)", s->config,
                     names[0] ? names : "none");
        else if (!entry)
            snprintf(err, err_size, "CLI configuration %s knows no CAS '%.100s' (known: %s)", s->config, name,
                     names[0] ? names : "none");
        else
            snprintf(err, err_size, "CLI configuration %s: CAS '%.100s' has no key_hash of 64 hex digits", s->config,
                     name);
        json_decref(j);
        return -EINVAL;
    }
    s->cas_name = strdup(name);
    snprintf(s->cas_key_hash, sizeof(s->cas_key_hash), "%s", kh);
    json_decref(j);
    return s->cas_name ? 0 : -ENOMEM;
}

static bool hex64(const char *h)
{
    return h && strlen(h) == 64 && strspn(h, "0123456789abcdefABCDEF") == 64;
}

/* --session: CAS is an address, CAS_KEY_HASH its key; no CLI configuration is read (CAS injects it
 * into each `cas` run through the session). */
static int session_settings(struct ctl_settings *s, char *err, size_t err_size)
{
    static char name[64];
    const char *slash = strchr(s->session, '/');
    if (!slash || slash == s->session || !slash[1] || strchr(slash + 1, '/') || strlen(s->session) > 200) {
        snprintf(err, err_size, "--session '%.200s' is not SESSION/SERVICE", s->session);
        return -EINVAL;
    }
    if (!s->cas || !*s->cas) {
        snprintf(err, err_size, "--session needs CAS: the CAS's address (host:port or https URL)");
        return -EINVAL;
    }
    if (!hex64(s->key_hash_opt)) {
        snprintf(err, err_size, "--session needs CAS_KEY_HASH: the CAS's key hash (64 hex digits; `cas owner show`)");
        return -EINVAL;
    }
    if (!s->list_service || !*s->list_service || strchr(s->list_service, '/')) {
        snprintf(err, err_size, "SESSION_LIST_SERVICE '%s' is not a service name", s->list_service ?: "");
        return -EINVAL;
    }
    snprintf(s->cas_key_hash, sizeof(s->cas_key_hash), "%s", s->key_hash_opt);
    snprintf(s->session_list, sizeof(s->session_list), "%.*s/%s", (int)(slash - s->session), s->session,
             s->list_service);
    if (s->cas_name_opt && *s->cas_name_opt) {
        snprintf(name, sizeof(name), "%s", s->cas_name_opt);
    } else { /* the host's first label: https://cas.ns.svc:8081 -> cas */
        const char *h = strstr(s->cas, "://");
        h = h ? h + 3 : s->cas;
        size_t n = strcspn(h, ".:/[]");
        snprintf(name, sizeof(name), "%.*s", (int)(n < 63 ? n : 63), h);
    }
    if (!name[0]) {
        snprintf(err, err_size, "cannot take a CAS name from CAS '%.200s': set CAS_NAME", s->cas);
        return -EINVAL;
    }
    s->cas_name = name;
    return 0;
}

static const char *default_config(char *buf, size_t size)
{
    const char *home = getenv("HOME");
    struct stat st;
    snprintf(buf, size, "%s/.cas/config", home && *home ? home : ".");
    if (stat(buf, &st) == 0)
        return buf;
    snprintf(buf, size, "%s/.cas/config.json", home && *home ? home : ".");
    if (stat(buf, &st) == 0)
        return buf;
    snprintf(buf, size, "%s/.cas/config", home && *home ? home : ".");
    return buf;
}

static const char *default_cli(char *buf, size_t size, const char *prog)
{
    char self[PATH_MAX - 8];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, size, "%s/%s", self, prog);
            if (access(buf, X_OK) == 0)
                return buf;
        }
    }
    return prog;
}

int main(int argc, char **argv)
{
    struct ctl *c = &g_ctl;
    struct ctl_settings *s = &c->s;
    custos_json_wipe_init();
    mallopt(M_ARENA_MAX, 2); /* a dozen threads need not each keep an arena of freed pages */
    const char *log_spec = NULL;
    // clang-format off
    struct custos_option opts[] = {
        {"config", 0, "SCONE_CLI_CONFIG", CUSTOS_OPT_STRING, NULL, 0, 0, "PATH",
         "the cas CLI configuration holding the identity that registers backups (a registrar's, made with `cas owner "
         "make-registrar`, or the owner's) and the CAS's key hash [default: ~/.cas/config]", &s->config},
        {"session", 0, "CAS_SESSION", CUSTOS_OPT_STRING, NULL, 0, 0, "SESSION/SERVICE",
         "register through an attested session: each registration runs `cas-run --session SESSION/SERVICE -- cas "
         "register-backup ADDR`, and CAS injects the identity (no CLI configuration in the cluster); CAS must be its "
         "address and CAS_KEY_HASH its key hash", &s->session},
        {"list-service", 0, "SESSION_LIST_SERVICE", CUSTOS_OPT_STRING, "list", 0, 0, "SERVICE",
         "with --session: the service of the same session that runs `cas backups list --json`", &s->list_service},
        {"cas", 0, "CAS", CUSTOS_OPT_STRING, NULL, 0, 0, "NAME|ADDR",
         "the CAS: its name in the CLI configuration [default: the configuration's default_cas]; with --session its "
         "address (host:port or URL)", &s->cas},
        {"cas-key-hash", 0, "CAS_KEY_HASH", CUSTOS_OPT_STRING, NULL, 0, 0, "HEX",
         "with --session: the CAS's key hash (cas-run pins it; backup pods take offers of this CAS only)",
         &s->key_hash_opt},
        {"cas-name", 0, "CAS_NAME", CUSTOS_OPT_STRING, NULL, 0, 0, "NAME",
         "with --session: the CAS's name in labels and the Lease [default: the first label of CAS's host]",
         &s->cas_name_opt},
        {"cas-run", 0, "CAS_RUN", CUSTOS_OPT_STRING, NULL, 0, 0, "PATH",
         "with --session: the launcher [default: the one beside this program, else cas-run on PATH]", &s->cas_run},
        {"cas-run-las", 0, "CAS_RUN_LAS_ADDR", CUSTOS_OPT_STRING, NULL, 0, 0, "PATH",
         "with --session: the LAS socket cas-run uses here [default: SCONE_LAS_ADDR]", &s->run_las},
        {"kubeconfig", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "PATH",
         "kubeconfig [default: $KUBECONFIG, else ~/.kube/config, else the in-cluster service account]", &s->kubeconfig},
        {"image", 0, "BACKUP_CAS_IMAGE", CUSTOS_OPT_STRING, "custos/cas:" CUSTOS_VERSION, 0, 0, "IMAGE",
         "container image of the ephemeral backup CAS (runs casd --backup)", &s->image},
        {"backup-measurement", 0, "BACKUP_CAS_MEASUREMENT", CUSTOS_OPT_STRING, NULL, 0, 0, "HEX",
         "the measurement (64 hex) of the casd in BACKUP_CAS_IMAGE: a node counts as registered when CAS lists an "
         "entry of its platform for it (set it to the new build's during an upgrade) [default: the running CAS's "
         "own, from `cas backups list`]", &s->measurement},
        {"interval", 0, "CONTROLLER_LOOP_INTERVAL_SECONDS", CUSTOS_OPT_INT, "60", 1, 86400, "SECONDS",
         "resync period: every node is checked and CAS's list of backups read again (changes are seen at once "
         "through watches)", &s->interval},
        {"backup-name", 0, "BACKUP_CAS_NAME", CUSTOS_OPT_STRING, "cas-backup", 0, 0, "NAME",
         "base name of the backup pods: NAME-<node>", &s->backup_name},
        {"namespace", 0, "NAMESPACE", CUSTOS_OPT_STRING, "default", 0, 0, "NS",
         "namespace of the backup pods, the Lease and the Events", &s->namespace},
        {"las-addr", 0, "SCONE_LAS_ADDR", CUSTOS_OPT_STRING, CUSTOS_LAS_DEFAULT_SOCKET, 0, 0, "PATH",
         "the LAS socket inside a backup pod", &s->las_addr},
        {"las-host-dir", 0, "LAS_HOST_DIR", CUSTOS_OPT_STRING, NULL, 0, 0, "DIR",
         "the node's directory holding the LAS socket (hostPath) [default: the directory of SCONE_LAS_ADDR]",
         &s->las_host_dir},
        {"selector", 0, "SELECTOR_LABEL", CUSTOS_OPT_STRING, NULL, 0, 0, "SELECTOR",
         "only nodes matching this label selector (e.g. custos.io/tpm=true) [default: all]", &s->selector},
        {"las-selector", 0, "LAS_SELECTOR_LABEL", CUSTOS_OPT_STRING, NULL, 0, 0, "SELECTOR",
         "label selector of the LAS pods whose logs give each node's LAS key (hardware changes); without it, a "
         "changed boot ID means register again", &s->las_selector},
        {"las-namespace", 0, "LAS_NAMESPACE", CUSTOS_OPT_STRING, "default", 0, 0, "NS", "namespace of the LAS pods",
         &s->las_namespace},
        {"sgx-resource-name", 0, "SGX_RESOURCE_NAME", CUSTOS_OPT_STRING, NULL, 0, 0, "NAME",
         "resource the backup pod requests (e.g. sgx.intel.com/enclave); none unless set: sim and tpm2 need none",
         &s->sgx_resource},
        {"sgx-resource-quantity", 0, "SGX_RESOURCE_QUANTITY", CUSTOS_OPT_STRING, NULL, 0, 0, "N",
         "quantity of SGX_RESOURCE_NAME [default: 1]", &s->sgx_quantity},
        {"max-parallel", 0, "MAX_PARALLEL_REGISTRATIONS", CUSTOS_OPT_INT, "4", 1, 64, "N",
         "registrations running at once", &s->max_parallel},
        {"min-backups", 0, "MIN_BACKUPS", CUSTOS_OPT_INT, "2", 0, 100000, "N",
         "warn (log, Event, metric) when fewer nodes besides CAS's own hold a backup", &s->min_backups},
        {"ready-timeout", 0, "BACKUP_READY_TIMEOUT_SECONDS", CUSTOS_OPT_INT, "120", 1, 3600, "SECONDS",
         "a backup pod not Ready this long is deleted and the node retried later", &s->ready_timeout},
        {"register-timeout", 0, "REGISTRATION_TIMEOUT_SECONDS", CUSTOS_OPT_INT, "120", 1, 3600, "SECONDS",
         "limit for one `cas` run", &s->register_timeout},
        {"backup-port", 0, "BACKUP_CAS_PORT", CUSTOS_OPT_INT, "8081", 1, 65535, "PORT", "HTTPS port of the backup pod",
         &s->backup_port},
        {"retry-base", 0, "RETRY_BASE_SECONDS", CUSTOS_OPT_INT, "10", 1, 3600, "SECONDS",
         "first retry delay after a failed registration (doubles per failure, with jitter)", &s->retry_base},
        {"retry-max", 0, "RETRY_MAX_SECONDS", CUSTOS_OPT_INT, "600", 1, 86400, "SECONDS", "longest retry delay",
         &s->retry_max},
        {"metrics-addr", 0, "METRICS_ADDR", CUSTOS_OPT_STRING, "0.0.0.0:8080", 0, 0, "ADDR:PORT",
         "/metrics, /healthz and /readyz over HTTP (\"off\" for none)", &s->metrics_addr},
        {"leader-election", 0, "LEADER_ELECTION", CUSTOS_OPT_BOOL, "true", 0, 0, NULL,
         "act only while holding the Lease (run two replicas: one acts)", &s->leader_election},
        {"lease-name", 0, "LEASE_NAME", CUSTOS_OPT_STRING, NULL, 0, 0, "NAME",
         "the Lease [default: cas-backup-controller-<cas>]", &s->lease_name},
        {"lease-seconds", 0, "LEASE_DURATION_SECONDS", CUSTOS_OPT_INT, "15", 3, 600, "SECONDS",
         "a leader that has not renewed for this long is replaced", &s->lease_seconds},
        {"identity", 0, "POD_NAME", CUSTOS_OPT_STRING, NULL, 0, 0, "NAME",
         "this replica's name in the Lease [default: host name and process ID]", &s->identity},
        {"cas-cli", 0, "CAS_CLI", CUSTOS_OPT_STRING, NULL, 0, 0, "PATH",
         "the cas CLI [default: the one beside this program, else cas on PATH]", &s->cas_cli},
        {"run-as-user", 0, "BACKUP_CAS_RUN_AS_USER", CUSTOS_OPT_STRING, NULL, 0, 0, "UID",
         "runAsUser of the backup pods (the primary CAS's uid: seal keys are bound to it)", &s->run_as_user},
        {"log", 0, "CUSTOS_LOG", CUSTOS_OPT_STRING, "info", 0, 0, "SPEC", "log levels", &log_spec},
    };
    // clang-format on
    int ret = custos_options_parse("cas-backup-controller",
                                   "Keeps a registered CAS backup for every eligible node of a Kubernetes cluster, so "
                                   "that CAS can always move to another node.",
                                   opts, sizeof(opts) / sizeof(opts[0]), argc, argv, NULL);
    if (ret != 0)
        return ret > 0 ? 0 : 2;
    if (custos_log_configure(log_spec) < 0) {
        fprintf(stderr, "cas-backup-controller: invalid log spec '%s'\n", log_spec);
        return 2;
    }
    char cfg_buf[PATH_MAX], cli_buf[PATH_MAX], run_buf[PATH_MAX], err[1024];
    if (!s->config || !*s->config)
        s->config = default_config(cfg_buf, sizeof(cfg_buf));
    if (!s->cas_cli || !*s->cas_cli)
        s->cas_cli = default_cli(cli_buf, sizeof(cli_buf), "cas");
    if (!s->cas_run || !*s->cas_run)
        s->cas_run = default_cli(run_buf, sizeof(run_buf), "cas-run");
    if (!s->run_las || !*s->run_las)
        s->run_las = s->las_addr;
    if (!ctl_name_valid(s->namespace, 63) || !ctl_name_valid(s->las_namespace, 63)) {
        fprintf(stderr, "cas-backup-controller: NAMESPACE/LAS_NAMESPACE must be DNS labels\n");
        return 2;
    }
    if (!ctl_name_valid(s->backup_name, 200)) {
        fprintf(stderr, "cas-backup-controller: BACKUP_CAS_NAME '%s' is not a DNS name\n", s->backup_name);
        return 2;
    }
    if (s->run_as_user && *s->run_as_user && strspn(s->run_as_user, "0123456789") != strlen(s->run_as_user)) {
        fprintf(stderr, "cas-backup-controller: BACKUP_CAS_RUN_AS_USER '%s' is not a number\n", s->run_as_user);
        return 2;
    }
    char measurement_buf[CTL_MEASUREMENT_LEN + 1];
    if (s->measurement && !*s->measurement)
        s->measurement = NULL; /* an empty value (the chart's default): CAS's own */
    if (s->measurement) {
        if (!ctl_measurement_valid(s->measurement)) {
            fprintf(stderr, "cas-backup-controller: BACKUP_CAS_MEASUREMENT '%.80s' is not 64 hex digits\n",
                    s->measurement);
            return 2;
        }
        for (size_t i = 0; i <= CTL_MEASUREMENT_LEN; i++)
            measurement_buf[i] = (char)tolower((unsigned char)s->measurement[i]);
        s->measurement = measurement_buf;
    }
    if (s->las_addr[0] != '/') {
        fprintf(stderr, "cas-backup-controller: SCONE_LAS_ADDR '%s' is not an absolute socket path\n", s->las_addr);
        return 2;
    }
    if ((s->session ? session_settings(s, err, sizeof(err)) : read_cli_config(s, err, sizeof(err))) < 0) {
        fprintf(stderr, "cas-backup-controller: %s\n", err);
        return 2;
    }
    char cas_label[64], lease_buf[300], self[256];
    label_safe(s->cas_name, cas_label, 40);
    snprintf(s->label_key, sizeof(s->label_key), "cas-registered-%s.%s", cas_label, s->namespace);
    s->label_key[63] = 0;
    label_safe(s->label_key, s->label_key, 63);
    snprintf(s->annot_platform, sizeof(s->annot_platform), "custos.io/platform-%.*s", 44, s->label_key + 15);
    snprintf(s->annot_boot, sizeof(s->annot_boot), "custos.io/boot-id-%.*s", 45, s->label_key + 15);
    snprintf(s->managed_selector, sizeof(s->managed_selector),
             "app.kubernetes.io/managed-by=cas-backup-controller,custos.io/cas=%s,custos.io/cas-namespace=%s",
             cas_label, s->namespace);
    snprintf(s->cas_label, sizeof(s->cas_label), "%s", cas_label); /* pods carry the label-safe form */
    if (!s->lease_name || !*s->lease_name) {
        snprintf(lease_buf, sizeof(lease_buf), "cas-backup-controller-%s", cas_label);
        s->lease_name = lease_buf;
    }
    if (!s->identity || !*s->identity) {
        char host[200] = "controller";
        gethostname(host, sizeof(host) - 1);
        snprintf(self, sizeof(self), "%s_%d", host, (int)getpid());
        s->identity = self;
    }
    snprintf(c->self, sizeof(c->self), "%s", s->identity);

    struct kube_config kc;
    if (kube_config_load(s->kubeconfig, &kc, err, sizeof(err)) < 0) {
        fprintf(stderr, "cas-backup-controller: %s\n", err);
        return 2;
    }
    char source[4096];
    snprintf(source, sizeof(source), "%s", kc.source);
    char server[512];
    snprintf(server, sizeof(server), "%s", kc.server);
    if (!(c->kube = kube_client_new(&kc, 5, 30, err, sizeof(err)))) {
        fprintf(stderr, "cas-backup-controller: %s\n", err);
        return 1;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    pthread_cond_init(&c->pods_cv, NULL);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (s->session)
        LOG_MODULE_INFO(CTL_LOG, "Using session %s (CAS %s at %s, key hash %s; listing through %s)", s->session,
                        s->cas_name, s->cas, s->cas_key_hash, s->session_list);
    else
        LOG_MODULE_INFO(CTL_LOG, "Using CLI configuration %s (CAS %s, key hash %s)", s->config, s->cas_name,
                        s->cas_key_hash);
    LOG_MODULE_INFO(CTL_LOG, "Starting controller...");
    LOG_MODULE_INFO(CTL_LOG, "Kubernetes API %s (credentials: %s)", server, source);
    LOG_MODULE_INFO(CTL_LOG, "Backup CAS resources will be named '%s'-<node_name>", s->backup_name);
    if (s->measurement)
        LOG_MODULE_INFO(CTL_LOG, "Registering backups of image %s for measurement %s (BACKUP_CAS_MEASUREMENT)",
                        s->image, s->measurement);
    else
        LOG_MODULE_INFO(CTL_LOG,
                        "Registering backups of image %s for the measurement of CAS's current casd (from "
                        "`cas backups list`)",
                        s->image);
    if (s->las_selector && *s->las_selector)
        LOG_MODULE_INFO(CTL_LOG, "Selecting LAS pods that match selector %s on namespace %s", s->las_selector,
                        s->las_namespace);
    else
        LOG_MODULE_INFO(CTL_LOG, "No LAS_SELECTOR_LABEL: hardware changes are detected by boot ID changes");
    if (s->selector && *s->selector)
        LOG_MODULE_INFO(CTL_LOG, "Selecting nodes that match %s", s->selector);
    LOG_MODULE_INFO(CTL_LOG, "Registered nodes are labelled %s=true", s->label_key);
    if (ctl_metrics_start(c, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(CTL_LOG, "%s", err);
        return 1;
    }
    pthread_t threads[80], lease_thread;
    size_t n = 0;
    bool lease_started = false;
    if (!s->leader_election)
        c->leader = true;
    else if (pthread_create(&lease_thread, NULL, ctl_lease_thread, c) == 0)
        lease_started = true;
    if (ctl_informers_start(c, threads, &n) < 0 || ctl_workers_start(c, threads, &n) < 0) {
        LOG_MODULE_ERROR(CTL_LOG, "cannot start threads");
        c->stop = 1;
    }
    ctl_reconcile_loop(c);

    LOG_MODULE_INFO(CTL_LOG, "stopping: waiting for running registrations to end and delete their pods");
    pthread_mutex_lock(&c->lock);
    pthread_cond_broadcast(&c->wake);
    pthread_cond_broadcast(&c->pods_cv);
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    if (lease_started)
        pthread_join(lease_thread, NULL);
    if (c->leader)
        ctl_cleanup_pods(c, "stopping");
    ctl_lease_release(c);
    ctl_metrics_stop();
    kube_client_free(c->kube);
    LOG_MODULE_INFO(CTL_LOG, "stopped");
    return 0;
}
