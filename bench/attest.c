/* SPDX-License-Identifier: Apache-2.0 */
/* bench/attest: attested configuration retrievals (POST /v1/run, what cas-run asks) per second and
 * their latency, beside the bounds measured in the same run.
 *
 * Run (after `ninja -C build`):
 *     build/bench/bench_attest build [SECONDS] [IP]
 * BUILD holds lasd, casd and cas; SECONDS (default 3) is each run's length; IP (default 127.0.0.74).
 *
 * It starts lasd (sim) and casd (2 HTTPS threads, its default) in a temporary directory, provisions
 * casd, allows this program's measurement as a launcher (`cas owner allow-launcher`: lasd measures
 * the caller, so this program's quotes are a launcher's) and creates a session whose service has an
 * environment with a generated secret and an `@@1` command word. Each client then makes its own
 * request exactly as cas-run does (an X25519 key, the request R, a quote from lasd binding R) and
 * sends it again and again on one keep-alive TLS connection (CAS does not remember requests: a
 * replay gets an answer only the holder of the key can open). Every check runs on every request:
 * quote signature (ECDSA P-256), binding, launcher, platform, program, command; the answer is
 * encrypted (X25519 + HKDF + AES-GCM). The first answer of each client is opened and checked.
 * Runs with 1, 8 and 32 clients.
 *
 * Bounds, same run: ECDSA P-256 verifications per second (OpenSSL, one thread, and that times
 * casd's threads: each retrieval verifies one quote), and full TLS handshakes per second with casd
 * (GET /healthz on a new connection each time, 8 clients): what a client without keep-alive pays.
 * Goal: >= 5,000 retrievals/s with p99 < 5 ms on keep-alive connections. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "custos.h"
#include "util.h"

#define MAX_CLIENTS 32
#define CAS_THREADS 2
#define PROGRAM_HASH "7b1dfd9e6a2d4a0f8c2e95b3d1c4f6a8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0"

const char *bench_prog = "bench_attest";
static double g_seconds = 3.0;
static char g_dir[64], g_build[1024], g_ip[64] = "127.0.0.74";
static char g_sock[256], g_db[256], g_las_log[256], g_cas_log[256], g_cli[256];
static pid_t g_lasd = -1, g_casd = -1;
static struct bench_target g_target;
static char g_key_hash[65];

static void cleanup(void)
{
    bench_stop(&g_casd);
    bench_stop(&g_lasd);
    bench_remove_dir(g_dir);
}

/* Runs a shell command (the cas CLI) with the bench's CLI configuration; its output in DIR/cli.log. */
static void cli(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "SCONE_CLI_CONFIG='%s' '%s/cas' %s >>'%s/cli.log' 2>&1", g_cli, g_build, args, g_dir);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof(cmd), "%s/cli.log", g_dir);
        char *t = bench_read_text(cmd);
        bench_die("the cas CLI failed:\n%s", t ? t : "");
    }
}

static void start(void)
{
    char bin[1100], listen[96], platform[300];
    snprintf(g_sock, sizeof(g_sock), "%s/las.sock", g_dir);
    snprintf(g_db, sizeof(g_db), "%s/cas-db", g_dir);
    snprintf(g_las_log, sizeof(g_las_log), "%s/lasd.log", g_dir);
    snprintf(g_cas_log, sizeof(g_cas_log), "%s/casd.log", g_dir);
    snprintf(g_cli, sizeof(g_cli), "%s/cli.json", g_dir);
    snprintf(platform, sizeof(platform), "%s/platform", g_dir);
    snprintf(bin, sizeof(bin), "%s/lasd", g_build);
    char *las_argv[] = {bin, "--socket", g_sock, "--platform", "sim", "--platform-dir", platform, NULL};
    g_lasd = bench_spawn(las_argv, g_las_log);
    bench_wait_log(g_las_log, "listening", 0, 10);
    int port = bench_free_port(g_ip);
    snprintf(listen, sizeof(listen), "%s:%d", g_ip, port);
    snprintf(bin, sizeof(bin), "%s/casd", g_build);
    char *cas_argv[] = {bin, "--db", g_db, "--las", g_sock, "--listen", listen, "--node-name", "bench", NULL};
    g_casd = bench_spawn(cas_argv, g_cas_log);
    bench_wait_log(g_cas_log, "CAS listening", 0, 20);
    snprintf(g_target.url, sizeof(g_target.url), "https://%s", listen);
}

