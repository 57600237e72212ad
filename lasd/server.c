/* SPDX-License-Identifier: Apache-2.0 */
/* The lasd socket server: worker threads, each with its own epoll set over the shared listening
 * socket (EPOLLEXCLUSIVE), non-blocking connections with a deadline, so a slow or silent client
 * holds only its own slot. The sender of every request is taken from SCM_CREDENTIALS (SO_PASSCRED),
 * per message, so a socket handed to another process speaks for that process. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lasd.h"

#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

struct conn {
    int fd;
    struct ucred peer;        /* SO_PEERCRED: the process that connected */
    struct las_caller caller; /* sender of the bytes buffered so far (pid 0 when none) */
    size_t got;               /* bytes buffered in buf */
    uint64_t deadline_ms;
    struct conn *next;
    uint8_t buf[4 + CUSTOS_LAS_MAX_MSG];
};

struct worker {
    pthread_t thread;
    int epfd;
    struct conn *conns;
};

static atomic_bool g_stop;
static struct las_ratelimit g_rl_refused = LAS_RATELIMIT_INIT, g_rl_accept = LAS_RATELIMIT_INIT;
static int g_listen_fd = -1;
static const struct las_server_config *g_cfg;
static const struct custos_platform *g_platform;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void conn_close(struct worker *w, struct conn *c)
{
    for (struct conn **pp = &w->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->caller.pidfd >= 0)
        close(c->caller.pidfd);
    custos_wipe(c->buf, sizeof(c->buf));
    las_slot_put(c->peer.uid);
    free(c);
}

static void send_error_and_close(struct worker *w, struct conn *c, const char *msg)
{
    uint8_t resp[300];
    size_t n = strlen(msg);
    resp[0] = 1;
    memcpy(resp + 1, msg, n);
    struct timeval tv = {.tv_usec = 100000};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int flags = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK);
    custos_frame_write(c->fd, resp, 1 + n);
    conn_close(w, c);
}

/* A refused connection gets one error frame (if the socket buffer takes it) and is closed. */
static void refuse(int fd, const char *why)
{
    uint8_t frame[4 + 1 + 200];
    size_t n = strnlen(why, sizeof(frame) - 5);
    custos_put_be(frame, 1 + n, 4);
    frame[4] = 1;
    memcpy(frame + 5, why, n);
    (void)!send(fd, frame, 5 + n, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
}

static void accept_clients(struct worker *w)
{
    for (;;) {
        int fd = accept4(g_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                las_warn_limited(&g_rl_accept, "accepting a connection failed: %s", strerror(errno));
            return;
        }
        struct ucred peer;
        socklen_t len = sizeof(peer);
        char why[160];
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 || peer.pid <= 0) {
            refuse(fd, "lasd cannot tell who connected (SO_PEERCRED)");
            continue;
        }
        if (las_slot_take(peer.uid, why, sizeof(why)) < 0) {
            refuse(fd, why);
            las_warn_limited(&g_rl_refused, "refused a connection of uid %u (pid %d): %s", (unsigned)peer.uid,
                             (int)peer.pid, why);
            continue;
        }
        struct conn *c = malloc(sizeof(*c));
        if (!c) {
            las_slot_put(peer.uid);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->peer = peer;
        c->caller.pid = 0;
        c->caller.pidfd = -1;
        c->got = 0;
        c->deadline_ms = now_ms() + g_cfg->request_timeout_ms;
        c->next = w->conns;
        w->conns = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* Takes the sender's credentials (and pidfd) from one message. One request, one sender, and it
 * must be the process that connected: a socket handed to another process, or credentials claimed
 * for another pid (possible with CAP_SYS_ADMIN in a user namespace), are refused. */
static int take_sender(struct conn *c, struct msghdr *msg)
{
    pid_t pid = 0;
    uid_t uid = (uid_t)-1;
    int pidfd = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET)
            continue;
        int *fds = (int *)CMSG_DATA(cm);
        size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        if (cm->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(cm), sizeof(cred));
            pid = cred.pid;
            uid = cred.uid;
        } else if (cm->cmsg_type == SCM_PIDFD && nfds == 1 && pidfd < 0) {
            pidfd = fds[0];
        } else if (cm->cmsg_type == SCM_RIGHTS || cm->cmsg_type == SCM_PIDFD) {
            for (size_t k = 0; k < nfds; k++)
                close(fds[k]);
        }
    }
    if (pid <= 0 || pid != c->peer.pid || uid != c->peer.uid || (c->caller.pid && c->caller.pid != pid)) {
        if (pidfd >= 0)
            close(pidfd);
        return -1;
    }
    if (c->caller.pid == 0) {
        c->caller.pid = pid;
        c->caller.uid = uid;
        c->caller.pidfd = pidfd;
    } else if (pidfd >= 0) {
        close(pidfd);
    }
    return 0;
}

static void reset_sender(struct conn *c)
{
    if (c->caller.pidfd >= 0)
        close(c->caller.pidfd);
    c->caller.pid = 0;
    c->caller.pidfd = -1;
}

