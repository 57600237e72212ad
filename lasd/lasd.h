/* SPDX-License-Identifier: Apache-2.0 */
/* lasd internals: the measurement of local callers and the socket server. */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "custos.h"
#include "platform.h"

#define LAS_LOG "las"

/* The sender of one request, as the kernel reported it with the message. */
struct las_caller {
    pid_t pid;
    uid_t uid;
    int pidfd; /* SCM_PIDFD of the sender (kernel >= 6.5), or -1 */
};

/* SHA-256 of the executable the caller runs, read through /proc/<pid>/exe. The caller is refused
 * when it runs other code (las_check_caller: before hashing on a cache miss, and always after).
 * After hashing it checks that /proc/<pid>/exe is still the hashed file and that the caller is
 * still alive (through its pidfd, or else by its unchanged start time), so the pid cannot have
 * been recycled meanwhile. Results are cached by (device, inode, size, mtime, ctime) of the file. */
int las_measure(const struct las_caller *caller, uint8_t out[CUSTOS_MEASUREMENT_SIZE], char *err, size_t err_size);

/* Refuses (-EPERM, reason in err naming the mapping) a caller whose code can differ from its
 * executable exe (the fstat of /proc/<pid>/exe that is measured): traced; started with
 * LD_PRELOAD, LD_AUDIT or LD_LIBRARY_PATH; executable memory that is anonymous (the kernel's
 * [vdso], [vsyscall] aside), writable, or from a file that is neither exe nor owned by root and
 * unwritable by group and others. deep also reads the pagemap of the executable file mappings and
 * refuses code pages changed in memory (private copies). Other errors: -ESRCH (caller gone), -E2BIG. */
int las_check_caller(pid_t pid, const struct stat *exe, bool deep, char *err, size_t err_size);

struct las_server_config {
    const char *socket_path;
    unsigned threads;
    unsigned max_clients;
    unsigned max_per_uid;       /* connections one uid without a reserve may hold */
    unsigned reserved_clients;  /* of max_clients, kept for root and reserved_uids */
    const uid_t *reserved_uids; /* besides root */
    size_t n_reserved_uids;
    unsigned request_timeout_ms;
};

/* Connection slots per uid (limits.c). las_limits_init checks the numbers (logs why it refuses).
 * las_slot_take counts a connection of uid, or refuses it (-EUSERS: the uid holds its limit,
 * -EMFILE: no slot for it) with a message for the client in err; las_slot_put gives it back. */
int las_limits_init(const struct las_server_config *cfg);
int las_slot_take(uid_t uid, char *err, size_t err_size);
void las_slot_put(uid_t uid);
/* Parses uids given as "0,998" (one or more items) into a malloc'ed array the caller frees;
 * -EINVAL after logging the bad item. */
int las_parse_uids(const struct custos_strlist *list, uid_t **out, size_t *out_count);

/* A warning of one kind, logged at most once a second; the lines left out are counted and the
 * count is logged with the next line, or by las_ratelimit_flush once the second has passed. */
struct las_ratelimit {
    pthread_mutex_t lock;
    uint64_t last_ms; /* CLOCK_MONOTONIC of the last line */
    unsigned long suppressed;
    bool logged;
};
#define LAS_RATELIMIT_INIT                                                                                             \
    {                                                                                                                  \
        .lock = PTHREAD_MUTEX_INITIALIZER                                                                              \
    }
void las_warn_limited(struct las_ratelimit *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void las_ratelimit_flush(struct las_ratelimit *rl, const char *what);

/* The listening socket, as this process created it (listen.c). */
struct las_socket {
    int fd;
    dev_t dev; /* identity of the socket file at bind: only that file is removed at exit */
    ino_t ino;
    char path[108];
};

/* Creates, binds and listens on path (0666, directory created 0755). Refuses with -EADDRINUSE
 * when a lasd accepts connections on it (never takes a live socket over); replaces a stale socket
 * (connect refused); never replaces a file that is not a socket. Logs why on failure. */
int las_listen(const char *path, struct las_socket *out);
/* Closes the socket and unlinks its path only when it is still the file bound by las_listen. */
void las_unlisten(struct las_socket *s);

/* Serves until SIGTERM/SIGINT; SIGHUP is logged and ignored. */
int las_serve(const struct las_server_config *cfg, const struct custos_platform *platform);

/* Handles one request payload from caller; writes the response payload (status byte first). */
size_t las_handle(const struct custos_platform *platform, const struct las_caller *caller, const uint8_t *req,
                  size_t req_size, uint8_t *resp, size_t resp_cap);
