/* SPDX-License-Identifier: Apache-2.0 */
/* Strict parser for the TOML subset used by the CAS owner configuration. */
#pragma once
#include <jansson.h>
#include <stddef.h>

/* Limits enforced by custos_toml_parse(). */
#define CUSTOS_TOML_MAX_INPUT (1024 * 1024) /* bytes of input */
#define CUSTOS_TOML_MAX_KEY 256             /* bytes of a decoded key */
#define CUSTOS_TOML_MAX_DEPTH 8             /* components of a [a.b.c] header */
#define CUSTOS_TOML_MAX_ARRAY 4096          /* elements of an array */

/* Parse TOML text (need not be NUL-terminated). On success returns 0 and sets *out to a new
 * jansson object (tables -> objects, strings -> json strings, integers -> json integers,
 * booleans -> json true/false, arrays -> json arrays); caller frees with json_decref.
 * On failure returns -EINVAL (or -E2BIG for oversize input, -ENOMEM if memory runs out),
 * leaves *out untouched and writes into err (if errlen > 0) a message
 * "line L, column C: <what is wrong>" quoting the bad input where helpful
 * (e.g. "line 3, column 15: unterminated string"). Lines and columns count from 1;
 * columns count Unicode characters.
 *
 * Supported: comments, [table] and [dotted.table] headers, bare and quoted keys, basic and
 * literal strings, decimal 64-bit integers, booleans, arrays of strings. Everything else
 * (floats, dates, inline tables, arrays of tables, multi-line strings, dotted keys, arrays of
 * non-strings) is refused. The NUL character (\u0000) is refused in strings and keys. */
int custos_toml_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen);
