/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run: measuring the program and the files its arguments name. Each is copied into a sealed
 * memfd and the copy is hashed, so what runs (fexecve of the memfd) and what the program reads
 * (/dev/fd/N) are exactly the bytes that were measured, whatever happens to the files afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

int run_resolve_program(const char *name, char *out, size_t out_size, char *err, size_t err_size)
{
    if (!*name) {
        snprintf(err, err_size, "the program is an empty word");
        return -ENOENT;
    }
    if (strchr(name, '/')) {
        if (access(name, X_OK) < 0) {
            int e = errno;
            snprintf(err, err_size, "program %s: %s", name, strerror(e));
            return -e;
        }
        if ((size_t)snprintf(out, out_size, "%s", name) >= out_size)
            return -ENAMETOOLONG;
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin"; /* execvp's default */
    int found_no_x = 0;
    while (path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        char cand[PATH_MAX];
        /* an empty entry is the current directory, as for execvp */
        int w =
            n ? snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, path, name) : snprintf(cand, sizeof(cand), "%s", name);
        struct stat sb;
        if (w > 0 && (size_t)w < sizeof(cand) && stat(cand, &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (access(cand, X_OK) == 0) {
                if ((size_t)snprintf(out, out_size, "%s", cand) >= out_size)
                    return -ENAMETOOLONG;
                return 0;
            }
            found_no_x = 1;
        }
        path = colon ? colon + 1 : NULL;
    }
    snprintf(err, err_size, "program %s: %s in PATH (%s)", name,
             found_no_x ? "no executable file of that name" : "not found", getenv("PATH") ?: "/bin:/usr/bin");
    return found_no_x ? -EACCES : -ENOENT;
}

static int make_memfd(bool cloexec, bool executable)
{
    unsigned flags = MFD_ALLOW_SEALING | (cloexec ? MFD_CLOEXEC : 0);
    /* MFD_EXEC / MFD_NOEXEC_SEAL (Linux 6.3): say which it is, so vm.memfd_noexec does not decide */
    int fd = memfd_create(executable ? "cas-run-program" : "cas-run-file",
                          flags | (executable ? MFD_EXEC : MFD_NOEXEC_SEAL));
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create(executable ? "cas-run-program" : "cas-run-file", flags);
    return fd < 0 ? -errno : fd;
}

static int copy_all(int src, int dst, size_t max_size, size_t *copied)
{
    static uint8_t buf[1u << 16];
    size_t total = 0;
    for (;;) {
        ssize_t r = read(src, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        if (total + (size_t)r > max_size)
            return -EFBIG; /* grew while being copied */
        for (ssize_t off = 0; off < r;) {
            ssize_t wr = write(dst, buf + off, (size_t)(r - off));
            if (wr < 0 && errno == EINTR)
                continue;
            if (wr < 0)
                return -errno;
            off += wr;
        }
        total += (size_t)r;
    }
    *copied = total;
    return 0;
}

int run_sealed_copy(const char *path, size_t max_size, bool cloexec, bool executable, int *out_fd, uint8_t hash[32],
                    char *err, size_t err_size)
{
    int src = -1, fd = -1, ret;
    struct stat sb;
    size_t size = 0;
    src = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (src < 0) {
        ret = -errno;
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(-ret));
        return ret;
    }
    if (fstat(src, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, err_size, "%s is not a regular file", path);
        ret = -EINVAL;
        goto out;
    }
    if ((unsigned long long)sb.st_size > max_size) {
        snprintf(err, err_size, "%s has %lld bytes, more than %zu", path, (long long)sb.st_size, max_size);
        ret = -EFBIG;
        goto out;
    }
    fd = make_memfd(cloexec, executable);
    if (fd < 0) {
        ret = fd;
        snprintf(err, err_size, "memfd_create: %s", strerror(-ret));
        goto out;
    }
    ret = copy_all(src, fd, max_size, &size);
    if (ret < 0) {
        snprintf(err, err_size, "copying %s: %s", path, ret == -EFBIG ? "it grew beyond the limit" : strerror(-ret));
        goto out;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
        ret = -errno;
        snprintf(err, err_size, "sealing the copy of %s: %s", path, strerror(-ret));
        goto out;
    }
    /* the hash is of the sealed copy itself: the bytes that will be executed or read */
    if (size == 0) {
        custos_sha256("", 0, hash);
    } else {
        void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            ret = -errno;
            snprintf(err, err_size, "mapping the copy of %s: %s", path, strerror(-ret));
            goto out;
        }
        ret = custos_sha256(map, size, hash) < 0 ? -EIO : 0;
        munmap(map, size);
        if (ret < 0) {
            snprintf(err, err_size, "hashing %s failed", path);
            goto out;
        }
    }
    *out_fd = fd;
    fd = -1;
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    close(src);
    return ret;
}

