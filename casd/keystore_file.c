/* SPDX-License-Identifier: Apache-2.0 */
/* The key-store file: its path, loading (with its owner and mode checked), crash-safe saving, and
 * editing the list in memory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "custos.h"
#include "keystore.h"

#define STALE_TEMP_SECONDS 600

int cas_keystore_path(const char *db_dir, char *out, size_t out_size)
{
    size_t len = db_dir ? strlen(db_dir) : 0;
    while (len > 0 && db_dir[len - 1] == '/')
        len--;
    if (len == 0 || !out)
        return -EINVAL;
    if (len > PATH_MAX || len + sizeof(".key-store") > out_size)
        return -ENAMETOOLONG;
    memcpy(out, db_dir, len);
    memcpy(out + len, ".key-store", sizeof(".key-store"));
    return 0;
}

/* The canonical form (uppercase) of a valid platform ID: the library's parse, then re-encoded. */
int cas_keystore_load(const char *path, struct cas_keystore *out, char *err, size_t err_size)
{
    uint8_t *buf = NULL;
    size_t size = 0;
    char perr[320];
    if (!path || !out) {
        snprintf(err, err_size, "cas_keystore_load: missing argument");
        return -EINVAL;
    }
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_uid != geteuid() || (sb.st_mode & 077))) {
        snprintf(err, err_size,
                 "%s: the key-store is %s (owner uid %u, mode %03o): it must be owned by uid %u and not readable "
                 "or writable by others; check who changed it, then chown %u and chmod 600 it",
                 path, sb.st_uid != geteuid() ? "owned by another user" : "accessible to other users",
                 (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 0777), (unsigned)geteuid(), (unsigned)geteuid());
        return -EPERM;
    }
    int ret = custos_read_file(path, CAS_KS_MAX_FILE, &buf, &size);
    if (ret == -ENOENT) {
        snprintf(err, err_size, "%s: no key-store (a new database)", path);
        return ret;
    }
    if (ret == -EFBIG) {
        snprintf(err, err_size, "%s: corrupt key-store: larger than %zu bytes", path, CAS_KS_MAX_FILE);
        return -EBADMSG;
    }
    if (ret < 0) {
        snprintf(err, err_size, "%s: cannot read the key-store: %s%s", path, strerror(-ret),
                 ret == -ELOOP    ? " (a symbolic link)"
                 : ret == -EINVAL ? " (not a regular file)"
                                  : "");
        return ret;
    }
    ret = cas_keystore_parse((const char *)buf, size, out, perr, sizeof(perr));
    if (ret < 0)
        snprintf(err, err_size, "%s: %s%s", path, ret == -EBADMSG ? "corrupt key-store: " : "", perr);
    free(buf);
    return ret;
}

/* Removes "<base>.tmp-<12 hex>" siblings of path older than STALE_TEMP_SECONDS: what a save that
 * crashed before its rename leaves behind. Recent ones may belong to a save in progress. */
static void remove_stale_temps(const char *path)
{
    char dcopy[PATH_MAX], bcopy[PATH_MAX], prefix[NAME_MAX + 8];
    if (strlen(path) >= sizeof(dcopy))
        return;
    strcpy(dcopy, path);
    strcpy(bcopy, path);
    const char *base = basename(bcopy);
    if (snprintf(prefix, sizeof(prefix), "%s.tmp-", base) >= (int)sizeof(prefix))
        return;
    size_t plen = strlen(prefix);
    DIR *d = opendir(dirname(dcopy));
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        const char *name = de->d_name;
        if (strncmp(name, prefix, plen) || strlen(name + plen) != 12 || strspn(name + plen, "0123456789abcdef") != 12)
            continue;
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (now - st.st_mtime >= STALE_TEMP_SECONDS)
            (void)unlinkat(dirfd(d), name, 0);
    }
    closedir(d);
}

int cas_keystore_save(const char *path, const struct cas_keystore *ks, const uint8_t dbkey[32])
{
    char *text = NULL;
    size_t size = 0;
    if (!path || !*path)
        return -EINVAL;
    int ret = cas_keystore_serialize(ks, dbkey, &text, &size);
    if (ret < 0)
        return ret;
    remove_stale_temps(path);
    ret = custos_write_file_atomic(path, text, size, 0600);
    free(text);
    return ret;
}
