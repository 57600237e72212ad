/* SPDX-License-Identifier: Apache-2.0 */
/* casd start-up: find this node's entry in the key-store (or create the database), open the
 * database, load the identity and the ownership. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include <openssl/evp.h>

#include "casd.h"

void cas_node_from_quote(struct cas_state *st, const struct custos_quote *q)
{
    custos_platform_id(q->platform_pub, st->node.platform_id);
    snprintf(st->node.platform_kind, sizeof(st->node.platform_kind), "%s", custos_platform_kind_name(q->kind));
    st->node.tcb = q->tcb;
    st->node.uid = q->uid;
    memcpy(st->node.measurement, q->measurement, sizeof(st->node.measurement));
    custos_hex_encode(st->node.measurement, sizeof(st->node.measurement), st->node.measurement_hex, false);
}

/* This CAS's seal key, and its platform, TCB, measurement and uid (from one quote of its own). */
static int node_info(struct cas_state *st, uint8_t seal[32])
{
    char err[512];
    struct custos_quote q;
    uint8_t zero[CUSTOS_REPORT_DATA_SIZE] = {0};
    if (st->node.las_ops->seal_key(st->node.las_ctx, CAS_SEAL_LABEL, seal, err, sizeof(err)) < 0 ||
        st->node.las_ops->quote(st->node.las_ctx, zero, &q, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "%s", err);
        return -EIO;
    }
    cas_node_from_quote(st, &q);
    return 0;
}

/* A new database: key-store first (marked "creating"), then the database, then the key-store
 * without the mark. A crash at any step leaves a state finish_create completes; a key-store without
 * the mark is never given a new database (cas_open_database refuses). */
static int finish_create(struct cas_state *st, struct cas_keystore *ks, char *err, size_t err_size)
{
    struct cas_db_meta meta;
    int ret = cas_db_peek(st->cfg.db_dir, &meta, err, err_size);
    if (ret == -ENOENT || ret == -ENODATA) { /* none yet, or LMDB's empty file (cas_db_create checks) */
        ret = cas_db_create(st->cfg.db_dir, st->pri.dbkey, ks->database_id, &st->pri.db, err, err_size);
    } else if (ret == 0 && memcmp(meta.id, ks->database_id, CAS_KS_ID_SIZE) == 0 && meta.generation == 1) {
        ret = cas_db_open(st->cfg.db_dir, st->pri.dbkey, &st->pri.db, err, err_size);
    } else if (ret == 0) {
        snprintf(err, err_size,
                 "%s holds another database than the one key-store %s was being created for; "
                 "refusing to touch either",
                 st->cfg.db_dir, st->pri.keystore_path);
        ret = -EEXIST;
    }
    if (ret < 0)
        return ret;
    ks->creating = false;
    ret = cas_keystore_save(st->pri.keystore_path, ks, st->pri.dbkey);
    if (ret < 0)
        snprintf(err, err_size, "cannot write key-store %s: %s%s", st->pri.keystore_path, strerror(-ret),
                 ret == -ENOSPC ? " (disk full)" : "");
    return ret;
}

