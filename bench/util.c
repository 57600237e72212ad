/* SPDX-License-Identifier: Apache-2.0 */
/* What the benchmarks share (bench/util.h). */
#include <errno.h>
#include <fcntl.h>
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

#include "custos.h"
#include "util.h"

void bench_die(const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", bench_prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_stop(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGTERM);
        waitpid(*pid, NULL, 0);
        *pid = -1;
    }
}

void bench_remove_dir(char *dir)
{
    if (!dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    dir[0] = '\0';
}

static void on_signal(int sig)
{
    (void)sig;
    exit(130); /* runs the atexit handlers */
}

void bench_exit_on_signals(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void bench_record(double **lat, size_t *n, size_t *cap, double v)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 4096;
        *lat = realloc(*lat, *cap * sizeof(double));
        if (!*lat)
            bench_die("%s", "out of memory");
    }
    (*lat)[(*n)++] = v;
}

void bench_percentiles(double *lat, size_t n, double *p50_ms, double *p99_ms)
{
    *p50_ms = *p99_ms = 0;
    if (!n)
        return;
    qsort(lat, n, sizeof(double), cmp_double);
    *p50_ms = 1000 * lat[n / 2];
    *p99_ms = 1000 * lat[(size_t)((double)n * 0.99)];
}

pid_t bench_spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || null < 0)
            _exit(126);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

char *bench_read_text(const char *path)
{
    uint8_t *buf = NULL;
    size_t size = 0;
    if (custos_read_file(path, 64u << 20, &buf, &size) < 0)
        return NULL;
    char *t = realloc(buf, size + 1);
    if (!t) {
        free(buf);
        return NULL;
    }
    t[size] = '\0';
    return t;
}

/* Waits until the log holds `needle` after byte `from`. */
void bench_wait_log(const char *log, const char *needle, size_t from, double timeout)
{
    double t0 = bench_now();
    while (bench_now() - t0 < timeout) {
        char *t = bench_read_text(log);
        bool ok = t && strlen(t) > from && strstr(t + from, needle);
        free(t);
        if (ok)
            return;
        usleep(5000);
    }
    char *t = bench_read_text(log);
    fprintf(stderr, "%s: '%s' did not appear in %s:\n%s\n", bench_prog, needle, log, t ? t : "");
    free(t);
    exit(1);
}

size_t bench_log_size(const char *log)
{
    struct stat st;
    return stat(log, &st) == 0 ? (size_t)st.st_size : 0;
}

/* The word after the last occurrence of `needle` in the log. */
void bench_log_field(const char *log, const char *needle, char *out, size_t out_size)
{
    char *t = bench_read_text(log), *p = NULL, *q = t;
    while (q && (q = strstr(q, needle)))
        p = q++;
    if (!p)
        bench_die("no '%s' in the server's log", needle);
    p += strlen(needle);
    size_t n = strcspn(p, " \r\n");
    if (n >= out_size)
        bench_die("field after '%s' too long", needle);
    memcpy(out, p, n);
    out[n] = '\0';
    free(t);
}

int bench_free_port(const char *ip)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || getsockname(s, (struct sockaddr *)&sa, &len) < 0)
        bench_die("cannot bind %s", ip);
    close(s);
    return ntohs(sa.sin_port);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

CURL *bench_handle(const struct bench_target *t, const char *cert_pem, const char *key_pem, bool fresh)
{
    CURL *c = curl_easy_init();
    if (!c)
        bench_die("%s", "curl_easy_init failed");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)t->url);
    if (t->pin[0])
        curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, t->pin);
    if (cert_pem && key_pem) {
        struct curl_blob cert = {.data = (void *)(uintptr_t)cert_pem, .len = strlen(cert_pem), .flags = CURL_BLOB_COPY};
        struct curl_blob key = {.data = (void *)(uintptr_t)key_pem, .len = strlen(key_pem), .flags = CURL_BLOB_COPY};
        curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (fresh) {
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    }
    return c;
}

/* One request; returns the HTTP status (0 when no answer) and counts new connections. */
long bench_request(CURL *c, const char *method, const char *path, const char *body, long *connects)
{
    char url[512], *base = NULL;
    struct curl_slist *h = NULL;
    curl_easy_getinfo(c, CURLINFO_PRIVATE, &base);
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    long status = 0, n = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n);
    if (connects)
        *connects += n;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    return status;
}

void bench_set_pin(struct bench_target *t, const uint8_t hash[32])
{
    char *b64 = custos_base64_encode(hash, 32);
    if (!b64)
        bench_die("%s", "out of memory");
    snprintf(t->pin, sizeof(t->pin), "sha256//%s", b64);
    free(b64);
}
