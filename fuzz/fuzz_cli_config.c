/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the CLI configuration file: a parsed configuration yields a usable CAS
 * lookup and identity (or a clear error), never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    json_t *cfg = NULL;
    if (cli_config_parse((const char *)data, size, &cfg, err, sizeof(err)) < 0) {
        if (!err[0])
            abort();
        return 0;
    }
    const char *url = NULL, *kh = NULL;
    if (cli_find_cas(cfg, NULL, &url, &kh, err, sizeof(err)) == 0 && (!url || !kh))
        abort();
    if (json_object_get(cfg, "identity")) {
        struct cli_identity id;
        if (cli_identity(cfg, NULL, &id, err, sizeof(err)) == 0) {
            if (strlen(id.key_hash) != 64)
                abort();
            cli_identity_free(&id);
        }
    }
    json_decref(cfg);
    return 0;
}