static int create_database(struct cas_state *st, struct cas_keystore *ks, const uint8_t seal[32], char *err,
                           size_t err_size)
{
    struct cas_db_meta meta;
    int ret = cas_db_peek(st->cfg.db_dir, &meta, err, err_size);
    if (ret != -ENOENT) {
        if (ret == 0 || ret == -ENODATA)
            snprintf(err, err_size,
                     "database %s exists but its key-store %s is missing: refusing to create a new "
                     "database key (that would make the data unreadable); restore the key-store",
                     st->cfg.db_dir, st->pri.keystore_path);
        return ret < 0 && ret != -ENODATA ? ret : -ENOENT;
    }
    struct cas_keystore_entry e;
    memset(&e, 0, sizeof(e));
    strcpy(e.platform_id, st->node.platform_id);
    strcpy(e.kind, st->node.platform_kind);
    snprintf(e.node, sizeof(e.node), "%s", st->cfg.node_name);
    e.tcb = st->node.tcb;
    e.time = (int64_t)time(NULL);
    strcpy(e.measurement, st->node.measurement_hex);
    ks->version = CAS_KS_VERSION;
    ks->generation = 1;
    ks->creating = true;
    ret = custos_random(st->pri.dbkey, sizeof(st->pri.dbkey));
    if (ret == 0)
        ret = custos_random(ks->database_id, sizeof(ks->database_id));
    if (ret == 0)
        ret = cas_keystore_seal_node(&e, seal);
    if (ret == 0)
        ret = cas_keystore_wrap(ks, &e, st->pri.dbkey);
    if (ret == 0)
        ret = cas_keystore_upsert(ks, &e);
    if (ret == 0)
        ret = cas_keystore_save(st->pri.keystore_path, ks, st->pri.dbkey);
    if (ret < 0) {
        snprintf(err, err_size, "cannot create key-store %s: %s%s", st->pri.keystore_path, strerror(-ret),
                 ret == -ENOSPC ? " (disk full)" : "");
        return ret;
    }
    if ((ret = finish_create(st, ks, err, err_size)) < 0)
        return ret;
    LOG_MODULE_INFO(CAS_LOG, "created a new database key, sealed for platform %s (node %s) in %s", st->node.platform_id,
                    e.node, st->pri.keystore_path);
    return 0;
}

/* One casd per database: two would each make or keep their own view of the key-store. The lock
 * is held for the life of the process (the kernel drops it when the process dies). */
static int lock_database(struct cas_state *st)
{
    char path[PATH_MAX];
    size_t n = strlen(st->pri.keystore_path);
    if (n < 10 || n - 10 + 6 >= sizeof(path))
        return -ENAMETOOLONG;
    snprintf(path, sizeof(path), "%.*s.lock", (int)(n - 10), st->pri.keystore_path); /* DIR.lock */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot open lock file %s: %s", path, strerror(errno));
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        LOG_MODULE_ERROR(CAS_LOG, "database %s is in use by another casd (lock %s held); refusing to start",
                         st->cfg.db_dir, path);
        close(fd);
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    st->pri.lock_fd = fd;
    return 0;
}

static void refuse_unregistered(const struct cas_state *st, const struct cas_keystore *ks)
{
    char list[8192];
    size_t n = 0;
    list[0] = '\0';
    for (size_t i = 0; i < ks->count && n < sizeof(list) - 200; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s (%s, node %s)", i ? ", " : "",
                              ks->entries[i].platform_id, ks->entries[i].kind, ks->entries[i].node);
    LOG_MODULE_ERROR(CAS_LOG,
                     "this CAS runs on platform %s (%s, node %s), which is not registered in key-store "
                     "%s; registered platforms: %s. Register a backup for this node first (cas "
                     "register-backup, run against the CAS on a registered node), then start it here. If this "
                     "node was registered, the key-store may be damaged or replaced (its MAC can only be "
                     "checked by a registered node).",
                     st->node.platform_id, st->node.platform_kind, st->cfg.node_name, st->pri.keystore_path,
                     ks->count ? list : "none");
}

/* The platform has entries, but only for other casd builds (an upgrade not registered here yet). */
static void refuse_other_measurements(const struct cas_state *st, const struct cas_keystore *ks)
{
    char list[8192];
    size_t n = 0;
    list[0] = '\0';
    for (size_t i = 0; i < ks->count && n < sizeof(list) - 200; i++)
        if (!strcmp(ks->entries[i].platform_id, st->node.platform_id))
            n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s (node %s)", n ? ", " : "",
                                  ks->entries[i].measurement, ks->entries[i].node);
    LOG_MODULE_ERROR(CAS_LOG,
                     "this casd's measurement %s is not registered for platform %s (node %s) in key-store %s; "
                     "registered measurements on this platform: %s. A new casd build has a new seal key and cannot "
                     "open the entries of another build: register this casd's measurement on this node first (cas "
                     "owner allow-measurement %s, then run this build as a backup CAS on this node and cas "
                     "register-backup it against the running CAS; see docs/operations.md, \"Upgrading CAS\"), then "
                     "start it here.",
                     st->node.measurement_hex, st->node.platform_id, st->cfg.node_name, st->pri.keystore_path, list,
                     st->node.measurement_hex);
}

