/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "custos.h"

/* Checks the owner configuration (TOML read into JSON): [api_identity] common_name (required) and
 * alt_names; appends to ignored the names of the other tables (kept, not used by this platform). */
int cas_owner_config_check(json_t *cfg, json_t *ignored, char *err, size_t err_size);
/* Checks a policy object sent by the owner ({trust_any_platform, allow_debug, platforms,
 * measurements}, every field optional); on success *out is a normalized copy (caller json_decref's). */
int cas_policy_check(const json_t *policy, json_t **out, char *err, size_t err_size);

#define CAS_SECRET_NAME_MAX 128
/* Percent-decodes s in place (%00 is kept as "%00"); returns the new length. */
size_t cas_url_unescape(char *s);
/* A secret's name as decoded from its URL: 1..128 of [A-Za-z0-9._-], not "." or "..". -EINVAL with
 * the problem named (NUL byte, '/', dot segment, other characters or length). */
int cas_secret_name_check(const char *name, char *err, size_t err_size);
