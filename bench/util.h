/* SPDX-License-Identifier: Apache-2.0 */
/* What the benchmarks share: processes started as children (logs, readiness), loopback ports, and
 * libcurl clients over OpenSSL pinned to a server's key, as the cas CLI connects. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>

extern const char *bench_prog; /* the program's name in messages */

/* Prints "PROG: " fmt (one %s: arg) and exits 1 (atexit handlers stop the children). */
void bench_die(const char *fmt, const char *arg) __attribute__((noreturn));
double bench_now(void); /* monotonic seconds */
/* SIGTERM and wait; *pid becomes -1. */
void bench_stop(pid_t *pid);
/* rm -rf dir (a mkdtemp directory of the bench); dir becomes "". */
void bench_remove_dir(char *dir);
/* SIGINT and SIGTERM exit(130), so that atexit handlers stop the children. */
void bench_exit_on_signals(void);
/* fork+execv with stdout/stderr appended to log. */
pid_t bench_spawn(char *const argv[], const char *log);
char *bench_read_text(const char *path);
/* Waits until the log holds needle after byte `from` (exits on timeout, showing the log). */
void bench_wait_log(const char *log, const char *needle, size_t from, double timeout);
size_t bench_log_size(const char *log);
/* The word after the last occurrence of needle in the log. */
void bench_log_field(const char *log, const char *needle, char *out, size_t out_size);
int bench_free_port(const char *ip);
/* Appends v to a growing array of latencies (exits when out of memory). */
void bench_record(double **lat, size_t *n, size_t *cap, double v);
/* Sorts lat (seconds) and gives its median and 99th percentile in milliseconds (0 when n is 0). */
void bench_percentiles(double *lat, size_t n, double *p50_ms, double *p99_ms);

/* A server the clients talk to: base URL and the pin of its key. */
struct bench_target {
    char url[128];
    char pin[128];
};
void bench_set_pin(struct bench_target *t, const uint8_t hash[32]);
/* A client handle; a client certificate when cert_pem and key_pem are given; fresh: a new connection
 * (full handshake, no session resumption) per request. */
CURL *bench_handle(const struct bench_target *t, const char *cert_pem, const char *key_pem, bool fresh);
/* One request; returns the HTTP status (0 when no answer) and counts new connections. */
long bench_request(CURL *c, const char *method, const char *path, const char *body, long *connects);
