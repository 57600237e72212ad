/* SPDX-License-Identifier: Apache-2.0 */
/* bench/quote: quotes per second through lasd's socket on 1 and 2 client threads, beside this
 * machine's raw ECDSA P-256 signing rate measured in the same run. Starts its own lasd.
 * Usage: bench_quote LASD_BINARY [SECONDS] [LASD_THREADS] */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "custos.h"

static double g_seconds = 3.0;
static char g_socket[256];
static const char *g_threads = "2";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double sign_rate(void)
{
    uint8_t seed[32] = {1}, msg[151] = {2}, sig[80];
    size_t sig_size;
    custos_p256 *key = NULL;
    if (custos_p256_from_seed(seed, sizeof(seed), &key) < 0)
        return 0;
    long n = 0;
    double t0 = now(), t;
    while ((t = now()) - t0 < g_seconds) {
        for (int i = 0; i < 100; i++) {
            msg[0] = (uint8_t)i;
            custos_p256_sign(key, msg, sizeof(msg), sig, &sig_size);
        }
        n += 100;
    }
    custos_p256_free(key);
    return (double)n / (t - t0);
}

static bool g_keep_alive;

/* The floor for one client: round trips of a 64-byte message between two threads over a Unix
 * stream socket pair (no work at all on the other side). */
static void *echo(void *arg)
{
    int fd = *(int *)arg;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf))
        if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
            break;
    return NULL;
}

static double socket_round_trips(void)
{
    int sv[2];
    pthread_t t;
    char buf[64] = {0};
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 0;
    pthread_create(&t, NULL, echo, &sv[1]);
    long n = 0;
    double t0 = now(), t1;
    while ((t1 = now()) - t0 < g_seconds) {
        if (write(sv[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf) ||
            read(sv[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
            break;
        n++;
    }
    close(sv[0]);
    pthread_join(t, NULL);
    close(sv[1]);
    return (double)n / (t1 - t0);
}

static void *client(void *arg)
{
    long *count = arg;
    uint8_t rd[64] = {0};
    struct custos_quote q;
    char err[256];
    struct custos_las_client *c = NULL;
    if (custos_las_client_open(g_socket, &c) < 0)
        exit(1);
    double t0 = now();
    while (now() - t0 < g_seconds) {
        int r = g_keep_alive ? custos_las_client_quote(c, rd, &q, err, sizeof(err))
                             : custos_las_quote(g_socket, rd, &q, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "quote failed: %s\n", err);
            exit(1);
        }
        (*count)++;
    }
    custos_las_client_free(c);
    return NULL;
}

static double quote_rate(int threads)
{
    pthread_t t[8];
    long counts[8] = {0};
    double t0 = now();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, client, &counts[i]);
    long total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += counts[i];
    }
    return (double)total / (now() - t0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s LASD_BINARY [SECONDS] [LASD_THREADS]\n", argv[0]);
        return 2;
    }
    if (argc > 2)
        g_seconds = atof(argv[2]);
    if (argc > 3)
        g_threads = argv[3];
    char dir[] = "/tmp/custos-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char pdir[300];
    snprintf(g_socket, sizeof(g_socket), "%s/las.sock", dir);
    snprintf(pdir, sizeof(pdir), "%s/platform", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", 1);
        dup2(null, 2);
        execl(argv[1], "lasd", "--socket", g_socket, "--platform-dir", pdir, "--threads", g_threads, (char *)NULL);
        _exit(127);
    }
    struct stat st;
    for (int i = 0; i < 500 && stat(g_socket, &st) < 0; i++)
        usleep(10000);
    usleep(50000);
    double raw = sign_rate();
    double rtt = socket_round_trips();
    double q1 = quote_rate(1);
    double q2 = quote_rate(2);
    g_keep_alive = true;
    double k1 = quote_rate(1);
    double k2 = quote_rate(2);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    printf("raw ECDSA P-256 sign (1 thread):   %10.0f /s\n", raw);
    printf("Unix socket round trips (1 thread, no work): %7.0f /s   (%.1f us each: the floor for 1 client)\n", rtt,
           1e6 / rtt);
    printf("lasd quotes, 1 client thread:      %10.0f /s   ratio to raw sign: %5.1f%%\n", q1, 100.0 * q1 / raw);
    printf("lasd quotes, 2 client threads:     %10.0f /s   ratio to raw sign: %5.1f%%\n", q2, 100.0 * q2 / raw);
    printf("lasd quotes, 1 thread, kept conn.: %10.0f /s   ratio to raw sign: %5.1f%%\n", k1, 100.0 * k1 / raw);
    printf("lasd quotes, 2 threads, kept conn.:%10.0f /s   ratio to raw sign: %5.1f%%\n", k2, 100.0 * k2 / raw);
    printf("(each quote: connect, SO_PASSCRED, measurement (cached by inode/ctime), sign; goal >= 50%%)\n");
    return 0;
}
