/* SPDX-License-Identifier: Apache-2.0 */
/* Requests to the Kubernetes API: one curl share handle holds the connection pool, TLS sessions and
 * DNS cache for every thread; each request uses its own easy handle on top of it. Answers are bounded;
 * a non-2xx answer's Status message is kept in the error. A token file (in-cluster) is re-read when
 * it changes on disk and once more after a 401. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "custos.h"
#include "kube.h"
#include "kube_internal.h"

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
    (void)h;
    (void)access;
    struct kube_client *c = ctx;
    pthread_mutex_lock(&c->share_locks[data % KUBE_SHARE_LOCKS]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
    (void)h;
    struct kube_client *c = ctx;
    pthread_mutex_unlock(&c->share_locks[data % KUBE_SHARE_LOCKS]);
}

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct kube_client *kube_client_new(struct kube_config *cfg, long connect_timeout, long request_timeout, char *err,
                                    size_t err_size)
{
    pthread_once(&g_curl_once, curl_init_once);
    struct kube_client *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    c->connect_timeout = connect_timeout;
    c->request_timeout = request_timeout;
    pthread_mutex_init(&c->lock, NULL);
    for (int i = 0; i < KUBE_SHARE_LOCKS; i++)
        pthread_mutex_init(&c->share_locks[i], NULL);
    c->share = curl_share_init();
    if (!c->share) {
        snprintf(err, err_size, "curl_share_init failed");
        kube_client_free(c);
        return NULL;
    }
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    if (c->cfg.token_file) {
        struct stat st;
        if (stat(c->cfg.token_file, &st) == 0)
            c->token_mtime = st.st_mtim;
    }
    return c;
}

void kube_client_free(struct kube_client *c)
{
    if (!c)
        return;
    if (c->share)
        curl_share_cleanup(c->share);
    kube_config_free(&c->cfg);
    pthread_mutex_destroy(&c->lock);
    for (int i = 0; i < KUBE_SHARE_LOCKS; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    free(c);
}

void kube_client_stats(struct kube_client *c, struct kube_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->stats;
    pthread_mutex_unlock(&c->lock);
}

void kube_count(struct kube_client *c, unsigned long *counter)
{
    pthread_mutex_lock(&c->lock);
    (*counter)++;
    pthread_mutex_unlock(&c->lock);
}

/* Re-reads the token file when it changed (force: always). Under c->lock. */
static void token_refresh(struct kube_client *c, bool force)
{
    struct stat st;
    if (!c->cfg.token_file || stat(c->cfg.token_file, &st) < 0)
        return;
    if (!force && st.st_mtim.tv_sec == c->token_mtime.tv_sec && st.st_mtim.tv_nsec == c->token_mtime.tv_nsec &&
        c->cfg.token)
        return;
    uint8_t *data = NULL;
    size_t size = 0;
    if (kube_read_file(c->cfg.token_file, 64u << 10, &data, &size) < 0)
        return;
    while (size && (data[size - 1] == '\n' || data[size - 1] == '\r'))
        size--;
    char *t = malloc(size + 1);
    if (t && size && !memchr(data, 0, size)) {
        memcpy(t, data, size);
        t[size] = 0;
        if (c->cfg.token) {
            custos_wipe(c->cfg.token, strlen(c->cfg.token));
            free(c->cfg.token);
        }
        c->cfg.token = t;
        c->token_mtime = st.st_mtim;
    } else {
        free(t);
    }
    custos_wipe(data, size);
    free(data);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct kube_sink *s = ud;
    size_t n = size * nmemb;
    if (s->lines && !s->checked) {
        long code = 0;
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
        s->checked = true;
        if (code != 200) {
            s->lines = NULL;
            s->max = 64u << 10;
        }
    }
    if (s->lines) {
        s->fn_ret = kube_lines_feed(s->lines, ptr, n, s->fn, s->ctx);
        return s->fn_ret < 0 ? 0 : n;
    }
    if (s->len + n > s->max) {
        s->overflow = true;
        return 0;
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *d = realloc(s->data, cap);
        if (!d)
            return 0;
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, ptr, n);
    s->len += n;
    s->data[s->len] = 0;
    return n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
    (void)a;
    (void)b;
    (void)c2;
    (void)d;
    volatile int *stop = ud;
    return stop && *stop ? 1 : 0;
}

void kube_status_text(const json_t *body, int status, char *out, size_t out_size)
{
    const char *msg = json_string_value(json_object_get(body, "message"));
    const char *reason = json_string_value(json_object_get(body, "reason"));
    if (msg && reason)
        snprintf(out, out_size, "HTTP %d: %.400s (%.64s)", status, msg, reason);
    else if (msg)
        snprintf(out, out_size, "HTTP %d: %.400s", status, msg);
    else
        snprintf(out, out_size, "HTTP %d", status);
}

