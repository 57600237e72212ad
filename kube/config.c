/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes credentials: a kubeconfig file (YAML or JSON, the current context) or the in-cluster
 * service account. Every field is checked and every error names its path in the file. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "custos.h"
#include "kube.h"
#include "kube_internal.h"

#define KUBE_FILE_MAX (1u << 20) /* a certificate, key, token or kubeconfig */
#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* Service-account files are symlinks into a directory the kubelet swaps atomically (..data), and a
 * kubeconfig may be one too: follow them, then read the regular file with the library's checks. */
int kube_read_file(const char *path, size_t max, uint8_t **out, size_t *out_size)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return -errno;
    return custos_read_file(real, max, out, out_size);
}

void kube_config_free(struct kube_config *c)
{
    if (c->key_pem)
        custos_wipe(c->key_pem, strlen(c->key_pem));
    if (c->token)
        custos_wipe(c->token, strlen(c->token));
    free(c->server);
    free(c->ca_pem);
    free(c->cert_pem);
    free(c->key_pem);
    free(c->token);
    free(c->token_file);
    free(c->namespace);
    memset(c, 0, sizeof(*c));
}

/* Reads a small text file into a NUL-terminated string (refuses NUL bytes inside). */
static int read_text(const char *path, char **out, char *err, size_t err_size, const char *what)
{
    uint8_t *data = NULL;
    size_t size = 0;
    int ret = kube_read_file(path, KUBE_FILE_MAX, &data, &size);
    if (ret < 0) {
        snprintf(err, err_size, "%s: file %s cannot be read: %s", what, path,
                 ret == -EFBIG ? "larger than 1 MiB" : strerror(-ret));
        return ret;
    }
    char *s = realloc(data, size + 1);
    if (!s) {
        custos_wipe(data, size);
        free(data);
        return -ENOMEM;
    }
    s[size] = 0;
    if (strlen(s) != size) {
        snprintf(err, err_size, "%s: file %s holds a NUL byte", what, path);
        custos_wipe(s, size);
        free(s);
        return -EINVAL;
    }
    *out = s;
    return 0;
}

/* The entry of array `list` (e.g. clusters) whose "name" is `name`; its `inner` object (e.g.
 * "cluster") in *out and its index in *index. */
static int find_named(const json_t *root, const char *list, const char *name, const char *inner, json_t **out,
                      size_t *index, char *err, size_t err_size)
{
    json_t *arr = json_object_get(root, list);
    if (!json_is_array(arr)) {
        snprintf(err, err_size, "%s: %s", list, arr ? "not a list" : "missing");
        return -EINVAL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (!n) {
            snprintf(err, err_size, "%s[%zu].name: missing or not a string", list, i);
            return -EINVAL;
        }
        if (strcmp(n, name) != 0)
            continue;
        json_t *obj = json_object_get(e, inner);
        if (!json_is_object(obj)) {
            snprintf(err, err_size, "%s[%zu].%s: %s", list, i, inner, obj ? "not a mapping" : "missing");
            return -EINVAL;
        }
        *out = obj;
        *index = i;
        return 0;
    }
    snprintf(err, err_size, "%s: no entry named '%.200s'", list, name);
    return -ENOENT;
}

