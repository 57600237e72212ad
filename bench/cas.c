/* SPDX-License-Identifier: Apache-2.0 */
/* bench/cas: casd over HTTPS, measured beside what the machine can do in the same run.
 *
 * Run (after `ninja -C build`):
 *     build/bench/bench_cas build [SECONDS] [IP]
 * BUILD is the meson build directory holding lasd, casd and cas; SECONDS (default 3) is the length
 * of each throughput run; IP (default 127.0.0.73) is the loopback address casd listens on.
 *
 * It starts its own lasd (sim platform) and casd (default options: 2 HTTPS threads) in a temporary
 * directory, provisions casd with the cas CLI, then measures:
 *   - start to first answer: fork+exec of casd until the first 200 of GET /healthz over TLS, on a
 *     provisioned database (median of 5 starts; page cache warm); the first start, which creates
 *     the database, is shown separately;
 *   - authenticated read (GET /v1/secrets/x) and write (PUT /v1/secrets/x-N, durable: LMDB commit
 *     with fsync) requests per second, over TLS with keep-alive, with the owner's client
 *     certificate, from 1 and 8 clients (each client its own connection and thread);
 *   - in the same run, for reference: raw AES-256-GCM (OpenSSL EVP, 1 KiB messages, one thread),
 *     4 KiB write+fdatasync in the database's file system (in slices between the write runs'
 *     slices), and full TLS handshakes per second (new connection per request, no session
 *     resumption, with the client certificate);
 *   - the ceiling beside casd: nginx (Debian package, scripts/install-deps.sh) started as a child in
 *     the temporary directory with its own configuration, on IP and another port, with a P-256 key,
 *     `ssl_verify_client optional_no_ca`, keep-alive, as many workers as casd has HTTPS threads,
 *     serving a static file of the same size (and type) as casd's answer to GET /v1/secrets/x; the
 *     same clients (same client certificate) read it from 1 and 8 clients; casd/nginx is printed.
 * Clients use libcurl over OpenSSL (as the cas CLI does), pinned to the server's key hash.
 * Environment: NGINX (default /usr/sbin/nginx); BENCH_CAS_PERF=FILE records casd with
 * `perf record -g -p PID -o FILE` during the 8-client read run (perf must be installed);
 * BENCH_CAS_PROFILE_CMD='strace -c -f -p $CASD_PID' runs that command instead (sh, SIGINT at the end);
 * with BENCH_CAS_PROFILE_WRITES set, either profiles the 8-client write run instead;
 * BENCH_CAS_THREADS=N runs casd with --threads N (default 2, casd's default) and nginx with N workers.
 * Everything it starts is stopped and its directory removed at exit. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "custos.h"
#include "util.h"

#define MAX_CLIENTS 8
#define WRITE_SLICES 8 /* write runs alternate 1 and 8 clients, with an fdatasync probe between */

static double g_seconds = 3.0;
static char g_dir[64], g_build[1024], g_ip[64] = "127.0.0.73";
static char g_sock[256], g_db[256], g_las_log[256], g_cas_log[256];
static char *g_cert_pem, *g_key_pem;
static pid_t g_lasd = -1, g_casd = -1, g_nginx = -1;
static int g_port;
static int g_threads = 2; /* casd's --threads (its default) and nginx's workers: BENCH_CAS_THREADS */

const char *bench_prog = "bench_cas";
static struct bench_target g_casd_target, g_nginx_target;

static void cleanup(void)
{
    bench_stop(&g_casd);
    bench_stop(&g_lasd);
    bench_stop(&g_nginx);
    bench_remove_dir(g_dir);
}

/* ---- HTTPS client ------------------------------------------------------------------------- */

static CURL *handle(const struct bench_target *t, bool client_cert, bool fresh)
{
    return bench_handle(t, client_cert ? g_cert_pem : NULL, client_cert ? g_key_pem : NULL, fresh);
}

/* ---- throughput ----------------------------------------------------------------------------- */

enum mode { READ, WRITE, HANDSHAKE };

struct client {
    int id;
    enum mode mode;
    const struct bench_target *target;
    double seconds;
    long first; /* the first N of its write names x-ID-N */
    long ok, failed, connects;
    double *lat;
    size_t nlat, cap;
};

