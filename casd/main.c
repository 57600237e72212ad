/* SPDX-License-Identifier: Apache-2.0 */
/* casd: the Configuration and Attestation Service. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "casd.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static volatile sig_atomic_t g_hup;

static void on_hup(int sig)
{
    (void)sig;
    g_hup = 1;
}

/* A fault while LMDB touches its mapping means the database file changed under us or the storage
 * failed (LMDB's file is checked before it is mapped, so this is a backstop): say so, then stop. */
static const char *g_db_dir = "";

static void on_fault(int sig)
{
    static const char a[] = "casd: FATAL: ", b[] = " while accessing database ",
                      c[] = ": the database file is damaged or its storage failed (disk full, I/O error); "
                            "files are left as they were\n";
    const char *what = sig == SIGBUS ? "SIGBUS" : "SIGSEGV";
    (void)!write(2, a, sizeof(a) - 1);
    (void)!write(2, what, strlen(what));
    (void)!write(2, b, sizeof(b) - 1);
    (void)!write(2, g_db_dir, strlen(g_db_dir));
    (void)!write(2, c, sizeof(c) - 1);
    _exit(70);
}

/* Tests only: CUSTOS_TEST_STEP_DELAY_MS slows every step of a crash-safe file write, so a test can
 * kill casd between the steps of a key-store update. */
static unsigned g_step_delay_ms;

static void slow_step(int step)
{
    (void)step;
    usleep(g_step_delay_ms * 1000u);
}

static void test_hooks(void)
{
    const char *d = getenv("CUSTOS_TEST_STEP_DELAY_MS");
    if (!d || !*d)
        return;
    g_step_delay_ms = (unsigned)strtoul(d, NULL, 10) % 10000u;
    custos_atomic_write_hook = slow_step;
    LOG_MODULE_WARN(CAS_LOG, "test hook: every crash-safe write step is delayed by %u ms", g_step_delay_ms);
}

static int serve(struct cas_state *st)
{
    char err[256];
    struct MHD_Daemon *d = cas_http_start(st, err, sizeof(err));
    if (!d) {
        LOG_MODULE_ERROR(CAS_LOG, "%s", err);
        return -EADDRNOTAVAIL;
    }
    LOG_MODULE_INFO(CAS_LOG, "CAS listening on https://%s/", st->cfg.listen);
    while (!g_stop) {
        usleep(50000);
        unsigned cut = cas_http_guard_reap();
        if (cut)
            LOG_MODULE_WARN(CAS_LOG,
                            "closed %u connection(s) that did not send complete request headers within "
                            "%u s",
                            cut, st->cfg.header_timeout_s);
        if (g_hup) {
            g_hup = 0;
            LOG_MODULE_INFO(CAS_LOG, "SIGHUP received: nothing to reload (configuration is read at start); "
                                     "carrying on");
        }
        if (!atomic_exchange(&st->pri.cert_changed, false))
            continue;
        /* The owner's names go into the certificate: same key, new certificate, same listener. */
        if (cas_make_certificate(st) < 0 || cas_http_set_certificate(st) < 0) {
            LOG_MODULE_ERROR(CAS_LOG, "cannot renew the TLS certificate with the owner's names");
            continue;
        }
        LOG_MODULE_INFO(CAS_LOG, "TLS certificate renewed with the owner's names");
    }
    MHD_stop_daemon(d);
    return 0;
}

