/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for what cas-backup-controller reads from outside: Node and Pod objects from the
 * API, LAS logs, the output of `cas register-backup` and `cas backups list --json`. The first byte
 * picks the parser. Every accepted view holds bounded, NUL-terminated fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "controller.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool hex66(const char *p)
{
    return strlen(p) == CTL_PLATFORM_LEN && strspn(p, "0123456789ABCDEF") == CTL_PLATFORM_LEN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned which = data[0] % 5;
    const char *text = (const char *)data + 1;
    size--;
    char err[512] = "", p[CTL_PLATFORM_LEN + 1];
    static struct ctl_settings s = {.label_key = "cas-registered-mycas.default",
                                    .annot_platform = "custos.io/platform-mycas.default",
                                    .annot_boot = "custos.io/boot-id-mycas.default"};
    if (which <= 1) {
        json_error_t je;
        json_t *j = json_loadb(text, size, 0, &je);
        if (!j)
            return 0;
        if (which == 0) {
            struct ctl_node_view v;
            if (ctl_node_parse(j, &s, &v, err, sizeof(err)) == 0) {
                if (!ctl_name_valid(v.name, CTL_NAME_MAX) || strlen(v.uid) > CTL_UID_MAX ||
                    strlen(v.boot_id) > CTL_BOOT_ID_MAX || (v.reg_platform[0] && !hex66(v.reg_platform)) ||
                    strlen(v.reg_boot) > CTL_BOOT_ID_MAX || strlen(v.ip) > CTL_IP_MAX)
                    abort();
            } else if (!err[0]) {
                abort();
            }
        } else {
            struct ctl_pod_view v;
            if (ctl_pod_parse(j, &v, err, sizeof(err)) == 0) {
                if (strlen(v.name) > CTL_NAME_MAX || strlen(v.node) > CTL_NAME_MAX || strlen(v.ip) > CTL_IP_MAX ||
                    strlen(v.phase) >= sizeof(v.phase) || v.restarts < 0)
                    abort();
            } else if (!err[0]) {
                abort();
            }
        }
        json_decref(j);
    } else if (which == 2) {
        if (ctl_las_key_parse(text, size, p) == 0 && !hex66(p))
            abort();
    } else if (which == 3) {
        if (ctl_register_output_platform(text, size, p) == 0 && !hex66(p))
            abort();
    } else {
        struct ctl_backup *list = NULL;
        size_t n = 0;
        char m[CTL_MEASUREMENT_LEN + 1];
        if (ctl_backups_parse(text, size, &list, &n, p, m, err, sizeof(err)) == 0) {
            for (size_t i = 0; i < n; i++)
                if (!hex66(list[i].platform) || (list[i].measurement[0] && !ctl_measurement_valid(list[i].measurement)))
                    abort();
            if ((p[0] && !hex66(p)) || (m[0] && !ctl_measurement_valid(m)))
                abort();
            free(list);
        } else if (!err[0] || list) {
            abort();
        }
    }
    return 0;
}