/* A key rotation leaves DIR.key-store.next while it re-encrypts the database; whichever generation
 * the database has is the key-store that opens it. */
static int recover_rotation(struct cas_state *st, struct cas_keystore *ks, char *err, size_t err_size)
{
    char next_path[PATH_MAX + 8];
    struct cas_keystore next = {0};
    struct cas_db_meta meta;
    char lerr[1024];
    snprintf(next_path, sizeof(next_path), "%s.next", st->pri.keystore_path);
    int ret = cas_keystore_load(next_path, &next, lerr, sizeof(lerr));
    if (ret == -ENOENT)
        return 0;
    if (ret < 0) {
        snprintf(err, err_size, "%s (an interrupted key rotation's key-store; left untouched)", lerr);
        return ret;
    }
    ret = cas_db_peek(st->cfg.db_dir, &meta, err, err_size);
    if (ret == 0 && meta.generation == next.generation && next.generation == ks->generation + 1) {
        ret = custos_rename_durable(next_path, st->pri.keystore_path);
        if (ret == 0) {
            cas_keystore_free(ks);
            *ks = next;
            next = (struct cas_keystore){0};
            LOG_MODULE_WARN(CAS_LOG, "finished an interrupted key rotation: %s is generation %llu",
                            st->pri.keystore_path, (unsigned long long)ks->generation);
        } else {
            snprintf(err, err_size, "cannot rename %s to %s: %s", next_path, st->pri.keystore_path, strerror(-ret));
        }
    } else if (ret == 0 && meta.generation == ks->generation) {
        ret = unlink(next_path) < 0 ? -errno : 0;
        if (ret == 0)
            LOG_MODULE_WARN(CAS_LOG,
                            "discarded an unfinished key rotation (the database was not re-encrypted; "
                            "%s stays generation %llu)",
                            st->pri.keystore_path, (unsigned long long)ks->generation);
        else
            snprintf(err, err_size, "cannot remove %s: %s", next_path, strerror(-ret));
    } else if (ret == 0 || ret == -ENODATA) {
        snprintf(err, err_size,
                 "key-stores %s (generation %llu) and %s (generation %llu) do not match database %s "
                 "(generation %llu); refusing to guess",
                 st->pri.keystore_path, (unsigned long long)ks->generation, next_path,
                 (unsigned long long)next.generation, st->cfg.db_dir,
                 (unsigned long long)(ret == 0 ? meta.generation : 0));
        ret = -EBADMSG;
    }
    cas_keystore_free(&next);
    return ret;
}

static void hex_id(const uint8_t id[CAS_KS_ID_SIZE], char out[2 * CAS_KS_ID_SIZE + 1])
{
    custos_hex_encode(id, CAS_KS_ID_SIZE, out, false);
}

