/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the kubeconfig reader: a refusal always explains itself; an accepted file
 * gives an https server and a client certificate only with its key. File references point into a
 * directory that does not exist, so the harness never reads the machine's files by relative name. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kube_config c;
    char err[512] = "";
    int ret = kube_config_parse((const char *)data, size, "/nonexistent-fuzz-dir", NULL, &c, err, sizeof(err));
    if (ret < 0) {
        if (!err[0] || !memchr(err, 0, sizeof(err)) || c.server || c.token || c.key_pem)
            abort();
        return 0;
    }
    if (!c.server || strncmp(c.server, "https://", 8) != 0 || !c.cert_pem != !c.key_pem)
        abort();
    kube_config_free(&c);
    return 0;
}
