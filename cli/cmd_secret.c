/* SPDX-License-Identifier: Apache-2.0 */
/* cas secret put NAME --value-file FILE | get NAME: owner-held secret values in CAS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Names are checked by CAS; here a long one must not be cut short in the request path. */
static int secret_name_ok(const char *prog, const char *name)
{
    if (strlen(name) <= 128)
        return -1;
    fprintf(stderr, "%s: secret NAME is longer than 128 characters\n", prog);
    return 2;
}

/* "/v1/secrets/" and the name percent-encoded: every byte but A-Z a-z 0-9 _ - (a '.' too, so that no
 * name is a dot segment that the URL layer would resolve), so '?', '#', '/' and '%' reach CAS as
 * part of the name, which CAS then judges. */
static void secret_path(const char *name, char *out, size_t out_size)
{
    static const char keep[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
    size_t n = (size_t)snprintf(out, out_size, "/v1/secrets/");
    for (const unsigned char *p = (const unsigned char *)name; *p && n + 4 <= out_size; p++) {
        if (strchr(keep, *p))
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, out_size - n, "%%%02X", *p);
    }
    out[n] = '\0';
}

static int secret_put(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL, *value_file = NULL;
    struct custos_strlist pos = {0};
    struct custos_option opts[] = {
        {"value-file", 0, NULL, CUSTOS_OPT_STRING, "-", 0, 0, "FILE", "file holding the value (- for stdin)",
         &value_file},
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = cli_parse(argv[0],
                        "Store a secret value in CAS under NAME (owner only). The value is read from a "
                        "file or stdin, never from the command line.",
                        opts, 3, argc, argv, &pos, 1, "one secret NAME");
    char *value = NULL, *body = NULL, path[16 + 3 * 128 + 1];
    size_t size = 0;
    json_t *req = NULL;
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    if (ret >= 0 || (ret = secret_name_ok(argv[0], pos.items[0])) >= 0)
        goto out;
    ret = 1;
    int r = cli_read_input(value_file, 64u << 10, &value, &size);
    if (r < 0) {
        fprintf(stderr, "%s: cannot read %s: %s\n", argv[0], strcmp(value_file, "-") ? value_file : "stdin",
                r == -EFBIG ? "larger than 64 KiB (the most a secret value may hold)" : strerror(-r));
        goto out;
    }
    if (memchr(value, '\0', size)) {
        fprintf(stderr,
                "%s: the value holds a NUL byte (at offset %zu): secret values are UTF-8 text without NUL "
                "bytes (encode binary values, e.g. with base64)\n",
                argv[0], (size_t)((char *)memchr(value, '\0', size) - value));
        goto out;
    }
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    req = json_pack("{s:s%}", "value", value, size);
    body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (!body) {
        fprintf(stderr, "%s: the value must be UTF-8 text\n", argv[0]);
        goto out;
    }
    secret_path(pos.items[0], path, sizeof(path));
    ret = cli_owner_call(argv[0], &ctx, "PUT", path, body, &resp);
    if (ret == 0)
        printf("secret %s stored\n", pos.items[0]);
out:
    if (value) {
        custos_wipe(value, size);
        free(value);
    }
    if (body) {
        custos_wipe(body, strlen(body));
        free(body);
    }
    json_decref(req);
    cli_response_free(&resp);
    cli_context_free(&ctx);
    custos_strlist_free(&pos);
    return ret;
}

static int secret_get(int argc, char **argv)
{
    const char *cli_config = NULL, *cas = NULL;
    struct custos_strlist pos = {0};
    struct custos_option opts[] = {
        CLI_OPT_CAS(cas),
        CLI_OPT_CLI_CONFIG(cli_config),
    };
    int ret = cli_parse(argv[0], "Print the secret value stored under NAME (owner only).", opts, 2, argc, argv, &pos, 1,
                        "one secret NAME");
    struct cli_context ctx = {0};
    struct cli_response resp = {0};
    char path[16 + 3 * 128 + 1];
    if (ret >= 0 || (ret = secret_name_ok(argv[0], pos.items[0])) >= 0)
        goto out;
    ret = 1;
    if (cli_owner_context(argv[0], cli_config, cas, &ctx) < 0)
        goto out;
    secret_path(pos.items[0], path, sizeof(path));
    ret = cli_owner_call(argv[0], &ctx, "GET", path, NULL, &resp);
    if (ret == 0)
        printf("%s\n", json_string_value(json_object_get(resp.body, "value")) ?: "");
out:
    cli_response_free(&resp);
    cli_context_free(&ctx);
    custos_strlist_free(&pos);
    return ret;
}

int cmd_secret(int argc, char **argv)
{
    static const struct cli_command cmds[] = {
        {"put", secret_put, "store a secret value (owner only)"},
        {"get", secret_get, "print a secret value (owner only)"},
    };
    return cli_dispatch(argv[0], cmds, sizeof(cmds) / sizeof(cmds[0]), argc, argv);
}