static void provision_and_create_session(void)
{
    char token[80], path[300], args[2048];
    bench_log_field(g_cas_log, "CAS key hash: ", g_key_hash, sizeof(g_key_hash));
    bench_log_field(g_cas_log, "CAS provisioning token: ", token, sizeof(token));
    snprintf(path, sizeof(path), "%s/owner.toml", g_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        bench_die("cannot write %s", path);
    fprintf(f, "[api_identity]\ncommon_name = \"bench\"\nalt_names = [\"%s\"]\n", g_ip);
    fclose(f);
    snprintf(args, sizeof(args),
             "provision %s -c %s --token %s --config-file '%s' with-attestation --only_for_testing-ignore-signer "
             "--only_for_testing-trust-any",
             g_target.url, g_key_hash, token, path);
    cli(args);
    /* this program is the launcher lasd measures */
    uint8_t *self = NULL, h[32];
    size_t n = 0;
    char hex[65], exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0)
        exe[len] = '\0';
    if (len <= 0 || custos_read_file(exe, 256u << 20, &self, &n) < 0 || custos_sha256(self, n, h) < 0)
        bench_die("%s", "cannot hash this program (/proc/self/exe)");
    free(self);
    custos_hex_encode(h, 32, hex, false);
    snprintf(args, sizeof(args), "owner allow-launcher %s", hex);
    cli(args);
    snprintf(path, sizeof(path), "%s/session.yaml", g_dir);
    f = fopen(path, "w");
    if (!f)
        bench_die("cannot write %s", path);
    fprintf(f,
            "name: bench\nversion: \"0.3\"\nservices:\n  - name: app\n    mrenclaves: [\"%s\"]\n"
            "    command: app @@1\n    environment:\n      API_USER: bench\n      API_PASSWORD: \"$$CAS::pw$$\"\n"
            "    pwd: /\nsecrets:\n  - name: pw\n    kind: ascii\n    size: 32\n",
            PROGRAM_HASH);
    fclose(f);
    snprintf(args, sizeof(args), "session create '%s'", path);
    cli(args);
    uint8_t kh[32];
    if (custos_hex_decode(g_key_hash, kh, 32) < 0)
        bench_die("bad key hash %s", g_key_hash);
    bench_set_pin(&g_target, kh);
}

/* ---- one client's request, made as cas-run makes it ------------------------------------------- */

struct client {
    uint8_t priv[32], salt[32];
    char *body;
    int id;
    double seconds;
    long ok, failed;
    double *lat;
    size_t nlat, cap;
};

static void make_request(struct client *cl)
{
    uint8_t pub[32], rd[CUSTOS_REPORT_DATA_SIZE];
    char err[256], arg[32];
    struct custos_quote q;
    if (custos_x25519_keypair(cl->priv, pub) < 0)
        bench_die("%s", "x25519 failed");
    char *key = custos_base64_encode(pub, 32);
    snprintf(arg, sizeof(arg), "client-%d", cl->id);
    json_t *r = json_pack("{s:I, s:s, s:s, s:s, s:[s, s], s:[]}", "time", (json_int_t)time(NULL), "key", key,
                          "cas_key_hash", g_key_hash, "program", PROGRAM_HASH, "argv", "app", arg, "files");
    if (!r || custos_run_binding(r, cl->salt, rd) < 0)
        bench_die("%s", "cannot build the request");
    if (custos_las_quote(g_sock, rd, &q, err, sizeof(err)) < 0)
        bench_die("lasd refused a quote: %s", err);
    json_t *body =
        json_pack("{s:s, s:o, s:o}", "service", "bench/app", "request", r, "quote", custos_quote_to_json(&q));
    cl->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    free(key);
}

