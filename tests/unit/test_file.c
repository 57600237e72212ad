/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for file.c: atomic replacement (with injected crashes), bounded reads, mkdirs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "custos.h"

#define CRASH_EXIT 42

struct dir {
    char path[PATH_MAX];
};

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(d->path, sizeof(d->path), "%s/custos-test-file-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(d->path)) {
        free(d);
        return -1;
    }
    umask(022);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
    int ret = system(cmd);
    free(d);
    return ret == 0 ? 0 : -1;
}

static void join(const struct dir *d, const char *name, char *out)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", d->path, name);
    assert_true(n > 0 && n < PATH_MAX);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Reads a file with stdio (independently of the code under test). */
static size_t slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

static void test_write_atomic_mode(void **state)
{
    struct dir *d = *state;
    char path[PATH_MAX], buf[64];
    struct stat st;
    join(d, "secret", path);
    assert_int_equal(custos_write_file_atomic(path, "abc", 3, 0600), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(slurp(path, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "abc");

    /* Replacing a file gives the new mode and contents (a new inode, not a rewrite). */
    join(d, "public", path);
    put(path, "a much longer old content");
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(custos_write_file_atomic(path, "xy", 2, 0640), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(slurp(path, buf, sizeof(buf)), 2);
    assert_string_equal(buf, "xy");

    /* The mode asked for, whatever the umask. */
    mode_t old_mask = umask(077);
    join(d, "shared", path);
    int ret = custos_write_file_atomic(path, "z", 1, 0644);
    umask(old_mask);
    assert_int_equal(ret, 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);

    /* Empty data. */
    assert_int_equal(custos_write_file_atomic(path, "", 0, 0600), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_size, 0);

    /* No temp files are left behind by successful writes. */
    DIR *dir = opendir(d->path);
    assert_non_null(dir);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            entries++;
    closedir(dir);
    assert_int_equal(entries, 3); /* secret, public, shared */

    /* Missing directory. */
    join(d, "nope/file", path);
    assert_int_equal(custos_write_file_atomic(path, "x", 1, 0600), -ENOENT);
}

static int g_crash_step;

static void crash_hook(int step)
{
    if (step == g_crash_step)
        _exit(CRASH_EXIT);
}

static void test_write_atomic_crash(void **state)
{
    struct dir *d = *state;
    char path[PATH_MAX], buf[64];
    join(d, "state", path);
    for (int step = 1; step <= 4; step++) {
        put(path, "old");
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            g_crash_step = step;
            custos_atomic_write_hook = crash_hook;
            custos_write_file_atomic(path, "new", 3, 0600);
            _exit(1); /* the hook did not fire */
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != CRASH_EXIT)
            fail_msg("step %d: the hook was not called", step);
        slurp(path, buf, sizeof(buf));
        if (strcmp(buf, "old") && strcmp(buf, "new"))
            fail_msg("step %d: file holds '%s'", step, buf);
        if (step <= 2)
            assert_string_equal(buf, "old"); /* not renamed yet */
        else
            assert_string_equal(buf, "new");
        struct stat st;
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
    }
    /* A leftover temp file does not stop the next write. */
    assert_int_equal(custos_write_file_atomic(path, "newer", 5, 0600), 0);
    slurp(path, buf, sizeof(buf));
    assert_string_equal(buf, "newer");
}

/* custos_write_file_new: created like the atomic write, never over an existing name (file or link). */
static void test_write_new_never_replaces(void **state)
{
    struct dir *d = *state;
    char path[PATH_MAX], victim[PATH_MAX], buf[64];
    struct stat st;
    mode_t old_mask = umask(0);
    join(d, "blob", path);
    int ret = custos_write_file_new(path, "first", 5, 0600);
    umask(old_mask);
    assert_int_equal(ret, 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(custos_write_file_new(path, "second", 6, 0600), -EEXIST);
    slurp(path, buf, sizeof(buf));
    assert_string_equal(buf, "first");
    /* A symlink at the name (even a dangling one) is not replaced either. */
    join(d, "victim", victim);
    join(d, "link", path);
    assert_int_equal(symlink(victim, path), 0);
    assert_int_equal(custos_write_file_new(path, "x", 1, 0600), -EEXIST);
    assert_int_equal(lstat(victim, &st), -1);
    /* No temp file left behind by the refused writes. */
    DIR *dir = opendir(d->path);
    assert_non_null(dir);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            entries++;
    closedir(dir);
    assert_int_equal(entries, 2); /* blob, link */
}

static void test_write_atomic_replaces_symlink(void **state)
{
    struct dir *d = *state;
    char path[PATH_MAX], victim[PATH_MAX], buf[64];
    struct stat st;
    join(d, "victim", victim);
    join(d, "link", path);
    put(victim, "precious");
    assert_int_equal(symlink(victim, path), 0);
    assert_int_equal(custos_write_file_atomic(path, "new", 3, 0600), 0);
    /* The link itself was replaced; its target was not written through. */
    slurp(victim, buf, sizeof(buf));
    assert_string_equal(buf, "precious");
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    slurp(path, buf, sizeof(buf));
    assert_string_equal(buf, "new");
}

static void test_read_file(void **state)
{
    struct dir *d = *state;
    char path[PATH_MAX];
    uint8_t *data = NULL;
    size_t size = 0;
    join(d, "data", path);
    put(path, "0123456789");
    assert_int_equal(custos_read_file(path, 10, &data, &size), 0);
    assert_int_equal(size, 10);
    assert_memory_equal(data, "0123456789", 11); /* NUL-terminated */
    free(data);
    data = NULL;
    assert_int_equal(custos_read_file(path, 1 << 20, &data, &size), 0);
    assert_int_equal(size, 10);
    free(data);

    /* One byte over the limit. */
    data = NULL;
    assert_int_equal(custos_read_file(path, 9, &data, &size), -EFBIG);
    assert_null(data);
    assert_int_equal(custos_read_file(path, 0, &data, &size), -EFBIG);

    /* Empty file. */
    join(d, "empty", path);
    put(path, "");
    assert_int_equal(custos_read_file(path, 0, &data, &size), 0);
    assert_int_equal(size, 0);
    assert_int_equal(data[0], 0);
    free(data);
    data = NULL;

    /* Binary content with NULs survives. */
    join(d, "bin", path);
    static const uint8_t bin[] = {0, 1, 0, 0xff, 0};
    assert_int_equal(custos_write_file_atomic(path, bin, sizeof(bin), 0600), 0);
    assert_int_equal(custos_read_file(path, 64, &data, &size), 0);
    assert_int_equal(size, sizeof(bin));
    assert_memory_equal(data, bin, sizeof(bin));
    free(data);
    data = NULL;

    /* Missing. */
    join(d, "missing", path);
    assert_int_equal(custos_read_file(path, 64, &data, &size), -ENOENT);
    assert_null(data);
}

static void test_read_file_refuses_symlink(void **state)
{
    struct dir *d = *state;
    char target[PATH_MAX], link[PATH_MAX];
    uint8_t *data = NULL;
    size_t size = 0;
    join(d, "target", target);
    join(d, "link", link);
    put(target, "secret");
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(custos_read_file(link, 64, &data, &size), -ELOOP);
    assert_null(data);
    /* A dangling link is refused the same way. */
    join(d, "dangling", link);
    assert_int_equal(symlink("/nonexistent/x", link), 0);
    assert_int_equal(custos_read_file(link, 64, &data, &size), -ELOOP);
    assert_null(data);
}

static void test_read_file_refuses_directory(void **state)
{
    struct dir *d = *state;
    uint8_t *data = NULL;
    size_t size = 0;
    int ret = custos_read_file(d->path, 1 << 20, &data, &size);
    assert_true(ret < 0);
    assert_null(data);
    ret = custos_read_file("/dev/null", 1 << 20, &data, &size);
    assert_true(ret < 0);
    assert_null(data);
}

static void test_mkdirs(void **state)
{
    struct dir *d = *state;
    char path[PATH_MAX], file[PATH_MAX];
    struct stat st;
    join(d, "a/b/c", path);
    assert_int_equal(custos_mkdirs(path, 0700), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    join(d, "a/b", path);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);

    /* Idempotent; a trailing slash and doubled slashes are fine. */
    join(d, "a/b/c", path);
    assert_int_equal(custos_mkdirs(path, 0700), 0);
    join(d, "a//b/c/d/", path);
    assert_int_equal(custos_mkdirs(path, 0755), 0);
    join(d, "a/b/c/d", path);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0755);

    /* A regular file in the way is an error, whether in the middle or at the end. */
    join(d, "plain", file);
    put(file, "x");
    join(d, "plain/sub", path);
    assert_int_equal(custos_mkdirs(path, 0700), -ENOTDIR);
    assert_int_equal(custos_mkdirs(file, 0700), -ENOTDIR);
    assert_int_equal(lstat(file, &st), 0);
    assert_true(S_ISREG(st.st_mode));

    assert_int_equal(custos_mkdirs("", 0700), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_atomic_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_atomic_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_atomic_replaces_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_new_never_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_refuses_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_refuses_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdirs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
