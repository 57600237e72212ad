/* SPDX-License-Identifier: Apache-2.0 */
/* Objects from the Kubernetes API, LAS logs and the CLI's output are untrusted: each field the
 * controller keeps is checked and bounded here, and an object that does not fit is refused with a
 * message naming the field (the controller then skips it and says so). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller.h"

bool ctl_name_valid(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' || s[i] == '.'))
            return false;
    return true;
}

/* Copies string field `v` (may be absent when optional) into out[max+1]; names `what` on error. */
static int take(const json_t *v, char *out, size_t max, bool required, const char *what, char *err, size_t err_size)
{
    out[0] = 0;
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        snprintf(err, err_size, "%s: missing", what);
        return -EINVAL;
    }
    if (!json_is_string(v)) {
        snprintf(err, err_size, "%s: not a string", what);
        return -EINVAL;
    }
    size_t n = json_string_length(v);
    if (n > max || strlen(json_string_value(v)) != n) {
        snprintf(err, err_size, "%s: %zu bytes, more than %zu (or a NUL byte)", what, n, max);
        return -EINVAL;
    }
    memcpy(out, json_string_value(v), n + 1);
    return 0;
}

static bool platform_valid(const char *p)
{
    if (strlen(p) != CTL_PLATFORM_LEN)
        return false;
    for (size_t i = 0; i < CTL_PLATFORM_LEN; i++)
        if (!isdigit((unsigned char)p[i]) && !(p[i] >= 'A' && p[i] <= 'F'))
            return false;
    return true;
}

static bool condition_true(const json_t *conditions, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(conditions, i, c) {
        if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "", type))
            return !strcmp(json_string_value(json_object_get(c, "status")) ?: "", "True");
    }
    return false;
}

int ctl_node_parse(const json_t *node, const struct ctl_settings *s, struct ctl_node_view *out, char *err,
                   size_t err_size)
{
    memset(out, 0, sizeof(*out));
    const json_t *meta = json_object_get(node, "metadata"), *spec = json_object_get(node, "spec"),
                 *status = json_object_get(node, "status");
    const json_t *labels = json_object_get(meta, "labels"), *annots = json_object_get(meta, "annotations");
    if (!json_is_object(meta)) {
        snprintf(err, err_size, "Node without metadata");
        return -EINVAL;
    }
    if (take(json_object_get(meta, "name"), out->name, CTL_NAME_MAX, true, "metadata.name", err, err_size) < 0 ||
        take(json_object_get(meta, "uid"), out->uid, CTL_UID_MAX, true, "metadata.uid", err, err_size) < 0)
        return -EINVAL;
    if (!ctl_name_valid(out->name, CTL_NAME_MAX)) {
        snprintf(err, err_size, "metadata.name: '%.64s' is not a DNS subdomain", out->name);
        return -EINVAL;
    }
    if ((labels && !json_is_object(labels)) || (annots && !json_is_object(annots)) || (spec && !json_is_object(spec)) ||
        (status && !json_is_object(status))) {
        snprintf(err, err_size, "node %s: labels, annotations, spec or status of the wrong type", out->name);
        return -EINVAL;
    }
    char what[CTL_LABEL_MAX + 64];
    if (take(json_object_get(json_object_get(status, "nodeInfo"), "bootID"), out->boot_id, CTL_BOOT_ID_MAX, false,
             "status.nodeInfo.bootID", err, err_size) < 0)
        return -EINVAL;
    out->control_plane = json_object_get(labels, "node-role.kubernetes.io/master") ||
                         json_object_get(labels, "node-role.kubernetes.io/control-plane");
    out->unschedulable = json_is_true(json_object_get(spec, "unschedulable"));
    out->ready = condition_true(json_object_get(status, "conditions"), "Ready");
    out->labelled = !strcmp(json_string_value(json_object_get(labels, s->label_key)) ?: "", "true");
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(status, "addresses"), i, a) {
        if (!strcmp(json_string_value(json_object_get(a, "type")) ?: "", "InternalIP")) {
            if (take(json_object_get(a, "address"), out->ip, CTL_IP_MAX, false, "status.addresses[].address", err,
                     err_size) < 0)
                return -EINVAL;
            break;
        }
    }
    snprintf(what, sizeof(what), "metadata.annotations[%s]", s->annot_platform);
    if (take(json_object_get(annots, s->annot_platform), out->reg_platform, CTL_PLATFORM_LEN, false, what, err,
             err_size) < 0)
        return -EINVAL;
    if (out->reg_platform[0] && !platform_valid(out->reg_platform)) {
        snprintf(err, err_size, "%s: not a platform ID (66 hex digits)", what);
        return -EINVAL;
    }
    snprintf(what, sizeof(what), "metadata.annotations[%s]", s->annot_boot);
    if (take(json_object_get(annots, s->annot_boot), out->reg_boot, CTL_BOOT_ID_MAX, false, what, err, err_size) < 0)
        return -EINVAL;
    return 0;
}