static void *client_main(void *arg)
{
    struct client *cl = arg;
    CURL *c = handle(cl->target, true, cl->mode == HANDSHAKE);
    char path[128], body[128];
    double t0 = bench_now(), t;
    long n = cl->first;
    while ((t = bench_now()) - t0 < cl->seconds) {
        long st;
        if (cl->mode == READ) {
            st = bench_request(c, "GET", "/v1/secrets/x", NULL, &cl->connects);
        } else if (cl->mode == WRITE) {
            snprintf(path, sizeof(path), "/v1/secrets/x-%d-%ld", cl->id, n);
            snprintf(body, sizeof(body), "{\"value\": \"bench value %d %ld\"}", cl->id, n);
            st = bench_request(c, "PUT", path, body, &cl->connects);
        } else {
            st = bench_request(c, "GET", "/healthz", NULL, &cl->connects);
        }
        n++;
        if (st == 200) {
            cl->ok++;
            bench_record(&cl->lat, &cl->nlat, &cl->cap, bench_now() - t);
        } else {
            cl->failed++;
        }
    }
    curl_easy_cleanup(c);
    return NULL;
}

struct result {
    double rate, p50_ms, p99_ms;
    long failed, connects;
};

/* The requests of one or more runs of the same kind (slices of a run), merged. */
struct acc {
    double *lat;
    size_t n;
    long ok, failed, connects;
    double elapsed;
};

static void run_clients_into(struct acc *a, const struct bench_target *target, enum mode mode, int clients,
                             double seconds)
{
    static long runs;
    pthread_t t[MAX_CLIENTS];
    struct client cl[MAX_CLIENTS];
    double t0 = bench_now();
    runs++;
    for (int i = 0; i < clients; i++) {
        cl[i] = (struct client){.id = i, .mode = mode, .target = target, .seconds = seconds, .first = runs * 10000000};
        pthread_create(&t[i], NULL, client_main, &cl[i]);
    }
    size_t total = a->n;
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        total += cl[i].nlat;
    }
    a->elapsed += bench_now() - t0;
    double *all = realloc(a->lat, (total ? total : 1) * sizeof(double));
    if (!all)
        bench_die("%s", "out of memory");
    a->lat = all;
    for (int i = 0; i < clients; i++) {
        memcpy(a->lat + a->n, cl[i].lat, cl[i].nlat * sizeof(double));
        a->n += cl[i].nlat;
        a->ok += cl[i].ok;
        a->failed += cl[i].failed;
        a->connects += cl[i].connects;
        free(cl[i].lat);
    }
}

/* Rate and percentiles of everything in a (freed). */
static struct result acc_result(struct acc *a)
{
    struct result r = {.failed = a->failed, .connects = a->connects};
    r.rate = a->elapsed > 0 ? (double)a->ok / a->elapsed : 0;
    bench_percentiles(a->lat, a->n, &r.p50_ms, &r.p99_ms);
    free(a->lat);
    *a = (struct acc){0};
    return r;
}

static struct result run_clients(const struct bench_target *target, enum mode mode, int clients)
{
    struct acc a = {0};
    run_clients_into(&a, target, mode, clients, g_seconds);
    return acc_result(&a);
}

/* ---- references ----------------------------------------------------------------------------- */

static double aes_gcm_rate(void)
{
    unsigned char key[32], iv[12] = {0}, msg[1024], out[1024], tag[16];
    int n;
    RAND_bytes(key, sizeof(key));
    RAND_bytes(msg, sizeof(msg));
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL) != 1)
        bench_die("%s", "EVP init failed");
    long count = 0;
    double t0 = bench_now(), t;
    while ((t = bench_now()) - t0 < 2.0) {
        for (int i = 0; i < 256; i++, count++) {
            memcpy(iv, &count, sizeof(count)); /* a fresh nonce per message */
            if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, iv) != 1 ||
                EVP_EncryptUpdate(ctx, out, &n, msg, sizeof(msg)) != 1 || EVP_EncryptFinal_ex(ctx, out, &n) != 1 ||
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
                bench_die("%s", "AES-GCM failed");
        }
    }
    EVP_CIPHER_CTX_free(ctx);
    return (double)count / (t - t0);
}