/* Answers every complete frame in the buffer. Returns -1 when the connection was closed. */
static int answer_frames(struct worker *w, struct conn *c)
{
    uint8_t resp[4 + CUSTOS_LAS_MAX_MSG];
    long len;
    while ((len = custos_frame_split(c->buf, c->got)) >= 0) {
        size_t n = las_handle(g_platform, &c->caller, c->buf + 4, (size_t)len, resp + 4, CUSTOS_LAS_MAX_MSG);
        custos_put_be(resp, n, 4);
        /* Answers fit the socket buffer; a client that does not read them is dropped. */
        ssize_t sent = send(c->fd, resp, 4 + n, MSG_DONTWAIT | MSG_NOSIGNAL);
        custos_wipe(resp, 4 + n);
        size_t used = 4 + (size_t)len;
        custos_wipe(c->buf, used);
        memmove(c->buf, c->buf + used, c->got - used);
        c->got -= used;
        if (sent != (ssize_t)(4 + n)) {
            conn_close(w, c);
            return -1;
        }
        c->deadline_ms = now_ms() + g_cfg->request_timeout_ms;
    }
    if (len == CUSTOS_FRAME_OVERSIZE) {
        char msg[96];
        size_t big = (size_t)custos_get_be(c->buf, 4);
        snprintf(msg, sizeof(msg), "request of %zu bytes exceeds the limit of %d", big, CUSTOS_LAS_MAX_MSG);
        send_error_and_close(w, c, msg);
        return -1;
    }
    if (c->got == 0)
        reset_sender(c);
    return 0;
}

static void conn_serve(struct worker *w, struct conn *c)
{
    for (;;) {
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 4)];
        } control;
        struct iovec iov = {.iov_base = c->buf + c->got, .iov_len = sizeof(c->buf) - c->got};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf)};
        ssize_t n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            conn_close(w, c);
            return;
        }
        if (take_sender(c, &msg) < 0) {
            send_error_and_close(w, c, "a request must come from the process that connected");
            return;
        }
        c->got += (size_t)n;
        /* One read per wakeup: epoll is level-triggered and comes back for the rest, after the
         * other ready connections, so a busy client cannot pin a worker. */
        answer_frames(w, c);
        return;
    }
}

static void expire(struct worker *w)
{
    uint64_t now = now_ms();
    struct conn *c = w->conns;
    while (c) {
        struct conn *next = c->next;
        if (now > c->deadline_ms) {
            LOG_MODULE_DEBUG(LAS_LOG, "closing a connection idle for more than %u ms", g_cfg->request_timeout_ms);
            conn_close(w, c);
        }
        c = next;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[64];
    while (!g_stop) {
        int n = epoll_wait(w->epfd, evs, 64, 100);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                accept_clients(w);
            else
                conn_serve(w, evs[i].data.ptr);
        }
        expire(w);
        las_ratelimit_flush(&g_rl_refused, "refused connections");
        las_ratelimit_flush(&g_rl_accept, "failed accepts");
    }
    while (w->conns)
        conn_close(w, w->conns);
    return NULL;
}

/* Every connection is a descriptor: without enough of them accept() fails and nobody is served. */
static void raise_fd_limit(unsigned max_clients)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)max_clients + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        LOG_MODULE_WARN(LAS_LOG,
                        "only %llu file descriptors allowed (RLIMIT_NOFILE) for --max-clients %u: "
                        "raise the limit or lower --max-clients",
                        (unsigned long long)rl.rlim_cur, max_clients);
}

/* Signals are taken synchronously by the main thread (blocked everywhere, sigwaitinfo), so they
 * can be logged: SIGTERM/SIGINT stop, SIGHUP (a closed terminal, or a reload by habit) is logged and
 * ignored. */
static void wait_for_stop(const sigset_t *set)
{
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(set, &si);
        if (sig < 0)
            continue; /* EINTR */
        if (sig == SIGHUP) {
            LOG_MODULE_INFO(LAS_LOG, "SIGHUP from pid %d: lasd has nothing to reload, carrying on", (int)si.si_pid);
            continue;
        }
        LOG_MODULE_INFO(LAS_LOG, "%s from pid %d: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT", (int)si.si_pid);
        atomic_store(&g_stop, true);
        return;
    }
}

int las_serve(const struct las_server_config *cfg, const struct custos_platform *platform)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by the workers */
    signal(SIGPIPE, SIG_IGN);
    g_cfg = cfg;
    g_platform = platform;
    int ret = las_limits_init(cfg);
    if (ret < 0)
        return ret;
    raise_fd_limit(cfg->max_clients);
    struct las_socket sock;
    ret = las_listen(cfg->socket_path, &sock);
    if (ret < 0)
        return ret;
    g_listen_fd = sock.fd;
    struct worker *workers = calloc(cfg->threads, sizeof(*workers));
    if (!workers) {
        las_unlisten(&sock);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < cfg->threads; i++) {
        workers[i].epfd = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
        epoll_ctl(workers[i].epfd, EPOLL_CTL_ADD, g_listen_fd, &ev);
        pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
    }
    LOG_MODULE_INFO(LAS_LOG, "LAS listening on %s (%u threads)", cfg->socket_path, cfg->threads);
    wait_for_stop(&set);
    for (unsigned i = 0; i < cfg->threads; i++) {
        pthread_join(workers[i].thread, NULL);
        close(workers[i].epfd);
    }
    free(workers);
    las_unlisten(&sock);
    g_listen_fd = -1;
    LOG_MODULE_INFO(LAS_LOG, "LAS stopped");
    return 0;
}
