/* SPDX-License-Identifier: Apache-2.0 */
/* What every handler uses to read a request body and to answer an error, in JSON. */
#include <stdarg.h>
#include <stdio.h>

#include "casd.h"

void http_error(struct http_response *r, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_decref(r->body);
    r->status = status;
    r->body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
}

json_t *http_json_body(const struct http_request *req, struct http_response *r)
{
    char err[256];
    json_t *j = NULL;
    if (req->json)
        return json_incref(req->json); /* parsed by cas_dispatch */
    if (req->body_size == 0) {
        http_error(r, 400, "invalid_request", "request body is empty; expected a JSON object");
        return NULL;
    }
    if (custos_json_parse(req->body, req->body_size, &j, err, sizeof(err)) < 0) {
        http_error(r, 400, "invalid_json", "%s", err);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_error(r, 400, "invalid_request", "request body must be a JSON object");
        return NULL;
    }
    return j;
}

const char *http_arg(const struct http_request *req, const char *name)
{
    if (req->conn)
        return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    return json_string_value(json_object_get(req->test_args, name));
}

int http_arg_count(const struct http_request *req)
{
    if (req->conn)
        return MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, NULL, NULL);
    return (int)json_object_size(req->test_args);
}
