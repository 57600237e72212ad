/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lasd.h"

#define CACHE_SLOTS 64

struct cache_entry {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    uint8_t measurement[CUSTOS_MEASUREMENT_SIZE];
    bool used;
};

static struct cache_entry g_cache[CACHE_SLOTS];
static unsigned g_cache_next;
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same_file(const struct cache_entry *e, const struct stat *st)
{
    return e->used && e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static bool cache_get(const struct stat *st, uint8_t out[CUSTOS_MEASUREMENT_SIZE])
{
    bool hit = false;
    pthread_mutex_lock(&g_cache_lock);
    for (unsigned i = 0; i < CACHE_SLOTS && !hit; i++) {
        if (same_file(&g_cache[i], st)) {
            memcpy(out, g_cache[i].measurement, CUSTOS_MEASUREMENT_SIZE);
            hit = true;
        }
    }
    pthread_mutex_unlock(&g_cache_lock);
    return hit;
}

static void cache_put(const struct stat *st, const uint8_t m[CUSTOS_MEASUREMENT_SIZE])
{
    pthread_mutex_lock(&g_cache_lock);
    struct cache_entry *e = &g_cache[g_cache_next++ % CACHE_SLOTS];
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->ctime = st->st_ctim;
    memcpy(e->measurement, m, CUSTOS_MEASUREMENT_SIZE);
    e->used = true;
    pthread_mutex_unlock(&g_cache_lock);
}

/* Field 22 of /proc/<pid>/stat: the process start time in clock ticks since boot. */
static int start_time(pid_t pid, unsigned long long *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may contain spaces and parentheses */
    if (!p)
        return -EIO;
    /* after ")" come fields 3.. ; start time is field 22 */
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    if (field != 22 || sscanf(p, "%llu", out) != 1)
        return -EIO;
    return 0;
}

static int hash_fd(int fd, uint8_t out[CUSTOS_MEASUREMENT_SIZE])
{
    uint8_t buf[65536];
    int ret = -EIO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
            goto out;
    }
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx, out, &len) == 1)
        ret = 0;
out:
    EVP_MD_CTX_free(ctx);
    return ret;
}

static bool still_alive(const struct las_caller *caller, unsigned long long t1)
{
    unsigned long long t2 = 0;
    if (caller->pidfd >= 0)
        return syscall(SYS_pidfd_send_signal, caller->pidfd, 0, NULL, 0) == 0;
    return start_time(caller->pid, &t2) == 0 && t1 == t2;
}

int las_measure(const struct las_caller *caller, uint8_t out[CUSTOS_MEASUREMENT_SIZE], char *err, size_t err_size)
{
    char path[64];
    struct stat st, again;
    unsigned long long t1 = 0;
    uint8_t m[CUSTOS_MEASUREMENT_SIZE];
    int ret = 0, pid = (int)caller->pid;
    if (caller->pidfd < 0 && (ret = start_time(caller->pid, &t1)) < 0) {
        snprintf(err, err_size, "cannot read the state of caller pid %d", pid);
        return ret;
    }
    snprintf(path, sizeof(path), "/proc/%d/exe", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = -errno;
        snprintf(err, err_size, "cannot open the executable of caller pid %d: %s", pid, strerror(errno));
        return ret;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(err, err_size, "the executable of caller pid %d is not a regular file", pid);
        return -EINVAL;
    }
    /* The check after measuring is the one that counts (it also reads the pagemap of the code, and
     * what the caller mapped while it was measured shows there). The one before hashing only
     * spares hashing an executable whose caller is refused anyway, so it runs on a cache miss. */
    if (!cache_get(&st, m)) {
        ret = las_check_caller(caller->pid, &st, false, err, err_size);
        if (ret == 0 && (ret = hash_fd(fd, m)) < 0)
            snprintf(err, err_size, "cannot read the executable of caller pid %d", pid);
        if (ret < 0) {
            close(fd);
            return ret;
        }
        cache_put(&st, m);
    }
    close(fd);
    if ((ret = las_check_caller(caller->pid, &st, true, err, err_size)) < 0)
        return ret;
    /* still the program that was hashed (an exec meanwhile would show here or in its mappings) */
    if (stat(path, &again) < 0 || again.st_dev != st.st_dev || again.st_ino != st.st_ino) {
        snprintf(err, err_size, "caller pid %d changed its executable during measurement", pid);
        return -ESRCH;
    }
    if (!still_alive(caller, t1)) {
        snprintf(err, err_size, "caller pid %d exited or was replaced during measurement", pid);
        return -ESRCH;
    }
    memcpy(out, m, sizeof(m));
    return 0;
}