/* The key-store must belong to the database beside it: same ID, same generation. */
static int check_binding(struct cas_state *st, const struct cas_keystore *ks, const struct cas_db_meta *meta, int peek,
                         char *err, size_t err_size)
{
    char a[33], b[33];
    if (peek == -ENOENT) {
        snprintf(err, err_size,
                 "database %s is missing or empty, but its key-store %s exists: refusing to create a new database "
                 "under an existing key. Restore the database directory (or move the key-store away to start a "
                 "new CAS deliberately)",
                 st->cfg.db_dir, st->pri.keystore_path);
        return -ENOENT;
    }
    if (peek < 0 && peek != -ENODATA)
        return peek; /* err names the damage */
    if (ks->version == 1)
        return 0; /* no binding yet: migrated after the key opens the database */
    hex_id(ks->database_id, a);
    if (peek == -ENODATA) {
        snprintf(err, err_size,
                 "key-store %s belongs to database %s, but %s has no database ID (an older "
                 "database): they do not belong together",
                 st->pri.keystore_path, a, st->cfg.db_dir);
        return -EBADMSG;
    }
    hex_id(meta->id, b);
    if (memcmp(meta->id, ks->database_id, CAS_KS_ID_SIZE) != 0) {
        snprintf(err, err_size,
                 "key-store %s belongs to database %s, but %s is database %s: they do not belong "
                 "together",
                 st->pri.keystore_path, a, st->cfg.db_dir, b);
        return -EBADMSG;
    }
    if (ks->generation < meta->generation) {
        snprintf(err, err_size,
                 "key-store %s (generation %llu) is older than database %s (generation %llu): the database key was "
                 "rotated since (a backup was removed), and this key-store no longer opens it. Platform %s is not "
                 "in the current key-store unless the CAS lists it (cas backups list)",
                 st->pri.keystore_path, (unsigned long long)ks->generation, st->cfg.db_dir,
                 (unsigned long long)meta->generation, st->node.platform_id);
        return -EPERM;
    }
    if (ks->generation > meta->generation) {
        snprintf(err, err_size,
                 "key-store %s (generation %llu) is newer than database %s (generation %llu): the "
                 "database was replaced by an older copy",
                 st->pri.keystore_path, (unsigned long long)ks->generation, st->cfg.db_dir,
                 (unsigned long long)meta->generation);
        return -EBADMSG;
    }
    return 0;
}

/* Format upgrades after the key opened the database: a version 1 pair gets a database ID (database
 * first, then key-store), this node's legacy entry becomes a node entry, and an entry without a
 * measurement (version 1 or 2) that opened with this casd's seal key gets this casd's measurement
 * (the file is written as version 3). */
static int upgrade(struct cas_state *st, struct cas_keystore *ks, const uint8_t seal[32], char *err, size_t err_size)
{
    struct cas_db_meta meta;
    cas_db_get_meta(st->pri.db, &meta);
    struct cas_keystore_entry *e =
        (struct cas_keystore_entry *)cas_keystore_find_for(ks, st->node.platform_id, st->node.measurement_hex);
    if (ks->version >= CAS_KS_VERSION && e->node_key && e->measurement[0])
        return 0;
    int ret = 0;
    if (meta.generation == 0) {
        uint8_t id[CAS_KS_ID_SIZE];
        if ((ret = custos_random(id, sizeof(id))) == 0 && (ret = cas_db_migrate(st->pri.db, id)) == 0)
            cas_db_get_meta(st->pri.db, &meta);
        if (ret < 0) {
            snprintf(err, err_size, "%s: cannot add the database ID: %s", st->cfg.db_dir, strerror(-ret));
            return ret;
        }
    }
    struct cas_keystore_entry ne = *e;
    int from_version = ks->version;
    memcpy(ks->database_id, meta.id, CAS_KS_ID_SIZE);
    ks->generation = meta.generation;
    ks->version = CAS_KS_VERSION;
    strcpy(ne.measurement, st->node.measurement_hex);
    if (!ne.node_key && (ret = cas_keystore_seal_node(&ne, seal)) == 0)
        ret = cas_keystore_wrap(ks, &ne, st->pri.dbkey);
    if (ret == 0)
        *e = ne;
    if (ret == 0)
        ret = cas_keystore_save(st->pri.keystore_path, ks, st->pri.dbkey);
    if (ret < 0) {
        snprintf(err, err_size, "cannot upgrade key-store %s: %s", st->pri.keystore_path, strerror(-ret));
        return ret;
    }
    LOG_MODULE_INFO(CAS_LOG,
                    "key-store %s upgraded: bound to database %s, entry of platform %s can follow key rotations "
                    "and is for measurement %s (file version %d, now %d)",
                    st->pri.keystore_path, st->cfg.db_dir, st->node.platform_id, st->node.measurement_hex, from_version,
                    CAS_KS_VERSION);
    return 0;
}

