/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for run/files.c, cas-run's injection files, in both modes: the program (a callback
 * here, in a child process) reads them, 0600; afterwards they are gone; in namespace mode nothing
 * ever appears on disk or in another process's view. Runs as root and, through
 * tests/integration/test_cas_run.py, as an unprivileged user (user namespace). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "run.h"

struct dir {
    char path[256];
};

static int setup(void **state)
{
    struct dir *d = calloc(1, sizeof(*d));
    if (!d)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(d->path, sizeof(d->path), "%s/custos-test-run-files-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(d->path)) {
        free(d);
        return -1;
    }
    chmod(d->path, 0755);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct dir *d = *state;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
    if (system(cmd) != 0)
        return -1;
    free(d);
    return 0;
}

static void put(const char *dir, const char *name, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The names in dir, sorted, joined by spaces ("" for none); recursive. */
static void listing(const char *dir, char *out, size_t size)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "cd '%s' && find . | sort | tr '\\n' ' '", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    pclose(p);
}

/* What the program checks: each file has its content, mode 0600, this process's uid. */
struct expect {
    char paths[5][PATH_MAX];
    const char *contents[5];
    size_t count;
    unsigned lower;      /* bit i: file i is the directory's own (not injected: its own mode and owner) */
    int ready_fd, go_fd; /* namespace test: tell the test the files are placed, wait for its word */
    bool wait_forever;
};

