/* SPDX-License-Identifier: Apache-2.0 */
/* cas owner show */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Loads the configuration and identity and finds the CAS; the common start of owner commands. */
int cli_owner_context(const char *prog, const char *cli_config, const char *cas, struct cli_context *ctx)
{
    char err[1024];
    memset(ctx, 0, sizeof(*ctx));
    const char *path = cli_config_path(cli_config, ctx->path_buf, sizeof(ctx->path_buf));
    ctx->path = path;
    if (cli_config_load(path, &ctx->cfg, err, sizeof(err)) < 0 ||
        cli_find_cas(ctx->cfg, cas, &ctx->url, &ctx->key_hash, err, sizeof(err)) < 0 ||
        cli_identity(ctx->cfg, NULL, &ctx->id, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        cli_context_free(ctx);
        return -EINVAL;
    }
    return 0;
}

void cli_context_free(struct cli_context *ctx)
{
    json_decref(ctx->cfg);
    ctx->cfg = NULL;
    cli_identity_free(&ctx->id);
}

/* One request to the context's CAS; prints the CAS's reason and returns 1 on a non-2xx answer. */
int cli_owner_call(const char *prog, struct cli_context *ctx, const char *method, const char *path, const char *body,
                   struct cli_response *resp)
{
    char err[1024];
    if (cli_https(ctx->url, method, path, body, ctx->key_hash, &ctx->id, resp, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    if (resp->status < 200 || resp->status > 299) {
        fprintf(stderr, "%s: CAS refused (status %ld): %s\n", prog, resp->status, cli_error_message(resp));
        return 1;
    }
    return 0;
}

static int owner_show(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL;
    struct custos_option opts[] = {
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = custos_options_parse(argv[0], "Show the owner identity and owner configuration of a CAS.", opts, 2, argc,
                                   argv, NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    struct cli_context ctx;
    struct cli_response resp = {0};
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        return 1;
    ret = cli_owner_call(argv[0], &ctx, "GET", "/v1/owner", NULL, &resp);
    if (ret == 0) {
        json_dumpf(resp.body, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
    }
    cli_response_free(&resp);
    cli_context_free(&ctx);
    return ret;
}

/* cas owner allow-measurement HEX | allow-platform ID */
static int owner_allow(int argc, char **argv, const char *what, const char *path, const char *field)
{
    const char *cli_config = NULL, *cas = NULL;
    struct custos_strlist pos = {0};
    struct custos_option opts[] = {
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    char summary[160];
    snprintf(summary, sizeof(summary), "Allow a backup CAS with this %s to register (owner only).", what);
    char expected[64];
    snprintf(expected, sizeof(expected), "one %s", what);
    int ret = cli_parse(argv[0], summary, opts, 2, argc, argv, &pos, 1, expected);
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    json_t *req = NULL;
    char *body = NULL;
    if (ret >= 0)
        goto out;
    ret = 1;
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    req = json_pack("{s:s}", field, pos.items[0]);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    ret = body ? cli_owner_call(argv[0], &ctx, "POST", path, body, &resp) : 1;
    if (ret == 0)
        printf("%s %s allowed\n", what, pos.items[0]);
out:
    free(body);
    json_decref(req);
    cli_response_free(&resp);
    cli_context_free(&ctx);
    custos_strlist_free(&pos);
    return ret;
}

static int owner_allow_measurement(int argc, char **argv)
{
    return owner_allow(argc, argv, "measurement", "/v1/owner/allowed-measurements", "measurement");
}

static int owner_allow_platform(int argc, char **argv)
{
    return owner_allow(argc, argv, "platform", "/v1/owner/allowed-platforms", "platform_id");
}

int cmd_owner(int argc, char **argv)
{
    static const struct cli_command cmds[] = {
        {"show", owner_show, "show the owner identity and configuration of a CAS"},
        {"allow-measurement", owner_allow_measurement, "allow backups running this CAS measurement"},
        {"allow-platform", owner_allow_platform, "allow backups on this platform ID"},
    };
    return cli_dispatch(argv[0], cmds, sizeof(cmds) / sizeof(cmds[0]), argc, argv);
}
