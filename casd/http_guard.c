/* SPDX-License-Identifier: Apache-2.0 */
/* A deadline for request headers. libmicrohttpd 0.9.75 only has an idle timeout, which every
 * trickled byte resets: 256 clients sending one byte every few seconds would hold every connection.
 * Each connection is tracked from its start (MHD_OPTION_NOTIFY_CONNECTION) and again from the end of
 * each answer; when its next request's headers have not arrived (the request callback has not run)
 * within the deadline, its socket is shut down (shutdown(2), not close: libmicrohttpd sees the
 * connection fail and closes it itself). The TLS handshake counts against the deadline too.
 * The entry of a connection is removed in the CLOSED notification, which libmicrohttpd sends before
 * it closes the socket, under the same lock as the shutdown: an fd is never shut down after its
 * number could have been reused. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "casd.h"

/* used, cut and fd change under g.lock; waiting and since are written by the connection's own
 * thread without it (twice per request): since before waiting (release), read in that order. */
struct guard_slot {
    bool used, cut;
    atomic_bool waiting;
    atomic_llong since; /* CLOCK_MONOTONIC seconds */
    int fd;
};

static long long mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec;
}

static struct {
    pthread_mutex_t lock;
    struct guard_slot *slots;
    size_t count;
    unsigned deadline_s;
    unsigned long long cut_total;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

int cas_http_guard_init(size_t max_connections, unsigned deadline_s)
{
    g.slots = calloc(max_connections, sizeof(*g.slots));
    if (!g.slots)
        return -ENOMEM;
    g.count = max_connections;
    g.deadline_s = deadline_s;
    return 0;
}

void cas_http_guard_free(void)
{
    free(g.slots);
    g.slots = NULL;
    g.count = 0;
}

void cas_http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    pthread_mutex_lock(&g.lock);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = NULL;
        for (size_t i = 0; ci && i < g.count; i++) {
            if (!g.slots[i].used) {
                g.slots[i].used = true;
                g.slots[i].cut = false;
                g.slots[i].fd = ci->connect_fd;
                atomic_store(&g.slots[i].since, mono_s());
                atomic_store(&g.slots[i].waiting, true);
                *socket_context = &g.slots[i];
                break;
            }
        }
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        struct guard_slot *s = *socket_context;
        s->used = s->cut = false;
        s->fd = -1;
        atomic_store(&s->waiting, false);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&g.lock);
}

/* waiting: the connection waits for request headers (again) from now; false: they arrived. Called
 * by the connection's thread between its STARTED and CLOSED notifications: no lock needed (the
 * reaper may cut a connection whose headers arrive in the same instant, as it could with a lock). */
void cas_http_guard_mark(void *entry, bool waiting)
{
    struct guard_slot *s = entry;
    if (!s)
        return;
    if (waiting)
        atomic_store(&s->since, mono_s());
    atomic_store(&s->waiting, waiting);
}

unsigned cas_http_guard_reap(void)
{
    long long now = mono_s();
    unsigned n = 0;
    pthread_mutex_lock(&g.lock);
    for (size_t i = 0; i < g.count; i++) {
        struct guard_slot *s = &g.slots[i];
        if (s->used && !s->cut && atomic_load(&s->waiting) && now - atomic_load(&s->since) >= (long long)g.deadline_s) {
            (void)shutdown(s->fd, SHUT_RDWR);
            s->cut = true;
            n++;
        }
    }
    g.cut_total += n;
    pthread_mutex_unlock(&g.lock);
    return n;
}
