/* SPDX-License-Identifier: Apache-2.0 */
/* cas-run's parts: measuring what it runs (measure.c), the protocol with CAS (proto.c) and the
 * injection files (files.c). docs/design.md "cas-run: the attested launcher" is the contract. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"

#define RUN_LOG "run"
#define RUN_PROGRAM_MAX (256u << 20) /* bytes of a program */
#define RUN_FILE_MAX (64u << 20)     /* bytes of a protected file */

/* ---- measure.c ---- */
/* The file execvp would run for name: name itself when it holds a '/', else the first executable
 * regular file name in $PATH (default /bin:/usr/bin). -ENOENT/-EACCES with err naming what failed. */
int run_resolve_program(const char *name, char *out, size_t out_size, char *err, size_t err_size);

/* Copies the regular file at path (at most max_size bytes) into a memfd sealed against any change
 * (F_SEAL_WRITE|GROW|SHRINK|SEAL) and hashes the sealed copy. cloexec: close it on exec (the
 * program) or not (a protected file the program reads as /dev/fd/N). executable: the memfd is
 * made executable (MFD_EXEC) or not. On success *out_fd is the memfd (caller closes) and hash the
 * SHA-256 of its bytes. -EFBIG over max_size, -EINVAL when not a regular file. */
int run_sealed_copy(const char *path, size_t max_size, bool cloexec, bool executable, int *out_fd, uint8_t hash[32],
                    char *err, size_t err_size);

/* Whether the sealed copy starts with "#!" (a script: its interpreter would run unmeasured). */
bool run_is_script(int fd);

/* What cas-run measured: the program and the arguments that name regular files. */
struct run_measured {
    int program_fd; /* sealed memfd, close-on-exec */
    uint8_t program_hash[32];
    size_t word_count; /* words of the command, the program's included */
    int *file_fd;      /* per word: the sealed memfd of the file it names, or -1 (word 0 always -1) */
    uint8_t (*file_hash)[32];
};
/* Measures words[0] (resolved through PATH) and every word 1.. that names a regular file of at most
 * RUN_FILE_MAX bytes. -EINVAL with err for a script, a missing or unreadable program. */
int run_measure(char *const *words, size_t count, struct run_measured *out, char *err, size_t err_size);
void run_measured_free(struct run_measured *m);

/* ---- proto.c ---- */
/* R: {"time", "key", "cas_key_hash", "program", "argv", "files": [{"arg", "sha256"}]} (caller
 * json_decref's). */
json_t *run_request(const struct run_measured *m, char *const *words, const uint8_t pub[32], const char *cas_key_hash,
                    long long now);
/* Opens CAS's answer {"key", "nonce", "config"} with the request's private key and salt (SHA-256 of
 * the canonical R: custos_run_binding) into the parsed configuration (caller json_decref's; its
 * strings are wiped on free). */
int run_open_config(const json_t *answer, const uint8_t priv[32], const uint8_t salt[32], json_t **out, char *err,
                    size_t err_size);

/* ---- files.c ---- */
enum run_files_mode { RUN_FILES_AUTO, RUN_FILES_NAMESPACE, RUN_FILES_PARENT };
/* "auto", "namespace", "parent" -> mode; -EINVAL otherwise. */
int run_files_mode_parse(const char *s, enum run_files_mode *out);

struct run_file {
    const char *path; /* absolute */
    const uint8_t *content;
    size_t size;
};
struct run_files;
/* Places the files (count may be 0: nothing is done) the way mode says:
 *  - namespace: this process moves to a private mount namespace (a user namespace too when it is
 *    not root) and each directory holding files gets a tmpfs overlay holding them, 0600; nothing
 *    reaches a disk or another process's view;
 *  - parent: each file is created on disk, 0600, O_EXCL|O_NOFOLLOW (missing directories are made
 *    and removed again); run_files_run then keeps this process as the parent that removes them;
 *  - auto: namespace, else (namespaces refused or failing) parent.
 * The contents are copied; the caller wipes its own. *out is freed by run_files_free. */
int run_files_place(enum run_files_mode mode, const struct run_file *files, size_t count, struct run_files **out,
                    char *err, size_t err_size);
/* The mode used ("namespace", "parent" or "none"). */
const char *run_files_mode_used(const struct run_files *st);
/* Runs child(ctx), which should exec and returns a failure status when it cannot. Parent mode: in a
 * forked child while this process forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT to it, waits, calls
 * parent(ctx) right after the fork (to wipe what only the child needs), then overwrites and removes
 * the files and returns the child's exit status (128+N when killed by signal N). Other modes:
 * child(ctx) runs in this process and its status is returned when it comes back. */
int run_files_run(struct run_files *st, int (*child)(void *ctx), void (*parent)(void *ctx), void *ctx);
/* Removes what is left (parent mode: the files, overwritten first). Accepts NULL. */
void run_files_free(struct run_files *st);
