/* SPDX-License-Identifier: Apache-2.0 */
/* Who may hold lasd's connections, and how loudly refusals are reported. The socket is 0666, so any
 * user can connect; without limits one user holding every slot starves root and the CAS. Each
 * connection is counted against the uid that connected (SO_PEERCRED at accept):
 *   - a reserved uid (root, and --reserved-uid) may take any free slot up to --max-clients;
 *   - any other uid at most --max-clients-per-uid, and all of them together at most
 *     --max-clients minus --reserved-clients.
 * Refusals are logged at most once a second per kind, with the count of the ones left out. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lasd.h"

struct uid_count {
    uid_t uid;
    unsigned count;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct las_server_config *g_cfg;
static struct uid_count *g_uids; /* the uids holding connections; at most max_clients of them */
static size_t g_nuids;
static unsigned g_total, g_unreserved;

int las_limits_init(const struct las_server_config *cfg)
{
    if (cfg->reserved_clients >= cfg->max_clients) {
        LOG_MODULE_ERROR(LAS_LOG, "--reserved-clients (%u) must be less than --max-clients (%u)", cfg->reserved_clients,
                         cfg->max_clients);
        return -EINVAL;
    }
    g_uids = calloc(cfg->max_clients, sizeof(*g_uids));
    if (!g_uids)
        return -ENOMEM;
    g_cfg = cfg;
    return 0;
}

static bool is_reserved(uid_t uid)
{
    if (uid == 0)
        return true;
    for (size_t i = 0; i < g_cfg->n_reserved_uids; i++)
        if (g_cfg->reserved_uids[i] == uid)
            return true;
    return false;
}

int las_slot_take(uid_t uid, char *err, size_t err_size)
{
    int ret = 0;
    bool reserved = is_reserved(uid);
    pthread_mutex_lock(&g_lock);
    size_t i = 0;
    while (i < g_nuids && g_uids[i].uid != uid)
        i++;
    unsigned mine = i < g_nuids ? g_uids[i].count : 0;
    if (g_total >= g_cfg->max_clients) {
        snprintf(err, err_size, "lasd is serving its maximum of %u connections; try again later", g_cfg->max_clients);
        ret = -EMFILE;
    } else if (!reserved && mine >= g_cfg->max_per_uid) {
        snprintf(err, err_size, "uid %u already holds %u connections to lasd, the limit per user; close some",
                 (unsigned)uid, mine);
        ret = -EUSERS;
    } else if (!reserved && g_unreserved >= g_cfg->max_clients - g_cfg->reserved_clients) {
        snprintf(err, err_size,
                 "lasd is serving its maximum of %u connections for users without a "
                 "reserve; try again later",
                 g_cfg->max_clients - g_cfg->reserved_clients);
        ret = -EMFILE;
    } else {
        if (i == g_nuids)
            g_uids[g_nuids++] = (struct uid_count){.uid = uid, .count = 0};
        g_uids[i].count++;
        g_total++;
        if (!reserved)
            g_unreserved++;
    }
    pthread_mutex_unlock(&g_lock);
    return ret;
}

void las_slot_put(uid_t uid)
{
    pthread_mutex_lock(&g_lock);
    for (size_t i = 0; i < g_nuids; i++) {
        if (g_uids[i].uid != uid)
            continue;
        if (--g_uids[i].count == 0)
            g_uids[i] = g_uids[--g_nuids];
        g_total--;
        if (!is_reserved(uid))
            g_unreserved--;
        break;
    }
    pthread_mutex_unlock(&g_lock);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Whether a line may be logged now (the last one is at least a second old); takes the count of
 * the lines left out since then. */
static bool may_log(struct las_ratelimit *rl, unsigned long *suppressed)
{
    uint64_t now = now_ms();
    if (rl->logged && now - rl->last_ms < 1000)
        return false;
    *suppressed = rl->suppressed;
    rl->suppressed = 0;
    rl->last_ms = now;
    rl->logged = true;
    return true;
}

void las_warn_limited(struct las_ratelimit *rl, const char *fmt, ...)
{
    char line[512];
    unsigned long suppressed = 0;
    pthread_mutex_lock(&rl->lock);
    bool log = may_log(rl, &suppressed);
    if (!log)
        rl->suppressed++;
    pthread_mutex_unlock(&rl->lock);
    if (!log)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (suppressed)
        LOG_MODULE_WARN(LAS_LOG, "%s (and %lu more like it not logged)", line, suppressed);
    else
        LOG_MODULE_WARN(LAS_LOG, "%s", line);
}

void las_ratelimit_flush(struct las_ratelimit *rl, const char *what)
{
    unsigned long suppressed = 0;
    pthread_mutex_lock(&rl->lock);
    if (rl->suppressed == 0 || !may_log(rl, &suppressed))
        suppressed = 0;
    pthread_mutex_unlock(&rl->lock);
    if (suppressed)
        LOG_MODULE_WARN(LAS_LOG, "%lu more %s not logged", suppressed, what);
}

int las_parse_uids(const struct custos_strlist *list, uid_t **out, size_t *out_count)
{
    size_t cap = 0, n = 0;
    uid_t *uids = NULL;
    for (size_t i = 0; i < list->count; i++) {
        for (const char *p = list->items[i]; *p;) {
            size_t len = strcspn(p, ",");
            char *end = NULL;
            errno = 0;
            unsigned long v = len ? strtoul(p, &end, 10) : 0;
            if (!len || p[0] == '-' || end != p + len || errno || v >= (uid_t)-1) {
                LOG_MODULE_ERROR(LAS_LOG, "--reserved-uid: '%.*s' is not a uid (expected numbers like 0,998)", (int)len,
                                 p);
                free(uids);
                return -EINVAL;
            }
            if (n == cap) {
                uid_t *bigger = realloc(uids, (cap = cap ? cap * 2 : 4) * sizeof(*uids));
                if (!bigger) {
                    free(uids);
                    return -ENOMEM;
                }
                uids = bigger;
            }
            uids[n++] = (uid_t)v;
            p += len + (p[len] == ',');
        }
    }
    *out = uids;
    *out_count = n;
    return 0;
}
