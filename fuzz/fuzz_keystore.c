/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the key-store parser: refusals explain themselves and leave the output
 * alone; accepted stores hold only valid, distinct entries and round-trip through the serializer
 * (with a fresh MAC that verifies). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "custos.h"
#include "keystore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t KEY[32] = {0x42};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct cas_keystore ks, back;
    memset(&ks, 0xA5, sizeof(ks));
    memset(err, 0, sizeof(err));
    int ret = cas_keystore_parse((const char *)data, size, &ks, err, sizeof(err));
    if (ret < 0) {
        unsigned char *p = (unsigned char *)&ks;
        for (size_t i = 0; i < sizeof(ks); i++)
            if (p[i] != 0xA5)
                abort(); /* output written on failure */
        if ((ret != -EBADMSG && ret != -ENOMEM) || !err[0] || !memchr(err, '\0', sizeof(err)))
            abort();
        return 0;
    }
    if (ret != 0 || ks.count > CAS_KS_MAX_ENTRIES || (ks.count && !ks.entries) || (!ks.count && ks.entries))
        abort();
    for (size_t i = 0; i < ks.count; i++) {
        const struct cas_keystore_entry *e = &ks.entries[i];
        if (cas_keystore_entry_check(e, err, sizeof(err)) != 0 ||
            cas_keystore_find(&ks, e->platform_id, e->measurement) != e)
            abort();
    }
    ret = cas_keystore_verify_mac(&ks, KEY);
    if (ret != 0 && ret != -EBADMSG)
        abort();
    char *text = NULL;
    size_t text_size = 0;
    if (ks.version == 1) { /* written as version 3: bound to a database first, as the migration does */
        if (ks.generation != 0)
            abort();
        ks.generation = 1;
        memset(ks.database_id, 0x3c, sizeof(ks.database_id));
    }
    if (cas_keystore_serialize(&ks, KEY, &text, &text_size) != 0)
        abort();
    if (cas_keystore_parse(text, text_size, &back, err, sizeof(err)) != 0 || back.count != ks.count ||
        back.version != CAS_KS_VERSION || cas_keystore_verify_mac(&back, KEY) != 0)
        abort();
    for (size_t i = 0; i < ks.count; i++) {
        const struct cas_keystore_entry *a = &ks.entries[i], *b = &back.entries[i];
        if (strcmp(a->platform_id, b->platform_id) || strcmp(a->kind, b->kind) || strcmp(a->node, b->node) ||
            a->tcb != b->tcb || a->time != b->time || memcmp(a->nonce, b->nonce, sizeof(a->nonce)) ||
            memcmp(a->sealed, b->sealed, sizeof(a->sealed)) || a->node_key != b->node_key ||
            strcmp(a->measurement, b->measurement) ||
            (a->node_key && (memcmp(a->public_key, b->public_key, sizeof(a->public_key)) ||
                             memcmp(a->wrapped, b->wrapped, sizeof(a->wrapped)))))
            abort();
    }
    free(text);
    cas_keystore_free(&back);
    if (ks.count) {
        /* Editing keeps the invariants. */
        char id[67];
        memcpy(id, ks.entries[0].platform_id, sizeof(id));
        if (cas_keystore_remove(&ks, id, NULL) != 0 || cas_keystore_find_for(&ks, id, NULL) ||
            cas_keystore_remove(&ks, id, NULL) != -ENOENT)
            abort();
    }
    cas_keystore_free(&ks);
    return 0;
}