static int open_existing(struct cas_state *st, struct cas_keystore *ks, const uint8_t seal[32], char *err,
                         size_t err_size)
{
    struct cas_db_meta meta;
    int ret = recover_rotation(st, ks, err, err_size);
    if (ret < 0)
        return ret;
    if (ks->creating) {
        const struct cas_keystore_entry *e = cas_keystore_find_for(ks, st->node.platform_id, st->node.measurement_hex);
        if (!e || cas_keystore_open(ks, e, seal, st->pri.dbkey) < 0 || cas_keystore_verify_mac(ks, st->pri.dbkey) < 0) {
            snprintf(err, err_size, "key-store %s of a database being created does not open on platform %s",
                     st->pri.keystore_path, st->node.platform_id);
            return -EPERM;
        }
        LOG_MODULE_WARN(CAS_LOG, "finishing the creation of database %s (interrupted at first start)", st->cfg.db_dir);
        return finish_create(st, ks, err, err_size);
    }
    const struct cas_keystore_entry *e = cas_keystore_find_for(ks, st->node.platform_id, st->node.measurement_hex);
    if (!e) {
        struct cas_ks_match mine = {.platform_id = st->node.platform_id};
        bool other = false;
        for (size_t i = 0; i < ks->count && !other; i++)
            other = cas_keystore_match(&ks->entries[i], &mine);
        if (other)
            refuse_other_measurements(st, ks);
        else
            refuse_unregistered(st, ks);
        err[0] = '\0';
        return -EPERM;
    }
    ret = cas_keystore_open(ks, e, seal, st->pri.dbkey);
    if (ret < 0) {
        snprintf(err, err_size,
                 "the key-store entry of platform %s (measurement %s) in %s does not open with this CAS's seal key "
                 "(measurement %s): this casd binary (measurement differs) or this platform is not the one the entry "
                 "was sealed for, or the key-store may be damaged",
                 st->node.platform_id, e->measurement[0] ? e->measurement : "any", st->pri.keystore_path,
                 st->node.measurement_hex);
        return ret;
    }
    if ((ret = cas_keystore_verify_mac(ks, st->pri.dbkey)) < 0) {
        snprintf(err, err_size,
                 "key-store %s was modified by someone without the database key (its MAC does not "
                 "match) or is damaged; refusing to use it",
                 st->pri.keystore_path);
        return ret;
    }
    int peek = cas_db_peek(st->cfg.db_dir, &meta, err, err_size);
    if ((ret = check_binding(st, ks, &meta, peek, err, err_size)) < 0)
        return ret;
    if ((ret = cas_db_open(st->cfg.db_dir, st->pri.dbkey, &st->pri.db, err, err_size)) < 0)
        return ret;
    return upgrade(st, ks, seal, err, err_size);
}

