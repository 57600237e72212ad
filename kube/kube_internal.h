/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the kube/ files only. */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "kube.h"

#define KUBE_SHARE_LOCKS 8

struct kube_client {
    struct kube_config cfg;
    long connect_timeout, request_timeout;
    CURLSH *share;
    pthread_mutex_t share_locks[KUBE_SHARE_LOCKS];
    pthread_mutex_t lock; /* token, stats */
    struct timespec token_mtime;
    struct kube_stats stats;
};

/* Where an answer goes: a bounded buffer, or (streaming) line by line to fn. */
struct kube_sink {
    char *data;
    size_t len, cap, max;
    bool overflow;
    struct kube_lines *lines;
    kube_line_fn fn;
    void *ctx;
    int fn_ret;
    CURL *h;      /* streaming: the answer's status is checked at its first byte */
    bool checked; /* a non-200 answer is kept in data instead (its Status) */
};

int kube_exchange(struct kube_client *c, const char *method, const char *path, const char *body,
                  const char *content_type, const char *accept, long timeout, volatile int *stop, struct kube_sink *s,
                  char *err, size_t err_size);
int kube_read_file(const char *path, size_t max, uint8_t **out, size_t *out_size);
void kube_count(struct kube_client *c, unsigned long *counter);