/* casd --backup: one registration of this node, then exit. */
static int run_backup(struct cas_state *st, long long timeout_s)
{
    char err[256];
    int ret = cas_backup_prepare(st);
    struct MHD_Daemon *d = NULL;
    if (ret == 0 && !(d = cas_http_start(st, err, sizeof(err)))) {
        LOG_MODULE_ERROR(CAS_LOG, "%s", err);
        ret = -EADDRNOTAVAIL;
    }
    if (ret == 0)
        ret = cas_backup_wait(st, timeout_s, &g_stop);
    if (d)
        MHD_stop_daemon(d);
    cas_backup_wipe(st);
    cas_state_wipe(st);
    cas_http_wipe();
    return ret < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    static struct cas_state st; /* locked in memory: it holds the database key */
    custos_json_wipe_init();    /* jansson wipes what it frees: request and answer bodies hold secrets */
    const char *log_spec = NULL;
    long long threads = 0, max_conn = 0, timeout_s = 0, backup_timeout = 0, header_timeout = 0, per_address = 0;
    bool backup = false;
    struct custos_option opts[] = {
        {"db", 0, "CAS_DB", CUSTOS_OPT_STRING, "/var/lib/custos/cas/db", 0, 0, "DIR",
         "database directory (its key-store is DIR.key-store)", &st.cfg.db_dir},
        {"las", 0, "SCONE_LAS_ADDR", CUSTOS_OPT_STRING, CUSTOS_LAS_DEFAULT_SOCKET, 0, 0, "PATH",
         "this node's lasd socket", &st.cfg.las},
        {"listen", 0, "CAS_LISTEN", CUSTOS_OPT_STRING, "0.0.0.0:8081", 0, 0, "ADDR:PORT", "HTTPS API address",
         &st.cfg.listen},
        {"node-name", 0, "NODE_NAME", CUSTOS_OPT_STRING, "localhost", 0, 0, "NAME",
         "this node's name (recorded in the key-store)", &st.cfg.node_name},
        {"threads", 0, NULL, CUSTOS_OPT_INT, "2", 1, 64, "N", "HTTPS worker threads", &threads},
        {"max-connections", 0, NULL, CUSTOS_OPT_INT, "256", 1, 65536, "N", "concurrent connections", &max_conn},
        {"idle-timeout", 0, NULL, CUSTOS_OPT_INT, "30", 1, 3600, "SECONDS",
         "an idle connection is closed after this long", &timeout_s},
        {"header-timeout", 0, NULL, CUSTOS_OPT_INT, "10", 1, 3600, "SECONDS",
         "a connection whose request headers (TLS handshake included) are not complete this long after it "
         "opened, or after its previous answer, is closed",
         &header_timeout},
        {"max-connections-per-address", 0, NULL, CUSTOS_OPT_INT, "64", 1, 65536, "N",
         "concurrent connections from one client address", &per_address},
        {"backup", 0, "CAS_BACKUP", CUSTOS_OPT_BOOL, "false", 0, 0, NULL,
         "run as an ephemeral backup CAS: serve one registration of this node, then exit", &backup},
        {"timeout", 0, "CAS_BACKUP_TIMEOUT", CUSTOS_OPT_INT, "600", 1, 86400, "SECONDS",
         "backup mode: exit after this long without a registration", &backup_timeout},
        {"cas-key-hash", 0, "CAS_KEY_HASH", CUSTOS_OPT_STRING, NULL, 0, 0, "KEYHASH",
         "backup mode: accept key offers only from the CAS with this key hash (recommended)", &st.cfg.cas_key_hash},
        {"log", 0, "CUSTOS_LOG", CUSTOS_OPT_STRING, "info", 0, 0, "SPEC", "log levels, e.g. info,cas=debug", &log_spec},
    };
    int ret = custos_options_parse("casd", "Custos Configuration and Attestation Service.", opts,
                                   sizeof(opts) / sizeof(opts[0]), argc, argv, NULL);
    if (ret != 0)
        return ret > 0 ? 0 : 2;
    if (custos_log_configure(log_spec) < 0) {
        fprintf(stderr, "casd: invalid log spec '%s'\n", log_spec);
        return 2;
    }
    char aerr[1024];
    if (!backup && cas_args_check(st.cfg.db_dir, st.cfg.listen, st.cfg.node_name, st.cfg.las, aerr, sizeof(aerr)) < 0) {
        fprintf(stderr, "casd: %s\n", aerr);
        return 2;
    }
    if (backup &&
        (cas_args_check(CAS_ARGS_NO_DB, st.cfg.listen, st.cfg.node_name, st.cfg.las, aerr, sizeof(aerr)) < 0)) {
        fprintf(stderr, "casd: %s\n", aerr);
        return 2;
    }
    st.node.las_ops = &cas_las_socket;
    st.node.las_ctx = (void *)st.cfg.las;
    st.cfg.threads = (unsigned)threads;
    st.cfg.max_connections = (unsigned)max_conn;
    st.cfg.timeout_s = (unsigned)timeout_s;
    st.cfg.header_timeout_s = (unsigned)header_timeout;
    st.cfg.max_per_address = (unsigned)per_address;
    if (cas_http_guard_init(st.cfg.max_connections, st.cfg.header_timeout_s) < 0)
        return 1;
    pthread_mutex_init(&st.lock, NULL);
    custos_harden_process();
    mlock(&st, sizeof(st));
    test_hooks();
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction sh = {.sa_handler = on_hup};
    sigaction(SIGHUP, &sh, NULL);
    g_db_dir = st.cfg.db_dir;
    struct sigaction sf = {.sa_handler = on_fault, .sa_flags = SA_RESETHAND};
    sigaction(SIGBUS, &sf, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint8_t kh[32];
    if (st.cfg.cas_key_hash && custos_hex_decode(st.cfg.cas_key_hash, kh, sizeof(kh)) < 0) {
        fprintf(stderr, "casd: --cas-key-hash '%s' is not 64 hex digits\n", st.cfg.cas_key_hash);
        return 2;
    }
    if (backup)
        return run_backup(&st, backup_timeout);
    ret = cas_open_database(&st);
    if (ret == 0)
        ret = cas_load_identity(&st);
    if (ret == 0)
        ret = cas_load_ownership(&st);
    if (ret == 0)
        ret = cas_make_certificate(&st);
    if (ret < 0) {
        cas_state_wipe(&st);
        return 1;
    }
    LOG_MODULE_INFO(CAS_LOG, "CAS key hash: %s", st.tls.key_hash);
    if (atomic_load(&st.pri.provisioned))
        LOG_MODULE_INFO(CAS_LOG, "CAS is provisioned; owner identity %s", st.pri.owner_hash);
    else
        /* The one secret ever logged: single-use, and only while nobody owns this CAS. */
        LOG_MODULE_INFO(CAS_LOG, "CAS provisioning token: %s", st.pri.token);
    if (cas_las_gate_start(st.node.las_ops, st.node.las_ctx, st.cfg.las) < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot start the LAS thread");
        cas_state_wipe(&st);
        return 1;
    }
    ret = serve(&st);
    cas_state_wipe(&st);
    cas_http_wipe();
    LOG_MODULE_INFO(CAS_LOG, "CAS stopped");
    return ret < 0 ? 1 : 0;
}
