/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "custos.h"

/* Checks the owner configuration (TOML read into JSON): [api_identity] common_name (required) and
 * alt_names; appends to ignored the names of the other tables (kept, not used by this platform). */
int cas_owner_config_check(json_t *cfg, json_t *ignored, char *err, size_t err_size);
/* Checks a policy object sent by the owner ({trust_any_platform, allow_debug, platforms,
 * measurements}, every field optional); on success *out is a normalized copy (caller json_decref's). */
int cas_policy_check(const json_t *policy, json_t **out, char *err, size_t err_size);
