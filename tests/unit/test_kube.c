/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of kube/: kubeconfig and in-cluster credentials, the watch stream's line splitter and
 * event parser, Status messages. (Requests, list and watch run against a real kube-apiserver in
 * tests/integration/test_controller.py.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kube.h"

#define PEM_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="

static const char *g_base = "apiVersion: v1\n"
                            "current-context: %s\n"
                            "clusters:\n"
                            "- name: local\n"
                            "  cluster:\n"
                            "    server: %s\n"
                            "    certificate-authority-data: " PEM_B64 "\n"
                            "contexts:\n"
                            "- name: test\n"
                            "  context: {cluster: local, user: admin, namespace: ns1}\n"
                            "- name: other\n"
                            "  context: {cluster: local, user: nobody}\n"
                            "users:\n"
                            "- name: admin\n"
                            "  user: %s\n";

static int parse(const char *ctx, const char *server, const char *user, struct kube_config *c, char *err)
{
    char text[4096];
    snprintf(text, sizeof(text), g_base, ctx, server, user);
    return kube_config_parse(text, strlen(text), "/nonexistent", NULL, c, err, 512);
}

static void expect_error(const char *ctx, const char *server, const char *user, const char *want)
{
    struct kube_config c;
    char err[512] = "";
    int ret = parse(ctx, server, user, &c, err);
    if (ret >= 0 || !strstr(err, want))
        fail_msg("want error containing \"%s\", got %d \"%s\"", want, ret, err);
    assert_null(c.server);
}

static void test_kubeconfig_token(void **state)
{
    (void)state;
    struct kube_config c;
    char err[512] = "";
    assert_int_equal(parse("test", "https://127.0.0.1:6443/", "{token: secret-token}", &c, err), 0);
    assert_string_equal(c.server, "https://127.0.0.1:6443"); /* trailing slash dropped */
    assert_string_equal(c.token, "secret-token");
    assert_string_equal(c.namespace, "ns1");
    assert_non_null(strstr(c.ca_pem, "BEGIN CERTIFICATE"));
    assert_null(c.cert_pem);
    assert_false(c.insecure);
    kube_config_free(&c);
}

static void test_kubeconfig_cert(void **state)
{
    (void)state;
    struct kube_config c;
    char err[512] = "";
    assert_int_equal(parse("test", "https://k:1",
                           "{client-certificate-data: " PEM_B64 ", client-key-data: " PEM_B64 "}", &c, err),
                     0);
    assert_non_null(c.cert_pem);
    assert_non_null(c.key_pem);
    assert_null(c.token);
    kube_config_free(&c);
}

static void test_kubeconfig_errors(void **state)
{
    (void)state;
    expect_error("missing", "https://k:1", "{token: t}", "contexts: no entry named 'missing'");
    expect_error("other", "https://k:1", "{token: t}", "users: no entry named 'nobody'");
    expect_error("test", "http://k:1", "{token: t}", "clusters[0].cluster.server: 'http://k:1' is not an https:// URL");
    expect_error("test", "https://k:1", "{exec: {command: aws}}", "users[0].user.exec: not supported");
    expect_error("test", "https://k:1", "{token: 5}", "users[0].user.token: not a non-empty string");
    expect_error("test", "https://k:1", "{client-certificate-data: " PEM_B64 "}",
                 "client-certificate and client-key must be given together");
    expect_error("test", "https://k:1", "{client-key-data: '!!!!'}", "users[0].user.client-key-data: not base64");
    expect_error("test", "https://k:1", "{client-key: key.pem, client-certificate: c.pem}",
                 "users[0].user.client-certificate: file /nonexistent/c.pem cannot be read");
    struct kube_config c;
    char err[512];
    assert_int_equal(kube_config_parse("[1, 2]", 6, NULL, NULL, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "not a kubeconfig (expected a mapping)");
    assert_int_equal(kube_config_parse("a: [", 4, NULL, NULL, &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not YAML"));
    assert_int_equal(kube_config_parse("clusters: []", 12, NULL, NULL, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "current-context: not set (and no context given)");
}

static void test_in_cluster(void **state)
{
    (void)state;
    char dir[] = "/tmp/kube-sa-XXXXXX", path[256], err[512];
    assert_non_null(mkdtemp(dir));
    struct kube_config c;
    unsetenv("KUBERNETES_SERVICE_HOST");
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "notaport", 1);
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), -EINVAL);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "service account CA"));
    const char *files[][2] = {{"ca.crt", "-----BEGIN CERTIFICATE-----\n"}, {"token", "tok1"}, {"namespace", "ns2\n"}};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        FILE *f = fopen(path, "w");
        fputs(files[i][1], f);
        fclose(f);
    }
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), 0);
    assert_string_equal(c.server, "https://10.0.0.1:443");
    assert_string_equal(c.token, "tok1");
    assert_string_equal(c.namespace, "ns2");
    assert_non_null(strstr(c.token_file, "/token"));
    kube_config_free(&c);
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    assert_int_equal(kube_config_in_cluster(dir, &c, err, sizeof(err)), 0);
    assert_string_equal(c.server, "https://[fd00::1]:443");
    kube_config_free(&c);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        unlink(path);
    }
    rmdir(dir);
}

