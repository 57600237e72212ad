/* SPDX-License-Identifier: Apache-2.0 */
/* Is the caller running only its executable? The measurement is the hash of the executable, so a
 * caller is refused when other code can run in it: it is traced, it was started with the dynamic
 * loader told to load more (a speed bump: the environment block is the caller's to rewrite), or
 * its executable memory, as the kernel maps it, holds anything but
 *   - the program itself (the file that was hashed, by device and inode),
 *   - files owned by root and not writable by group or others (the libraries root installed),
 *   - the kernel's [vdso] and [vsyscall];
 * and, in the deep check (pagemap), none of those file pages is a private copy (code changed in
 * memory).
 * Files are judged through /proc/<pid>/map_files, never by the path in maps, which belongs to the
 * caller's mount namespace. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lasd.h"

#define MAPS_MAX_SIZE (64u << 20) /* beyond this the caller is refused, not half-checked */

/* Reads a small /proc/<pid>/<name> into buf (NUL-terminated); returns its length or -errno. */
static ssize_t read_proc(pid_t pid, const char *name, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

/* The whole of /proc/<pid>/<name> in a malloc'ed NUL-terminated buffer, read with as few read()
 * calls as the kernel allows. Caller frees *out. */
static int read_proc_all(pid_t pid, const char *name, char **out, size_t *out_size)
{
    char path[64];
    size_t cap = 256u << 10, got = 0;
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *buf = malloc(cap);
    int ret = buf ? 0 : -ENOMEM;
    while (ret == 0) {
        if (got == cap - 1) {
            char *bigger = cap < MAPS_MAX_SIZE ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                ret = cap < MAPS_MAX_SIZE ? -ENOMEM : -E2BIG;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            ret = -errno;
        else if (n == 0)
            break;
        else
            got += (size_t)n;
    }
    close(fd);
    if (ret < 0) {
        free(buf);
        return ret;
    }
    buf[got] = '\0';
    *out = buf;
    *out_size = got;
    return 0;
}

static int check_tracer_and_env(pid_t pid, char *err, size_t err_size)
{
    static const char *const loader_vars[] = {"LD_PRELOAD=", "LD_AUDIT=", "LD_LIBRARY_PATH="};
    char status[4096];
    if (read_proc(pid, "status", status, sizeof(status)) < 0) {
        snprintf(err, err_size, "cannot read the state of caller pid %d", (int)pid);
        return -ESRCH;
    }
    const char *t = strstr(status, "\nTracerPid:");
    long tracer = t ? strtol(t + 11, NULL, 10) : -1;
    if (tracer != 0) {
        snprintf(err, err_size, "caller pid %d is being traced (TracerPid %ld); a traced program is not measured",
                 (int)pid, tracer);
        return -EPERM;
    }
    static _Thread_local char env[1 << 20];
    ssize_t n = read_proc(pid, "environ", env, sizeof(env));
    if (n < 0) {
        snprintf(err, err_size, "cannot read the environment of caller pid %d", (int)pid);
        return -ESRCH;
    }
    if ((size_t)n >= sizeof(env) - 1) {
        snprintf(err, err_size, "the environment of caller pid %d is too large to check", (int)pid);
        return -E2BIG;
    }
    for (const char *p = env; p < env + n; p += strlen(p) + 1) {
        for (size_t i = 0; i < sizeof(loader_vars) / sizeof(loader_vars[0]); i++) {
            if (!strncmp(p, loader_vars[i], strlen(loader_vars[i]))) {
                snprintf(err, err_size,
                         "caller pid %d was started with %.*s set; programs started with dynamic "
                         "loader variables are not measured",
                         (int)pid, (int)strlen(loader_vars[i]) - 1, loader_vars[i]);
                return -EPERM;
            }
        }
    }
    return 0;
}

/* One line of maps (or a header line of smaps). */
struct mapping {
    unsigned long start, end;
    char perms[5];
    const char *path; /* "" for anonymous memory, "[name]" for the kernel's and named ones */
};

static int parse_mapping(char *line, struct mapping *m)
{
    unsigned long long offset, inode;
    unsigned major, minor;
    int pos = 0;
    if (sscanf(line, "%lx-%lx %4s %llx %x:%x %llu %n", &m->start, &m->end, m->perms, &offset, &major, &minor, &inode,
               &pos) != 7 ||
        strlen(m->perms) != 4)
        return -1;
    m->path = pos > 0 ? line + pos : "";
    return 0;
}

/* Judges one executable mapping. */
static int check_exec_mapping(pid_t pid, const struct mapping *m, const struct stat *exe, char *err, size_t err_size)
{
    const char *name = m->path[0] ? m->path : "no name";
    if (m->perms[1] == 'w') {
        snprintf(err, err_size,
                 "caller pid %d has writable and executable memory at %lx-%lx (%s); such code "
                 "can be anything, it is not measured",
                 (int)pid, m->start, m->end, name);
        return -EPERM;
    }
    if (m->path[0] != '/') {
        if (!strcmp(m->path, "[vdso]") || !strcmp(m->path, "[vsyscall]"))
            return 0; /* the kernel's */
        snprintf(err, err_size,
                 "caller pid %d has anonymous executable memory at %lx-%lx (%s); code that "
                 "comes from no file is not measured",
                 (int)pid, m->start, m->end, name);
        return -EPERM;
    }
    char path[96];
    struct stat st;
    snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", (int)pid, m->start, m->end);
    if (stat(path, &st) < 0) {
        int e = errno;
        snprintf(err, err_size, "cannot inspect the executable mapping %lx-%lx (%s) of caller pid %d: %s%s", m->start,
                 m->end, m->path, (int)pid, strerror(e),
                 e == EPERM ? " (lasd needs CAP_SYS_ADMIN for /proc/<pid>/map_files)" : "");
        return e == ENOENT ? -ESRCH : -e;
    }
    if (st.st_dev == exe->st_dev && st.st_ino == exe->st_ino)
        return 0; /* the program itself: its hash is the measurement */
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "caller pid %d runs code from %s, which is not a regular file", (int)pid, m->path);
        return -EPERM;
    }
    if (st.st_uid != 0) {
        snprintf(err, err_size,
                 "caller pid %d runs code from %s, owned by uid %u: besides the program itself "
                 "only libraries owned by root are accepted",
                 (int)pid, m->path, (unsigned)st.st_uid);
        return -EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, err_size,
                 "caller pid %d runs code from %s, mode %04o: writable by group or others, "
                 "so not only root's",
                 (int)pid, m->path, (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    return 0;
}

/* pagemap: in an executable file mapping, a page that is present and not a file page, or that is
 * swapped (file pages are dropped, never swapped), is a private copy: code changed in memory (by
 * the caller itself after an mprotect, or by another process through /proc/<pid>/mem). Only the
 * executable ranges are read, 8 bytes per page. */
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)

static int check_private_copies(pid_t pid, int pagemap_fd, const struct mapping *m, char *err, size_t err_size)
{
    static _Thread_local uint64_t entries[512];
    unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE), copies = 0;
    for (unsigned long at = m->start / page; at < m->end / page;) {
        size_t want = m->end / page - at;
        if (want > sizeof(entries) / sizeof(entries[0]))
            want = sizeof(entries) / sizeof(entries[0]);
        ssize_t n = pread(pagemap_fd, entries, want * sizeof(entries[0]), (off_t)(at * sizeof(entries[0])));
        if (n <= 0 || n % (ssize_t)sizeof(entries[0]) != 0) {
            snprintf(err, err_size, "cannot read /proc/%d/pagemap for %lx-%lx (%s): %s", (int)pid, m->start, m->end,
                     m->path, n < 0 ? strerror(errno) : "short read");
            return -ESRCH;
        }
        for (size_t i = 0; i < (size_t)n / sizeof(entries[0]); i++)
            if ((entries[i] & PM_SWAPPED) || (entries[i] & (PM_PRESENT | PM_FILE)) == PM_PRESENT)
                copies++;
        at += (size_t)n / sizeof(entries[0]);
    }
    if (copies == 0)
        return 0;
    snprintf(err, err_size,
             "caller pid %d: the code of %s at %lx-%lx was changed in memory (%lu private "
             "page copies): it is no longer what the file says",
             (int)pid, m->path, m->start, m->end, copies);
    return -EPERM;
}

