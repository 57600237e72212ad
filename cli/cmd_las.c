/* SPDX-License-Identifier: Apache-2.0 */
/* cas las quote | verify | info */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define QUOTE_FILE_MAX 65536

static int las_quote(int argc, char **argv)
{
    const char *las = NULL, *report_hex = NULL;
    struct custos_option opts[] = {
        {"las", 0, "SCONE_LAS_ADDR", CUSTOS_OPT_STRING, CUSTOS_LAS_DEFAULT_SOCKET, 0, 0, "PATH", "lasd socket", &las},
        {"report-data", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "HEX",
         "64 bytes (128 hex digits) to bind in the quote; shorter input is zero-padded", &report_hex},
    };
    int ret = custos_options_parse(argv[0],
                                   "Ask lasd for a quote of this program over REPORT-DATA and "
                                   "print it as JSON.",
                                   opts, 2, argc, argv, NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    uint8_t rd[CUSTOS_REPORT_DATA_SIZE] = {0};
    size_t hex_len = report_hex ? strlen(report_hex) : 0;
    if (!report_hex || hex_len % 2 || hex_len > 2 * sizeof(rd) || custos_hex_decode(report_hex, rd, hex_len / 2) < 0) {
        fprintf(stderr, "%s: --report-data must be up to 128 hex digits (even count), got '%s'\n", argv[0],
                report_hex ? report_hex : "(none)");
        return 2;
    }
    struct custos_quote q;
    char err[512];
    if (custos_las_quote(las, rd, &q, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        return 1;
    }
    json_t *j = custos_quote_to_json(&q);
    if (!j)
        return 1;
    json_dumpf(j, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(j);
    return 0;
}

static int las_verify(int argc, char **argv)
{
    struct custos_strlist platforms = {0}, measurements = {0}, pos = {0};
    const char *report_hex = NULL;
    bool trust_any = false, allow_debug = false;
    long long min_tcb = 0;
    struct custos_option opts[] = {
        {"platform", 0, NULL, CUSTOS_OPT_LIST, NULL, 0, 0, "ID", "allowed platform ID", &platforms},
        {"measurement", 0, NULL, CUSTOS_OPT_LIST, NULL, 0, 0, "HEX", "allowed measurement (64 hex)", &measurements},
        {"report-data", 0, NULL, CUSTOS_OPT_STRING, NULL, 0, 0, "HEX", "expected report data (128 hex digits)",
         &report_hex},
        {"min-tcb", 0, NULL, CUSTOS_OPT_INT, "0", 0, 4294967295LL, "N", "lowest TCB accepted", &min_tcb},
        {"only_for_testing-trust-any", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,
         "accept any platform, simulated ones included (testing only)", &trust_any},
        {"only_for_testing-debug", 0, NULL, CUSTOS_OPT_BOOL, NULL, 0, 0, NULL,
         "accept debug-mode quotes (testing only)", &allow_debug},
    };
    int ret = custos_options_parse(argv[0],
                                   "Verify a quote (FILE, or - for stdin) and print what it "
                                   "binds. Exits 1 naming the failing check.",
                                   opts, sizeof(opts) / sizeof(opts[0]), argc, argv, &pos);
    uint8_t(*ms)[CUSTOS_MEASUREMENT_SIZE] = NULL;
    uint8_t rd[CUSTOS_REPORT_DATA_SIZE];
    char *text = NULL, err[1024];
    size_t text_size = 0;
    json_t *j = NULL;
    struct custos_quote q;
    if (ret) {
        ret = ret > 0 ? 0 : 2;
        goto out;
    }
    ret = 2;
    if (pos.count != 1) {
        fprintf(stderr, "%s: expected one quote file (see --help)\n", argv[0]);
        goto out;
    }
    for (size_t i = 0; i < platforms.count; i++) {
        uint8_t pub[CUSTOS_P256_PUB_SIZE];
        if (custos_platform_id_parse(platforms.items[i], pub) < 0) {
            fprintf(stderr, "%s: --platform '%s' is not a platform ID (66 hex digits)\n", argv[0], platforms.items[i]);
            goto out;
        }
    }
    ms = calloc(measurements.count + 1, sizeof(*ms));
    for (size_t i = 0; ms && i < measurements.count; i++) {
        if (custos_hex_decode(measurements.items[i], ms[i], CUSTOS_MEASUREMENT_SIZE) < 0) {
            fprintf(stderr, "%s: --measurement '%s' is not 64 hex digits\n", argv[0], measurements.items[i]);
            goto out;
        }
    }
    if (report_hex && custos_hex_decode(report_hex, rd, sizeof(rd)) < 0) {
        fprintf(stderr, "%s: --report-data '%s' is not 128 hex digits\n", argv[0], report_hex);
        goto out;
    }
    ret = 1;
    int r = cli_read_input(pos.items[0], QUOTE_FILE_MAX, &text, &text_size);
    if (r < 0) {
        fprintf(stderr, "%s: cannot read %s: %s\n", argv[0], pos.items[0], strerror(-r));
        goto out;
    }
    if (custos_json_parse(text, text_size, &j, err, sizeof(err)) < 0 ||
        custos_quote_from_json(j, &q, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        goto out;
    }
    struct custos_quote_policy pol = {
        .platforms = platforms.items,
        .platform_count = platforms.count,
        .measurements = (const uint8_t(*)[CUSTOS_MEASUREMENT_SIZE])ms,
        .measurement_count = measurements.count,
        .report_data = report_hex ? rd : NULL,
        .min_tcb = (uint32_t)min_tcb,
        .trust_any_platform = trust_any,
        .allow_debug = allow_debug,
    };
    char id[CUSTOS_PLATFORM_ID_LEN + 1], m[65], rdh[129];
    custos_platform_id(q.platform_pub, id);
    custos_hex_encode(q.measurement, sizeof(q.measurement), m, false);
    custos_hex_encode(q.report_data, sizeof(q.report_data), rdh, false);
    if (custos_quote_check(&q, &pol, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: quote refused: %s\n", argv[0], err);
        goto out;
    }
    printf("platform_id: %s\nplatform_kind: %s\nmeasurement: %s\ntcb: %u\ndebug: %s\nuid: %u\nreport_data: %s\n", id,
           custos_platform_kind_name(q.kind), m, q.tcb, q.debug ? "true" : "false", q.uid, rdh);
    if (trust_any)
        printf("warning: platform not checked (--only_for_testing-trust-any)\n");
    printf("quote OK\n");
    ret = 0;
out:
    json_decref(j);
    free(text);
    free(ms);
    custos_strlist_free(&platforms);
    custos_strlist_free(&measurements);
    custos_strlist_free(&pos);
    return ret;
}

static int las_info(int argc, char **argv)
{
    const char *las = NULL;
    struct custos_option opts[] = {
        {"las", 0, "SCONE_LAS_ADDR", CUSTOS_OPT_STRING, CUSTOS_LAS_DEFAULT_SOCKET, 0, 0, "PATH", "lasd socket", &las},
    };
    int ret =
        custos_options_parse(argv[0], "Print the platform ID, kind and TCB of a lasd.", opts, 1, argc, argv, NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    char err[512];
    json_t *info = NULL;
    if (custos_las_info(las, &info, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        return 1;
    }
    json_dumpf(info, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(info);
    return 0;
}

int cmd_las(int argc, char **argv)
{
    static const struct cli_command cmds[] = {
        {"quote", las_quote, "get a quote of this program from lasd"},
        {"verify", las_verify, "verify a quote file and print its fields"},
        {"info", las_info, "show the platform ID of a lasd"},
    };
    return cli_dispatch(argv[0], cmds, sizeof(cmds) / sizeof(cmds[0]), argc, argv);
}
