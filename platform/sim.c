/* SPDX-License-Identifier: Apache-2.0 */
/* Simulated platform: the machine secret is 32 random bytes in <platform-dir>/machine-secret.
 * It binds data to this machine's file; it does not protect against root on this machine. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform.h"

static int read_exact(int fd, uint8_t *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EIO;
        got += (size_t)n;
    }
    return 0;
}

static int create_secret(const char *path, uint8_t out[CUSTOS_MACHINE_SECRET_SIZE], char *err, size_t err_size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create machine secret %s: %s", path, strerror(errno));
        return -errno;
    }
    int ret = custos_random(out, CUSTOS_MACHINE_SECRET_SIZE);
    if (ret == 0 && (write(fd, out, CUSTOS_MACHINE_SECRET_SIZE) != CUSTOS_MACHINE_SECRET_SIZE || fsync(fd) < 0))
        ret = -EIO;
    close(fd);
    if (ret < 0) {
        unlink(path);
        custos_wipe(out, CUSTOS_MACHINE_SECRET_SIZE);
        snprintf(err, err_size, "cannot write machine secret %s", path);
    }
    return ret;
}

static int sim_machine_secret(const struct custos_platform_config *cfg, uint8_t out[CUSTOS_MACHINE_SECRET_SIZE],
                              char *err, size_t err_size)
{
    char path[4096];
    struct stat st;
    int ret;
    if (snprintf(path, sizeof(path), "%s/machine-secret", cfg->dir) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    if ((ret = custos_mkdirs(cfg->dir, 0700)) < 0) {
        snprintf(err, err_size, "cannot create platform directory %s: %s", cfg->dir, strerror(-ret));
        return ret;
    }
    if (lstat(path, &st) < 0) {
        if (errno != ENOENT) {
            snprintf(err, err_size, "cannot inspect %s: %s", path, strerror(errno));
            return -errno;
        }
        return create_secret(path, out, err, err_size);
    }
    if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
        snprintf(err, err_size,
                 "%s is %s, not a regular file; refusing to use it (remove it only if "
                 "this node has no data sealed to it)",
                 path, S_ISLNK(st.st_mode) ? "a symlink" : "not a file");
        return -EPERM;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, err_size, "%s is owned by uid %u, not by this user (uid %u); fix with: chown %u %s", path,
                 st.st_uid, geteuid(), geteuid(), path);
        return -EPERM;
    }
    if (st.st_mode & 077) {
        snprintf(err, err_size, "%s is readable by group or others (mode %03o); fix with: chmod 600 %s", path,
                 st.st_mode & 0777, path);
        return -EPERM;
    }
    if (st.st_size != CUSTOS_MACHINE_SECRET_SIZE) {
        snprintf(err, err_size, "%s has %lld bytes, expected %d: the file is damaged", path, (long long)st.st_size,
                 CUSTOS_MACHINE_SECRET_SIZE);
        return -EINVAL;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        return -errno;
    }
    ret = read_exact(fd, out, CUSTOS_MACHINE_SECRET_SIZE);
    close(fd);
    if (ret < 0)
        snprintf(err, err_size, "cannot read %s", path);
    return ret;
}

static uint32_t sim_tcb(const struct custos_platform_config *cfg)
{
    return cfg->sim_tcb;
}

const struct custos_platform_backend custos_platform_sim = {
    .name = "sim",
    .kind = CUSTOS_PLATFORM_SIM,
    .protection = "simulated platform: data is bound to this machine's platform directory "
                  "(protects against moving data to another machine, NOT against root on this one)",
    .machine_secret = sim_machine_secret,
    .tcb = sim_tcb,
};
