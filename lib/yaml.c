/* SPDX-License-Identifier: Apache-2.0 */
/* YAML read into the same jansson tree as JSON. Anchors, aliases and tags are refused (no billion
 * laughs), depth and size are bounded, plain scalars keep YAML 1.2 core-schema types. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "custos.h"

struct yctx {
    yaml_parser_t parser;
    char *err;
    size_t err_size;
};

static int fail(struct yctx *c, const yaml_mark_t *m, const char *what)
{
    snprintf(c->err, c->err_size, "line %zu, column %zu: %s", m->line + 1, m->column + 1, what);
    return -EINVAL;
}

static json_t *plain_scalar(const char *v, size_t len)
{
    if (!strcmp(v, "null") || !strcmp(v, "~") || !strcmp(v, "Null") || !strcmp(v, "NULL") || !len)
        return json_null();
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
        return json_true();
    if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
        return json_false();
    char *end = NULL;
    errno = 0;
    long long i = strtoll(v, &end, 10);
    bool numeric_start = v[0] == '-' || v[0] == '+' || v[0] == '.' || (v[0] >= '0' && v[0] <= '9');
    if (!errno && end == v + len && numeric_start)
        return json_integer(i);
    /* YAML 1.2 core schema floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
    if (numeric_start && strspn(v, "0123456789.eE+-") == len && strpbrk(v, "0123456789") && strpbrk(v, ".eE")) {
        errno = 0;
        double d = strtod(v, &end);
        if (!errno && end == v + len && isfinite(d))
            return json_real(d);
    }
    return json_stringn(v, len);
}

static int parse_node(struct yctx *c, yaml_event_t *ev, int depth, json_t **out);

static int next(struct yctx *c, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&c->parser, ev)) {
        snprintf(c->err, c->err_size, "line %zu, column %zu: %s", c->parser.problem_mark.line + 1,
                 c->parser.problem_mark.column + 1, c->parser.problem ? c->parser.problem : "invalid YAML");
        return -EINVAL;
    }
    return 0;
}

static int parse_collection(struct yctx *c, bool mapping, int depth, json_t **out)
{
    json_t *coll = mapping ? json_object() : json_array();
    if (!coll)
        return -ENOMEM;
    for (;;) {
        yaml_event_t ev;
        int ret = next(c, &ev);
        if (ret < 0)
            goto fail;
        if (ev.type == (mapping ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
            yaml_event_delete(&ev);
            break;
        }
        if (mapping) {
            if (ev.type != YAML_SCALAR_EVENT) {
                ret = fail(c, &ev.start_mark, "mapping keys must be scalars");
                yaml_event_delete(&ev);
                goto fail;
            }
            /* Keys get the same checks as scalar values. */
            const char *bad = ev.data.scalar.anchor ? "anchors (&name) are not accepted"
                              : ev.data.scalar.tag  ? "tags (!tag) are not accepted"
                              : strlen((const char *)ev.data.scalar.value) != ev.data.scalar.length
                                  ? "NUL character in scalar"
                                  : NULL;
            if (bad) {
                ret = fail(c, &ev.start_mark, bad);
                yaml_event_delete(&ev);
                goto fail;
            }
            char *key = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
            yaml_mark_t mark = ev.start_mark;
            yaml_event_delete(&ev);
            if (!key) {
                free(key);
                ret = -ENOMEM;
                goto fail;
            }
            if (json_object_get(coll, key)) {
                char msg[160];
                snprintf(msg, sizeof(msg), "duplicate key '%.100s'", key);
                free(key);
                ret = fail(c, &mark, msg);
                goto fail;
            }
            json_t *val = NULL;
            ret = next(c, &ev);
            if (ret == 0)
                ret = parse_node(c, &ev, depth + 1, &val);
            if (ret < 0) {
                free(key);
                goto fail;
            }
            json_object_set_new(coll, key, val);
            free(key);
        } else {
            json_t *val = NULL;
            ret = parse_node(c, &ev, depth + 1, &val);
            if (ret < 0)
                goto fail;
            json_array_append_new(coll, val);
        }
        continue;
    fail:
        json_decref(coll);
        return ret;
    }
    *out = coll;
    return 0;
}

