/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>

#include "custos.h"

#define CAS_NODE_NAME_MAX 253

/* Checks the owner configuration (TOML read into JSON): [api_identity] common_name (required) and
 * alt_names; appends to ignored the names of the other tables (kept, not used by this platform). */
int cas_owner_config_check(json_t *cfg, json_t *ignored, char *err, size_t err_size);
/* Checks a policy object sent by the owner ({trust_any_platform, allow_debug, platforms,
 * measurements}, every field optional); on success *out is a normalized copy (caller json_decref's). */
int cas_policy_check(const json_t *policy, json_t **out, char *err, size_t err_size);

/* "IPV4-ADDRESS:PORT" (port 1..65535) into a socket address. -EINVAL. */
int cas_listen_parse(const char *listen, struct sockaddr_in *sa);
/* A node name: 1..253 characters of A-Z a-z 0-9 . _ - (the one check for key-store entries, backup
 * requests and --node-name). */
bool cas_node_name_valid(const char *name);
/* Checks casd's arguments before anything touches the disk; err quotes the value and says what is
 * allowed. db CAS_ARGS_NO_DB: a mode without a database (backup). */
#define CAS_ARGS_NO_DB ((const char *)1)
int cas_args_check(const char *db, const char *listen, const char *node_name, const char *las, char *err,
                   size_t err_size);

#define CAS_SECRET_NAME_MAX 128
/* Percent-decodes s in place (%00 is kept as "%00"); returns the new length. */
size_t cas_url_unescape(char *s);
/* A secret's name as decoded from its URL: 1..128 of [A-Za-z0-9._-], not "." or "..". -EINVAL with
 * the problem named (NUL byte, '/', dot segment, other characters or length). */
int cas_secret_name_check(const char *name, char *err, size_t err_size);
