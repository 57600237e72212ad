/* SPDX-License-Identifier: Apache-2.0 */
/* casd's requests to its node's lasd, off the HTTP workers: one thread talks to lasd; a worker waits
 * for its answer at most CAS_LAS_WAIT_MS and answers 503 at once while lasd is known not to answer
 * (a stopped or overloaded lasd must not take /healthz and the owner's reads down with it). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "casd.h"

#define CAS_LAS_WAIT_MS 1000
#define CAS_LAS_QUEUE 16

struct las_job {
    uint8_t report_data[CUSTOS_REPORT_DATA_SIZE];
    struct custos_quote quote;
    int ret;
    char err[256];
    bool done, abandoned;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    struct las_job *queue[CAS_LAS_QUEUE];
    size_t head, count;
    struct timespec busy_since; /* zero: idle */
    const struct cas_las_ops *ops;
    void *ctx;
    const char *socket; /* for messages */
    bool started;
} g_las = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static long long ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000LL + (now.tv_nsec - t->tv_nsec) / 1000000;
}

static void *las_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_las.lock);
    for (;;) {
        while (g_las.count == 0)
            pthread_cond_wait(&g_las.work, &g_las.lock);
        struct las_job *job = g_las.queue[g_las.head];
        g_las.head = (g_las.head + 1) % CAS_LAS_QUEUE;
        g_las.count--;
        clock_gettime(CLOCK_MONOTONIC, &g_las.busy_since);
        pthread_mutex_unlock(&g_las.lock);
        job->ret = g_las.ops->quote(g_las.ctx, job->report_data, &job->quote, job->err, sizeof(job->err));
        pthread_mutex_lock(&g_las.lock);
        g_las.busy_since = (struct timespec){0};
        if (job->abandoned) {
            free(job);
        } else {
            job->done = true;
            pthread_cond_broadcast(&g_las.done);
        }
    }
    return NULL;
}

int cas_las_gate_start(const struct cas_las_ops *ops, void *ctx, const char *what)
{
    pthread_t t;
    g_las.ops = ops;
    g_las.ctx = ctx;
    g_las.socket = what;
    if (pthread_create(&t, NULL, las_thread, NULL) != 0)
        return -EAGAIN;
    pthread_detach(t); /* at exit it may be inside a request to a stuck lasd: never waited for */
    g_las.started = true;
    return 0;
}

int cas_las_gate_quote(const uint8_t report_data[CUSTOS_REPORT_DATA_SIZE], struct custos_quote *out, char *err,
                       size_t err_size)
{
    if (!g_las.started) {
        snprintf(err, err_size, "LAS gate not started");
        return -EIO;
    }
    pthread_mutex_lock(&g_las.lock);
    if (g_las.busy_since.tv_sec && ms_since(&g_las.busy_since) > CAS_LAS_WAIT_MS) {
        long long ms = ms_since(&g_las.busy_since);
        pthread_mutex_unlock(&g_las.lock);
        snprintf(err, err_size, "LAS at %s has not answered for %lld ms (stopped or overloaded?)", g_las.socket, ms);
        return -ETIMEDOUT;
    }
    if (g_las.count == CAS_LAS_QUEUE) {
        pthread_mutex_unlock(&g_las.lock);
        snprintf(err, err_size, "too many requests waiting for LAS at %s", g_las.socket);
        return -EBUSY;
    }
    struct las_job *job = calloc(1, sizeof(*job));
    if (!job) {
        pthread_mutex_unlock(&g_las.lock);
        snprintf(err, err_size, "out of memory");
        return -ENOMEM;
    }
    memcpy(job->report_data, report_data, sizeof(job->report_data));
    g_las.queue[(g_las.head + g_las.count) % CAS_LAS_QUEUE] = job;
    g_las.count++;
    pthread_cond_signal(&g_las.work);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += CAS_LAS_WAIT_MS / 1000;
    deadline.tv_nsec += (CAS_LAS_WAIT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    while (!job->done && pthread_cond_timedwait(&g_las.done, &g_las.lock, &deadline) != ETIMEDOUT)
        ;
    int ret;
    if (!job->done) {
        job->abandoned = true; /* the LAS thread frees it (it may still be queued or running) */
        ret = -ETIMEDOUT;
        snprintf(err, err_size, "LAS at %s did not answer within %d ms (stopped or overloaded?)", g_las.socket,
                 CAS_LAS_WAIT_MS);
    } else {
        ret = job->ret;
        if (ret == 0)
            *out = job->quote;
        else
            snprintf(err, err_size, "%s", job->err);
        free(job);
    }
    pthread_mutex_unlock(&g_las.lock);
    return ret;
}