static int check_mappings(pid_t pid, const struct stat *exe, bool deep, char *err, size_t err_size)
{
    char *buf = NULL, path[64];
    size_t size = 0;
    int pagemap_fd = -1;
    int ret = read_proc_all(pid, "maps", &buf, &size);
    if (ret < 0) {
        snprintf(err, err_size, "cannot read /proc/%d/maps of the caller: %s", (int)pid, strerror(-ret));
        return ret == -E2BIG ? -E2BIG : -ESRCH;
    }
    if (deep) {
        snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
        if ((pagemap_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
            free(buf);
            return -ESRCH;
        }
    }
    for (char *line = buf, *next; ret == 0 && line < buf + size; line = next) {
        struct mapping m;
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : buf + size;
        if (nl)
            *nl = '\0';
        if (parse_mapping(line, &m) < 0) {
            snprintf(err, err_size, "cannot parse /proc/%d/maps of the caller: '%.80s'", (int)pid, line);
            ret = -EIO;
            break;
        }
        if (m.perms[2] != 'x')
            continue;
        ret = check_exec_mapping(pid, &m, exe, err, err_size);
        if (ret == 0 && deep && m.path[0] == '/')
            ret = check_private_copies(pid, pagemap_fd, &m, err, err_size);
    }
    if (pagemap_fd >= 0)
        close(pagemap_fd);
    free(buf);
    return ret;
}

int las_check_caller(pid_t pid, const struct stat *exe, bool deep, char *err, size_t err_size)
{
    int ret = check_tracer_and_env(pid, err, err_size);
    if (ret == 0)
        ret = check_mappings(pid, exe, deep, err, err_size);
    return ret;
}
