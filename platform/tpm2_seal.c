/* SPDX-License-Identifier: Apache-2.0 */
/* TPM 2.0 platform backend core: a 32-byte machine secret sealed by the TPM under a
 * deterministic owner-hierarchy storage primary key, kept as a blob in the platform directory.
 *
 * The blob file's format and its parser are in tpm2_blob.h / tpm2_blob.c.
 * The primary's Name lets a blob from another TPM (or from before a TPM clear) be told apart
 * from a corrupt file. The secret never crosses the TPM bus in clear: the Create and Unseal use
 * an HMAC session salted with the primary key, with command and response parameter encryption. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "tpm2_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "custos.h"
#include "tpm2_blob.h"

#define SECRET_LEN 32
#define DEFAULT_TCTI "device:/dev/tpmrm0"

#define WHAT_TO_DO_OLD_BLOB                                                                                            \
    "The file was left untouched. Restore it (or the node's original TPM) from backup; only if "                       \
    "the old secret is lost for good, move the file away so that a new machine secret is "                             \
    "created (everything protected by the old secret becomes unreadable)."

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- TPM response codes ----------------------------------------------------------------- */

static int rc_is_tpm(TSS2_RC rc)
{
    TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
    return layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER;
}

/* The TPM error code without the handle/session/parameter number bits. */
static TSS2_RC rc_base(TSS2_RC rc)
{
    if (!rc_is_tpm(rc))
        return rc;
    rc &= 0xfff;
    if (rc & TPM2_RC_FMT1)
        return rc & (TPM2_RC_FMT1 | 0x3f);
    return rc;
}

/* ---- TPM session state ------------------------------------------------------------------ */

struct tpm {
    const char *tcti_conf;
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    ESYS_TR primary;
    ESYS_TR session;
    ESYS_TR object;
    TPM2B_NAME primary_name;
    TSS2_RC last_rc; /* rc of the last failed CreatePrimary */
};

static void tpm_init(struct tpm *t, const char *tcti_conf)
{
    memset(t, 0, sizeof(*t));
    t->tcti_conf = tcti_conf;
    t->primary = ESYS_TR_NONE;
    t->session = ESYS_TR_NONE;
    t->object = ESYS_TR_NONE;
}

static void tpm_flush(struct tpm *t, ESYS_TR *h)
{
    if (*h != ESYS_TR_NONE && t->esys)
        (void)Esys_FlushContext(t->esys, *h);
    *h = ESYS_TR_NONE;
}

static void tpm_close(struct tpm *t)
{
    tpm_flush(t, &t->object);
    tpm_flush(t, &t->session);
    tpm_flush(t, &t->primary);
    if (t->esys)
        Esys_Finalize(&t->esys);
    if (t->tcti)
        Tss2_TctiLdr_Finalize(&t->tcti);
    t->esys = NULL;
    t->tcti = NULL;
}

static int tpm_cmd_fail(const struct tpm *t, TSS2_RC rc, const char *what, char *err, size_t errlen)
{
    TSS2_RC b = rc_base(rc);
    if (rc_is_tpm(rc) && b == TPM2_RC_INITIALIZE) {
        seterr(err, errlen,
               "TPM at TCTI \"%s\": %s failed: the TPM has not been started (TPM2_Startup); "
               "start it (tpm2_startup -c) or let the OS/firmware do so",
               t->tcti_conf, what);
        return -EIO;
    }
    if (rc_is_tpm(rc) && b == TPM2_RC_LOCKOUT) {
        seterr(err, errlen,
               "TPM at TCTI \"%s\": %s failed: the TPM is in dictionary-attack lockout; wait "
               "for the lockout to expire or reset it (tpm2_dictionarylockout -c)",
               t->tcti_conf, what);
        return -EBUSY;
    }
    if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER) {
        seterr(err, errlen,
               "TPM at TCTI \"%s\": %s failed: lost communication with the TPM: %s (0x%08x); "
               "check that the TPM (or simulator) is running and reachable",
               t->tcti_conf, what, Tss2_RC_Decode(rc), (unsigned)rc);
        return -EIO;
    }
    seterr(err, errlen, "TPM at TCTI \"%s\": %s failed: %s (0x%08x)", t->tcti_conf, what, Tss2_RC_Decode(rc),
           (unsigned)rc);
    return -EIO;
}