int ctl_pod_parse(const json_t *pod, struct ctl_pod_view *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof(*out));
    const json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec"),
                 *status = json_object_get(pod, "status");
    if (take(json_object_get(meta, "name"), out->name, CTL_NAME_MAX, true, "metadata.name", err, err_size) < 0 ||
        take(json_object_get(meta, "uid"), out->uid, CTL_UID_MAX, true, "metadata.uid", err, err_size) < 0 ||
        take(json_object_get(spec, "nodeName"), out->node, CTL_NAME_MAX, false, "spec.nodeName", err, err_size) < 0 ||
        take(json_object_get(status, "podIP"), out->ip, CTL_IP_MAX, false, "status.podIP", err, err_size) < 0 ||
        take(json_object_get(status, "phase"), out->phase, sizeof(out->phase) - 1, false, "status.phase", err,
             err_size) < 0)
        return -EINVAL;
    out->deleting = json_object_get(meta, "deletionTimestamp") != NULL;
    out->ready = condition_true(json_object_get(status, "conditions"), "Ready");
    size_t i;
    json_t *cs;
    json_array_foreach(json_object_get(status, "containerStatuses"), i, cs) {
        json_int_t r = json_integer_value(json_object_get(cs, "restartCount"));
        if (r > 0 && r < (1LL << 40))
            out->restarts += r;
        const json_t *w = json_object_get(json_object_get(cs, "state"), "waiting");
        const char *reason = json_string_value(json_object_get(w, "reason"));
        if (reason && !out->waiting[0])
            snprintf(out->waiting, sizeof(out->waiting), "%.120s", reason);
    }
    return 0;
}

int ctl_las_key_parse(const char *log, size_t size, char out[CTL_PLATFORM_LEN + 1])
{
    static const char marker[] = "public key: ";
    const size_t m = sizeof(marker) - 1;
    int found = -ENOENT;
    for (size_t i = 0; i + m + CTL_PLATFORM_LEN <= size; i++) {
        if (memcmp(log + i, marker, m) != 0)
            continue;
        const char *k = log + i + m;
        size_t n = 0;
        while (n < CTL_PLATFORM_LEN && (isdigit((unsigned char)k[n]) || (k[n] >= 'A' && k[n] <= 'F')))
            n++;
        bool end = i + m + n == size || !isxdigit((unsigned char)k[n]);
        if (n == CTL_PLATFORM_LEN && end) {
            memcpy(out, k, CTL_PLATFORM_LEN);
            out[CTL_PLATFORM_LEN] = 0;
            found = 0; /* keep looking: the last one counts */
        }
    }
    return found;
}

/* `cas register-backup` says "node N, platform P, TCB T" on a line of its own; other lines (cas-run's
 * log, e.g. "CAS attested: ..., platform <CAS's>") may name other platforms. */
