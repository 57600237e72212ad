/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_dispatch(const char *prog, const struct cli_command *cmds, size_t count, int argc, char **argv)
{
    bool help = argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help");
    if (!help) {
        for (size_t i = 0; i < count; i++) {
            if (!strcmp(cmds[i].name, argv[1])) {
                char name[128];
                snprintf(name, sizeof(name), "%s %s", prog, cmds[i].name);
                argv[1] = name;
                return cmds[i].fn(argc - 1, argv + 1);
            }
        }
        fprintf(stderr, "%s: unknown command '%s'\n\n", prog, argv[1]);
    }
    FILE *f = help ? stdout : stderr;
    fprintf(f, "Usage: %s COMMAND [ARGS]\n\nCommands:\n", prog);
    for (size_t i = 0; i < count; i++)
        fprintf(f, "  %-18s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\nRun '%s COMMAND --help' for the options of a command.\n", prog);
    return help ? 0 : 2;
}

int cli_parse(const char *prog, const char *summary, struct custos_option *opts, size_t count, int argc, char **argv,
              struct custos_strlist *pos, size_t want, const char *what)
{
    int ret = custos_options_parse(prog, summary, opts, count, argc, argv, want ? pos : NULL);
    if (ret)
        return ret > 0 ? 0 : 2;
    if (want && pos->count != want) {
        fprintf(stderr, "%s: expected %s (see --help)\n", prog, what);
        return 2;
    }
    return -1;
}

/* Reads all of fd (a pipe, a terminal, /dev/stdin or a file) up to max_size bytes; -EFBIG beyond. */
static int read_stream(int fd, size_t max_size, char **out, size_t *out_size)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > max_size) { /* one byte past the limit was read: too large */
                custos_wipe(buf, n);
                free(buf);
                return -EFBIG;
            }
            size_t ncap = cap * 2 > max_size + 1 ? max_size + 1 : cap * 2;
            char *nb = malloc(ncap + 1);
            if (!nb) {
                custos_wipe(buf, n);
                free(buf);
                return -ENOMEM;
            }
            memcpy(nb, buf, n);
            custos_wipe(buf, n); /* a secret value: no copy left behind by realloc */
            free(buf);
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            custos_wipe(buf, n);
            free(buf);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max_size) {
        custos_wipe(buf, n);
        free(buf);
        return -EFBIG;
    }
    buf[n] = '\0';
    *out = buf;
    *out_size = n;
    return 0;
}

int cli_read_input(const char *path, size_t max_size, char **out, size_t *out_size)
{
    if (strcmp(path, "-") == 0)
        return read_stream(0, max_size, out, out_size);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat sb;
    int ret = fstat(fd, &sb) < 0 ? -errno : 0;
    if (ret == 0 && S_ISDIR(sb.st_mode))
        ret = -EISDIR;
    if (ret == 0)
        ret = read_stream(fd, max_size, out, out_size);
    close(fd);
    return ret;
}

static const struct cli_command g_commands[] = {
    {"provision", cmd_provision, "attest a CAS, provision it and become its owner"},
    {"attest", cmd_attest, "attest a CAS and record it in the CLI configuration"},
    {"register-backup", cmd_register_backup, "register a backup CAS so CAS can move to its node"},
    {"backups", cmd_backups, "registered backups: list, remove, prune, check"},
    {"owner", cmd_owner, "the owner's view of a CAS: show, allow-measurement, allow-platform"},
    {"session", cmd_session, "sessions (policies): create, update, read, list"},
    {"secret", cmd_secret, "owner-held secret values in CAS: put, get"},
    {"las", cmd_las, "talk to a Local Attestation Service: quote, verify, info"},
};

/* SCONE_HASH=1 cas ...: the measurement of this cas executable (SHA-256 of the file, as lasd measures
 * a caller), and nothing else. */
static int print_own_hash(void)
{
    uint8_t h[32];
    char *data = NULL, hex[65];
    size_t size = 0;
    int ret = cli_read_input("/proc/self/exe", 1u << 30, &data, &size);
    if (ret < 0) {
        fprintf(stderr, "cas: cannot read /proc/self/exe: %s\n", strerror(-ret));
        return 1;
    }
    custos_sha256(data, size, h);
    free(data);
    custos_hex_encode(h, sizeof(h), hex, false);
    printf("%s\n", hex);
    return 0;
}

int main(int argc, char **argv)
{
    const char *hash = getenv("SCONE_HASH");
    if (hash && !strcmp(hash, "1"))
        return print_own_hash();
    custos_json_wipe_init(); /* before any JSON is made: freed JSON memory is wiped */
    custos_log_configure(getenv("CUSTOS_LOG"));
    return cli_dispatch("cas", g_commands, sizeof(g_commands) / sizeof(g_commands[0]), argc, argv);
}