static int tpm_connect(struct tpm *t, char *err, size_t errlen)
{
    TSS2_RC rc = Tss2_TctiLdr_Initialize(t->tcti_conf, &t->tcti);
    if (rc != TSS2_RC_SUCCESS) {
        t->tcti = NULL;
        seterr(err, errlen,
               "cannot open the TPM via TCTI \"%s\": %s (0x%08x); check that the TPM (or "
               "simulator) is present and reachable, that this user may access it (e.g. "
               "/dev/tpmrm0 needs the tss group), and that the TCTI setting is correct",
               t->tcti_conf, Tss2_RC_Decode(rc), (unsigned)rc);
        return -ENODEV;
    }
    rc = Esys_Initialize(&t->esys, t->tcti, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        t->esys = NULL;
        seterr(err, errlen,
               "cannot initialise the TPM software stack for TCTI \"%s\": %s (0x%08x); check "
               "that the TPM (or simulator) is running and reachable",
               t->tcti_conf, Tss2_RC_Decode(rc), (unsigned)rc);
        return -ENODEV;
    }
    return 0;
}

/* Fixed SRK templates (TCG provisioning guidance style, empty unique field): the primary is a
 * pure function of the owner hierarchy's seed, so the same TPM always yields the same key. */
static void srk_template(uint8_t srk, TPM2B_PUBLIC *pub)
{
    memset(pub, 0, sizeof(*pub));
    TPMT_PUBLIC *p = &pub->publicArea;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                          TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p->authPolicy.size = 0;
    if (srk == TPM2_SRK_RSA_2048) {
        p->type = TPM2_ALG_RSA;
        p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
        p->parameters.rsaDetail.symmetric.keyBits.aes = 128;
        p->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
        p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        p->parameters.rsaDetail.keyBits = 2048;
        p->parameters.rsaDetail.exponent = 0;
        p->unique.rsa.size = 0;
    } else {
        p->type = TPM2_ALG_ECC;
        p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
        p->parameters.eccDetail.symmetric.keyBits.aes = 128;
        p->parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
        p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        p->unique.ecc.x.size = 0;
        p->unique.ecc.y.size = 0;
    }
}

static int tpm_create_primary(struct tpm *t, uint8_t srk, char *err, size_t errlen)
{
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_PUBLIC tmpl;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcrs;
    memset(&sens, 0, sizeof(sens));
    memset(&outside, 0, sizeof(outside));
    memset(&pcrs, 0, sizeof(pcrs));
    srk_template(srk, &tmpl);

    TSS2_RC rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                                    &tmpl, &outside, &pcrs, &t->primary, NULL, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        t->primary = ESYS_TR_NONE;
        t->last_rc = rc;
        TSS2_RC b = rc_base(rc);
        if (rc_is_tpm(rc) && (b == TPM2_RC_BAD_AUTH || b == TPM2_RC_AUTH_FAIL)) {
            seterr(err, errlen,
                   "TPM at TCTI \"%s\": creating the storage primary key in the owner hierarchy "
                   "was refused because the owner hierarchy has an authorization value "
                   "(password) set; Custos needs an empty owner authorization",
                   t->tcti_conf);
            return -EACCES;
        }
        if (rc_is_tpm(rc) && b == TPM2_RC_HIERARCHY) {
            seterr(err, errlen,
                   "TPM at TCTI \"%s\": the owner (storage) hierarchy is disabled; enable it "
                   "in the firmware/TPM settings",
                   t->tcti_conf);
            return -EACCES;
        }
        return tpm_cmd_fail(t, rc, "creating the storage primary key (CreatePrimary)", err, errlen);
    }

    TPM2B_NAME *name = NULL;
    rc = Esys_TR_GetName(t->esys, t->primary, &name);
    if (rc != TSS2_RC_SUCCESS || !name || name->size > sizeof(name->name)) {
        Esys_Free(name);
        return tpm_cmd_fail(t, rc ? rc : TSS2_ESYS_RC_GENERAL_FAILURE, "reading the storage primary key's name", err,
                            errlen);
    }
    t->primary_name = *name;
    Esys_Free(name);
    return 0;
}

/* Salted HMAC session bound to nothing, with parameter encryption both ways, so that the
 * secret is never on the TPM bus in clear. */
static int tpm_start_session(struct tpm *t, char *err, size_t errlen)
{
    TPMT_SYM_DEF sym;
    memset(&sym, 0, sizeof(sym));
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
    TSS2_RC rc = Esys_StartAuthSession(t->esys, t->primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       NULL, TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, &t->session);
    if (rc != TSS2_RC_SUCCESS) {
        t->session = ESYS_TR_NONE;
        return tpm_cmd_fail(t, rc, "starting an encrypted session (StartAuthSession)", err, errlen);
    }
    rc = Esys_TRSess_SetAttributes(t->esys, t->session,
                                   TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION, 0xff);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_cmd_fail(t, rc, "setting session attributes", err, errlen);
    return 0;
}

