/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of what cas-backup-controller reads from outside (Node and Pod objects, LAS logs, the
 * CLI's output) and of the backup pod it creates. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "controller.h"

static struct ctl_settings g_s = {.label_key = "cas-registered-mycas.default",
                                  .annot_platform = "custos.io/platform-mycas.default",
                                  .annot_boot = "custos.io/boot-id-mycas.default"};

#define P1 "02ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"
#define P2 "03CDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCDCD"

static json_t *node(const char *name, const char *boot)
{
    return json_pack("{s:{s:s, s:s, s:{s:s}, s:{s:s, s:s}}, s:{s:b}, s:{s:{s:s}, s:[{s:s, s:s}], s:[{s:s, s:s}]}}",
                     "metadata", "name", name, "uid", "uid-1", "labels", "cas-registered-mycas.default", "true",
                     "annotations", "custos.io/platform-mycas.default", P1, "custos.io/boot-id-mycas.default", "b0",
                     "spec", "unschedulable", 1, "status", "nodeInfo", "bootID", boot, "addresses", "type",
                     "InternalIP", "address", "127.0.0.11", "conditions", "type", "Ready", "status", "True");
}

static void test_node(void **state)
{
    (void)state;
    struct ctl_node_view v;
    char err[512];
    json_t *n = node("node-1", "b1");
    assert_int_equal(ctl_node_parse(n, &g_s, &v, err, sizeof(err)), 0);
    assert_string_equal(v.name, "node-1");
    assert_string_equal(v.boot_id, "b1");
    assert_string_equal(v.ip, "127.0.0.11");
    assert_string_equal(v.reg_platform, P1);
    assert_string_equal(v.reg_boot, "b0");
    assert_true(v.labelled && v.unschedulable && v.ready);
    assert_false(v.control_plane);
    json_object_set_new(json_object_get(json_object_get(n, "metadata"), "labels"), "node-role.kubernetes.io/master",
                        json_string(""));
    assert_int_equal(ctl_node_parse(n, &g_s, &v, err, sizeof(err)), 0);
    assert_true(v.control_plane);
    json_decref(n);

    char big[200];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    n = node("node-1", big);
    assert_int_equal(ctl_node_parse(n, &g_s, &v, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "status.nodeInfo.bootID: 199 bytes, more than 64 (or a NUL byte)");
    json_decref(n);
    n = node("Node_1", "b");
    assert_int_equal(ctl_node_parse(n, &g_s, &v, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "metadata.name: 'Node_1' is not a DNS subdomain");
    json_decref(n);
    n = node("node-1", "b");
    json_object_set_new(json_object_get(json_object_get(n, "metadata"), "annotations"),
                        "custos.io/platform-mycas.default", json_string("zz"));
    assert_int_equal(ctl_node_parse(n, &g_s, &v, err, sizeof(err)), -EINVAL);
    assert_string_equal(err,
                        "metadata.annotations[custos.io/platform-mycas.default]: not a platform ID (66 hex digits)");
    json_decref(n);
}

static void test_pod(void **state)
{
    (void)state;
    struct ctl_pod_view v;
    char err[512];
    json_t *p = json_pack("{s:{s:s, s:s}, s:{s:s}, s:{s:s, s:s, s:[{s:s, s:s}], s:[{s:i, s:{s:{s:s}}}]}}", "metadata",
                          "name", "cas-backup-node-1", "uid", "u", "spec", "nodeName", "node-1", "status", "phase",
                          "Pending", "podIP", "127.0.100.2", "conditions", "type", "Ready", "status", "False",
                          "containerStatuses", "restartCount", 3, "state", "waiting", "reason", "ErrImagePull");
    assert_int_equal(ctl_pod_parse(p, &v, err, sizeof(err)), 0);
    assert_string_equal(v.node, "node-1");
    assert_string_equal(v.waiting, "ErrImagePull");
    assert_false(v.ready);
    assert_int_equal(v.restarts, 3);
    json_object_set_new(json_object_get(p, "status"), "phase", json_string("AVeryLongPhaseName"));
    assert_int_equal(ctl_pod_parse(p, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "status.phase"));
    json_decref(p);
}

static void test_las_key(void **state)
{
    (void)state;
    char k[CTL_PLATFORM_LEN + 1];
    const char *log = "x INFO: LAS started, public key: " P1 "\ny INFO: LAS started, public key: " P2 "\n";
    assert_int_equal(ctl_las_key_parse(log, strlen(log), k), 0);
    assert_string_equal(k, P2); /* the last one counts */
    const char *short_key = "public key: 02ABAB\n";
    assert_int_equal(ctl_las_key_parse(short_key, strlen(short_key), k), -ENOENT);
    const char *long_key = "public key: " P1 "AB\n";
    assert_int_equal(ctl_las_key_parse(long_key, strlen(long_key), k), -ENOENT);
    assert_int_equal(ctl_las_key_parse("", 0, k), -ENOENT);
}

static void test_cli_output(void **state)
{
    (void)state;
    char p[CTL_PLATFORM_LEN + 1], primary[CTL_PLATFORM_LEN + 1], err[256];
    const char *out = "Backup CAS registered\nnode node-1, platform " P2 ", TCB 1\n";
    assert_int_equal(ctl_register_output_platform(out, strlen(out), p), 0);
    assert_string_equal(p, P2);
    assert_int_equal(ctl_register_output_platform("Backup CAS registered\n", 22, p), -ENOENT);
    /* in --session mode cas-run's log comes first, naming CAS's own platform: only the line of its
     * own counts */
    const char *session = "Backup CAS registered\n2026-11-30 12:17:55,456 INFO: CAS attested: key hash ab, platform " P1
                          ", measurement 71\nnode node-3, platform " P2 ", TCB 1\n";
    assert_int_equal(ctl_register_output_platform(session, strlen(session), p), 0);
    assert_string_equal(p, P2);
    const char *log_only = "INFO: CAS attested: key hash ab, platform " P1 ", TCB 1\n";
    assert_int_equal(ctl_register_output_platform(log_only, strlen(log_only), p), -ENOENT);
    const char *list = "[{\"platform_id\":\"" P1 "\",\"primary\":true},{\"platform_id\":\"" P2 "\",\"primary\":false}]";
    struct ctl_backup *l;
    size_t n;
    char pm[CTL_MEASUREMENT_LEN + 1];
    assert_int_equal(ctl_backups_parse(list, strlen(list), &l, &n, primary, pm, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(primary, P1);
    assert_string_equal(pm, "");
    assert_string_equal(l[1].platform, P2);
    assert_string_equal(l[1].measurement, "");
    free(l);
    /* key-store version 3: entries by platform and measurement; "current" names the primary's own */
#define MA "aa00000000000000000000000000000000000000000000000000000000000000"
#define MA_UPPER "AA00000000000000000000000000000000000000000000000000000000000000"
#define MB "bb00000000000000000000000000000000000000000000000000000000000000"
    const char *v3 = "[{\"platform_id\":\"" P1 "\",\"primary\":true,\"measurement\":\"" MB "\",\"current\":false},"
                     "{\"platform_id\":\"" P1 "\",\"primary\":true,\"measurement\":\"" MA_UPPER "\",\"current\":true},"
                     "{\"platform_id\":\"" P2 "\",\"primary\":false,\"measurement\":null},"
                     "{\"platform_id\":\"" P2 "\",\"primary\":false,\"measurement\":\"any\"}]";
    assert_int_equal(ctl_backups_parse(v3, strlen(v3), &l, &n, primary, pm, err, sizeof(err)), 0);
    assert_int_equal(n, 4);
    assert_string_equal(primary, P1);
    assert_string_equal(pm, MA);
    assert_string_equal(l[0].measurement, MB);
    assert_string_equal(l[1].measurement, MA);
    assert_string_equal(l[2].measurement, "");
    assert_string_equal(l[3].measurement, "");
    free(l);
    const char *badm = "[{\"platform_id\":\"" P1 "\",\"measurement\":\"abc\"}]";
    assert_int_equal(ctl_backups_parse(badm, strlen(badm), &l, &n, primary, pm, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "backups[0].measurement: not 64 hex digits, \"any\" or null");
    assert_null(l);
    assert_true(ctl_measurement_valid(MA_UPPER));
    assert_false(ctl_measurement_valid("any"));
    const char *bad = "[{\"platform_id\":\"xyz\"}]";
    assert_int_equal(ctl_backups_parse(bad, strlen(bad), &l, &n, primary, pm, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "backups[0].platform_id: missing or not a platform ID");
}

static void test_backup_pod(void **state)
{
    (void)state;
    struct ctl_settings s = {.image = "custos/cas:1",
                             .namespace = "ns",
                             .las_addr = "/run/custos/las.sock",
                             .backup_port = 8081,
                             .cas_label = "mycas"};
    strcpy(s.cas_key_hash, "ab12");
    json_t *pod = ctl_backup_pod(&s, "node-1", "cas-backup-node-1");
    assert_non_null(pod);
    json_t *spec = json_object_get(pod, "spec"), *c = json_array_get(json_object_get(spec, "containers"), 0);
    assert_string_equal(json_string_value(json_object_get(spec, "nodeName")), "node-1");
    char *args = json_dumps(json_object_get(c, "args"), JSON_COMPACT);
    assert_string_equal(args,
                        "[\"--backup\",\"--listen\",\"$(POD_IP):8081\",\"--cas-key-hash\",\"ab12\",\"--node-name\","
                        "\"$(NODE_NAME)\",\"--las\",\"/run/custos/las.sock\",\"--timeout\",\"900\"]");
    free(args);
    json_t *probe = json_object_get(json_object_get(c, "readinessProbe"), "httpGet");
    assert_string_equal(json_string_value(json_object_get(probe, "path")), "/healthz");
    assert_string_equal(json_string_value(json_object_get(probe, "scheme")), "HTTPS");
    json_t *vol = json_array_get(json_object_get(spec, "volumes"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(vol, "hostPath"), "path")), "/run/custos");
    assert_null(json_object_get(c, "resources")); /* sim and tpm2: nothing requested */
    assert_null(json_object_get(spec, "securityContext"));
    json_decref(pod);
    s.sgx_resource = "sgx.intel.com/enclave";
    s.run_as_user = "1000";
    pod = ctl_backup_pod(&s, "node-1", "p");
    spec = json_object_get(pod, "spec");
    c = json_array_get(json_object_get(spec, "containers"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(c, "resources"), "limits"),
                                                          "sgx.intel.com/enclave")),
                        "1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(spec, "securityContext"), "runAsUser")), 1000);
    json_decref(pod);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node),       cmocka_unit_test(test_pod),        cmocka_unit_test(test_las_key),
        cmocka_unit_test(test_cli_output), cmocka_unit_test(test_backup_pod),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