/* 4 KiB pwrite+fdatasync for `seconds`: adds to *count and *elapsed; returns this probe's rate. */
static double fsync_probe(const char *dir, double seconds, long *total, double *elapsed)
{
    char path[300], buf[4096];
    memset(buf, 0x5a, sizeof(buf));
    snprintf(path, sizeof(path), "%s/fsync-probe", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        bench_die("cannot create %s", path);
    long count = 0;
    double t0 = bench_now(), t;
    while ((t = bench_now()) - t0 < seconds) {
        if (pwrite(fd, buf, sizeof(buf), (off_t)(count % 64) * 4096) != (ssize_t)sizeof(buf) || fdatasync(fd) < 0)
            bench_die("write/fdatasync failed in %s", dir);
        count++;
    }
    close(fd);
    unlink(path);
    *total += count;
    *elapsed += t - t0;
    return (double)count / (t - t0);
}

/* ---- casd ----------------------------------------------------------------------------------- */

static void start_casd(void)
{
    char bin[1100], listen[96];
    snprintf(bin, sizeof(bin), "%s/casd", g_build);
    snprintf(listen, sizeof(listen), "%s:%d", g_ip, g_port);
    char threads[16];
    snprintf(threads, sizeof(threads), "%d", g_threads);
    char *argv[] = {bin,    "--db",        g_db,    "--las",     g_sock,  "--listen",
                    listen, "--node-name", "bench", "--threads", threads, NULL};
    g_casd = bench_spawn(argv, g_cas_log);
}

/* fork+exec of casd until the first 200 of GET /healthz over TLS (new connection per attempt). */
static double start_to_first_answer(void)
{
    double t0 = bench_now();
    start_casd();
    for (;;) {
        CURL *c = handle(&g_casd_target, false, true);
        long st = bench_request(c, "GET", "/healthz", NULL, NULL);
        curl_easy_cleanup(c);
        if (st == 200)
            return bench_now() - t0;
        int status;
        if (waitpid(g_casd, &status, WNOHANG) == g_casd) {
            g_casd = -1;
            char *t = bench_read_text(g_cas_log);
            bench_die("casd exited during start:\n%s", t ? t : "");
        }
        if (bench_now() - t0 > 20)
            bench_die("%s", "casd did not answer within 20 s");
        usleep(200);
    }
}

static void provision(void)
{
    char key_hash[80], token[80], toml[300], cli_cfg[300], cmd[4096];
    bench_log_field(g_cas_log, "CAS key hash: ", key_hash, sizeof(key_hash));
    bench_log_field(g_cas_log, "CAS provisioning token: ", token, sizeof(token));
    snprintf(toml, sizeof(toml), "%s/owner.toml", g_dir);
    snprintf(cli_cfg, sizeof(cli_cfg), "%s/cli.json", g_dir);
    FILE *f = fopen(toml, "w");
    if (!f)
        bench_die("cannot write %s", toml);
    fprintf(f, "[api_identity]\ncommon_name = \"bench\"\nalt_names = [\"%s\"]\n", g_ip);
    fclose(f);
    size_t before = bench_log_size(g_cas_log);
    snprintf(cmd, sizeof(cmd),
             "SCONE_CLI_CONFIG='%s' '%s/cas' provision %s:%d -c %s --token %s --config-file '%s' "
             "with-attestation --only_for_testing-ignore-signer --only_for_testing-trust-any >'%s/provision.log' 2>&1",
             cli_cfg, g_build, g_ip, g_port, key_hash, token, toml, g_dir);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof(cmd), "%s/provision.log", g_dir);
        char *t = bench_read_text(cmd);
        bench_die("cas provision failed:\n%s", t ? t : "");
    }
    bench_wait_log(g_cas_log, "TLS certificate renewed", before, 10);
    /* the owner's identity, for the authenticated requests */
    json_t *cfg = NULL;
    char err[256];
    char *text = bench_read_text(cli_cfg);
    if (!text || custos_json_parse(text, strlen(text), &cfg, err, sizeof(err)) < 0)
        bench_die("cannot read the CLI configuration %s", cli_cfg);
    json_t *id = json_object_get(cfg, "identity");
    const char *k = json_string_value(json_object_get(id, "private_key"));
    const char *c = json_string_value(json_object_get(id, "certificate"));
    if (!k || !c)
        bench_die("no identity in %s", cli_cfg);
    g_key_pem = strdup(k);
    g_cert_pem = strdup(c);
    json_decref(cfg);
    free(text);
    /* pin the CAS key, as the CLI does */
    uint8_t h[32];
    if (custos_hex_decode(key_hash, h, sizeof(h)) < 0)
        bench_die("bad key hash %s", key_hash);
    bench_set_pin(&g_casd_target, h);
}

