/* SPDX-License-Identifier: Apache-2.0 */
/* The record store's files, checked and prepared before LMDB maps them. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db_internal.h"

/* Best-effort fsync of a directory, so newly created entries in it survive a crash. */
void db_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)fsync(fd);
    close(fd);
}

/* ---- the data file, checked before LMDB maps it ----------------------------------------------- */

/* LMDB 0.9 file layout (mdb.c): pages 0 and 1 are meta pages; a page header is 16 bytes, then
 * MDB_meta: magic u32 | version u32 | address (8) | mapsize (8) | 2 x MDB_db (48 each; the first's
 * md_pad is the page size) | last_pg (8) | txnid (8). Native byte order, 64-bit. */
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_VERSION 1u
#define LMDB_PAGEHDR 16
#define LMDB_META_PSIZE 24
#define LMDB_META_LAST_PG 120
#define LMDB_META_TXNID 128
#define LMDB_META_SIZE 136

struct lmdb_meta {
    uint32_t psize;
    uint64_t last_pg, txnid;
};

static bool read_lmdb_meta(int fd, off_t at, struct lmdb_meta *m)
{
    uint8_t b[LMDB_META_SIZE];
    uint32_t magic, version;
    if (pread(fd, b, sizeof(b), at + LMDB_PAGEHDR) != (ssize_t)sizeof(b))
        return false;
    memcpy(&magic, b, 4);
    memcpy(&version, b + 4, 4);
    memcpy(&m->psize, b + LMDB_META_PSIZE, 4);
    memcpy(&m->last_pg, b + LMDB_META_LAST_PG, 8);
    memcpy(&m->txnid, b + LMDB_META_TXNID, 8);
    return magic == LMDB_MAGIC && version == LMDB_VERSION && m->psize >= 512 && m->psize <= 65536 &&
           (m->psize & (m->psize - 1)) == 0;
}

/* 0 when dir/data.mdb holds an LMDB database whose pages are all in the file; -ENOENT when there is
 * no data.mdb or it is empty; -EBADMSG (damaged: not LMDB, truncated) or -errno, with err naming the
 * file. A truncated file would make LMDB fault (SIGBUS) when it touches a missing page. */
int db_check_data_file(const char *dir, char *err, size_t err_size)
{
    char path[PATH_MAX];
    struct stat sb;
    struct lmdb_meta m[2];
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >= (int)sizeof(path)) {
        snprintf(err, err_size, "database path too long: %s", dir);
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return -ENOENT;
        snprintf(err, err_size, "%s: cannot open the database file: %s", path, strerror(e));
        return -e;
    }
    int ret = 0;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, err_size, "%s: not a regular file", path);
        ret = -EINVAL;
        goto out;
    }
    if (sb.st_size == 0) {
        ret = -ENOENT;
        goto out;
    }
    bool ok0 = read_lmdb_meta(fd, 0, &m[0]);
    bool ok1 = ok0 && read_lmdb_meta(fd, (off_t)m[0].psize, &m[1]) && m[1].psize == m[0].psize;
    if (!ok0 || !ok1) {
        snprintf(err, err_size, "%s: damaged database file: %s (%lld bytes)", path,
                 ok0 ? "its second meta page is missing or invalid"
                     : "not an LMDB database or its first page is damaged",
                 (long long)sb.st_size);
        ret = -EBADMSG;
        goto out;
    }
    const struct lmdb_meta *cur = m[1].txnid > m[0].txnid ? &m[1] : &m[0];
    uint64_t need = (cur->last_pg + 1) * (uint64_t)cur->psize;
    if (cur->last_pg > (1ull << 40) || (uint64_t)sb.st_size < need) {
        snprintf(err, err_size, "%s: damaged database file: truncated to %lld bytes, its last transaction needs %llu",
                 path, (long long)sb.st_size, (unsigned long long)need);
        ret = -EBADMSG;
    }
out:
    close(fd);
    return ret;
}

/* LMDB writes its lock file through a shared mapping: on a full file system a page of it that was
 * never allocated faults (SIGBUS) instead of failing. Allocate it for real first. */
int db_prepare_lock_file(const char *dir, char *err, size_t err_size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, err_size, "%s: cannot create the lock file: %s", path, strerror(e));
        return -e;
    }
    int e = posix_fallocate(fd, 0, 65536);
    close(fd);
    if (e != 0) {
        snprintf(err, err_size, "%s: cannot allocate the lock file: %s%s", path, strerror(e),
                 e == ENOSPC ? " (disk full)" : "");
        return -e;
    }
    return 0;
}

int db_errno(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_DBS_FULL:
        return -ENOSPC;
    case MDB_READERS_FULL:
        return -EAGAIN;
    case MDB_BAD_VALSIZE:
        return -E2BIG;
    default:
        return rc > 0 ? -rc : -EIO;
    }
}
