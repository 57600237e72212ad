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
    custos_platform_id(q->platform_pub, st->platform_id);
    snprintf(st->platform_kind, sizeof(st->platform_kind), "%s", custos_platform_kind_name(q->kind));
    st->tcb = q->tcb;
    st->uid = q->uid;
    memcpy(st->measurement, q->measurement, sizeof(st->measurement));
}

/* This CAS's seal key, and its platform, TCB, measurement and uid (from one quote of its own). */
static int node_info(struct cas_state *st, uint8_t seal[32])
{
    char err[512];
    struct custos_quote q;
    uint8_t zero[CUSTOS_REPORT_DATA_SIZE] = {0};
    if (custos_las_seal_key(st->las, CAS_SEAL_LABEL, seal, err, sizeof(err)) < 0 ||
        custos_las_quote(st->las, zero, &q, err, sizeof(err)) < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "%s", err);
        return -EIO;
    }
    cas_node_from_quote(st, &q);
    return 0;
}

static int create_database(struct cas_state *st, struct cas_keystore *ks, const uint8_t seal[32])
{
    char mdb[PATH_MAX];
    struct stat sb;
    snprintf(mdb, sizeof(mdb), "%s/data.mdb", st->db_dir);
    if (stat(mdb, &sb) == 0) {
        LOG_MODULE_ERROR(CAS_LOG,
                         "database %s exists but its key-store %s is missing: refusing to create a new "
                         "database key (that would make the data unreadable); restore the key-store",
                         st->db_dir, st->keystore_path);
        return -ENOENT;
    }
    struct cas_keystore_entry e;
    memset(&e, 0, sizeof(e));
    strcpy(e.platform_id, st->platform_id);
    strcpy(e.kind, st->platform_kind);
    snprintf(e.node, sizeof(e.node), "%s", st->node_name);
    e.tcb = st->tcb;
    e.time = (int64_t)time(NULL);
    int ret = custos_random(st->dbkey, sizeof(st->dbkey));
    if (ret == 0)
        ret = cas_keystore_seal(&e, seal, st->dbkey);
    if (ret == 0)
        ret = cas_keystore_upsert(ks, &e);
    if (ret == 0)
        ret = cas_keystore_save(st->keystore_path, ks, st->dbkey);
    if (ret < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot create key-store %s: %s", st->keystore_path, strerror(-ret));
        return ret;
    }
    LOG_MODULE_INFO(CAS_LOG, "created a new database key, sealed for platform %s (node %s) in %s",
                    st->platform_id, e.node, st->keystore_path);
    return 0;
}

/* One casd per database: two would each make or keep their own view of the key-store. The lock
 * is held for the life of the process (the kernel drops it when the process dies). */
static int lock_database(struct cas_state *st)
{
    char path[PATH_MAX];
    size_t n = strlen(st->keystore_path);
    if (n < 10 || n - 10 + 6 >= sizeof(path))
        return -ENAMETOOLONG;
    snprintf(path, sizeof(path), "%.*s.lock", (int)(n - 10), st->keystore_path); /* DIR.lock */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot open lock file %s: %s", path, strerror(errno));
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        LOG_MODULE_ERROR(CAS_LOG, "database %s is in use by another casd (lock %s held); refusing to start",
                         st->db_dir, path);
        close(fd);
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    st->lock_fd = fd;
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
                     "register-backup, run against the CAS on a registered node), then start it here.",
                     st->platform_id, st->platform_kind, st->node_name, st->keystore_path,
                     ks->count ? list : "none");
}

int cas_open_database(struct cas_state *st)
{
    uint8_t seal[32];
    char err[1024];
    struct cas_keystore *ks = &st->ks; /* kept: the primary updates it when backups register */
    int ret = node_info(st, seal);
    if (ret < 0)
        goto out;
    if ((ret = cas_keystore_path(st->db_dir, st->keystore_path, sizeof(st->keystore_path))) < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "database path too long: %s", st->db_dir);
        goto out;
    }
    if ((ret = lock_database(st)) < 0)
        goto out;
    ret = cas_keystore_load(st->keystore_path, ks, err, sizeof(err));
    if (ret == -ENOENT) {
        ret = create_database(st, ks, seal);
    } else if (ret < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "%s (the key-store is left untouched)", err);
    } else {
        const struct cas_keystore_entry *e = cas_keystore_find(ks, st->platform_id);
        if (!e) {
            refuse_unregistered(st, ks);
            ret = -EPERM;
            goto out;
        }
        ret = cas_keystore_unseal(e, seal, st->dbkey);
        if (ret < 0) {
            LOG_MODULE_ERROR(CAS_LOG,
                             "the key-store entry of platform %s does not open with this CAS's seal "
                             "key: this casd binary (measurement differs) or this platform is not the "
                             "one the entry was sealed for",
                             st->platform_id);
            goto out;
        }
        if ((ret = cas_keystore_verify_mac(ks, st->dbkey)) < 0) {
            LOG_MODULE_ERROR(CAS_LOG, "key-store %s was modified by someone without the database key "
                             "(its MAC does not match); refusing to use it", st->keystore_path);
            goto out;
        }
    }
    if (ret < 0)
        goto out;
    if ((ret = cas_db_open(st->db_dir, st->dbkey, &st->db, err, sizeof(err))) < 0)
        LOG_MODULE_ERROR(CAS_LOG, "%s", err);
    else
        LOG_MODULE_INFO(CAS_LOG, "database %s opened on platform %s (%s, TCB %u)", st->db_dir,
                        st->platform_id, st->platform_kind, st->tcb);