/* Connect, derive the primary for the given template and start the session. */
static int tpm_open(struct tpm *t, uint8_t srk, char *err, size_t errlen)
{
    int r = tpm_connect(t, err, errlen);
    if (r == 0)
        r = tpm_create_primary(t, srk, err, errlen);
    if (r == 0)
        r = tpm_start_session(t, err, errlen);
    return r;
}

/* Loads the sealed object under the primary and unseals it into out. */
static int tpm_load_unseal(struct tpm *t, const TPM2B_PUBLIC *pub, const TPM2B_PRIVATE *priv, const char *path,
                           uint8_t out[SECRET_LEN], char *err, size_t errlen)
{
    TSS2_RC rc = Esys_Load(t->esys, t->primary, t->session, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &t->object);
    if (rc != TSS2_RC_SUCCESS) {
        t->object = ESYS_TR_NONE;
        TSS2_RC b = rc_base(rc);
        if (rc_is_tpm(rc) && (b == TPM2_RC_INTEGRITY || b == TPM2_RC_BINDING || b == TPM2_RC_SIZE || b == TPM2_RC_KEY ||
                              b == TPM2_RC_VALUE)) {
            seterr(err, errlen,
                   "%s was rejected by the TPM at TCTI \"%s\" (%s): it was modified after "
                   "sealing, or it was sealed by a different TPM (or the TPM was cleared). " WHAT_TO_DO_OLD_BLOB,
                   path, t->tcti_conf, Tss2_RC_Decode(rc));
            return -EKEYREJECTED;
        }
        return tpm_cmd_fail(t, rc, "loading the sealed machine secret (Load)", err, errlen);
    }

    TPM2B_SENSITIVE_DATA *data = NULL;
    rc = Esys_Unseal(t->esys, t->object, t->session, ESYS_TR_NONE, ESYS_TR_NONE, &data);
    tpm_flush(t, &t->object);
    if (rc != TSS2_RC_SUCCESS) {
        if (data) {
            custos_wipe(data, sizeof(*data));
            Esys_Free(data);
        }
        return tpm_cmd_fail(t, rc, "unsealing the machine secret (Unseal)", err, errlen);
    }
    int r = 0;
    if (!data || data->size != SECRET_LEN) {
        seterr(err, errlen,
               "%s unsealed by the TPM at TCTI \"%s\" holds %u bytes instead of %d; the file "
               "is not a Custos machine secret. " WHAT_TO_DO_OLD_BLOB,
               path, t->tcti_conf, data ? (unsigned)data->size : 0u, SECRET_LEN);
        r = -EBADMSG;
    } else {
        memcpy(out, data->buffer, SECRET_LEN);
    }
    if (data) {
        custos_wipe(data, sizeof(*data));
        Esys_Free(data);
    }
    return r;
}

/* 32 bytes from the TPM RNG XOR 32 bytes from OpenSSL: as strong as the better of the two. */
static int make_secret(struct tpm *t, uint8_t secret[SECRET_LEN], char *err, size_t errlen)
{
    uint8_t trnd[SECRET_LEN], ornd[SECRET_LEN];
    size_t have = 0;
    int r = 0;
    while (have < SECRET_LEN) {
        TPM2B_DIGEST *d = NULL;
        TSS2_RC rc = Esys_GetRandom(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, (UINT16)(SECRET_LEN - have), &d);
        if (rc != TSS2_RC_SUCCESS || !d || d->size == 0 || d->size > sizeof(d->buffer)) {
            if (d) {
                custos_wipe(d, sizeof(*d));
                Esys_Free(d);
            }
            r = tpm_cmd_fail(t, rc ? rc : TSS2_ESYS_RC_GENERAL_FAILURE,
                             "reading the TPM random number generator (GetRandom)", err, errlen);
            goto out;
        }
        size_t n = d->size < SECRET_LEN - have ? d->size : SECRET_LEN - have;
        memcpy(trnd + have, d->buffer, n);
        have += n;
        custos_wipe(d, sizeof(*d));
        Esys_Free(d);
    }
    if (custos_random(ornd, sizeof(ornd)) < 0) {
        seterr(err, errlen, "the system random generator failed (OpenSSL RAND_bytes)");
        r = -EIO;
        goto out;
    }
    for (size_t i = 0; i < SECRET_LEN; i++)
        secret[i] = trnd[i] ^ ornd[i];
out:
    custos_wipe(trnd, sizeof(trnd));
    custos_wipe(ornd, sizeof(ornd));
    return r;
}