/* ---- nginx: the ceiling, in the same run ------------------------------------------------------ */

static void write_text(const char *path, mode_t mode, const char *text, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0 || write(fd, text, size) != (ssize_t)size || close(fd) < 0)
        bench_die("cannot write %s", path);
}

/* The size of the body of GET path (the bench secret's answer; nothing of it is kept or printed). */
static size_t answer_size(const struct bench_target *t, const char *path)
{
    CURL *c = handle(t, true, false);
    curl_off_t n = 0;
    if (bench_request(c, "GET", path, NULL, NULL) != 200 ||
        curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &n) != CURLE_OK || n <= 0)
        bench_die("GET %s failed", path);
    curl_easy_cleanup(c);
    return (size_t)n;
}

/* nginx as a child of the bench: its own prefix, configuration, P-256 key and logs in DIR/nginx;
 * no system service, no system configuration. Workers: as many as casd's HTTPS threads. */
static void start_nginx(const char *bin, size_t body_size)
{
    char nd[300], path[400], cmd[2048];
    int port = bench_free_port(g_ip);
    snprintf(nd, sizeof(nd), "%s/nginx", g_dir);
    /* nginx's workers run as nobody when the bench runs as root: they must reach the file */
    if (chmod(g_dir, 0711) < 0 || mkdir(nd, 0755) < 0)
        bench_die("cannot make %s", nd);
    const char *sub[] = {"www", "www/v1", "www/v1/secrets", "tmp"};
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", nd, sub[i]);
        if (mkdir(path, 0755) < 0)
            bench_die("cannot make %s", path);
    }
    char *filler = malloc(body_size);
    if (!filler)
        bench_die("%s", "out of memory");
    memset(filler, 'v', body_size);
    snprintf(path, sizeof(path), "%s/www/v1/secrets/x", nd);
    write_text(path, 0644, filler, body_size);
    free(filler);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench-nginx "
             "-addext subjectAltName=IP:%s -keyout '%s/key.pem' -out '%s/cert.pem' >'%s/openssl.log' 2>&1",
             g_ip, nd, nd, nd);
    if (system(cmd) != 0)
        bench_die("openssl could not make nginx's P-256 key (see %s/openssl.log)", nd);
    char conf[4096];
    int n = snprintf(conf, sizeof(conf),
                     "daemon off;\n"
                     "%s"
                     "worker_processes %d;\n"
                     "pid %s/nginx.pid;\n"
                     "error_log %s/error.log warn;\n"
                     "events { worker_connections 1024; }\n"
                     "http {\n"
                     "    access_log off;\n"
                     "    default_type application/json;\n"
                     "    types { }\n"
                     "    keepalive_timeout 60s;\n"
                     "    keepalive_requests 100000000;\n"
                     "    client_body_temp_path %s/tmp/body;\n"
                     "    proxy_temp_path %s/tmp/proxy;\n"
                     "    fastcgi_temp_path %s/tmp/fastcgi;\n"
                     "    uwsgi_temp_path %s/tmp/uwsgi;\n"
                     "    scgi_temp_path %s/tmp/scgi;\n"
                     "    server {\n"
                     "        listen %s:%d ssl;\n"
                     "        ssl_certificate %s/cert.pem;\n"
                     "        ssl_certificate_key %s/key.pem;\n"
                     "        ssl_protocols TLSv1.2 TLSv1.3;\n"
                     "        ssl_verify_client optional_no_ca;\n"
                     "        root %s/www;\n"
                     "        location / { add_header Cache-Control no-store; }\n"
                     "    }\n"
                     "}\n",
                     geteuid() == 0 ? "user nobody nogroup;\n" : "", g_threads, nd, nd, nd, nd, nd, nd, nd, g_ip, port,
                     nd, nd, nd);
    if (n < 0 || (size_t)n >= sizeof(conf))
        bench_die("%s", "nginx configuration too long");
    snprintf(path, sizeof(path), "%s/nginx.conf", nd);
    write_text(path, 0644, conf, (size_t)n);
    char errlog[400], logf[400];
    snprintf(errlog, sizeof(errlog), "%s/error.log", nd);
    snprintf(logf, sizeof(logf), "%s/stderr.log", nd);
    char *argv[] = {(char *)bin, "-p", nd, "-c", path, "-e", errlog, NULL};
    g_nginx = bench_spawn(argv, logf);
    /* its key, pinned like casd's */
    snprintf(path, sizeof(path), "%s/cert.pem", nd);
    char *pem = bench_read_text(path);
    uint8_t h[32];
    if (!pem || custos_cert_pem_key_hash(pem, h) < 0)
        bench_die("cannot read %s", path);
    free(pem);
    bench_set_pin(&g_nginx_target, h);
    snprintf(g_nginx_target.url, sizeof(g_nginx_target.url), "https://%s:%d", g_ip, port);
    double t0 = bench_now();
    for (;;) {
        CURL *c = handle(&g_nginx_target, true, true);
        long st = bench_request(c, "GET", "/v1/secrets/x", NULL, NULL);
        curl_easy_cleanup(c);
        if (st == 200)
            break;
        int status;
        if (waitpid(g_nginx, &status, WNOHANG) == g_nginx) {
            g_nginx = -1;
            char *t = bench_read_text(logf);
            bench_die("nginx exited during start:\n%s", t ? t : "");
        }
        if (bench_now() - t0 > 10)
            bench_die("nginx did not answer within 10 s (see %s)", errlog);
        usleep(2000);
    }
    if (answer_size(&g_nginx_target, "/v1/secrets/x") != body_size)
        bench_die("%s", "nginx's answer is not of casd's size");
}

