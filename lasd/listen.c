/* SPDX-License-Identifier: Apache-2.0 */
/* The lasd socket: created only when no lasd answers on it (a live socket is never taken over, a
 * stale one is replaced), and removed at exit only when it is still the one this process bound.
 * Both steps hold an flock on the socket's directory, so two lasd starting at once, or one
 * starting while another stops, cannot interleave their check and their bind or unlink. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lasd.h"

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif

/* Opens and locks the directory of path (exclusive flock); returns its fd or -errno. */
static int lock_dir(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    return fd;
}

/* 1 when something accepts connections on the socket at addr, 0 when it is stale (nobody
 * listens, or it is gone), -errno when that cannot be told. */
static int socket_is_live(const struct sockaddr_un *addr)
{
    /* non-blocking: a live server with a full backlog answers EAGAIN instead of holding us up */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int ret = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 ? 1 : -errno;
    close(fd);
    if (ret == -ECONNREFUSED || ret == -ENOENT)
        return 0;
    return ret == -EAGAIN ? 1 : ret; /* a full backlog is a live, busy server */
}

/* Checks what is at path and removes it when it is a stale socket. */
static int clear_path(const struct sockaddr_un *addr)
{
    const char *path = addr->sun_path;
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        LOG_MODULE_ERROR(LAS_LOG, "%s exists and is not a socket; refusing to replace it", path);
        return -EEXIST;
    }
    int live = socket_is_live(addr);
    if (live == 1) {
        LOG_MODULE_ERROR(LAS_LOG,
                         "another lasd is serving on %s (it accepted a connection); refusing to take "
                         "its socket over: stop it first, or give this one another --socket",
                         path);
        return -EADDRINUSE;
    }
    if (live < 0) {
        LOG_MODULE_ERROR(LAS_LOG, "cannot tell whether a lasd is serving on %s: %s; refusing to replace it", path,
                         strerror(-live));
        return live;
    }
    LOG_MODULE_INFO(LAS_LOG, "replacing the stale socket %s (nobody accepts connections on it)", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

int las_listen(const char *path, struct las_socket *out)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char dir[sizeof(addr.sun_path)];
    int ret, fd = -1, dirfd = -1;
    if (strlen(path) >= sizeof(addr.sun_path)) {
        LOG_MODULE_ERROR(LAS_LOG, "socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    strcpy(addr.sun_path, path);
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        ret = custos_mkdirs(dir, 0755);
        if (ret < 0) {
            LOG_MODULE_ERROR(LAS_LOG, "cannot create socket directory %s: %s", dir, strerror(-ret));
            return ret;
        }
    }
    if ((dirfd = lock_dir(path)) < 0) {
        LOG_MODULE_ERROR(LAS_LOG, "cannot lock the directory of %s: %s", path, strerror(-dirfd));
        return dirfd;
    }
    if ((ret = clear_path(&addr)) < 0)
        goto out;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ret = -errno;
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
    /* Kernels >= 6.5 also hand over a pidfd of each sender; older ones fall back to start times. */
    if (setsockopt(fd, SOL_SOCKET, SO_PASSPIDFD, &one, sizeof(one)) < 0)
        LOG_MODULE_INFO(LAS_LOG, "kernel without SO_PASSPIDFD: callers are re-checked by start time");
    struct stat st;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || chmod(path, 0666) < 0 || lstat(path, &st) < 0 ||
        listen(fd, 512) < 0) {
        ret = -errno;
        LOG_MODULE_ERROR(LAS_LOG, "cannot listen on %s: %s", path, strerror(-ret));
        goto out;
    }
    out->fd = fd;
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    strcpy(out->path, path);
    fd = -1;
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    close(dirfd); /* releases the lock */
    return ret;
}

void las_unlisten(struct las_socket *s)
{
    if (s->fd < 0)
        return;
    close(s->fd);
    s->fd = -1;
    int dirfd = lock_dir(s->path);
    struct stat st;
    if (lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
        unlink(s->path);
    else
        LOG_MODULE_INFO(LAS_LOG, "%s is no longer the socket this lasd created; leaving it in place", s->path);
    if (dirfd >= 0)
        close(dirfd);
}