int cas_open_database(struct cas_state *st)
{
    uint8_t seal[32];
    char err[16384] = "";
    struct cas_keystore *ks = &st->pri.ks; /* kept: the primary updates it when backups register */
    int ret = node_info(st, seal);
    if (ret < 0)
        goto out;
    if ((ret = cas_keystore_path(st->cfg.db_dir, st->pri.keystore_path, sizeof(st->pri.keystore_path))) < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "database path too long: %s", st->cfg.db_dir);
        goto out;
    }
    {
        /* The database's parent holds DIR.lock and DIR.key-store: create it (0700) when missing. */
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s", st->pri.keystore_path);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
            *slash = '\0';
            if ((ret = custos_mkdirs(parent, 0700)) < 0) {
                LOG_MODULE_ERROR(CAS_LOG, "cannot create directory %s for database %s: %s", parent, st->cfg.db_dir,
                                 strerror(-ret));
                goto out;
            }
        }
    }
    if ((ret = lock_database(st)) < 0)
        goto out;
    ret = cas_keystore_load(st->pri.keystore_path, ks, err, sizeof(err));
    if (ret == -ENOENT) {
        char next_path[PATH_MAX + 8];
        struct stat sb;
        snprintf(next_path, sizeof(next_path), "%s.next", st->pri.keystore_path);
        if (lstat(next_path, &sb) == 0) {
            snprintf(err, sizeof(err),
                     "key-store %s is missing but %s exists (an interrupted key rotation): "
                     "refusing to guess; restore the key-store",
                     st->pri.keystore_path, next_path);
        } else {
            err[0] = '\0';
            ret = create_database(st, ks, seal, err, sizeof(err));
        }
    } else if (ret < 0) {
        snprintf(err + strlen(err), sizeof(err) - strlen(err), " (the key-store is left untouched)");
    } else {
        ret = open_existing(st, ks, seal, err, sizeof(err));
    }
    if (ret < 0) {
        if (err[0])
            LOG_MODULE_ERROR(CAS_LOG, "%s", err);
        goto out;
    }
    LOG_MODULE_INFO(CAS_LOG, "database %s opened on platform %s (%s, TCB %u)", st->cfg.db_dir, st->node.platform_id,
                    st->node.platform_kind, st->node.tcb);
out:
    custos_wipe(seal, sizeof(seal));
    return ret;
}

int cas_load_identity(struct cas_state *st)
{
    uint8_t *pem = NULL, hash[32];
    size_t size = 0;
    char err[256];
    int ret = cas_db_get(st->pri.db, REC_IDENTITY, &pem, &size);
    if (ret == -ENOENT) {
        char *new_pem = NULL;
        if ((ret = custos_key_generate(&st->tls.key)) < 0 || (ret = custos_key_to_pem(st->tls.key, &new_pem)) < 0)
            return ret;
        ret = cas_db_put(st->pri.db, REC_IDENTITY, new_pem, strlen(new_pem));
        st->tls.key_pem = new_pem;
        if (ret < 0)
            return ret;
        LOG_MODULE_INFO(CAS_LOG, "created the CAS identity key (kept only in the encrypted database)");
    } else if (ret < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot read the CAS identity from the database: %s", strerror(-ret));
        return ret;
    } else {
        st->tls.key_pem = calloc(1, size + 1);
        if (!st->tls.key_pem) {
            cas_db_value_free(pem, size);
            return -ENOMEM;
        }
        memcpy(st->tls.key_pem, pem, size);
        cas_db_value_free(pem, size);
        if ((ret = custos_key_from_pem(st->tls.key_pem, size, &st->tls.key, err, sizeof(err))) < 0) {
            LOG_MODULE_ERROR(CAS_LOG, "the CAS identity in the database is unusable: %s", err);
            return ret;
        }
    }
    if ((ret = custos_key_hash(st->tls.key, hash)) < 0)
        return ret;
    custos_hex_encode(hash, sizeof(hash), st->tls.key_hash, false);
    return 0;
}

/* A certificate for the CAS key with the names of an owner configuration (NULL: the defaults,
 * localhost and the node name). With out NULL it only checks that one can be made. */
int cas_certificate_for(struct cas_state *st, const json_t *config, char **out)
{
    const char *alts[64];
    size_t n = 0, i;
    json_t *v;
    json_t *api = json_object_get(config, "api_identity");
    const char *cn = json_string_value(json_object_get(api, "common_name"));
    json_array_foreach(json_object_get(api, "alt_names"), i, v)
        if (n < 64 && json_is_string(v))
            alts[n++] = json_string_value(v);
    if (n == 0) {
        alts[n++] = "localhost";
        alts[n++] = st->cfg.node_name;
    }
    char *pem = NULL;
    int ret = custos_cert_self_signed(st->tls.key, cn ? cn : "cas", alts, n, &pem);
    if (ret == 0 && out)
        *out = pem;
    else
        free(pem);
    return ret;
}

