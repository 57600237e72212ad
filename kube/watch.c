/* SPDX-License-Identifier: Apache-2.0 */
/* list+watch: a paginated list, then a watch from the list's resourceVersion with bookmarks; the
 * stream is split into bounded lines, each one a JSON event. 410 Gone (the version left etcd's
 * window) means list again; other failures are retried with exponential back-off. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "custos.h"
#include "kube.h"
#include "kube_internal.h"

#define WATCH_SECONDS 290 /* the server ends each watch after this; we open the next one */
#define RV_MAX 64

int kube_lines_feed(struct kube_lines *l, const char *data, size_t size, kube_line_fn fn, void *ctx)
{
    while (size) {
        const char *nl = memchr(data, '\n', size);
        size_t n = nl ? (size_t)(nl - data) : size;
        if (!l->dropping) {
            if (l->len + n > l->max) {
                l->dropping = true; /* too long: skip to its end */
                l->len = 0;
            } else {
                if (l->len + n + 1 > l->cap) {
                    size_t cap = l->cap ? l->cap : 4096;
                    while (cap < l->len + n + 1)
                        cap *= 2;
                    char *b = realloc(l->buf, cap);
                    if (!b)
                        return -ENOMEM;
                    l->buf = b;
                    l->cap = cap;
                }
                memcpy(l->buf + l->len, data, n);
                l->len += n;
            }
        }
        if (!nl)
            return 0;
        if (l->dropping) {
            l->dropped++;
            l->dropping = false;
        } else if (l->len) {
            l->buf[l->len] = 0;
            int ret = fn(ctx, l->buf, l->len);
            l->len = 0;
            if (ret < 0)
                return ret;
        }
        data += n + 1;
        size -= n + 1;
    }
    return 0;
}

void kube_lines_free(struct kube_lines *l)
{
    free(l->buf);
    l->buf = NULL;
    l->len = l->cap = 0;
}

int kube_watch_event_parse(const char *line, size_t size, enum kube_event *type, json_t **obj, int *code, char *err,
                           size_t err_size)
{
    static const struct {
        const char *name;
        enum kube_event type;
    } types[] = {{"ADDED", KUBE_ADDED},
                 {"MODIFIED", KUBE_MODIFIED},
                 {"DELETED", KUBE_DELETED},
                 {"BOOKMARK", KUBE_BOOKMARK},
                 {"ERROR", KUBE_ERROR}};
    json_error_t je;
    *obj = NULL;
    *code = 0;
    json_t *j = json_loadb(line, size, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        snprintf(err, err_size, "watch event is not JSON: %s", je.text);
        return -EPROTO;
    }
    const char *t = json_string_value(json_object_get(j, "type"));
    json_t *o = json_object_get(j, "object");
    int ret = -EPROTO;
    if (!t || !json_is_object(o)) {
        snprintf(err, err_size, "watch event without %s", t ? "an object" : "a type");
        goto out;
    }
    size_t i;
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (!strcmp(t, types[i].name))
            break;
    if (i == sizeof(types) / sizeof(types[0])) {
        snprintf(err, err_size, "watch event of unknown type '%.32s'", t);
        goto out;
    }
    *type = types[i].type;
    if (*type == KUBE_ERROR)
        *code = (int)json_integer_value(json_object_get(o, "code"));
    else if (!json_is_string(json_object_get(json_object_get(o, "metadata"), "resourceVersion"))) {
        snprintf(err, err_size, "watch event without metadata.resourceVersion");
        goto out;
    }
    *obj = json_incref(o);
    ret = 0;
out:
    json_decref(j);
    return ret;
}

struct reflector {
    struct kube_client *c;
    const struct kube_watch_ops *ops;
    void *ctx;
    char rv[RV_MAX + 1];
    bool gone;
    char err[512];
    const char *path;
    struct kube_lines *lines;
    unsigned long dropped_reported;
};

/* Lines over the bound are dropped whole by the splitter; say so as soon as the stream goes on. */
static void report_dropped(struct reflector *r)
{
    if (!r->lines || r->lines->dropped == r->dropped_reported)
        return;
    char m[600];
    snprintf(m, sizeof(m), "watch %s: %lu event(s) larger than %u bytes dropped", r->path,
             r->lines->dropped - r->dropped_reported, KUBE_MAX_EVENT);
    r->dropped_reported = r->lines->dropped;
    r->ops->failed(r->ctx, m);
}

static void nap(volatile int *stop, unsigned seconds)
{
    for (unsigned i = 0; i < seconds * 10 && !*stop; i++)
        nanosleep(&(struct timespec){0, 100000000}, NULL);
}

static void take_rv(struct reflector *r, const json_t *obj)
{
    const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    if (rv && strlen(rv) <= RV_MAX)
        snprintf(r->rv, sizeof(r->rv), "%s", rv);
}