int ctl_register_output_platform(const char *out, size_t size, char platform[CTL_PLATFORM_LEN + 1])
{
    static const char marker[] = ", platform ", tcb[] = ", TCB ";
    const size_t m = sizeof(marker) - 1;
    for (size_t start = 0; start < size;) {
        const char *nl = memchr(out + start, '\n', size - start);
        size_t end = nl ? (size_t)(nl - out) : size, len = end - start;
        const char *line = out + start;
        start = end + 1;
        if (len < 5 || memcmp(line, "node ", 5) != 0)
            continue;
        for (size_t i = 5; i + m + CTL_PLATFORM_LEN + sizeof(tcb) - 1 <= len; i++) {
            if (memcmp(line + i, marker, m) != 0 || memcmp(line + i + m + CTL_PLATFORM_LEN, tcb, sizeof(tcb) - 1))
                continue;
            char p[CTL_PLATFORM_LEN + 1];
            memcpy(p, line + i + m, CTL_PLATFORM_LEN);
            p[CTL_PLATFORM_LEN] = 0;
            if (platform_valid(p)) {
                memcpy(platform, p, sizeof(p));
                return 0;
            }
        }
    }
    return -ENOENT;
}

bool ctl_measurement_valid(const char *s)
{
    return s && strlen(s) == CTL_MEASUREMENT_LEN && strspn(s, "0123456789abcdefABCDEF") == CTL_MEASUREMENT_LEN;
}

int ctl_backups_parse(const char *text, size_t size, struct ctl_backup **out, size_t *count,
                      char primary[CTL_PLATFORM_LEN + 1], char primary_measurement[CTL_MEASUREMENT_LEN + 1], char *err,
                      size_t err_size)
{
    json_t *j = NULL;
    char perr[256];
    *out = NULL;
    *count = 0;
    primary[0] = 0;
    primary_measurement[0] = 0;
    if (custos_json_parse(text, size, &j, perr, sizeof(perr)) < 0 || !json_is_array(j)) {
        snprintf(err, err_size, "the list of backups is not a JSON array%s%s", j ? "" : ": ", j ? "" : perr);
        json_decref(j);
        return -EINVAL;
    }
    size_t n = json_array_size(j);
    if (n > 100000) {
        snprintf(err, err_size, "the list of backups has %zu entries", n);
        json_decref(j);
        return -EINVAL;
    }
    struct ctl_backup *list = calloc(n ? n : 1, sizeof(*list));
    if (!list) {
        json_decref(j);
        return -ENOMEM;
    }
    size_t i;
    json_t *e;
    bool current_seen = false;
    json_array_foreach(j, i, e) {
        const char *p = json_string_value(json_object_get(e, "platform_id"));
        const json_t *mv = json_object_get(e, "measurement");
        const char *m = json_string_value(mv);
        if (!p || !platform_valid(p)) {
            snprintf(err, err_size, "backups[%zu].platform_id: missing or not a platform ID", i);
            goto fail;
        }
        if ((mv && !json_is_null(mv) && !m) || (m && strcmp(m, "any") != 0 && !ctl_measurement_valid(m))) {
            snprintf(err, err_size, "backups[%zu].measurement: not 64 hex digits, \"any\" or null", i);
            goto fail;
        }
        memcpy(list[i].platform, p, CTL_PLATFORM_LEN + 1);
        if (m && strcmp(m, "any") != 0)
            for (size_t k = 0; k <= CTL_MEASUREMENT_LEN; k++)
                list[i].measurement[k] = (char)tolower((unsigned char)m[k]);
        bool current = json_is_true(json_object_get(e, "current"));
        if (current || (!current_seen && json_is_true(json_object_get(e, "primary")))) {
            memcpy(primary, p, CTL_PLATFORM_LEN + 1);
            memcpy(primary_measurement, current ? list[i].measurement : "", current ? CTL_MEASUREMENT_LEN + 1 : 1);
            current_seen |= current;
        }
    }
    json_decref(j);
    *out = list;
    *count = n;
    return 0;
fail:
    free(list);
    json_decref(j);
    primary[0] = 0;
    primary_measurement[0] = 0;
    return -EINVAL;
}