/* The certificate's names: the owner's [api_identity] once provisioned, else defaults. */
int cas_make_certificate(struct cas_state *st)
{
    json_t *owner = NULL;
    uint8_t *raw = NULL;
    size_t raw_size = 0;
    char err[128], *pem = NULL;
    if (cas_db_get(st->pri.db, REC_OWNER, &raw, &raw_size) == 0) {
        custos_json_parse((const char *)raw, raw_size, &owner, err, sizeof(err));
        cas_db_value_free(raw, raw_size);
    }
    int ret = cas_certificate_for(st, json_object_get(owner, "config"), &pem);
    json_decref(owner);
    if (ret < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot make the TLS certificate: %s", strerror(-ret));
        return ret;
    }
    pthread_mutex_lock(&st->lock);
    if (st->tls.cert_pem && st->tls.old_cert_count < sizeof(st->tls.old_certs) / sizeof(st->tls.old_certs[0]))
        st->tls.old_certs[st->tls.old_cert_count++] = st->tls.cert_pem;
    else
        free(st->tls.cert_pem); /* only before serving: the certificate changes once per provisioning */
    st->tls.cert_pem = pem;
    pthread_mutex_unlock(&st->lock);
    return 0;
}

int cas_load_ownership(struct cas_state *st)
{
    uint8_t *raw = NULL;
    size_t size = 0;
    int ret = cas_db_get(st->pri.db, REC_OWNER, &raw, &size);
    if (ret == 0) {
        json_t *owner = NULL;
        char err[128];
        const char *hash = NULL;
        ret = custos_json_parse((const char *)raw, size, &owner, err, sizeof(err));
        cas_db_value_free(raw, size);
        if (ret < 0 || json_unpack(owner, "{s:s}", "key_hash", &hash) < 0 || strlen(hash) != 64) {
            json_decref(owner);
            LOG_MODULE_ERROR(CAS_LOG, "the owner record in the database is damaged");
            return -EBADMSG;
        }
        strcpy(st->pri.owner_hash, hash);
        json_decref(owner);
        if ((ret = cas_registrars_load(st)) < 0)
            return ret;
        atomic_store_explicit(&st->pri.provisioned, true, memory_order_release);
        return 0;
    }
    if (ret != -ENOENT)
        return ret;
    ret = cas_db_get(st->pri.db, REC_TOKEN, &raw, &size);
    if (ret == 0 && size == 64) {
        memcpy(st->pri.token, raw, 64);
        st->pri.token[64] = '\0';
        cas_db_value_free(raw, size);
        return 0;
    }
    if (ret == 0)
        cas_db_value_free(raw, size);
    uint8_t rnd[32];
    if ((ret = custos_random(rnd, sizeof(rnd))) < 0)
        return ret;
    custos_hex_encode(rnd, sizeof(rnd), st->pri.token, false);
    custos_wipe(rnd, sizeof(rnd));
    return cas_db_put(st->pri.db, REC_TOKEN, st->pri.token, 64);
}

void cas_state_wipe(struct cas_state *st)
{
    cas_keystore_free(&st->pri.ks);
    cas_db_close(st->pri.db);
    st->pri.db = NULL;
    if (st->pri.lock_fd > 0) /* last: a successor may open the database only once this one has closed it */
        close(st->pri.lock_fd);
    EVP_PKEY_free(st->tls.key);
    if (st->tls.key_pem) {
        custos_wipe(st->tls.key_pem, strlen(st->tls.key_pem));
        free(st->tls.key_pem);
    }
    free(st->tls.cert_pem);
    for (size_t i = 0; i < st->tls.old_cert_count; i++)
        free(st->tls.old_certs[i]);
    custos_wipe(st->pri.dbkey, sizeof(st->pri.dbkey));
    custos_wipe(st->pri.token, sizeof(st->pri.token));
}