bool run_is_script(int fd)
{
    char head[2];
    return pread(fd, head, sizeof(head), 0) == 2 && head[0] == '#' && head[1] == '!';
}

/* The interpreter a script's #! line names ("/usr/bin/env python3" -> "python3"), for the advice. */
static void script_interpreter(int fd, char *out, size_t size)
{
    char line[256];
    ssize_t n = pread(fd, line, sizeof(line) - 1, 2);
    line[n > 0 ? n : 0] = '\0';
    line[strcspn(line, "\n")] = '\0';
    char *save = NULL, *interp = strtok_r(line, " \t", &save);
    if (interp && !strcmp(interp, "/usr/bin/env")) {
        char *next = strtok_r(NULL, " \t", &save);
        while (next && next[0] == '-') /* env -S and the like */
            next = strtok_r(NULL, " \t", &save);
        interp = next;
    }
    snprintf(out, size, "%s", interp && *interp ? interp : "INTERPRETER");
}

void run_measured_free(struct run_measured *m)
{
    if (!m)
        return;
    if (m->program_fd >= 0)
        close(m->program_fd);
    m->program_fd = -1;
    for (size_t i = 0; m->file_fd && i < m->word_count; i++)
        if (m->file_fd[i] >= 0)
            close(m->file_fd[i]);
    free(m->file_fd);
    free(m->file_hash);
    m->file_fd = NULL;
    m->file_hash = NULL;
    m->word_count = 0;
}

int run_measure(char *const *words, size_t count, struct run_measured *out, char *err, size_t err_size)
{
    char path[PATH_MAX], ferr[512];
    memset(out, 0, sizeof(*out));
    out->program_fd = -1;
    if (count == 0) {
        snprintf(err, err_size, "no program given");
        return -EINVAL;
    }
    int ret = run_resolve_program(words[0], path, sizeof(path), err, err_size);
    if (ret < 0)
        return ret;
    ret = run_sealed_copy(path, RUN_PROGRAM_MAX, true, true, &out->program_fd, out->program_hash, err, err_size);
    if (ret < 0)
        return ret;
    if (run_is_script(out->program_fd)) {
        char interp[200];
        script_interpreter(out->program_fd, interp, sizeof(interp));
        snprintf(err, err_size,
                 "program %s is a script (#!): its interpreter would run unmeasured; run the interpreter as the "
                 "program and make the script a protected file: -- %s %s",
                 path, interp, path);
        run_measured_free(out);
        return -EINVAL;
    }
    out->word_count = count;
    out->file_fd = malloc(count * sizeof(*out->file_fd));
    out->file_hash = calloc(count, sizeof(*out->file_hash));
    if (!out->file_fd || !out->file_hash) {
        run_measured_free(out);
        return -ENOMEM;
    }
    for (size_t i = 0; i < count; i++)
        out->file_fd[i] = -1;
    for (size_t i = 1; i < count; i++) {
        struct stat sb;
        /* stat first: opening a FIFO or a device could block or act; only regular files are read */
        if (!*words[i] || stat(words[i], &sb) < 0 || !S_ISREG(sb.st_mode))
            continue;
        if ((unsigned long long)sb.st_size > RUN_FILE_MAX) {
            LOG_MODULE_WARN(RUN_LOG,
                            "argument %zu names a file of more than %u bytes (%s): passed as it is, not measured", i,
                            RUN_FILE_MAX, words[i]);
            continue;
        }
        ret = run_sealed_copy(words[i], RUN_FILE_MAX, false, false, &out->file_fd[i], out->file_hash[i], ferr,
                              sizeof(ferr));
        if (ret < 0) {
            snprintf(err, err_size, "argument %zu: %s", i, ferr);
            run_measured_free(out);
            return ret;
        }
    }
    return 0;
}