out:
    custos_wipe(seal, sizeof(seal));
    return ret;
}

int cas_load_identity(struct cas_state *st)
{
    uint8_t *pem = NULL, hash[32];
    size_t size = 0;
    char err[256];
    int ret = cas_db_get(st->db, REC_IDENTITY, &pem, &size);
    if (ret == -ENOENT) {
        char *new_pem = NULL;
        if ((ret = custos_key_generate(&st->tls_key)) < 0 ||
            (ret = custos_key_to_pem(st->tls_key, &new_pem)) < 0)
            return ret;
        ret = cas_db_put(st->db, REC_IDENTITY, new_pem, strlen(new_pem));
        st->tls_key_pem = new_pem;
        if (ret < 0)
            return ret;
        LOG_MODULE_INFO(CAS_LOG, "created the CAS identity key (kept only in the encrypted database)");
    } else if (ret < 0) {
        LOG_MODULE_ERROR(CAS_LOG, "cannot read the CAS identity from the database: %s", strerror(-ret));
        return ret;
    } else {
        st->tls_key_pem = calloc(1, size + 1);
        if (!st->tls_key_pem) {
            cas_db_value_free(pem, size);
            return -ENOMEM;
        }
        memcpy(st->tls_key_pem, pem, size);
        cas_db_value_free(pem, size);
        if ((ret = custos_key_from_pem(st->tls_key_pem, size, &st->tls_key, err, sizeof(err))) < 0) {
            LOG_MODULE_ERROR(CAS_LOG, "the CAS identity in the database is unusable: %s", err);
            return ret;
        }
    }
    if ((ret = custos_key_hash(st->tls_key, hash)) < 0)
        return ret;
    custos_hex_encode(hash, sizeof(hash), st->key_hash, false);
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
    json_array_foreach(json_object_get(api, "alt_names"), i, v) if (n < 64 && json_is_string(v)) alts[n++] =
        json_string_value(v);
    if (n == 0) {
        alts[n++] = "localhost";
        alts[n++] = st->node_name;
    }
    char *pem = NULL;
    int ret = custos_cert_self_signed(st->tls_key, cn ? cn : "cas", alts, n, &pem);
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
    if (cas_db_get(st->db, REC_OWNER, &raw, &raw_size) == 0) {
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
    if (st->tls_cert_pem && st->old_cert_count < sizeof(st->old_certs) / sizeof(st->old_certs[0]))
        st->old_certs[st->old_cert_count++] = st->tls_cert_pem;
    else
        free(st->tls_cert_pem); /* only before serving: the certificate changes once per provisioning */
    st->tls_cert_pem = pem;
    pthread_mutex_unlock(&st->lock);
    return 0;
}

int cas_load_ownership(struct cas_state *st)
{
    uint8_t *raw = NULL;
    size_t size = 0;
    int ret = cas_db_get(st->db, REC_OWNER, &raw, &size);
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
        strcpy(st->owner_hash, hash);
        json_decref(owner);
        st->provisioned = true;
        return 0;
    }
    if (ret != -ENOENT)
        return ret;
    ret = cas_db_get(st->db, REC_TOKEN, &raw, &size);
    if (ret == 0 && size == 64) {
        memcpy(st->token, raw, 64);
        st->token[64] = '\0';
        cas_db_value_free(raw, size);
        return 0;
    }
    if (ret == 0)
        cas_db_value_free(raw, size);
    uint8_t rnd[32];
    if ((ret = custos_random(rnd, sizeof(rnd))) < 0)
        return ret;
    custos_hex_encode(rnd, sizeof(rnd), st->token, false);
    custos_wipe(rnd, sizeof(rnd));
    return cas_db_put(st->db, REC_TOKEN, st->token, 64);
}

void cas_state_wipe(struct cas_state *st)
{
    if (st->lock_fd > 0)
        close(st->lock_fd);
    cas_http_wipe();
    cas_keystore_free(&st->ks);
    cas_db_close(st->db);
    st->db = NULL;
    EVP_PKEY_free(st->tls_key);
    if (st->tls_key_pem) {
        custos_wipe(st->tls_key_pem, strlen(st->tls_key_pem));
        free(st->tls_key_pem);
    }
    free(st->tls_cert_pem);
    for (size_t i = 0; i < st->old_cert_count; i++)
        free(st->old_certs[i]);
    custos_wipe(st->dbkey, sizeof(st->dbkey));
    custos_wipe(st->token, sizeof(st->token));
}
