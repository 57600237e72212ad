/* SPDX-License-Identifier: Apache-2.0 */
/* A declarative option table: defaults, environment variables, flags and --help from one place. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"

void custos_strlist_free(struct custos_strlist *list)
{
    if (!list)
        return;
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static int strlist_add(struct custos_strlist *list, const char *s)
{
    const char **items = realloc(list->items, (list->count + 1) * sizeof(*items));
    if (!items)
        return -ENOMEM;
    items[list->count++] = s;
    list->items = items;
    return 0;
}

static int set_value(const char *prog, struct custos_option *o, const char *value, const char *source)
{
    switch (o->type) {
    case CUSTOS_OPT_STRING:
        *(const char **)o->out = value;
        return 0;
    case CUSTOS_OPT_LIST:
        return strlist_add(o->out, value);
    case CUSTOS_OPT_BOOL:
        if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes")) {
            *(bool *)o->out = true;
            return 0;
        }
        if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") || !*value) {
            *(bool *)o->out = false;
            return 0;
        }
        fprintf(stderr, "%s: %s: expected true or false, got '%s'\n", prog, source, value);
        return -EINVAL;
    case CUSTOS_OPT_INT: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || !*value || *end || isspace((unsigned char)value[0])) {
            fprintf(stderr, "%s: %s: expected an integer, got '%s'\n", prog, source, value);
            return -EINVAL;
        }
        if (v < o->min || v > o->max) {
            fprintf(stderr, "%s: %s: %lld is out of range [%lld, %lld]\n", prog, source, v, o->min, o->max);
            return -EINVAL;
        }
        *(long long *)o->out = v;
        return 0;
    }
    }
    return -EINVAL;
}

static const char *env_value(const char *spec, char *name, size_t name_size)
{
    while (spec && *spec) {
        const char *bar = strchr(spec, '|');
        size_t n = bar ? (size_t)(bar - spec) : strlen(spec);
        if (n < name_size) {
            memcpy(name, spec, n);
            name[n] = '\0';
            const char *v = getenv(name);
            if (v)
                return v;
        }
        spec = bar ? bar + 1 : NULL;
    }
    return NULL;
}

static struct custos_option *find_long(struct custos_option *opts, size_t count, const char *name, size_t n)
{
    for (size_t i = 0; i < count; i++)
        if (strlen(opts[i].flag) == n && !strncmp(opts[i].flag, name, n))
            return &opts[i];
    return NULL;
}

void custos_options_help(FILE *f, const char *prog, const char *summary, const struct custos_option *opts, size_t count)
{
    fprintf(f, "Usage: %s [OPTIONS]\n%s\n\nOptions:\n", prog, summary);
    for (size_t i = 0; i < count; i++) {
        const struct custos_option *o = &opts[i];
        char left[96];
        int n = 0;
        if (o->short_flag)
            n = snprintf(left, sizeof(left), "-%c, ", o->short_flag);
        snprintf(left + n, sizeof(left) - (size_t)n, "--%s%s%s", o->flag, o->type == CUSTOS_OPT_BOOL ? "" : " ",
                 o->type == CUSTOS_OPT_BOOL ? "" : (o->metavar ? o->metavar : "VALUE"));
        fprintf(f, "  %-34s %s", left, o->help);
        if (o->type == CUSTOS_OPT_INT)
            fprintf(f, " [%lld..%lld]", o->min, o->max);
        if (o->def)
            fprintf(f, " (default: %s)", o->def);
        if (o->env)
            fprintf(f, " [env: %s]", o->env);
        if (o->type == CUSTOS_OPT_LIST)
            fprintf(f, " (repeatable)");
        fputc('\n', f);
    }
    fprintf(f, "  %-34s %s\n", "-h, --help", "show this help and exit");
}

int custos_options_parse(const char *prog, const char *summary, struct custos_option *opts, size_t count, int argc,
                         char **argv, struct custos_strlist *positional)
{
    char name[128], source[160];
    for (size_t i = 0; i < count; i++) {
        struct custos_option *o = &opts[i];
        if (o->def && o->type != CUSTOS_OPT_LIST && set_value(prog, o, o->def, "default") < 0)
            return -EINVAL;
        const char *v = env_value(o->env, name, sizeof(name));
        if (v) {
            snprintf(source, sizeof(source), "environment variable %s", name);
            if (set_value(prog, o, v, source) < 0)
                return -EINVAL;
        }
    }
    /* Flags override the environment; lists given on the command line replace env values. */
    bool list_from_cli[64] = {false};
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        struct custos_option *o = NULL;
        const char *value = NULL;
        if (!only_positional && !strcmp(a, "--")) {
            only_positional = true;
            continue;
        }
        if (!only_positional && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            custos_options_help(stdout, prog, summary, opts, count);
            return 1;
        }
        if (!only_positional && a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a + 2, '=');
            size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            o = find_long(opts, count, a + 2, n);
            if (eq)
                value = eq + 1;
        } else if (!only_positional && a[0] == '-' && a[1] && !a[2]) {
            for (size_t k = 0; k < count; k++)
                if (opts[k].short_flag == a[1])
                    o = &opts[k];
        } else if (!only_positional && a[0] == '-' && a[1] && a[1] != '-') {
            /* Grouped short boolean flags, e.g. -GCS. */
            for (const char *f = a + 1; *f; f++) {
                o = NULL;
                for (size_t k = 0; k < count; k++)
                    if (opts[k].short_flag == *f && opts[k].type == CUSTOS_OPT_BOOL)
                        o = &opts[k];
                if (!o) {
                    fprintf(stderr, "%s: unknown flag '-%c' in '%s' (see --help)\n", prog, *f, a);
                    return -EINVAL;
                }
                *(bool *)o->out = true;
            }
            continue;
        } else {
            if (!positional) {
                fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, a);
                return -EINVAL;
            }
            if (strlist_add(positional, a) < 0)
                return -ENOMEM;
            continue;
        }
        if (!o) {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, a);
            return -EINVAL;
        }
        if (o->type == CUSTOS_OPT_BOOL && !value) {
            value = "true";
        } else if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option --%s needs a value\n", prog, o->flag);
                return -EINVAL;
            }
            value = argv[++i];
        }
        size_t idx = (size_t)(o - opts);
        if (o->type == CUSTOS_OPT_LIST && idx < 64 && !list_from_cli[idx]) {
            list_from_cli[idx] = true;
            ((struct custos_strlist *)o->out)->count = 0;
        }
        snprintf(source, sizeof(source), "option --%s", o->flag);
        if (set_value(prog, o, value, source) < 0)
            return -EINVAL;
    }
    return 0;
}