static int on_line(void *ctx, const char *line, size_t size)
{
    struct reflector *r = ctx;
    enum kube_event type;
    json_t *obj;
    int code;
    char err[256];
    report_dropped(r);
    if (kube_watch_event_parse(line, size, &type, &obj, &code, err, sizeof(err)) < 0) {
        r->ops->failed(r->ctx, err); /* one bad event: report it, keep the stream */
        return 0;
    }
    kube_count(r->c, &r->c->stats.watch_events);
    if (type == KUBE_ERROR) {
        char st[400];
        kube_status_text(obj, code, st, sizeof(st));
        json_decref(obj);
        if (code == 410) {
            r->gone = true;
            return -ESTALE;
        }
        snprintf(r->err, sizeof(r->err), "watch: %s", st);
        return -EPROTO;
    }
    take_rv(r, obj);
    if (type != KUBE_BOOKMARK)
        r->ops->event(r->ctx, type, obj);
    json_decref(obj);
    return 0;
}

/* One paginated list. */
static int list_all(struct reflector *r, const char *path, const char *sel, volatile int *stop)
{
    char cont[1024] = "", url[4096];
    bool first = true;
    r->ops->list_begin(r->ctx);
    do {
        char econt[3200] = "";
        kube_query_escape(cont, econt, sizeof(econt));
        snprintf(url, sizeof(url), "%s?limit=%d%s%s%s%s", path, KUBE_LIST_PAGE, sel ? "&labelSelector=" : "",
                 sel ? sel : "", cont[0] ? "&continue=" : "", econt);
        json_t *page = NULL;
        int status = kube_request(r->c, "GET", url, NULL, NULL, &page, r->err, sizeof(r->err));
        if (status != 200) {
            json_decref(page);
            return status == 410 ? -ESTALE : -EIO; /* 410: the continue token expired */
        }
        json_t *meta = json_object_get(page, "metadata"), *items = json_object_get(page, "items");
        if (!json_is_array(items)) {
            snprintf(r->err, sizeof(r->err), "GET %s: the answer has no items", path);
            json_decref(page);
            return -EPROTO;
        }
        if (first)
            take_rv(r, page);
        first = false;
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
            r->ops->event(r->ctx, KUBE_ADDED, it);
        const char *c = json_string_value(json_object_get(meta, "continue"));
        snprintf(cont, sizeof(cont), "%s", c && strlen(c) < sizeof(cont) ? c : "");
        json_decref(page);
    } while (cont[0] && !*stop);
    if (*stop)
        return -ECANCELED;
    r->ops->list_end(r->ctx);
    return 0;
}

void kube_reflect(struct kube_client *c, const char *path, const char *selector, const struct kube_watch_ops *ops,
                  void *ctx, volatile int *stop)
{
    struct reflector r = {.c = c, .ops = ops, .ctx = ctx, .path = path};
    char sel[1024] = "", url[4096];
    unsigned backoff = 1;
    bool listed = false;
    if (selector && *selector)
        kube_query_escape(selector, sel, sizeof(sel));
    while (!*stop) {
        if (!listed) {
            int ret = list_all(&r, path, sel[0] ? sel : NULL, stop);
            if (ret == -ECANCELED)
                break;
            if (ret < 0) {
                ops->failed(ctx, r.err);
                nap(stop, backoff);
                backoff = backoff * 2 > 30 ? 30 : backoff * 2;
                continue;
            }
            kube_count(c, &c->stats.relists);
            listed = true;
        }
        snprintf(url, sizeof(url), "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%d&resourceVersion=%s%s%s", path,
                 WATCH_SECONDS, r.rv, sel[0] ? "&labelSelector=" : "", sel);
        struct kube_lines lines = {.max = KUBE_MAX_EVENT};
        struct kube_sink s = {.lines = &lines, .fn = on_line, .ctx = &r};
        r.gone = false;
        r.err[0] = 0;
        r.lines = &lines;
        r.dropped_reported = 0;
        int status = kube_exchange(c, "GET", url, NULL, NULL, NULL, WATCH_SECONDS + 30, stop, &s, r.err, sizeof(r.err));
        report_dropped(&r);
        r.lines = NULL;
        kube_lines_free(&lines);
        if (*stop)
            break;
        if (r.gone || status == 410) {
            listed = false; /* our version is too old: list again */
            continue;
        }
        if (status == 200 && !r.err[0]) {
            backoff = 1; /* the server closed the watch after its timeout: open the next one */
            continue;
        }
        if (!r.err[0])
            snprintf(r.err, sizeof(r.err), "watch %s: HTTP %d", path, status);
        ops->failed(ctx, r.err);
        nap(stop, backoff);
        backoff = backoff * 2 > 30 ? 30 : backoff * 2;
    }
}