/* Optional string field: NULL when absent; -EINVAL (err names the path) when not a string. */
static int opt_string(const json_t *obj, const char *field, const char *path, const char **out, char *err,
                      size_t err_size)
{
    json_t *v = json_object_get(obj, field);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || !*json_string_value(v)) {
        snprintf(err, err_size, "%s.%s: not a non-empty string", path, field);
        return -EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

/* Field `name` or `name`-data (base64) of obj as text; a file reference is relative to base_dir. */
static int file_or_data(const json_t *obj, const char *name, const char *path, const char *base_dir, char **out,
                        char *err, size_t err_size)
{
    char data_name[64], where[256];
    const char *file, *data;
    snprintf(data_name, sizeof(data_name), "%s-data", name);
    int ret = opt_string(obj, name, path, &file, err, err_size);
    if (ret == 0)
        ret = opt_string(obj, data_name, path, &data, err, err_size);
    if (ret < 0)
        return ret;
    *out = NULL;
    if (data) {
        uint8_t *raw = NULL;
        size_t size = 0;
        if (custos_base64_decode(data, &raw, &size) < 0 || size == 0 || memchr(raw, 0, size)) {
            if (raw) {
                custos_wipe(raw, size);
                free(raw);
            }
            snprintf(err, err_size, "%s.%s: not base64 of a PEM text", path, data_name);
            return -EINVAL;
        }
        char *s = malloc(size + 1);
        if (s) {
            memcpy(s, raw, size);
            s[size] = 0;
        }
        custos_wipe(raw, size);
        free(raw);
        if (!s)
            return -ENOMEM;
        *out = s;
        return 0;
    }
    if (!file)
        return 0;
    char full[PATH_MAX];
    if (file[0] == '/' || !base_dir)
        snprintf(full, sizeof(full), "%s", file);
    else
        snprintf(full, sizeof(full), "%s/%s", base_dir, file);
    snprintf(where, sizeof(where), "%s.%s", path, name);
    return read_text(full, out, err, err_size, where);
}

static int server_check(const char *server, const char *path, char *err, size_t err_size)
{
    size_t n = strlen(server);
    if (strncmp(server, "https://", 8) != 0 || n <= 8 || n > 2048 || strpbrk(server, " \t\r\n?#")) {
        snprintf(err, err_size, "%s.server: '%.200s' is not an https:// URL", path, server);
        return -EINVAL;
    }
    return 0;
}

int kube_config_parse(const char *text, size_t size, const char *base_dir, const char *context, struct kube_config *out,
                      char *err, size_t err_size)
{
    json_t *root = NULL, *ctx = NULL, *cluster = NULL, *user = NULL;
    char perr[256], path[64];
    size_t ci, ui, xi;
    int ret = -EINVAL;
    memset(out, 0, sizeof(*out));
    if (custos_yaml_parse(text, size, &root, perr, sizeof(perr)) < 0) {
        snprintf(err, err_size, "not YAML: %s", perr);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(err, err_size, "not a kubeconfig (expected a mapping)");
        goto out;
    }
    const char *cur = context;
    if (!cur && (ret = opt_string(root, "current-context", "", &cur, err, err_size)) < 0)
        goto out;
    if (!cur) {
        snprintf(err, err_size, "current-context: not set (and no context given)");
        ret = -EINVAL;
        goto out;
    }
    if ((ret = find_named(root, "contexts", cur, "context", &ctx, &xi, err, err_size)) < 0)
        goto out;
    const char *cluster_name, *user_name, *ns;
    snprintf(path, sizeof(path), "contexts[%zu].context", xi);
    if ((ret = opt_string(ctx, "cluster", path, &cluster_name, err, err_size)) < 0 ||
        (ret = opt_string(ctx, "user", path, &user_name, err, err_size)) < 0 ||
        (ret = opt_string(ctx, "namespace", path, &ns, err, err_size)) < 0)
        goto out;
    if (!cluster_name) {
        snprintf(err, err_size, "%s.cluster: missing", path);
        ret = -EINVAL;
        goto out;
    }
    if ((ret = find_named(root, "clusters", cluster_name, "cluster", &cluster, &ci, err, err_size)) < 0)
        goto out;
    snprintf(path, sizeof(path), "clusters[%zu].cluster", ci);
    const char *server;
    if ((ret = opt_string(cluster, "server", path, &server, err, err_size)) < 0)
        goto out;
    if (!server) {
        snprintf(err, err_size, "%s.server: missing", path);
        ret = -EINVAL;
        goto out;
    }
    if ((ret = server_check(server, path, err, err_size)) < 0)
        goto out;
    json_t *insecure = json_object_get(cluster, "insecure-skip-tls-verify");
    if (insecure && !json_is_boolean(insecure)) {
        snprintf(err, err_size, "%s.insecure-skip-tls-verify: not true or false", path);
        ret = -EINVAL;
        goto out;
    }
    out->insecure = json_is_true(insecure);
    if ((ret = file_or_data(cluster, "certificate-authority", path, base_dir, &out->ca_pem, err, err_size)) < 0)
        goto out;
    if (user_name) {
        if ((ret = find_named(root, "users", user_name, "user", &user, &ui, err, err_size)) < 0)
            goto out;
        snprintf(path, sizeof(path), "users[%zu].user", ui);
        static const char *const unsupported[] = {"exec", "auth-provider", "username", "password"};
        for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
            if (json_object_get(user, unsupported[i])) {
                snprintf(err, err_size, "%s.%s: not supported (use a token, a token file or a client certificate)",
                         path, unsupported[i]);
                ret = -ENOTSUP;
                goto out;
            }
        const char *token, *token_file;
        if ((ret = opt_string(user, "token", path, &token, err, err_size)) < 0 ||
            (ret = opt_string(user, "tokenFile", path, &token_file, err, err_size)) < 0 ||
            (ret = file_or_data(user, "client-certificate", path, base_dir, &out->cert_pem, err, err_size)) < 0 ||
            (ret = file_or_data(user, "client-key", path, base_dir, &out->key_pem, err, err_size)) < 0)
            goto out;
        if (!out->cert_pem != !out->key_pem) {
            snprintf(err, err_size, "%s: client-certificate and client-key must be given together", path);
            ret = -EINVAL;
            goto out;
        }
        if ((token && !(out->token = strdup(token))) || (token_file && !(out->token_file = strdup(token_file)))) {
            ret = -ENOMEM;
            goto out;
        }
    }
    if (!(out->server = strdup(server)) || (ns && !(out->namespace = strdup(ns)))) {
        ret = -ENOMEM;
        goto out;
    }
    size_t n = strlen(out->server);
    while (n > 8 && out->server[n - 1] == '/')
        out->server[--n] = 0;
    ret = 0;
out:
    json_decref(root);
    if (ret < 0)
        kube_config_free(out);
    return ret;
}

int kube_config_in_cluster(const char *sa_dir, struct kube_config *out, char *err, size_t err_size)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    char path[PATH_MAX], server[600];
    memset(out, 0, sizeof(*out));
    if (!sa_dir)
        sa_dir = SA_DIR;
    if (!host || !*host || !port || !*port) {
        snprintf(err, err_size, "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
        return -ENOENT;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*end || p < 1 || p > 65535 || strlen(host) > 255 || strpbrk(host, "/?#@ ")) {
        snprintf(err, err_size, "KUBERNETES_SERVICE_HOST/PORT '%.100s:%.20s' is not a host and port", host, port);
        return -EINVAL;
    }
    snprintf(server, sizeof(server), strchr(host, ':') ? "https://[%s]:%ld" : "https://%s:%ld", host, p);
    snprintf(out->source, sizeof(out->source), "in-cluster (%s)", sa_dir);
    int ret;
    snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
    if ((ret = read_text(path, &out->ca_pem, err, err_size, "service account CA")) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/token", sa_dir);
    if (!(out->token_file = strdup(path)) || !(out->server = strdup(server))) {
        ret = -ENOMEM;
        goto fail;
    }
    if ((ret = read_text(path, &out->token, err, err_size, "service account token")) < 0)
        goto fail;
    snprintf(path, sizeof(path), "%s/namespace", sa_dir);
    char *ns = NULL, tmp[256];
    if (read_text(path, &ns, tmp, sizeof(tmp), "namespace") == 0) {
        ns[strcspn(ns, "\r\n")] = 0;
        out->namespace = ns;
    }
    return 0;
fail:
    kube_config_free(out);
    return ret;
}

int kube_config_load(const char *path, struct kube_config *out, char *err, size_t err_size)
{
    const char *sa_dir = getenv("KUBE_SERVICE_ACCOUNT_DIR");
    char buf[PATH_MAX], dir[PATH_MAX];
    struct stat st;
    memset(out, 0, sizeof(*out));
    if (!path || !*path) {
        const char *env = getenv("KUBECONFIG");
        if (env && *env) {
            size_t n = strcspn(env, ":");
            snprintf(buf, sizeof(buf), "%.*s", (int)n, env);
            path = buf;
        } else {
            const char *home = getenv("HOME");
            snprintf(buf, sizeof(buf), "%s/.kube/config", home && *home ? home : "/nonexistent");
            if (stat(buf, &st) == 0)
                path = buf;
            else
                return kube_config_in_cluster(sa_dir && *sa_dir ? sa_dir : NULL, out, err, err_size);
        }
    }
    char *text = NULL, perr[768];
    int ret = read_text(path, &text, err, err_size, "kubeconfig");
    if (ret < 0)
        return ret;
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    ret = kube_config_parse(text, strlen(text), slash ? (dir[0] ? dir : "/") : ".", NULL, out, perr, sizeof(perr));
    custos_wipe(text, strlen(text));
    free(text);
    if (ret < 0) {
        snprintf(err, err_size, "kubeconfig %s: %s", path, perr);
        return ret;
    }
    snprintf(out->source, sizeof(out->source), "%s", path);
    return 0;
}
