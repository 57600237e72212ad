/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions: parse, check and normal form (stub: being written). */
#include <errno.h>
#include <stdio.h>

#include "session.h"

int cas_session_parse(const char *text, size_t size, json_t **out, char *err, size_t err_size)
{
    (void)text;
    (void)size;
    *out = NULL;
    snprintf(err, err_size, "sessions are not implemented yet");
    return -ENOSYS;
}