struct answer {
    char buf[65536];
    size_t n;
};

static size_t keep(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct answer *a = userdata;
    size_t n = size * nmemb;
    if (a->n + n >= sizeof(a->buf))
        return 0;
    memcpy(a->buf + a->n, ptr, n);
    a->n += n;
    a->buf[a->n] = '\0';
    return n;
}

/* The first answer is opened with the client's key and checked: a retrieval that answers garbage
 * quickly measures nothing. */
static void check_answer(struct client *cl)
{
    struct answer a = {.n = 0};
    CURL *c = bench_handle(&g_target, NULL, NULL, false);
    char url[256], err[256];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(url, sizeof(url), "%s/v1/run", g_target.url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, cl->body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *ans = NULL, *cfg = NULL;
    uint8_t *pt = NULL;
    size_t n = 0;
    if (status != 200 || custos_json_parse(a.buf, a.n, &ans, err, sizeof(err)) < 0)
        bench_die("POST /v1/run did not answer 200:\n%s", a.buf);
    if (custos_run_open(cl->priv, cl->salt, ans, &pt, &n, err, sizeof(err)) < 0 ||
        custos_json_parse((const char *)pt, n, &cfg, err, sizeof(err)) < 0)
        bench_die("the answer does not open: %s", err);
    const char *pw = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(cfg, "env"), i, e)
        if (strcmp(json_string_value(json_object_get(e, "name")) ?: "", "API_PASSWORD") == 0)
            pw = json_string_value(json_object_get(e, "value"));
    if (!pw || strlen(pw) != 32)
        bench_die("%s", "the configuration holds no 32-character API_PASSWORD");
    custos_wipe(pt, n);
    free(pt);
    json_decref(cfg);
    json_decref(ans);
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    CURL *c = bench_handle(&g_target, NULL, NULL, false);
    double t0 = bench_now(), t;
    while ((t = bench_now()) - t0 < cl->seconds) {
        long st = bench_request(c, "POST", "/v1/run", cl->body, NULL);
        if (st != 200) {
            cl->failed++;
            continue;
        }
        cl->ok++;
        bench_record(&cl->lat, &cl->nlat, &cl->cap, bench_now() - t);
    }
    curl_easy_cleanup(c);
    return NULL;
}

struct result {
    double rate, p50_ms, p99_ms;
    long failed;
};

static struct result run(struct client *cls, int clients)
{
    pthread_t t[MAX_CLIENTS];
    double t0 = bench_now();
    for (int i = 0; i < clients; i++) {
        cls[i].seconds = g_seconds;
        cls[i].ok = cls[i].failed = 0;
        cls[i].nlat = 0;
        pthread_create(&t[i], NULL, client_main, &cls[i]);
    }
    size_t total = 0;
    long ok = 0, failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        total += cls[i].nlat;
    }
    double elapsed = bench_now() - t0;
    double *all = malloc((total ? total : 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < clients && all; i++) {
        memcpy(all + k, cls[i].lat, cls[i].nlat * sizeof(double));
        k += cls[i].nlat;
        ok += cls[i].ok;
        failed += cls[i].failed;
    }
    if (!all)
        bench_die("%s", "out of memory");
    struct result r = {.rate = (double)ok / elapsed, .failed = failed};
    bench_percentiles(all, k, &r.p50_ms, &r.p99_ms);
    free(all);
    return r;
}

/* ---- the bounds ------------------------------------------------------------------------------ */

static double verify_rate(void)
{
    custos_p256 *key = NULL;
    uint8_t msg[CUSTOS_QUOTE_BODY_SIZE] = {1}, sig[80];
    size_t sig_size = sizeof(sig);
    if (custos_p256_from_seed((const uint8_t *)"bench-attest", 12, &key) < 0 ||
        custos_p256_sign(key, msg, sizeof(msg), sig, &sig_size) < 0)
        bench_die("%s", "P-256 setup failed");
    long n = 0;
    double t0 = bench_now();
    while (bench_now() - t0 < 2.0) {
        for (int i = 0; i < 100; i++)
            if (custos_p256_verify(key, msg, sizeof(msg), sig, sig_size) < 0)
                bench_die("%s", "P-256 verify failed");
        n += 100;
    }
    double rate = (double)n / (bench_now() - t0);
    custos_p256_free(key);
    return rate;
}