/* One exchange. In streaming mode (s->lines set) the body goes line by line to s->fn. */
int kube_exchange(struct kube_client *c, const char *method, const char *path, const char *body,
                  const char *content_type, const char *accept, long timeout, volatile int *stop, struct kube_sink *s,
                  char *err, size_t err_size)
{
    char url[4096], auth[8192];
    struct curl_slist *headers = NULL;
    int status = -EIO;
    struct kube_lines *stream = s->lines;
    if (snprintf(url, sizeof(url), "%s%s", c->cfg.server, path) >= (int)sizeof(url)) {
        snprintf(err, err_size, "request path too long");
        return -ENAMETOOLONG;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        CURL *h = curl_easy_init();
        if (!h) {
            snprintf(err, err_size, "curl_easy_init failed");
            return -ENOMEM;
        }
        curl_easy_setopt(h, CURLOPT_SHARE, c->share);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->connect_timeout);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
        s->h = h;
        s->checked = false;
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        if (stop) {
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, stop);
        }
        struct curl_blob ca = {0}, cert = {0}, key = {0};
        if (c->cfg.ca_pem) {
            ca = (struct curl_blob){c->cfg.ca_pem, strlen(c->cfg.ca_pem), CURL_BLOB_NOCOPY};
            curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
        }
        if (c->cfg.insecure) {
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (c->cfg.cert_pem) {
            cert = (struct curl_blob){c->cfg.cert_pem, strlen(c->cfg.cert_pem), CURL_BLOB_NOCOPY};
            key = (struct curl_blob){c->cfg.key_pem, strlen(c->cfg.key_pem), CURL_BLOB_NOCOPY};
            curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
            curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
            curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
            curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
        }
        headers = NULL;
        pthread_mutex_lock(&c->lock);
        token_refresh(c, attempt > 0);
        if (c->cfg.token) {
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->cfg.token);
            headers = curl_slist_append(headers, auth);
            custos_wipe(auth, sizeof(auth));
        }
        c->stats.requests++;
        pthread_mutex_unlock(&c->lock);
        char ahdr[128], chdr[128];
        snprintf(ahdr, sizeof(ahdr), "Accept: %s", accept ? accept : "application/json");
        headers = curl_slist_append(headers, ahdr);
        if (body) {
            snprintf(chdr, sizeof(chdr), "Content-Type: %s", content_type ? content_type : "application/json");
            headers = curl_slist_append(headers, chdr);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        CURLcode rc = curl_easy_perform(h);
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(h);
        /* the list holds a copy of the Authorization header */
        for (struct curl_slist *l = headers; l; l = l->next)
            custos_wipe(l->data, strlen(l->data));
        curl_slist_free_all(headers);
        if (rc != CURLE_OK && !(s->lines && rc == CURLE_OPERATION_TIMEDOUT && code == 200)) {
            if (s->overflow)
                snprintf(err, err_size, "%s %s: answer larger than %zu bytes", method, path, s->max);
            else if (stop && *stop)
                snprintf(err, err_size, "stopped");
            else if (s->lines && s->fn_ret < 0)
                snprintf(err, err_size, "%s %s: %s", method, path, "stream handler failed");
            else
                snprintf(err, err_size, "%s %s%s: %s", c->cfg.server, path, "", curl_easy_strerror(rc));
            kube_count(c, &c->stats.errors);
            return s->overflow ? -EFBIG : (stop && *stop) ? -ECANCELED : s->lines && s->fn_ret < 0 ? s->fn_ret : -EIO;
        }
        status = (int)code;
        if (status == 401 && attempt == 0 && c->cfg.token_file && !s->lines) {
            s->len = 0; /* the token may have rotated under us: read it again and retry once */
            continue;
        }
        break;
    }
    if (status < 200 || status > 299) {
        kube_count(c, &c->stats.errors);
        if (stream) { /* a watch refused: keep the API's reason */
            json_error_t je;
            json_t *j = s->len ? json_loadb(s->data, s->len, 0, &je) : NULL;
            char st[512];
            kube_status_text(j, status, st, sizeof(st));
            snprintf(err, err_size, "%s %s: %s", method, path, st);
            json_decref(j);
        }
    }
    if (stream) {
        free(s->data);
        s->data = NULL;
        s->lines = stream;
    }
    return status;
}

int kube_request(struct kube_client *c, const char *method, const char *path, const json_t *body,
                 const char *content_type, json_t **out, char *err, size_t err_size)
{
    struct kube_sink s = {.max = KUBE_MAX_RESPONSE};
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (out)
        *out = NULL;
    if (body && !text)
        return -ENOMEM;
    int status = kube_exchange(c, method, path, text, content_type, NULL, c->request_timeout, NULL, &s, err, err_size);
    free(text);
    json_t *j = NULL;
    if (status > 0 && s.len) {
        json_error_t je;
        j = json_loadb(s.data, s.len, JSON_REJECT_DUPLICATES, &je);
    }
    free(s.data);
    if (status > 0 && (status < 200 || status > 299)) {
        char st[512];
        kube_status_text(j, status, st, sizeof(st));
        snprintf(err, err_size, "%s %s: %s", method, path, st);
    } else if (status > 0 && !j && s.len) {
        snprintf(err, err_size, "%s %s: the answer is not JSON", method, path);
        status = -EPROTO;
    }
    if (out && status > 0)
        *out = j;
    else
        json_decref(j);
    return status;
}

int kube_get_text(struct kube_client *c, const char *path, size_t max, char **out, size_t *out_size, char *err,
                  size_t err_size)
{
    struct kube_sink s = {.max = max};
    *out = NULL;
    int status = kube_exchange(c, "GET", path, NULL, NULL, "*/*", c->request_timeout, NULL, &s, err, err_size);
    if (status > 0 && (status < 200 || status > 299)) {
        json_error_t je;
        json_t *j = s.len ? json_loadb(s.data, s.len, 0, &je) : NULL;
        char st[512];
        kube_status_text(j, status, st, sizeof(st));
        snprintf(err, err_size, "GET %s: %s", path, st);
        json_decref(j);
        free(s.data);
        return status;
    }
    if (status < 0) {
        free(s.data);
        return status;
    }
    if (!s.data && !(s.data = calloc(1, 1)))
        return -ENOMEM;
    *out = s.data;
    if (out_size)
        *out_size = s.len;
    return status;
}

void kube_query_escape(const char *in, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < out_size; in++) {
        unsigned char ch = (unsigned char)*in;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("-_.~", ch)) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = 0;
}