/* ---- profile -------------------------------------------------------------------------------- */

static pid_t g_perf = -1;

/* perf record -g of casd into out, or with cmd (BENCH_CAS_PROFILE_CMD, run by sh with CASD_PID
 * set: `strace -c -f -p $CASD_PID`) that command; stopped with SIGINT after the run, its output
 * printed to stderr. */
static void perf_start(const char *out, const char *cmd, pid_t pid)
{
    char p[32], log[300];
    snprintf(p, sizeof(p), "%d", (int)pid);
    snprintf(log, sizeof(log), "%s/profiler.log", g_dir);
    setenv("CASD_PID", p, 1);
    char *perf_argv[] = {"/usr/bin/perf", "record", "-g", "-o", (char *)out, "-p", p, NULL};
    char shcmd[1024]; /* exec: the SIGINT reaches the command, not the shell */
    snprintf(shcmd, sizeof(shcmd), "exec %s", cmd ? cmd : "");
    char *sh_argv[] = {"/bin/sh", "-c", shcmd, NULL};
    g_perf = bench_spawn(cmd ? sh_argv : perf_argv, log);
    sleep(1); /* it attaches */
}

static void perf_stop(void)
{
    if (g_perf > 0) {
        kill(g_perf, SIGINT);
        waitpid(g_perf, NULL, 0);
        g_perf = -1;
        char log[300];
        snprintf(log, sizeof(log), "%s/profiler.log", g_dir);
        char *t = bench_read_text(log);
        fprintf(stderr, "---- profiler output (casd, 8-client reads) ----\n%s----\n", t ? t : "");
        free(t);
    }
}