struct hs_client {
    double seconds;
    long ok;
};

static void *handshake_main(void *arg)
{
    struct hs_client *h = arg;
    double t0 = bench_now();
    while (bench_now() - t0 < h->seconds) {
        CURL *c = bench_handle(&g_target, NULL, NULL, true);
        if (bench_request(c, "GET", "/healthz", NULL, NULL) == 200)
            h->ok++;
        curl_easy_cleanup(c);
    }
    return NULL;
}

static double handshake_rate(int clients)
{
    pthread_t t[MAX_CLIENTS];
    struct hs_client h[MAX_CLIENTS];
    double t0 = bench_now();
    long ok = 0;
    for (int i = 0; i < clients; i++) {
        h[i] = (struct hs_client){.seconds = g_seconds};
        pthread_create(&t[i], NULL, handshake_main, &h[i]);
    }
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        ok += h[i].ok;
    }
    return (double)ok / (bench_now() - t0);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(stderr, "usage: %s BUILD_DIR [SECONDS] [IP]\n", argv[0]);
        return 2;
    }
    snprintf(g_build, sizeof(g_build), "%s", argv[1]);
    if (argc > 2)
        g_seconds = atof(argv[2]);
    if (argc > 3)
        snprintf(g_ip, sizeof(g_ip), "%s", argv[3]);
    if (g_seconds <= 0)
        bench_die("bad SECONDS %s", argv[2]);
    custos_crypto_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(g_dir, sizeof(g_dir), "/tmp/bench-attest-XXXXXX");
    if (!mkdtemp(g_dir))
        bench_die("mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    bench_exit_on_signals();
    start();
    provision_and_create_session();

    static struct client cls[MAX_CLIENTS];
    for (int i = 0; i < MAX_CLIENTS; i++) {
        cls[i].id = i;
        make_request(&cls[i]);
        check_answer(&cls[i]);
    }
    double verify = verify_rate();
    double hs = handshake_rate(8);
    printf("bench_attest: POST /v1/run (attested configuration, what cas-run asks), keep-alive TLS, %.0f s per run\n",
           g_seconds);
    printf("bounds (same run): ECDSA P-256 verify %.0f/s on one thread, %.0f/s on casd's %d threads; full TLS "
           "handshakes with casd (8 clients) %.0f/s\n\n",
           verify, verify * CAS_THREADS, CAS_THREADS, hs);
    printf("%-8s %10s %10s %10s %14s %14s %8s\n", "clients", "retr/s", "p50", "p99", "vs verify", "vs handshake",
           "failed");
    int counts[] = {1, 8, 32};
    bool met = true;
    for (size_t i = 0; i < 3; i++) {
        struct result r = run(cls, counts[i]);
        printf("%-8d %10.0f %7.2f ms %7.2f ms %13.1f%% %13.1fx %8ld\n", counts[i], r.rate, r.p50_ms, r.p99_ms,
               100 * r.rate / (verify * CAS_THREADS), r.rate / hs, r.failed);
        if (counts[i] > 1)
            met = met && r.rate >= 5000 && r.p99_ms < 5.0 && r.failed == 0;
    }
    printf("\n'vs verify': retrievals/s as %% of the P-256 verifications casd's threads can do (each retrieval "
           "verifies one quote); 'vs handshake': x the full-handshake rate (a client without keep-alive)\n");
    printf("goal (8 and 32 clients): >= 5000 retrievals/s with p99 < 5 ms: %s\n", met ? "met" : "NOT met");
    for (int i = 0; i < MAX_CLIENTS; i++) {
        custos_wipe(cls[i].priv, sizeof(cls[i].priv));
        free(cls[i].body);
        free(cls[i].lat);
    }
    return 0;
}