static int check_files(void *ctx)
{
    struct expect *e = ctx;
    if (e->ready_fd >= 0) {
        char c = 'r';
        if (write(e->ready_fd, &c, 1) != 1 || read(e->go_fd, &c, 1) != 1)
            return 90;
    }
    for (size_t i = 0; i < e->count; i++) {
        char buf[256] = {0};
        int fd = open(e->paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return 10 + (int)i;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        struct stat sb;
        fstat(fd, &sb);
        close(fd);
        if (n < 0 || strcmp(buf, e->contents[i]))
            return 20 + (int)i;
        if (!(e->lower & (1u << i)) && ((sb.st_mode & 07777) != 0600 || sb.st_uid != geteuid()))
            return 30 + (int)i;
    }
    if (e->wait_forever)
        pause();
    return 0;
}

static void make_files(struct expect *e, struct run_file *files)
{
    for (size_t i = 0; i < e->count; i++)
        files[i] = (struct run_file){e->paths[i], (const uint8_t *)e->contents[i], strlen(e->contents[i])};
}

static void test_parent_mode(void **state)
{
    struct dir *d = *state;
    char before[4096], after[4096], err[1024];
    put(d->path, "keep.txt", "kept");
    listing(d->path, before, sizeof(before));
    struct expect e = {.count = 2,
                       .lower = 0,
                       .ready_fd = -1,
                       .go_fd = -1,
                       .contents = {"alpha secret", "beta secret"}};
    snprintf(e.paths[0], PATH_MAX, "%s/a.conf", d->path);
    snprintf(e.paths[1], PATH_MAX, "%s/new/sub/b.conf", d->path); /* its directories do not exist */
    struct run_file files[2];
    make_files(&e, files);
    struct run_files *st = NULL;
    assert_int_equal(run_files_place(RUN_FILES_PARENT, files, 2, &st, err, sizeof(err)), 0);
    assert_string_equal(run_files_mode_used(st), "parent");
    struct stat sb;
    assert_int_equal(stat(e.paths[1], &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(run_files_run(st, check_files, NULL, &e), 0);
    run_files_free(st);
    listing(d->path, after, sizeof(after));
    assert_string_equal(before, after); /* files and the directories made for them are gone */
}

static void test_parent_mode_never_replaces(void **state)
{
    struct dir *d = *state;
    char before[4096], after[4096], err[1024];
    put(d->path, "b.conf", "the owner's own file");
    listing(d->path, before, sizeof(before));
    struct expect e = {.count = 2, .lower = 0, .ready_fd = -1, .go_fd = -1, .contents = {"alpha", "beta"}};
    snprintf(e.paths[0], PATH_MAX, "%s/a.conf", d->path);
    snprintf(e.paths[1], PATH_MAX, "%s/b.conf", d->path);
    struct run_file files[2];
    make_files(&e, files);
    struct run_files *st = NULL;
    assert_int_equal(run_files_place(RUN_FILES_PARENT, files, 2, &st, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "b.conf"));
    listing(d->path, after, sizeof(after));
    assert_string_equal(before, after); /* a.conf, made first, is removed again */
}

/* cas-run killed with SIGTERM: forwarded to the program, which dies of it; the files are removed and
 * the status is 128 + 15. */
static void test_parent_mode_forwards_signals(void **state)
{
    struct dir *d = *state;
    char before[4096], after[4096], err[1024];
    listing(d->path, before, sizeof(before));
    struct expect e =
        {.count = 1, .lower = 0, .ready_fd = -1, .go_fd = -1, .contents = {"gamma"}, .wait_forever = true};
    snprintf(e.paths[0], PATH_MAX, "%s/c.conf", d->path);
    struct run_file files[1];
    make_files(&e, files);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct run_files *st = NULL;
        if (run_files_place(RUN_FILES_PARENT, files, 1, &st, err, sizeof(err)) < 0)
            _exit(99);
        int code = run_files_run(st, check_files, NULL, &e);
        run_files_free(st);
        _exit(code);
    }
    struct stat sb;
    for (int i = 0; i < 500 && stat(e.paths[0], &sb) < 0; i++)
        usleep(10000);
    usleep(200000); /* the program is running (reads the file, then waits) */
    kill(pid, SIGTERM);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 128 + SIGTERM);
    listing(d->path, after, sizeof(after));
    assert_string_equal(before, after);
}

static void namespace_case(struct dir *d, bool with_submount)
{
    char before[4096], during[4096], after[4096], err[1024];
    char sub[300];
    put(d->path, "keep.txt", "kept");
    put(d->path, "shadow.conf", "on disk");
    if (with_submount) {
        snprintf(sub, sizeof(sub), "%s/mnt", d->path);
        assert_int_equal(mkdir(sub, 0755), 0);
        assert_int_equal(mount("tmpfs", sub, "tmpfs", 0, "mode=0755"), 0);
        put(sub, "inside.txt", "submount");
        /* a file bind mount, as /etc/hosts in a container */
        char hosts[320], src[320];
        put(d->path, "hosts", "the image's");
        snprintf(hosts, sizeof(hosts), "%s/hosts", d->path);
        snprintf(src, sizeof(src), "%s/hosts", sub);
        put(sub, "hosts", "bound over it");
        assert_int_equal(mount(src, hosts, NULL, MS_BIND, NULL), 0);
    }
    listing(d->path, before, sizeof(before));
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    struct expect e = {.count = 4,
                       .lower = 1u << 2,
                       .ready_fd = ready[1],
                       .go_fd = go[0],
                       .contents = {"delta secret", "epsilon secret", "kept", "shadowing secret"}};
    snprintf(e.paths[0], PATH_MAX, "%s/d.conf", d->path);
    snprintf(e.paths[1], PATH_MAX, "%s/new/sub/e.conf", d->path);
    snprintf(e.paths[2], PATH_MAX, "%s/keep.txt", d->path); /* the lower layer is still seen */
    snprintf(e.paths[3], PATH_MAX, "%s/shadow.conf", d->path);
    if (with_submount) {
        snprintf(e.paths[2], PATH_MAX, "%s/inside.txt", sub); /* the mounts below are put back */
        e.contents[2] = "submount";
        snprintf(e.paths[4], PATH_MAX, "%s/hosts", d->path);
        e.contents[4] = "bound over it";
        e.count = 5;
        e.lower |= 1u << 4;
    }
    struct run_file files[5];
    make_files(&e, files);
    files[2] = files[3]; /* the injection files: d.conf, new/sub/e.conf, shadow.conf */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct run_files *st = NULL;
        if (run_files_place(RUN_FILES_NAMESPACE, files, 3, &st, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            _exit(98);
        }
        if (strcmp(run_files_mode_used(st), "namespace"))
            _exit(97);
        _exit(run_files_run(st, check_files, NULL, &e));
    }
    char c;
    if (read(ready[0], &c, 1) == 1) {
        /* placed and visible to the program: not here, outside its namespace */
        listing(d->path, during, sizeof(during));
        assert_string_equal(before, during);
        c = 'g';
        assert_int_equal(write(go[1], &c, 1), 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    listing(d->path, after, sizeof(after));
    assert_string_equal(before, after);
    char shadow[PATH_MAX], text[64] = {0};
    snprintf(shadow, sizeof(shadow), "%s/shadow.conf", d->path);
    FILE *f = fopen(shadow, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof(text), f));
    fclose(f);
    assert_string_equal(text, "on disk");
    if (with_submount) {
        char hosts[320];
        snprintf(hosts, sizeof(hosts), "%s/hosts", d->path);
        assert_int_equal(umount(hosts), 0);
        assert_int_equal(umount(sub), 0);
    }
    for (int i = 0; i < 2; i++) {
        close(ready[i]);
        close(go[i]);
    }
}

static void test_namespace_mode(void **state)
{
    namespace_case(*state, false);
}

static void test_namespace_mode_keeps_submounts(void **state)
{
    if (geteuid() != 0) {
        skip(); /* mounting the submount needs root */
        return;
    }
    namespace_case(*state, true);
}

/* auto: a namespace where one can be made, else files on disk. test_cas_run.py runs this test where
 * namespaces are refused (a user namespace whose max_mnt_namespaces and max_user_namespaces are 0)
 * with TEST_RUN_FILES_AUTO_EXPECT=parent; forced namespace mode is then an error. */
static void test_auto_mode(void **state)
{
    struct dir *d = *state;
    const char *expect = getenv("TEST_RUN_FILES_AUTO_EXPECT");
    expect = expect ? expect : "namespace";
    char before[4096], after[4096], err[1024];
    listing(d->path, before, sizeof(before));
    struct expect e = {.count = 1, .lower = 0, .ready_fd = -1, .go_fd = -1, .contents = {"zeta secret"}};
    snprintf(e.paths[0], PATH_MAX, "%s/z.conf", d->path);
    struct run_file files[1];
    make_files(&e, files);
    if (!strcmp(expect, "parent")) {
        struct run_files *st = NULL;
        assert_int_not_equal(run_files_place(RUN_FILES_NAMESPACE, files, 1, &st, err, sizeof(err)), 0);
        assert_non_null(strstr(err, "unshare"));
        listing(d->path, after, sizeof(after));
        assert_string_equal(before, after);
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct run_files *st = NULL;
        if (run_files_place(RUN_FILES_AUTO, files, 1, &st, err, sizeof(err)) < 0)
            _exit(98);
        if (strcmp(run_files_mode_used(st), expect))
            _exit(97);
        int code = run_files_run(st, check_files, NULL, &e);
        run_files_free(st);
        _exit(code);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    listing(d->path, after, sizeof(after));
    assert_string_equal(before, after);
}

static void test_refuses_bad_paths(void **state)
{
    (void)state;
    static const char *const bad[] = {"relative/x", "/", "/etc/../x", "/etc//x", "/etc/./x", "/etc/x/"};
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct run_file f = {bad[i], (const uint8_t *)"x", 1};
        struct run_files *st = NULL;
        assert_int_equal(run_files_place(RUN_FILES_PARENT, &f, 1, &st, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, bad[i]));
    }
}

/* A file directly in /: a mount over / is not what the process's root shows; namespace mode refuses
 * it (before any namespace is made), auto would put it on disk. */
static void test_namespace_refuses_root_directory(void **state)
{
    (void)state;
    char err[256];
    struct run_file f = {"/custos-test-run-files-never-made", (const uint8_t *)"x", 1};
    struct run_files *st = NULL;
    assert_int_equal(run_files_place(RUN_FILES_NAMESPACE, &f, 1, &st, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "no overlay over the root directory"));
    assert_int_equal(access(f.path, F_OK), -1);
}

static void test_mode_parse(void **state)
{
    (void)state;
    enum run_files_mode m;
    assert_int_equal(run_files_mode_parse("auto", &m), 0);
    assert_int_equal(m, RUN_FILES_AUTO);
    assert_int_equal(run_files_mode_parse("namespace", &m), 0);
    assert_int_equal(m, RUN_FILES_NAMESPACE);
    assert_int_equal(run_files_mode_parse("parent", &m), 0);
    assert_int_equal(m, RUN_FILES_PARENT);
    assert_int_equal(run_files_mode_parse("disk", &m), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parent_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_mode_never_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parent_mode_forwards_signals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_namespace_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_namespace_mode_keeps_submounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_mode, setup, teardown),
        cmocka_unit_test(test_refuses_bad_paths),
        cmocka_unit_test(test_namespace_refuses_root_directory),
        cmocka_unit_test(test_mode_parse),
    };
    const char *filter = getenv("TEST_RUN_FILES_FILTER"); /* e.g. test_auto_mode */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