/* ---- the blob file ------------------------------------------------------------------------- */

/* Reads the blob file (format and parser in tpm2_blob.c). Returns 0 (read: caller frees *out),
 * 1 (no blob yet) or a negative errno with err set. */
static int blob_read(const char *path, uint8_t **out, size_t *out_size, char *err, size_t errlen)
{
    int r = custos_read_file(path, TPM2_BLOB_MAX, out, out_size);
    switch (r) {
    case 0:
        return 0;
    case -ENOENT:
        return 1;
    case -ELOOP:
        seterr(err, errlen, "%s is a symbolic link; refusing to use it. Replace it with the real sealed blob file",
               path);
        return r;
    case -EINVAL:
        seterr(err, errlen, "%s is not a regular file; refusing to use it. " WHAT_TO_DO_OLD_BLOB, path);
        return -EBADMSG;
    case -EFBIG:
        seterr(err, errlen, "%s is corrupt (file too large, over %zu bytes). " WHAT_TO_DO_OLD_BLOB, path,
               (size_t)TPM2_BLOB_MAX);
        return -EBADMSG;
    }
    seterr(err, errlen, "cannot read %s: %s; check its permissions", path, strerror(-r));
    return r;
}

/* Writes the new blob without ever replacing an existing file: 0, -EEXIST (someone else created the
 * blob first) or a negative errno with err set. */
static int blob_write(const char *path, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    int r = custos_write_file_new(path, buf, len, 0600);
    if (r < 0 && r != -EEXIST)
        seterr(err, errlen, "cannot write %s: %s; check free space and permissions of the platform directory", path,
               strerror(-r));
    return r;
}

/* ---- the two paths ------------------------------------------------------------------------ */

static int unseal_existing(const char *path, const char *tcti, const uint8_t *buf, size_t len, uint8_t out[SECRET_LEN],
                           char *err, size_t errlen)
{
    struct tpm2_blob blob;
    char why[200];
    int r = tpm2_blob_parse(buf, len, &blob, why, sizeof(why));
    if (r != 0) {
        seterr(err, errlen, "%s is corrupt (%s). " WHAT_TO_DO_OLD_BLOB, path, why);
        return r;
    }

    struct tpm t;
    tpm_init(&t, tcti);
    r = tpm_open(&t, blob.srk, err, errlen);
    if (r == 0 && (t.primary_name.size != blob.primary_name.size ||
                   memcmp(t.primary_name.name, blob.primary_name.name, blob.primary_name.size) != 0)) {
        seterr(err, errlen,
               "%s was sealed by a different TPM (or the TPM was cleared); the TPM at TCTI "
               "\"%s\" cannot unseal it. Check that the TCTI points at this node's own TPM. " WHAT_TO_DO_OLD_BLOB,
               path, tcti);
        r = -EKEYREJECTED;
    }
    if (r == 0)
        r = tpm_load_unseal(&t, &blob.pub, &blob.priv, path, out, err, errlen);
    tpm_close(&t);
    custos_wipe(&blob, sizeof(blob));
    return r;
}

