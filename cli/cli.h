/* SPDX-License-Identifier: Apache-2.0 */
/* The cas command-line tool: a table of subcommands, one cmd_*.c file per group. */
#pragma once

#include "custos.h"

struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

/* Dispatches argv[1] over a table; prints the table on --help or a bad name. */
int cli_dispatch(const char *prog, const struct cli_command *cmds, size_t count, int argc, char **argv);

/* Reads a whole file ("-" for stdin) of at most max_size bytes; caller frees. */
int cli_read_input(const char *path, size_t max_size, char **out, size_t *out_size);

int cmd_las(int argc, char **argv);
