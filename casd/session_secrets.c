/* SPDX-License-Identifier: Apache-2.0 */
/* Session secrets: generation, references, command matching (stub: being written). */
#include <errno.h>
#include <stdio.h>

#include "session.h"

bool cas_session_name_valid(const char *name)
{
    (void)name;
    return false;
}
void cas_session_set_creator(json_t *session, const char *creator)
{
    (void)session;
    (void)creator;
}
int cas_session_hash(const json_t *session, char out[65])
{
    (void)session;
    out[0] = '\0';
    return -ENOSYS;
}
const json_t *cas_session_service(const json_t *session, const char *name)
{
    (void)session;
    (void)name;
    return NULL;
}
const json_t *cas_session_image(const json_t *session, const char *name)
{
    (void)session;
    (void)name;
    return NULL;
}
int cas_session_secrets(const json_t *session, const json_t *old, json_t **out, char *err, size_t err_size)
{
    (void)session;
    (void)old;
    *out = NULL;
    snprintf(err, err_size, "not implemented");
    return -ENOSYS;
}
bool cas_session_exports(const json_t *session, const char *secret, const char *to)
{
    (void)session;
    (void)secret;
    (void)to;
    return false;
}
int cas_session_expand(const struct cas_secret_source *src, const char *in, size_t size, bool text, uint8_t **out,
                       size_t *out_size, char *err, size_t err_size)
{
    (void)src;
    (void)in;
    (void)size;
    (void)text;
    *out = NULL;
    *out_size = 0;
    snprintf(err, err_size, "not implemented");
    return -ENOSYS;
}
bool cas_service_match_command(const json_t *service, const json_t *argv, json_t *errors, json_t **filled)
{
    (void)service;
    (void)argv;
    (void)errors;
    *filled = NULL;
    return false;
}
