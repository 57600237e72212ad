/* SPDX-License-Identifier: Apache-2.0 */
/* Logging in the reference's format: "YYYY-MM-DD HH:MM:SS,mmm LEVEL: message" on stderr. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "custos.h"

#define MAX_MODULES 16
#define MODULE_NAME_MAX 24

static struct {
    enum custos_log_level def;
    size_t count;
    char names[MAX_MODULES][MODULE_NAME_MAX];
    enum custos_log_level levels[MAX_MODULES];
} g_log = {.def = CUSTOS_LOG_INFO};

static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;

static int parse_level(const char *s, size_t n, enum custos_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0) {
            *out = (enum custos_log_level)i;
            return 0;
        }
    }
    if (n == 7 && strncasecmp(s, "warning", n) == 0) {
        *out = CUSTOS_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

int custos_log_configure(const char *spec)
{
    if (!spec || !*spec)
        return 0;
    enum custos_log_level def = g_log.def;
    size_t count = 0;
    char names[MAX_MODULES][MODULE_NAME_MAX];
    enum custos_log_level levels[MAX_MODULES];
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq) {
            if (parse_level(p, n, &def) < 0)
                return -EINVAL;
        } else {
            size_t name_n = (size_t)(eq - p);
            if (name_n == 0 || name_n >= MODULE_NAME_MAX || count == MAX_MODULES)
                return -EINVAL;
            if (parse_level(eq + 1, n - name_n - 1, &levels[count]) < 0)
                return -EINVAL;
            memcpy(names[count], p, name_n);
            names[count][name_n] = '\0';
            count++;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    g_log.def = def;
    g_log.count = count;
    memcpy(g_log.names, names, sizeof(names));
    memcpy(g_log.levels, levels, sizeof(levels));
    return 0;
}

bool custos_log_enabled(const char *module, enum custos_log_level level)
{
    for (size_t i = 0; module && i < g_log.count; i++)
        if (strcmp(g_log.names[i], module) == 0)
            return level <= g_log.levels[i];
    return level <= g_log.def;
}

void custos_log(const char *module, enum custos_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (!custos_log_enabled(module, level))
        return;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char line[8192];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d,%03ld %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    pthread_mutex_lock(&g_log_lock);
    fwrite(line, 1, len, stderr);
    fflush(stderr);
    pthread_mutex_unlock(&g_log_lock);
}
