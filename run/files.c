/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run: injection files. Either in a private mount namespace, where each directory holding files
 * gets an overlay whose upper layer is a tmpfs (nothing on disk, nothing in any other process's
 * view, gone with the last process of the namespace), or, where namespaces are refused, on disk
 * while cas-run stays the parent that removes them when the program exits.
 *
 * Namespace mode, per directory D (the nearest existing ancestor of a file's directory):
 *   1. before any mount: an O_PATH descriptor N of D, and a detached copy (open_tree) of every
 *      mount below D (the overlay's lower layer is one filesystem and would hide them);
 *   2. a tmpfs over D, holding upper/ (the mode and owner of D) and work/;
 *   3. the files written 0600 into upper/ (missing directories 0755);
 *   4. an overlay over D: lowerdir=/proc/self/fd/N (the original directory), upperdir, workdir
 *      (userxattr in a user namespace), with D's mount flags (nosuid, nodev, noexec, ro);
 *   5. the mounts of step 1 moved back to their places (move_mount).
 * The files are written before the overlay is mounted: in a user namespace the merged directory
 * keeps the owner of D (often root, unmapped there), in which this process may not create files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

enum used_mode { USED_NONE, USED_NAMESPACE, USED_PARENT };

struct placed {
    char *path;
    int fd; /* parent mode: kept open to overwrite the file at the end */
    dev_t dev;
    ino_t ino;
    size_t size;
};

struct run_files {
    enum used_mode used;
    struct placed *files;
    size_t count;
    char **made_dirs; /* parent mode: directories made, removed in reverse order */
    size_t made_count;
};

int run_files_mode_parse(const char *s, enum run_files_mode *out)
{
    static const char *const names[] = {"auto", "namespace", "parent"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(s, names[i])) {
            *out = (enum run_files_mode)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *run_files_mode_used(const struct run_files *st)
{
    return !st || st->used == USED_NONE ? "none" : st->used == USED_NAMESPACE ? "namespace" : "parent";
}

/* An absolute path without empty, "." or ".." components and not "/" itself. */
static bool path_ok(const char *p)
{
    if (p[0] != '/' || !p[1] || strlen(p) >= PATH_MAX)
        return false;
    for (const char *c = p; *c;) {
        c++; /* past '/' */
        size_t n = strcspn(c, "/");
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c += n;
    }
    return true;
}

static int write_all(int fd, const uint8_t *data, size_t size)
{
    while (size) {
        ssize_t w = write(fd, data, size);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        data += w;
        size -= (size_t)w;
    }
    return 0;
}

/* mkdir -p of the directories of rel (a relative path whose last component is a file) under dirfd. */
static int make_parents_at(int dirfd, const char *rel, unsigned mode)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", rel);
    for (char *s = strchr(buf, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdirat(dirfd, buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    return 0;
}

static int create_file_at(int dirfd, const char *rel, const struct run_file *f, bool keep, struct placed *out)
{
    int fd = openat(dirfd, rel, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    struct stat sb;
    int ret = fchmod(fd, 0600) < 0 || fstat(fd, &sb) < 0 ? -errno : write_all(fd, f->content, f->size);
    if (ret < 0) {
        close(fd);
        unlinkat(dirfd, rel, 0);
        return ret;
    }
    out->dev = sb.st_dev;
    out->ino = sb.st_ino;
    out->size = f->size;
    out->fd = keep ? fd : -1;
    if (!keep)
        close(fd);
    return 0;
}

/* ---- namespace mode ------------------------------------------------------------------------ */

static int write_proc(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int ret = write_all(fd, (const uint8_t *)text, strlen(text));
    close(fd);
    return ret;
}

/* A private mount namespace: as root a mount namespace alone, else (or when that is refused) a user
 * namespace that maps only this process's own uid and gid. *userns says which. */
static int enter_namespace(bool *userns, char *err, size_t err_size)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    *userns = false;
    if (uid != 0 || unshare(CLONE_NEWNS) < 0) {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
            int e = errno;
            snprintf(err, err_size, "unshare(%s): %s", uid == 0 ? "CLONE_NEWNS, then CLONE_NEWUSER" : "CLONE_NEWUSER",
                     strerror(e));
            return -e;
        }
        *userns = true;
        char map[64];
        /* A non-dumpable process's /proc files belong to root, so it cannot write its own uid_map:
         * dumpable for these three writes only (cas-run is otherwise never dumpable). */
        int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        int ret = write_proc("/proc/self/setgroups", "deny");
        snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
        if (ret == 0)
            ret = write_proc("/proc/self/uid_map", map);
        snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
        if (ret == 0)
            ret = write_proc("/proc/self/gid_map", map);
        prctl(PR_SET_DUMPABLE, dumpable > 0 ? dumpable : 0, 0, 0, 0);
        if (ret < 0) {
            snprintf(err, err_size, "mapping uid %u and gid %u in the user namespace: %s", (unsigned)uid, (unsigned)gid,
                     strerror(-ret));
            return ret;
        }
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        int e = errno;
        snprintf(err, err_size, "making / private in the new mount namespace: %s", strerror(e));
        return -e;
    }
    return 0;
}

#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

struct submount {
    char *path;
    int tree; /* detached copy (open_tree) */
};

/* One overlay directory: the nearest existing ancestor of one or more files' directories. */
struct overlay {
    char *dir; /* real path */
    int lower; /* O_PATH of the original directory */
    struct submount *subs;
    size_t sub_count;
    int mounts; /* 0, 1 (tmpfs), 2 (tmpfs + overlay) */
};

/* Unescapes a mountinfo field in place (\040 and the like). */
static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1) /* "/" */
        return path[0] == '/' && path[1];
    return !strncmp(path, dir, n) && path[n] == '/';
}

/* Detached recursive copies of the mounts strictly below ov->dir (the topmost ones: their own
 * submounts come with them). */
static int save_submounts(struct overlay *ov, char *err, size_t err_size)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) {
        snprintf(err, err_size, "/proc/self/mountinfo: %s", strerror(errno));
        return -errno;
    }
    char *line = NULL;
    size_t cap = 0;
    int ret = 0;
    while (ret == 0 && getline(&line, &cap, f) > 0) {
        char *save = NULL, *field = strtok_r(line, " ", &save);
        for (int i = 0; field && i < 4; i++)
            field = strtok_r(NULL, " ", &save);
        if (!field)
            continue;
        unescape(field);
        if (!under(field, ov->dir))
            continue;
        bool nested = false;
        for (size_t i = 0; i < ov->sub_count; i++)
            nested |= under(field, ov->subs[i].path) || !strcmp(field, ov->subs[i].path);
        if (nested)
            continue;
        struct submount *subs = realloc(ov->subs, (ov->sub_count + 1) * sizeof(*subs));
        if (!subs) {
            ret = -ENOMEM;
            break;
        }
        ov->subs = subs;
        int tree = (int)syscall(SYS_open_tree, AT_FDCWD, field, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0) {
            ret = -errno;
            snprintf(err, err_size, "keeping the mount at %s (below %s): open_tree: %s", field, ov->dir,
                     strerror(-ret));
            break;
        }
        subs[ov->sub_count].path = strdup(field);
        subs[ov->sub_count].tree = tree;
        ov->sub_count++;
        if (!subs[ov->sub_count - 1].path)
            ret = -ENOMEM;
    }
    free(line);
    fclose(f);
    return ret;
}

static unsigned long mount_flags_of(int fd)
{
    struct statvfs sv;
    unsigned long flags = 0;
    if (fstatvfs(fd, &sv) == 0) {
        flags |= sv.f_flag & ST_NOSUID ? MS_NOSUID : 0;
        flags |= sv.f_flag & ST_NODEV ? MS_NODEV : 0;
        flags |= sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0;
        flags |= sv.f_flag & ST_RDONLY ? MS_RDONLY : 0;
    }
    return flags;
}

static int mount_overlay(struct overlay *ov, const struct run_file *files, size_t count, bool userns, char *err,
                         size_t err_size)
{
    char upper[PATH_MAX + 16], work[PATH_MAX + 16], opts[3 * PATH_MAX];
    struct stat lower_sb;
    int ret, up = -1;
    if (fstat(ov->lower, &lower_sb) < 0) {
        ret = -errno;
        snprintf(err, err_size, "%s: %s", ov->dir, strerror(-ret));
        return ret;
    }
    if (mount("tmpfs", ov->dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0) {
        ret = -errno;
        snprintf(err, err_size, "mounting a tmpfs over %s: %s", ov->dir, strerror(-ret));
        return ret;
    }
    ov->mounts = 1;
    snprintf(upper, sizeof(upper), "%s%supper", ov->dir, ov->dir[1] ? "/" : "");
    snprintf(work, sizeof(work), "%s%swork", ov->dir, ov->dir[1] ? "/" : "");
    if (mkdir(upper, 0700) < 0 || mkdir(work, 0700) < 0) {
        ret = -errno;
        snprintf(err, err_size, "making the overlay's directories on the tmpfs over %s: %s", ov->dir, strerror(-ret));
        return ret;
    }
    /* the merged directory takes the upper one's mode and owner: make them the original's (the owner
     * only where it is mapped: not in a user namespace) */
    if (chmod(upper, lower_sb.st_mode & 07777) < 0 || (chown(upper, lower_sb.st_uid, lower_sb.st_gid) < 0 && !userns) ||
        (up = open(upper, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        ret = -errno;
        snprintf(err, err_size, "giving the overlay over %s the directory's mode and owner: %s", ov->dir,
                 strerror(-ret));
        return ret;
    }
    size_t n = strlen(ov->dir);
    for (size_t i = 0; i < count; i++) {
        const char *p = files[i].path;
        if (!under(p, ov->dir))
            continue;
        const char *rel = p + (n == 1 ? 1 : n + 1);
        struct placed unused;
        ret = make_parents_at(up, rel, 0755);
        if (ret == 0)
            ret = create_file_at(up, rel, &files[i], false, &unused);
        if (ret < 0) {
            snprintf(err, err_size, "writing %s into the overlay over %s: %s", p, ov->dir, strerror(-ret));
            close(up);
            return ret;
        }
    }
    close(up);
    snprintf(opts, sizeof(opts), "lowerdir=/proc/self/fd/%d,upperdir=%s,workdir=%s%s", ov->lower, upper, work,
             userns ? ",userxattr" : "");
    if (mount("overlay", ov->dir, "overlay", mount_flags_of(ov->lower), opts) < 0) {
        ret = -errno;
        snprintf(err, err_size, "mounting an overlay over %s: %s%s", ov->dir, strerror(-ret),
                 userns && ov->sub_count && ret == -EINVAL
                     ? " (in a user namespace the kernel refuses a lower layer with mounts below it, which "
                       "the parent namespace locked)"
                     : "");
        return ret;
    }
    ov->mounts = 2;
    for (size_t i = 0; i < ov->sub_count; i++) {
        if (syscall(SYS_move_mount, ov->subs[i].tree, "", AT_FDCWD, ov->subs[i].path, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
            ret = -errno;
            snprintf(err, err_size, "putting the mount at %s back over the overlay: %s", ov->subs[i].path,
                     strerror(-ret));
            return ret;
        }
    }
    return 0;
}

static void overlay_free(struct overlay *ov)
{
    free(ov->dir);
    if (ov->lower >= 0)
        close(ov->lower);
    for (size_t i = 0; i < ov->sub_count; i++) {
        free(ov->subs[i].path);
        close(ov->subs[i].tree);
    }
    free(ov->subs);
}

static int cmp_len(const void *a, const void *b)
{
    const struct overlay *x = a, *y = b;
    size_t lx = strlen(x->dir), ly = strlen(y->dir);
    return lx < ly ? -1 : lx > ly;
}

/* The nearest existing ancestor of path's directory: its real path (*real, caller frees) and the
 * length of its spelling in path (0 for "/"). The rest of path does not exist: no symlink in it. */
static int existing_ancestor(const char *path, char **real, size_t *len)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (;;) {
        char *slash = strrchr(buf, '/');
        if (slash == buf)
            buf[1] = '\0';
        else
            *slash = '\0';
        struct stat sb;
        if (stat(buf, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode))
                return -ENOTDIR;
            *len = strcmp(buf, "/") ? strlen(buf) : 0;
            *real = realpath(buf, NULL);
            return *real ? 0 : -errno;
        }
        if (errno != ENOENT)
            return -errno;
    }
}

static int place_namespace(const struct run_file *files, size_t count, char *err, size_t err_size)
{
    struct overlay *ovs = calloc(count, sizeof(*ovs));
    struct run_file *real = calloc(count, sizeof(*real)); /* the paths with their ancestor's real path */
    char **real_paths = calloc(count, sizeof(*real_paths));
    size_t ov_count = 0;
    bool userns = false;
    int ret = ovs && real && real_paths ? 0 : -ENOMEM;
    for (size_t i = 0; ret == 0 && i < count; i++) {
        char *anc = NULL;
        size_t len = 0;
        ret = existing_ancestor(files[i].path, &anc, &len);
        if (ret < 0) {
            snprintf(err, err_size, "directory of injection file %s: %s", files[i].path, strerror(-ret));
            break;
        }
        if (!strcmp(anc, "/")) {
            /* a mount over / is not what this process's root directory shows */
            snprintf(err, err_size,
                     "injection file %s: no overlay over the root directory (its nearest existing "
                     "directory)",
                     files[i].path);
            free(anc);
            ret = -EINVAL;
            break;
        }
        if (asprintf(&real_paths[i], "%s%s", anc, files[i].path + len) < 0) {
            real_paths[i] = NULL;
            free(anc);
            ret = -ENOMEM;
            break;
        }
        real[i] = files[i];
        real[i].path = real_paths[i];
        size_t k = 0;
        while (k < ov_count && strcmp(ovs[k].dir, anc))
            k++;
        if (k < ov_count) {
            free(anc);
            continue;
        }
        ovs[ov_count].dir = anc;
        ovs[ov_count].lower = -1;
        ov_count++;
    }
    if (ret < 0)
        goto out;
    /* shallowest first: an overlay below another one's directory is mounted over the first */
    qsort(ovs, ov_count, sizeof(*ovs), cmp_len);
    ret = enter_namespace(&userns, err, err_size);
    if (ret < 0)
        goto out;
    for (size_t k = 0; k < ov_count; k++) {
        ovs[k].lower = open(ovs[k].dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (ovs[k].lower < 0) {
            ret = -errno;
            snprintf(err, err_size, "opening %s: %s", ovs[k].dir, strerror(-ret));
            goto out;
        }
        ret = save_submounts(&ovs[k], err, err_size);
        if (ret < 0)
            goto out;
    }
    for (size_t k = 0; k < ov_count; k++) {
        /* only the files whose own ancestor is this directory (not a deeper overlay's) */
        size_t m = 0;
        struct run_file *mine = calloc(count, sizeof(*mine));
        if (!mine) {
            ret = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < count; i++) {
            size_t best = 0;
            for (size_t j = 0; j < ov_count; j++)
                if (under(real[i].path, ovs[j].dir))
                    best = j; /* sorted by length: the last match is the deepest */
            if (best == k)
                mine[m++] = real[i];
        }
        ret = mount_overlay(&ovs[k], mine, m, userns, err, err_size);
        free(mine);
        if (ret < 0)
            goto out;
    }
    LOG_MODULE_INFO(RUN_LOG, "injection files: %zu in a private mount namespace%s (tmpfs overlays over %zu director%s)",
                    count, userns ? " and user namespace" : "", ov_count, ov_count == 1 ? "y" : "ies");
out:
    if (ret < 0) {
        /* undo what was mounted, deepest first: nothing of it is left */
        for (size_t k = ov_count; k-- > 0;)
            for (; ovs[k].mounts > 0; ovs[k].mounts--)
                umount2(ovs[k].dir, MNT_DETACH);
    }
    for (size_t k = 0; ovs && k < ov_count; k++)
        overlay_free(&ovs[k]);
    for (size_t i = 0; real_paths && i < count; i++)
        free(real_paths[i]);
    free(real_paths);
    free(real);
    free(ovs);
    return ret;
}

/* ---- parent mode --------------------------------------------------------------------------- */

static int make_dirs_recorded(struct run_files *st, const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *s = strchr(buf + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir(buf, 0700) == 0) {
            char **made = realloc(st->made_dirs, (st->made_count + 1) * sizeof(*made));
            if (!made) {
                rmdir(buf);
                return -ENOMEM;
            }
            st->made_dirs = made;
            if (!(made[st->made_count] = strdup(buf))) {
                rmdir(buf);
                return -ENOMEM;
            }
            st->made_count++;
        } else if (errno != EEXIST) {
            return -errno;
        }
        *s = '/';
    }
    return 0;
}

static int place_parent(struct run_files *st, const struct run_file *files, size_t count, char *err, size_t err_size)
{
    for (size_t i = 0; i < count; i++) {
        struct placed *p = &st->files[st->count];
        p->fd = -1;
        int ret = make_dirs_recorded(st, files[i].path);
        if (ret == 0)
            ret = create_file_at(AT_FDCWD, files[i].path, &files[i], true, p);
        if (ret < 0) {
            snprintf(err, err_size, "injection file %s: %s%s", files[i].path, strerror(-ret),
                     ret == -EEXIST ? " (an existing file is never replaced)" : "");
            return ret;
        }
        if (!(p->path = strdup(files[i].path))) {
            close(p->fd);
            unlink(files[i].path);
            return -ENOMEM;
        }
        st->count++;
    }
    LOG_MODULE_INFO(RUN_LOG,
                    "injection files: %zu on disk (0600); cas-run stays the parent and removes them when the "
                    "program exits",
                    count);
    return 0;
}

static void remove_placed(struct run_files *st)
{
    static const uint8_t zeros[4096];
    for (size_t i = st->count; i-- > 0;) {
        struct placed *p = &st->files[i];
        for (size_t off = 0; off < p->size;) {
            size_t n = p->size - off < sizeof(zeros) ? p->size - off : sizeof(zeros);
            ssize_t w = pwrite(p->fd, zeros, n, (off_t)off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        fdatasync(p->fd);
        struct stat sb;
        /* only the file cas-run made: a file put there in its place is not ours to remove */
        if (lstat(p->path, &sb) == 0 && sb.st_dev == p->dev && sb.st_ino == p->ino) {
            if (unlink(p->path) < 0)
                LOG_MODULE_WARN(RUN_LOG, "cannot remove injection file %s: %s", p->path, strerror(errno));
        } else {
            LOG_MODULE_WARN(RUN_LOG, "injection file %s was replaced by the program: overwrote ours, left the path",
                            p->path);
        }
        close(p->fd);
        free(p->path);
    }
    st->count = 0;
    for (size_t i = st->made_count; i-- > 0;) {
        rmdir(st->made_dirs[i]);
        free(st->made_dirs[i]);
    }
    st->made_count = 0;
}

/* ---- the API ------------------------------------------------------------------------------- */

int run_files_place(enum run_files_mode mode, const struct run_file *files, size_t count, struct run_files **out,
                    char *err, size_t err_size)
{
    struct run_files *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    int ret = 0;
    for (size_t i = 0; i < count; i++) {
        if (!path_ok(files[i].path)) {
            snprintf(err, err_size, "injection file path '%s' is not a plain absolute path", files[i].path);
            free(st);
            return -EINVAL;
        }
    }
    if (count == 0) {
        *out = st;
        return 0;
    }
    if (mode != RUN_FILES_PARENT) {
        char nerr[1024];
        ret = place_namespace(files, count, nerr, sizeof(nerr));
        if (ret == 0) {
            st->used = USED_NAMESPACE;
            *out = st;
            return 0;
        }
        if (mode == RUN_FILES_NAMESPACE) {
            snprintf(err, err_size, "injection files in a private mount namespace: %s", nerr);
            free(st);
            return ret;
        }
        LOG_MODULE_WARN(RUN_LOG,
                        "no private mount namespace for the injection files (%s): falling back to files on "
                        "disk",
                        nerr);
    }
    st->used = USED_PARENT;
    st->files = calloc(count, sizeof(*st->files));
    ret = st->files ? place_parent(st, files, count, err, err_size) : -ENOMEM;
    if (ret < 0) {
        run_files_free(st);
        return ret;
    }
    *out = st;
    return 0;
}

int run_files_run(struct run_files *st, int (*child)(void *ctx), void (*parent)(void *ctx), void *ctx)
{
    if (!st || st->used != USED_PARENT)
        return child(ctx);
    sigset_t set, old;
    sigemptyset(&set);
    static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
        sigaddset(&set, forwarded[i]);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    pid_t pid = fork();
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        _exit(child(ctx));
    }
    if (parent)
        parent(ctx);
    int status = 0, code;
    if (pid < 0) {
        LOG_MODULE_ERROR(RUN_LOG, "fork: %s", strerror(errno));
        code = 1;
    } else {
        for (;;) {
            siginfo_t si;
            int sig = sigwaitinfo(&set, &si);
            if (sig < 0)
                continue; /* EINTR */
            if (sig != SIGCHLD) {
                kill(pid, sig);
                continue;
            }
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid)
                break;
        }
        code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
    }
    remove_placed(st);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return code;
}

void run_files_free(struct run_files *st)
{
    if (!st)
        return;
    remove_placed(st);
    free(st->files);
    free(st->made_dirs);
    free(st);
}
