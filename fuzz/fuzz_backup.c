/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the backup registration messages (request, offer, completion): whatever
 * parses must serialize and parse back to the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip_request(const json_t *j)
{
    struct backup_request a, b;
    char err[512];
    if (backup_request_from_json(j, &a, err, sizeof(err)) < 0) {
        if (!err[0])
            abort();
        return;
    }
    json_t *back = backup_request_to_json(&a);
    if (!back || backup_request_from_json(back, &b, err, sizeof(err)) < 0 || strcmp(a.id, b.id) ||
        a.created_at != b.created_at || strcmp(a.node_name, b.node_name))
        abort();
    json_decref(back);
}

static void round_trip_offer(const json_t *j)
{
    struct backup_offer a, b;
    char err[512];
    if (backup_offer_from_json(j, &a, err, sizeof(err)) < 0)
        return;
    json_t *back = backup_offer_to_json(&a);
    if (!back || backup_offer_from_json(back, &b, err, sizeof(err)) < 0 || memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    json_decref(back);
}

static void round_trip_completion(const json_t *j)
{
    struct backup_completion a, b;
    char err[512];
    if (backup_completion_from_json(j, &a, err, sizeof(err)) < 0)
        return;
    json_t *back = backup_completion_to_json(&a);
    if (!back || backup_completion_from_json(back, &b, err, sizeof(err)) < 0 || memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    json_t *j = NULL;
    if (custos_json_parse((const char *)data, size, &j, err, sizeof(err)) < 0)
        return 0;
    round_trip_request(j);
    round_trip_offer(j);
    round_trip_completion(j);
    /* the relayed forms: {"request": ...}, {"offer": ...}, {"completion": ...} */
    round_trip_request(json_object_get(j, "request"));
    round_trip_offer(json_object_get(j, "offer"));
    round_trip_completion(json_object_get(j, "completion"));
    json_decref(j);
    return 0;
}