struct collected {
    char lines[8][64];
    int n;
};

static int collect(void *ctx, const char *line, size_t size)
{
    struct collected *c = ctx;
    assert_true(c->n < 8);
    assert_int_equal(strlen(line), size);
    snprintf(c->lines[c->n++], 64, "%s", line);
    return 0;
}

static void test_lines(void **state)
{
    (void)state;
    struct kube_lines l = {.max = 8};
    struct collected c = {0};
    const char *stream = "ab\ncd";
    assert_int_equal(kube_lines_feed(&l, stream, strlen(stream), collect, &c), 0);
    assert_int_equal(kube_lines_feed(&l, "e\n\n0123456789", 13, collect, &c), 0); /* empty line skipped */
    assert_int_equal(kube_lines_feed(&l, "xx\nfin\n", 7, collect, &c), 0);        /* 12-byte line dropped */
    assert_int_equal(c.n, 3);
    assert_string_equal(c.lines[0], "ab");
    assert_string_equal(c.lines[1], "cde");
    assert_string_equal(c.lines[2], "fin");
    assert_int_equal(l.dropped, 1);
    kube_lines_free(&l);
}

static void test_watch_event(void **state)
{
    (void)state;
    enum kube_event t;
    json_t *o;
    int code;
    char err[256];
    const char *ok = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"n\",\"resourceVersion\":\"5\"}}}";
    assert_int_equal(kube_watch_event_parse(ok, strlen(ok), &t, &o, &code, err, sizeof(err)), 0);
    assert_int_equal(t, KUBE_MODIFIED);
    json_decref(o);
    const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"message\":\"too old\"}}";
    assert_int_equal(kube_watch_event_parse(gone, strlen(gone), &t, &o, &code, err, sizeof(err)), 0);
    assert_int_equal(t, KUBE_ERROR);
    assert_int_equal(code, 410);
    char st[256];
    kube_status_text(o, 410, st, sizeof(st));
    assert_string_equal(st, "HTTP 410: too old");
    json_decref(o);
    const char *bad[][2] = {{"{\"type\":\"ADDED\"}", "watch event without an object"},
                            {"{\"type\":\"NOPE\",\"object\":{}}", "watch event of unknown type 'NOPE'"},
                            {"{\"type\":\"ADDED\",\"object\":{}}", "watch event without metadata.resourceVersion"},
                            {"{\"type\":\"ADDED\",\"type\":\"ADDED\",\"object\":{}}", "watch event is not JSON"}};
    for (size_t i = 0; i < 4; i++) {
        o = (json_t *)1;
        assert_int_equal(kube_watch_event_parse(bad[i][0], strlen(bad[i][0]), &t, &o, &code, err, sizeof(err)),
                         -EPROTO);
        assert_null(o);
        if (!strstr(err, bad[i][1]))
            fail_msg("%s: got \"%s\"", bad[i][0], err);
    }
}

static void test_status_and_escape(void **state)
{
    (void)state;
    char out[256];
    json_t *s = json_pack("{s:s, s:s}", "message", "nodes is forbidden", "reason", "Forbidden");
    kube_status_text(s, 403, out, sizeof(out));
    assert_string_equal(out, "HTTP 403: nodes is forbidden (Forbidden)");
    json_decref(s);
    kube_status_text(NULL, 502, out, sizeof(out));
    assert_string_equal(out, "HTTP 502");
    kube_query_escape("a=b,c!=d/e f", out, sizeof(out));
    assert_string_equal(out, "a%3Db%2Cc%21%3Dd%2Fe%20f");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kubeconfig_token),
        cmocka_unit_test(test_kubeconfig_cert),
        cmocka_unit_test(test_kubeconfig_errors),
        cmocka_unit_test(test_in_cluster),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_watch_event),
        cmocka_unit_test(test_status_and_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
