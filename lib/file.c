/* SPDX-License-Identifier: Apache-2.0 */
/* Crash-safe file replacement and bounded file reads. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "custos.h"

void (*custos_atomic_write_hook)(int step);

static void hook(int step)
{
    if (custos_atomic_write_hook)
        custos_atomic_write_hook(step);
}

static int write_all(int fd, const uint8_t *p, size_t size)
{
    while (size) {
        ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char copy[PATH_MAX];
    if (strlen(path) >= sizeof(copy))
        return -ENAMETOOLONG;
    strcpy(copy, path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int ret = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return ret;
}

/* rename() that never replaces: RENAME_NOREPLACE, or on file systems without it link() (which never
 * replaces either) and unlink of the old name. Sets errno (EEXIST when to exists). */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -1;
    if (link(from, to) < 0)
        return -1;
    (void)unlink(from);
    return 0;
}

int custos_rename_durable(const char *from, const char *to)
{
    if (rename(from, to) < 0)
        return -errno;
    return fsync_dir_of(to);
}

/* Writes a temp file next to path and renames it over path (replace) or to path only when nothing is
 * there (!replace: -EEXIST, the temp file removed). */
static int write_file(const char *path, const void *data, size_t size, unsigned mode, bool replace)
{
    char tmp[PATH_MAX];
    uint8_t rnd[6];
    char rnd_hex[13];
    int fd = -1, ret;
    if (custos_random(rnd, sizeof(rnd)) < 0)
        return -EIO;
    custos_hex_encode(rnd, sizeof(rnd), rnd_hex, false);
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-%s", path, rnd_hex) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    /* The mode asked for, whatever the umask. */
    ret = fchmod(fd, mode) < 0 ? -errno : 0;
    if (ret == 0)
        ret = write_all(fd, data, size);
    if (ret < 0)
        goto fail;
    hook(1);
    if (fsync(fd) < 0) {
        ret = -errno;
        goto fail;
    }
    hook(2);
    if (close(fd) < 0) {
        fd = -1;
        ret = -errno;
        goto fail;
    }
    fd = -1;
    if (replace ? rename(tmp, path) < 0 : rename_noreplace(tmp, path) < 0) {
        ret = -errno;
        goto fail;
    }
    hook(3);
    ret = fsync_dir_of(path);
    hook(4);
    return ret;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return ret;
}

int custos_write_file_atomic(const char *path, const void *data, size_t size, unsigned mode)
{
    return write_file(path, data, size, mode, true);
}

int custos_write_file_new(const char *path, const void *data, size_t size, unsigned mode)
{
    return write_file(path, data, size, mode, false);
}

int custos_read_file(const char *path, size_t max_size, uint8_t **out, size_t *out_size)
{
    int ret;
    struct stat st;
    uint8_t *buf = NULL;
    /* O_NONBLOCK: opening a FIFO without a writer must not hang; it is refused below. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = -EINVAL;
        goto out;
    }
    if ((size_t)st.st_size > max_size) {
        ret = -EFBIG;
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        ret = -ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? -errno : -EIO;
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *out_size = got;
    buf = NULL;
    ret = 0;
out:
    free(buf);
    close(fd);
    return ret;
}

int custos_mkdirs(const char *path, unsigned mode)
{
    char copy[PATH_MAX];
    if (strlen(path) >= sizeof(copy) || !*path)
        return -EINVAL;
    strcpy(copy, path);
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(copy, mode) < 0) {
        struct stat st;
        if (errno != EEXIST)
            return -errno;
        if (stat(copy, &st) < 0)
            return -errno;
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
    }
    return 0;
}
