/* SPDX-License-Identifier: Apache-2.0 */
/* Revocation: removing a platform (or one casd build's entries) from the key-store rotates the database key, so a node
 * that kept an old key-store file (or the old key) cannot open the database any more.
 *
 * Steps, each crash-safe (the database's generation says which key-store is current):
 *   1. DIR.key-store.next: the remaining entries, the new key wrapped for each node's public key,
 *      generation + 1 (written with custos_write_file_atomic);
 *   2. one LMDB transaction re-encrypts every record and the meta record under the new key and sets
 *      the new generation;
 *   3. DIR.key-store.next is renamed over DIR.key-store;
 *   4. data.mdb is compacted (cas_db_compact): its free pages held the records under the old key.
 * A crash before 2 commits leaves the old generation in the database: start-up removes .next. A crash
 * after leaves the new one: start-up finishes the rename (startup.c, recover_rotation). A crash
 * during 4 leaves data.mdb whole (old or compacted), the stale pages possibly still in it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "casd.h"

int cas_rotate_key(struct cas_state *st, const struct cas_ks_match *m)
{
    uint8_t key[32];
    char next_path[PATH_MAX + 8];
    struct cas_keystore next = st->pri.ks;
    int ret = -ENOMEM;
    next.entries = calloc(st->pri.ks.count ? st->pri.ks.count : 1, sizeof(*next.entries));
    if (!next.entries)
        return ret;
    memcpy(next.entries, st->pri.ks.entries, st->pri.ks.count * sizeof(*next.entries));
    if ((ret = cas_keystore_remove_matching(&next, m)) < 0)
        goto out;
    next.generation++;
    next.creating = false;
    next.version = CAS_KS_VERSION;
    snprintf(next_path, sizeof(next_path), "%s.next", st->pri.keystore_path);
    ret = custos_random(key, sizeof(key));
    for (size_t i = 0; ret == 0 && i < next.count; i++)
        ret = cas_keystore_wrap(&next, &next.entries[i], key);
    if (ret == 0)
        ret = cas_keystore_save(next_path, &next, key);
    if (ret < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot write %s: %s", next_path, strerror(-ret));
        (void)unlink(next_path);
        goto out;
    }
    if ((ret = cas_db_rekey(st->pri.db, key, next.generation)) < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot re-encrypt database %s under a new key: %s (nothing changed)", st->cfg.db_dir,
                         strerror(-ret));
        (void)unlink(next_path);
        goto out;
    }
    LOG_MODULE_INFO(CAS_LOG, "database %s re-encrypted under a new key (generation %llu); replacing the key-store",
                    st->cfg.db_dir, (unsigned long long)next.generation);
    /* From here the database is under the new key: memory follows it, whatever the rename does. */
    memcpy(st->pri.dbkey, key, sizeof(key));
    cas_keystore_free(&st->pri.ks);
    st->pri.ks = next;
    next = (struct cas_keystore){0};
    if (custos_atomic_write_hook)
        custos_atomic_write_hook(11);
    if ((ret = custos_rename_durable(next_path, st->pri.keystore_path)) < 0) {
        LOG_MODULE_ERROR(CAS_LOG,
                         "the database key was rotated but %s could not replace %s: %s; the next start "
                         "finishes it",
                         next_path, st->pri.keystore_path, strerror(-ret));
        goto out;
    }
    /* The rotation is complete; what follows only erases the old key's copies from freed pages. */
    char err[1024];
    int cret = cas_db_compact(st->pri.db, err, sizeof(err));
    if (cret == -ESTALE) {
        LOG_MODULE_ERROR(CAS_LOG,
                         "the database key was rotated, but the compacted database %s cannot be used: %s; "
                         "casd stops (a restart opens it again)",
                         st->cfg.db_dir, err);
        raise(SIGTERM);
    } else if (cret < 0) {
        LOG_MODULE_ERROR(CAS_LOG,
                         "the database key was rotated, but compacting %s failed: %s; copies of the records "
                         "under the old key may remain in its free pages",
                         st->cfg.db_dir, err);
    }
out:
    custos_wipe(key, sizeof(key));
    cas_keystore_free(&next);
    return ret;
}