static int seal_new(const char *path, const char *tcti, uint8_t out[SECRET_LEN], char *err, size_t errlen)
{
    uint8_t secret[SECRET_LEN], check[SECRET_LEN];
    uint8_t blob[TPM2_BLOB_MAX];
    struct tpm2_blob parts;
    size_t bloblen = 0;
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_PUBLIC tmpl;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcrs;
    TPM2B_PUBLIC *pub = NULL;
    TPM2B_PRIVATE *priv = NULL;
    uint8_t srk = TPM2_SRK_ECC_P256;
    struct tpm t;
    TSS2_RC rc;
    int r;

    memset(&sens, 0, sizeof(sens));
    memset(&outside, 0, sizeof(outside));
    memset(&pcrs, 0, sizeof(pcrs));
    tpm_init(&t, tcti);
    r = tpm_connect(&t, err, errlen);
    if (r != 0)
        goto out;
    r = tpm_create_primary(&t, srk, err, errlen);
    if (r != 0 && rc_is_tpm(t.last_rc) && (t.last_rc & TPM2_RC_FMT1) && (t.last_rc & TPM2_RC_P)) {
        /* The TPM rejected the ECC P-256 template (no such curve): use the RSA 2048 one. */
        srk = TPM2_SRK_RSA_2048;
        r = tpm_create_primary(&t, srk, err, errlen);
    }
    if (r != 0)
        goto out;
    r = tpm_start_session(&t, err, errlen);
    if (r != 0)
        goto out;
    r = make_secret(&t, secret, err, errlen);
    if (r != 0)
        goto out;

    /* Sealed-data object: fixed to this TPM and this parent, empty auth, no DA. */
    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.publicArea.type = TPM2_ALG_KEYEDHASH;
    tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl.publicArea.objectAttributes =
        TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA;
    tmpl.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    sens.sensitive.data.size = SECRET_LEN;
    memcpy(sens.sensitive.data.buffer, secret, SECRET_LEN);
    rc = Esys_Create(t.esys, t.primary, t.session, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, &priv,
                     &pub, NULL, NULL, NULL);
    custos_wipe(&sens, sizeof(sens));
    if (rc != TSS2_RC_SUCCESS) {
        r = tpm_cmd_fail(&t, rc, "sealing the machine secret (Create)", err, errlen);
        goto out;
    }

    /* Prove the blob unseals to the same secret before it becomes the node's identity. */
    r = tpm_load_unseal(&t, pub, priv, path, check, err, errlen);
    if (r != 0)
        goto out;
    if (!custos_ct_equal(check, secret, SECRET_LEN)) {
        seterr(err, errlen,
               "TPM at TCTI \"%s\": the freshly sealed machine secret did not "
               "unseal to the same value; the TPM is malfunctioning",
               tcti);
        r = -EIO;
        goto out;
    }
    parts.srk = srk;
    parts.primary_name = t.primary_name;
    parts.pub = *pub;
    parts.priv = *priv;
    r = tpm2_blob_build(&parts, blob, sizeof(blob), &bloblen);
    custos_wipe(&parts, sizeof(parts));
    if (r != 0) {
        seterr(err, errlen, "internal error: cannot serialise the sealed blob for %s", path);
        r = -EIO;
        goto out;
    }
    tpm_close(&t);
    r = blob_write(path, blob, bloblen, err, errlen);
    if (r == 0)
        memcpy(out, secret, SECRET_LEN);
out:
    tpm_close(&t);
    custos_wipe(secret, sizeof(secret));
    custos_wipe(check, sizeof(check));
    custos_wipe(blob, sizeof(blob));
    if (priv) {
        custos_wipe(priv, sizeof(*priv));
        Esys_Free(priv);
    }
    Esys_Free(pub);
    return r;
}

int custos_tpm2_machine_secret(const char *platform_dir, const char *tcti, uint8_t out[32], char *err, size_t errlen)
{
    uint8_t *blob = NULL;
    char path[PATH_MAX];
    int r = -EIO;

    if (err && errlen)
        err[0] = '\0';
    if (!out) {
        seterr(err, errlen, "custos_tpm2_machine_secret: no output buffer");
        return -EINVAL;
    }
    custos_wipe(out, SECRET_LEN);
    if (!platform_dir || !*platform_dir) {
        seterr(err, errlen, "no platform directory given for the TPM-sealed machine secret");
        return -EINVAL;
    }
    if (!tcti || !*tcti)
        tcti = DEFAULT_TCTI;
    int n = snprintf(path, sizeof(path), "%s/%s", platform_dir, TPM2_BLOB_FILE);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        seterr(err, errlen, "platform directory path is too long: %s", platform_dir);
        return -ENAMETOOLONG;
    }
    /* The directory must exist before the TPM is asked for anything (nothing is created in it). */
    int dfd = open(platform_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int e = errno;
        seterr(err, errlen,
               "cannot open platform directory %s: %s; create it (mode 0700, owned "
               "by the Custos user) or fix the configured path",
               platform_dir, strerror(e));
        return -e;
    }
    close(dfd);
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t len = 0;
        r = blob_read(path, &blob, &len, err, errlen);
        if (r == 0) {
            r = unseal_existing(path, tcti, blob, len, out, err, errlen);
            custos_wipe(blob, len);
            free(blob);
            blob = NULL;
            break;
        }
        if (r < 0)
            break;
        /* No blob yet: first start of this node. */
        r = seal_new(path, tcti, out, err, errlen);
        if (r != -EEXIST)
            break;
        /* Another process created the blob meanwhile: use theirs. */
        seterr(err, errlen, "%s appeared while it was being created; retry", path);
    }
    if (r != 0)
        custos_wipe(out, SECRET_LEN);
    else if (err && errlen)
        err[0] = '\0';
    return r;
}