static void row(const char *what, const struct result *r, double aes, double hs1)
{
    printf("%-44s %10.0f /s  %7.2f ms %7.2f ms  %8.4f%%  %6.1fx", what, r->rate, r->p50_ms, r->p99_ms,
           100.0 * r->rate / aes, r->rate / hs1);
    if (r->failed)
        printf("  (%ld failed)", r->failed);
    printf("  [%ld conn]\n", r->connects);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s BUILD_DIR [SECONDS] [IP]\n", argv[0]);
        return 2;
    }
    snprintf(g_build, sizeof(g_build), "%s", argv[1]);
    if (argc > 2)
        g_seconds = atof(argv[2]);
    if (argc > 3)
        snprintf(g_ip, sizeof(g_ip), "%s", argv[3]);
    if (getenv("BENCH_CAS_THREADS"))
        g_threads = atoi(getenv("BENCH_CAS_THREADS"));
    if (g_seconds <= 0 || strncmp(g_ip, "127.", 4) != 0 || g_threads < 1 || g_threads > 64)
        bench_die("%s", "SECONDS must be > 0, IP a 127.0.0.0/8 address and BENCH_CAS_THREADS 1..64");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(g_dir, sizeof(g_dir), "/tmp/custos-bench-cas-XXXXXX");
    if (!mkdtemp(g_dir))
        bench_die("mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    bench_exit_on_signals();
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_sock, sizeof(g_sock), "%s/las.sock", g_dir);
    snprintf(g_db, sizeof(g_db), "%s/db", g_dir);
    snprintf(g_las_log, sizeof(g_las_log), "%s/lasd.log", g_dir);
    snprintf(g_cas_log, sizeof(g_cas_log), "%s/casd.log", g_dir);
    g_port = bench_free_port(g_ip);
    snprintf(g_casd_target.url, sizeof(g_casd_target.url), "https://%s:%d", g_ip, g_port);

    char lasd[1100], pdir[300];
    snprintf(lasd, sizeof(lasd), "%s/lasd", g_build);
    snprintf(pdir, sizeof(pdir), "%s/platform", g_dir);
    char *las_argv[] = {lasd, "--socket", g_sock, "--platform", "sim", "--platform-dir", pdir, NULL};
    g_lasd = bench_spawn(las_argv, g_las_log);
    bench_wait_log(g_las_log, "LAS listening", 0, 10);

    double first = start_to_first_answer();
    provision();
    CURL *c = handle(&g_casd_target, true, false);
    if (bench_request(c, "PUT", "/v1/secrets/x", "{\"value\": \"bench value\"}", NULL) != 200 ||
        bench_request(c, "GET", "/v1/secrets/x", NULL, NULL) != 200)
        bench_die("%s", "the owner cannot PUT/GET a secret");
    curl_easy_cleanup(c);

    double starts[5];
    for (int i = 0; i < 5; i++) {
        bench_stop(&g_casd);
        starts[i] = start_to_first_answer();
    }
    double median_ms, p99_unused;
    bench_percentiles(starts, 5, &median_ms, &p99_unused); /* sorts starts */

    const char *nginx = getenv("NGINX") ? getenv("NGINX") : "/usr/sbin/nginx";
    if (access(nginx, X_OK) != 0)
        bench_die("no nginx at %s: install it (scripts/install-deps.sh) or set NGINX", nginx);
    size_t body_size = answer_size(&g_casd_target, "/v1/secrets/x");
    start_nginx(nginx, body_size);

    const char *perf_out = getenv("BENCH_CAS_PERF"), *profile_cmd = getenv("BENCH_CAS_PROFILE_CMD");
    double aes = aes_gcm_rate();
    struct result hs1 = run_clients(&g_casd_target, HANDSHAKE, 1), hs8 = run_clients(&g_casd_target, HANDSHAKE, 8);
    struct result r1 = run_clients(&g_casd_target, READ, 1);
    struct result n1 = run_clients(&g_nginx_target, READ, 1);
    bool profile_writes = getenv("BENCH_CAS_PROFILE_WRITES") != NULL;
    if ((perf_out || profile_cmd) && !profile_writes)
        perf_start(perf_out, profile_cmd, g_casd);
    struct result r8 = run_clients(&g_casd_target, READ, 8);
    perf_stop();
    struct result n8 = run_clients(&g_nginx_target, READ, 8);
    /* Durable writes in slices, each next to a slice of the fdatasync reference: the disk's rate
     * drifts with the machine's other load (5x within seconds on a shared machine). */
    struct acc w1a = {0}, w8a = {0};
    long fs_count = 0;
    double fs_time = 0, fs_min = 1e18, fs_max = 0;
    if ((perf_out || profile_cmd) && profile_writes)
        perf_start(perf_out, profile_cmd, g_casd);
    for (int i = 0; i <= WRITE_SLICES; i++) {
        double f = fsync_probe(g_dir, 0.25, &fs_count, &fs_time);
        fs_min = f < fs_min ? f : fs_min;
        fs_max = f > fs_max ? f : fs_max;
        if (i == WRITE_SLICES)
            break;
        run_clients_into(i % 2 ? &w8a : &w1a, &g_casd_target, WRITE, i % 2 ? 8 : 1, 2 * g_seconds / WRITE_SLICES);
    }
    perf_stop();
    struct result w1 = acc_result(&w1a), w8 = acc_result(&w8a);
    double fs = (double)fs_count / fs_time;

    printf("casd %s/casd on https://%s:%d/, sim platform, default options but --threads %d (HTTPS threads; "
           "default 2); %g s per run, %ld CPUs\n\n",
           g_build, g_ip, g_port, g_threads, g_seconds, sysconf(_SC_NPROCESSORS_ONLN));
    printf("start to first answer (exec -> first 200 GET /healthz over TLS):\n");
    printf("  provisioned database, median of 5: %7.1f ms   (min %.1f, max %.1f)\n", median_ms, 1000 * starts[0],
           1000 * starts[4]);
    printf("  first start (creates the database):  %7.1f ms\n\n", 1000 * first);
    printf("%-44s %10s     %10s %10s  %9s  %7s\n", "", "rate", "p50", "p99", "of AES", "vs hs-1");
    printf("%-44s %10.0f /s  %31s\n", "reference: AES-256-GCM seal, 1 KiB, 1 thread", aes, "");
    printf("%-44s %10.0f /s  (slices %.0f..%.0f /s, between the write runs' slices)\n",
           "reference: 4 KiB write+fdatasync, same fs", fs, fs_min, fs_max);
    row("TLS full handshake + GET /healthz, 1 client", &hs1, aes, hs1.rate);
    row("TLS full handshake + GET /healthz, 8 clients", &hs8, aes, hs1.rate);
    row("GET /v1/secrets/x, keep-alive, 1 client", &r1, aes, hs1.rate);
    row("GET /v1/secrets/x, keep-alive, 8 clients", &r8, aes, hs1.rate);
    row("PUT /v1/secrets/x-N, keep-alive, 1 client", &w1, aes, hs1.rate);
    row("PUT /v1/secrets/x-N, keep-alive, 8 clients", &w8, aes, hs1.rate);
    printf("\nscaling 1 -> 8 clients: handshakes %.2fx, reads %.2fx, writes %.2fx\n", hs8.rate / hs1.rate,
           r8.rate / r1.rate, w8.rate / w1.rate);
    double fsm = fs;
    printf("writes vs fdatasync rate (interleaved): 1 client %.2f, 8 clients %.2f (an LMDB commit syncs data "
           "and meta page: ~0.5 is the bound for one writer; goal for 8 clients: >= 0.80)\n",
           w1.rate / fsm, w8.rate / fsm);
    printf("'of AES': request rate as %% of 1 KiB AES-GCM seals/s; 'vs hs-1': x the 1-client handshake rate; "
           "[conn]: TCP connections opened\n");
    printf("\nGET /v1/secrets/x (%zu-byte answer), keep-alive, client certificate: casd beside nginx (%s, P-256, "
           "ssl_verify_client optional_no_ca, %d workers, static file of the same size)\n",
           body_size, nginx, g_threads);
    printf("%-8s %10s %10s %8s %9s %9s %9s %9s\n", "clients", "casd/s", "nginx/s", "ratio", "casd p50", "casd p99",
           "ngx p50", "ngx p99");
    const struct result *cr[] = {&r1, &r8}, *nr[] = {&n1, &n8};
    for (int i = 0; i < 2; i++)
        printf("%-8d %10.0f %10.0f %7.1f%% %6.2f ms %6.2f ms %6.2f ms %6.2f ms%s\n", i ? 8 : 1, cr[i]->rate,
               nr[i]->rate, 100.0 * cr[i]->rate / nr[i]->rate, cr[i]->p50_ms, cr[i]->p99_ms, nr[i]->p50_ms,
               nr[i]->p99_ms, nr[i]->failed ? "  (nginx requests failed)" : "");
    printf("goal (8 clients): casd >= 50%% of nginx: %s; casd p99 < 1 ms: %s; durable writes >= 80%% of "
           "write+fdatasync: %s\n",
           r8.rate >= 0.5 * n8.rate ? "met" : "NOT met", r8.p99_ms < 1.0 ? "met" : "NOT met",
           w8.rate >= 0.8 * fsm ? "met" : "NOT met");
    bool failed =
        hs1.failed || hs8.failed || r1.failed || r8.failed || w1.failed || w8.failed || n1.failed || n8.failed;
    return failed ? 1 : 0;
}