/* Consumes ev (always deleted). */
static int parse_node(struct yctx *c, yaml_event_t *ev, int depth, json_t **out)
{
    int ret;
    if (depth > CUSTOS_YAML_MAX_DEPTH) {
        ret = fail(c, &ev->start_mark, "nested too deeply");
        goto out;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        ret = fail(c, &ev->start_mark, "aliases (*name) are not accepted");
        break;
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor) {
            ret = fail(c, &ev->start_mark, "anchors (&name) are not accepted");
            break;
        }
        if (ev->data.scalar.tag) {
            ret = fail(c, &ev->start_mark, "tags (!tag) are not accepted");
            break;
        }
        if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length) {
            ret = fail(c, &ev->start_mark, "NUL character in scalar");
            break;
        }
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            *out = plain_scalar((const char *)ev->data.scalar.value, ev->data.scalar.length);
        else
            *out = json_stringn((const char *)ev->data.scalar.value, ev->data.scalar.length);
        ret = *out ? 0 : fail(c, &ev->start_mark, "invalid UTF-8 in scalar");
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool mapping = ev->type == YAML_MAPPING_START_EVENT;
        const void *anchor = mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
        const void *tag = mapping ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
        if (anchor || tag) {
            ret =
                fail(c, &ev->start_mark, anchor ? "anchors (&name) are not accepted" : "tags (!tag) are not accepted");
            break;
        }
        ret = parse_collection(c, mapping, depth, out);
        break;
    }
    default:
        ret = fail(c, &ev->start_mark, "unexpected YAML event");
        break;
    }
out:
    yaml_event_delete(ev);
    return ret;
}

int custos_yaml_parse(const char *text, size_t size, json_t **out, char *err, size_t err_size)
{
    struct yctx c = {.err = err, .err_size = err_size};
    yaml_event_t ev;
    json_t *root = NULL;
    int ret;
    if (size > CUSTOS_YAML_MAX_SIZE) {
        snprintf(err, err_size, "YAML document too large (%zu bytes, limit %u)", size, CUSTOS_YAML_MAX_SIZE);
        return -E2BIG;
    }
    if (!yaml_parser_initialize(&c.parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)text, size);
    /* STREAM-START, DOCUMENT-START, node, DOCUMENT-END, STREAM-END */
    for (int i = 0; i < 2; i++) {
        if ((ret = next(&c, &ev)) < 0)
            goto out;
        bool ok = ev.type == (i == 0 ? YAML_STREAM_START_EVENT : YAML_DOCUMENT_START_EVENT);
        bool empty = i == 1 && ev.type == YAML_STREAM_END_EVENT;
        yaml_mark_t mark = ev.start_mark;
        yaml_event_delete(&ev);
        if (empty) {
            snprintf(err, err_size, "empty YAML document");
            ret = -EINVAL;
            goto out;
        }
        if (!ok) {
            ret = fail(&c, &mark, "unexpected YAML structure");
            goto out;
        }
    }
    if ((ret = next(&c, &ev)) < 0 || (ret = parse_node(&c, &ev, 0, &root)) < 0)
        goto out;
    if ((ret = next(&c, &ev)) < 0)
        goto out;
    yaml_event_delete(&ev);
    if ((ret = next(&c, &ev)) < 0)
        goto out;
    if (ev.type != YAML_STREAM_END_EVENT) {
        ret = fail(&c, &ev.start_mark, "more than one YAML document");
        yaml_event_delete(&ev);
        goto out;
    }
    yaml_event_delete(&ev);
    *out = root;
    root = NULL;
    ret = 0;
out:
    json_decref(root);
    yaml_parser_delete(&c.parser);
    return ret;
}
