/* SPDX-License-Identifier: Apache-2.0 */
/* libcustos: the one public header of the library every Custos binary uses. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

/* ---- logging (log.c) ------------------------------------------------------------------------ */
enum custos_log_level { CUSTOS_LOG_ERROR, CUSTOS_LOG_WARN, CUSTOS_LOG_INFO, CUSTOS_LOG_DEBUG };

/* Reads levels from a spec like "info,las=debug,cas=warn" (CUSTOS_LOG). Returns 0 or -EINVAL. */
int custos_log_configure(const char *spec);
bool custos_log_enabled(const char *module, enum custos_log_level level);
/* Writes "YYYY-MM-DD HH:MM:SS,mmm LEVEL: message" to stderr. Never pass secrets. */
void custos_log(const char *module, enum custos_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_MODULE_ERROR(m, ...) custos_log(m, CUSTOS_LOG_ERROR, __VA_ARGS__)
#define LOG_MODULE_WARN(m, ...) custos_log(m, CUSTOS_LOG_WARN, __VA_ARGS__)
#define LOG_MODULE_INFO(m, ...) custos_log(m, CUSTOS_LOG_INFO, __VA_ARGS__)
#define LOG_MODULE_DEBUG(m, ...) custos_log(m, CUSTOS_LOG_DEBUG, __VA_ARGS__)

/* ---- secrets (secret.c) --------------------------------------------------------------------- */
void custos_wipe(void *buf, size_t size);
/* Constant-time comparison; returns true when equal. */
bool custos_ct_equal(const void *a, const void *b, size_t size);
/* Disables core dumps and ptrace attachment of this process (prctl PR_SET_DUMPABLE 0). */
void custos_harden_process(void);

/* ---- encodings (codec.c) -------------------------------------------------------------------- */
/* out must hold 2*size+1 bytes. */
void custos_hex_encode(const uint8_t *in, size_t size, char *out, bool upper);
/* Decodes exactly out_size bytes from a hex string of length 2*out_size; -EINVAL otherwise. */
int custos_hex_decode(const char *hex, uint8_t *out, size_t out_size);
/* Big-endian integers of 1..8 bytes: put writes them at p and returns p + bytes. */
uint8_t *custos_put_be(uint8_t *p, uint64_t v, unsigned bytes);
uint64_t custos_get_be(const uint8_t *p, unsigned bytes);
/* Returns a malloc'ed NUL-terminated base64 string (caller frees), or NULL on ENOMEM. */
char *custos_base64_encode(const uint8_t *in, size_t size);
/* Decodes strict base64 (padding required, no whitespace). Caller frees *out. */
int custos_base64_decode(const char *in, uint8_t **out, size_t *out_size);

/* ---- bounded byte builder / reader (buf.c) ---------------------------------------------------- */
/* A cursor over a caller's fixed buffer (it never allocates or grows). A writer appends big-endian
 * integers and bytes; a reader takes them off the front of untrusted input. The first put that does
 * not fit, or get that runs past the end, sets a sticky failure flag: every later call does nothing
 * (puts write nothing, gets return zeros / NULL) and returns the same error, so a codec can run all
 * its steps and check custos_buf_ok() once at the end. Each call also returns 0 or a negative errno
 * (-ENOBUFS: a put did not fit, -EBADMSG: a get ran past the input, or a string had no NUL) for a
 * parser that wants to name the field that was short.
 *
 *     uint8_t out[8];
 *     struct custos_buf b;
 *     custos_buf_init(&b, out, sizeof(out));
 *     custos_buf_put_u32(&b, 7);
 *     custos_buf_put_u32(&b, 9);
 *     if (!custos_buf_ok(&b)) ...       // custos_buf_len(&b) == 8
 *
 *     struct custos_buf r;
 *     custos_buf_reader(&r, in, in_size);
 *     custos_buf_get_u32(&r, &a);
 *     custos_buf_get_bytes_u16(&r, &name, &name_size);  // name points into in
 *     if (!custos_buf_done(&r)) ...     // short, or bytes left over
 *
 * The structure holds no secret of its own; wiping the storage is the caller's. */
struct custos_buf {
    uint8_t *wdata;      /* writer: the storage (NULL for a reader) */
    const uint8_t *data; /* the bytes written so far, or the reader's input */
    size_t size;         /* capacity (writer) or input size (reader) */
    size_t pos;          /* bytes written, or read */
    bool failed;         /* sticky: a put overflowed or a get underflowed */
};
/* A writer over storage[0..size). */
void custos_buf_init(struct custos_buf *b, void *storage, size_t size);
/* A reader over data[0..size) (not copied: data must outlive the reader). */
void custos_buf_reader(struct custos_buf *r, const void *data, size_t size);
/* false once any put or get failed. */
bool custos_buf_ok(const struct custos_buf *b);
/* A reader that did not fail and consumed all its input. */
bool custos_buf_done(const struct custos_buf *b);
/* Bytes written (writer) or read (reader) so far. */
size_t custos_buf_len(const struct custos_buf *b);
/* Room left (writer) or unread bytes (reader); 0 after a failure. */
size_t custos_buf_left(const struct custos_buf *b);

int custos_buf_put_u8(struct custos_buf *b, uint8_t v);
int custos_buf_put_u16(struct custos_buf *b, uint16_t v);
int custos_buf_put_u32(struct custos_buf *b, uint32_t v);
int custos_buf_put_u64(struct custos_buf *b, uint64_t v);
/* size raw bytes (data may be NULL when size is 0). */
int custos_buf_put(struct custos_buf *b, const void *data, size_t size);
/* A length-prefixed byte string: u16 (or u32) big-endian size, then the bytes. -ENOBUFS also when
 * size does not fit the prefix. */
int custos_buf_put_bytes_u16(struct custos_buf *b, const void *data, size_t size);
int custos_buf_put_bytes_u32(struct custos_buf *b, const void *data, size_t size);
/* The string and its terminating NUL. */
int custos_buf_put_str0(struct custos_buf *b, const char *s);
/* Reserves size bytes to fill in later (e.g. a length known only at the end); *out points at them,
 * or is NULL on failure. */
int custos_buf_reserve(struct custos_buf *b, size_t size, uint8_t **out);

int custos_buf_get_u8(struct custos_buf *r, uint8_t *out);
int custos_buf_get_u16(struct custos_buf *r, uint16_t *out);
int custos_buf_get_u32(struct custos_buf *r, uint32_t *out);
int custos_buf_get_u64(struct custos_buf *r, uint64_t *out);
/* Copies size bytes into out (zeroed on failure). */
int custos_buf_get(struct custos_buf *r, void *out, size_t size);
/* Points *out at the next size bytes of the input without copying (NULL on failure). */
int custos_buf_get_ptr(struct custos_buf *r, size_t size, const uint8_t **out);
/* A length-prefixed byte string; *out points into the input, *out_size is its length. */
int custos_buf_get_bytes_u16(struct custos_buf *r, const uint8_t **out, size_t *out_size);
int custos_buf_get_bytes_u32(struct custos_buf *r, const uint8_t **out, size_t *out_size);
/* A NUL-terminated string; *out points into the input (the NUL is consumed). -EBADMSG when no NUL
 * is left in the input. */
int custos_buf_get_str0(struct custos_buf *r, const char **out);

/* ---- crypto (crypto.c) ---------------------------------------------------------------------- */
#define CUSTOS_SHA256_SIZE 32
#define CUSTOS_AEAD_KEY_SIZE 32
#define CUSTOS_AEAD_NONCE_SIZE 12
#define CUSTOS_AEAD_TAG_SIZE 16
#define CUSTOS_P256_PUB_SIZE 33   /* SEC1 compressed */
#define CUSTOS_PLATFORM_ID_LEN 66 /* hex digits */
#define CUSTOS_X25519_SIZE 32

/* Fetches the algorithms (once per process) and makes this thread's contexts: optional (the first
 * call of any function below does it), so a daemon can fail at start rather than at a request. */
int custos_crypto_init(void);
int custos_sha256(const void *data, size_t size, uint8_t out[CUSTOS_SHA256_SIZE]);
int custos_hmac_sha256(const uint8_t *key, size_t key_size, const void *data, size_t size,
                       uint8_t out[CUSTOS_SHA256_SIZE]);
int custos_hkdf_sha256(const uint8_t *ikm, size_t ikm_size, const uint8_t *salt, size_t salt_size, const uint8_t *info,
                       size_t info_size, uint8_t *out, size_t out_size);
int custos_random(void *out, size_t size);
/* AES-256-GCM. out receives size bytes of ciphertext followed by the 16-byte tag. */
int custos_aead_seal(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_size, const void *in,
                     size_t size, uint8_t *out);
/* in_size includes the tag; out receives in_size-16 bytes. -EBADMSG when authentication fails. */
int custos_aead_open(const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_size,
                     const uint8_t *in, size_t in_size, uint8_t *out);

/* ECDSA P-256 key (an OpenSSL EVP_PKEY underneath). */
typedef struct custos_p256 custos_p256;
/* Derives a valid private key deterministically from seed (reduced mod n-1, plus 1). */
int custos_p256_from_seed(const uint8_t *seed, size_t seed_size, custos_p256 **out);
int custos_p256_from_public(const uint8_t pub[CUSTOS_P256_PUB_SIZE], custos_p256 **out);
int custos_p256_public(const custos_p256 *key, uint8_t out[CUSTOS_P256_PUB_SIZE]);
/* DER signature of SHA-256(data); sig must hold 72 bytes. */
int custos_p256_sign(const custos_p256 *key, const void *data, size_t size, uint8_t *sig, size_t *sig_size);
/* 0 when valid, -EBADMSG when not. */
int custos_p256_verify(const custos_p256 *key, const void *data, size_t size, const uint8_t *sig, size_t sig_size);
/* Verifies with the compressed public key pub; the last 16 keys are kept built (quotes of a few
 * platforms are verified again and again). -EBADMSG for a bad key or signature. */
int custos_p256_verify_public(const uint8_t pub[CUSTOS_P256_PUB_SIZE], const void *data, size_t size,
                              const uint8_t *sig, size_t sig_size);
void custos_p256_free(custos_p256 *key);

int custos_x25519_keypair(uint8_t priv[32], uint8_t pub[32]);
int custos_x25519(const uint8_t priv[32], const uint8_t peer_pub[32], uint8_t shared[32]);
/* One side of an exchange with a key used once: a new key pair (public half in pub) and the shared
 * secret with peer_pub, without the private half ever leaving OpenSSL. */
int custos_x25519_ephemeral(const uint8_t peer_pub[32], uint8_t pub[32], uint8_t shared[32]);
/* The same with this process's own key pair, made at first use and kept in memory only (one scalar
 * multiplication per call instead of two). */
int custos_x25519_process(const uint8_t peer_pub[32], uint8_t pub[32], uint8_t shared[32]);

/* ---- TLS identities (x509.c) ---------------------------------------------------------------- */
typedef struct evp_pkey_st EVP_PKEY;
/* A new EC P-256 key. Caller frees with EVP_PKEY_free. */
int custos_key_generate(EVP_PKEY **out);
/* PKCS#8 PEM of a private key; caller wipes and frees. */
int custos_key_to_pem(EVP_PKEY *key, char **out);
/* Reads a PEM private key; only RSA >= 2048, EC P-256/P-384 and Ed25519 are accepted. */
int custos_key_from_pem(const char *pem, size_t size, EVP_PKEY **out, char *err, size_t err_size);
/* Key hash: SHA-256 of the DER SubjectPublicKeyInfo. */
int custos_key_hash(EVP_PKEY *key, uint8_t out[CUSTOS_SHA256_SIZE]);
int custos_cert_key_hash(const uint8_t *der, size_t size, uint8_t out[CUSTOS_SHA256_SIZE]);
int custos_cert_pem_key_hash(const char *pem, uint8_t out[CUSTOS_SHA256_SIZE]);
/* Signature of SHA-256(data) with an identity key (DER; sig must hold 512 bytes). */
int custos_key_sign(EVP_PKEY *key, const void *data, size_t size, uint8_t *sig, size_t *sig_size);
/* DER SubjectPublicKeyInfo of a key (at most out_cap bytes). */
int custos_key_spki(EVP_PKEY *key, uint8_t *out, size_t out_cap, size_t *out_size);
/* Verifies sig over data with the key in a DER SubjectPublicKeyInfo: 0, or -EBADMSG. */
int custos_spki_verify(const uint8_t *spki, size_t spki_size, const void *data, size_t size, const uint8_t *sig,
                       size_t sig_size);
/* Self-signed X.509 certificate (10 years) with CN and DNS/IP subject alternative names; caller frees. */
int custos_cert_self_signed(EVP_PKEY *key, const char *common_name, const char *const *alt_names, size_t alt_count,
                            char **out_pem);

/* ---- files (file.c) ------------------------------------------------------------------------- */
/* Test hook: called between the steps of custos_write_file_atomic (1: temp written, 2: temp
 * fsynced, 3: renamed, 4: dir fsynced). */
extern void (*custos_atomic_write_hook)(int step);
/* Crash-safe replace: temp file (O_EXCL|O_NOFOLLOW, mode), write, fsync, rename, fsync dir. */
int custos_write_file_atomic(const char *path, const void *data, size_t size, unsigned mode);
/* The same, but never replaces: -EEXIST (and nothing left behind) when path exists by the time the
 * file is moved there, so two processes creating the same file cannot overwrite each other. */
int custos_write_file_new(const char *path, const void *data, size_t size, unsigned mode);
/* rename(from, to), then fsync of to's directory: the rename survives a crash once it returns 0. */
int custos_rename_durable(const char *from, const char *to);
/* Reads a whole regular file of at most max_size bytes (adds a NUL after the data; caller frees).
 * Refuses symlinks. -EFBIG when larger than max_size. */
int custos_read_file(const char *path, size_t max_size, uint8_t **out, size_t *out_size);
/* mkdir -p with the given mode for created directories. */
int custos_mkdirs(const char *path, unsigned mode);

/* ---- options (options.c) -------------------------------------------------------------------- */
enum custos_opt_type { CUSTOS_OPT_STRING, CUSTOS_OPT_INT, CUSTOS_OPT_BOOL, CUSTOS_OPT_LIST };

/* One row of a declarative option table: flag, env var, default, bounds and help. */
struct custos_option {
    const char *flag; /* long flag without dashes, e.g. "socket" */
    char short_flag;  /* 0 for none */
    const char *env;  /* environment variable(s), "A|B" for alternatives, or NULL */
    enum custos_opt_type type;
    const char *def;    /* default as text, or NULL */
    long long min, max; /* bounds for CUSTOS_OPT_INT */
    const char *metavar;
    const char *help;
    void *out; /* const char ** | long long * | bool * | struct custos_strlist * */
};

struct custos_strlist {
    const char **items;
    size_t count;
};
void custos_strlist_free(struct custos_strlist *list);

/* Applies defaults, then env vars, then flags. Positional arguments are collected in order into
 * positional (may be NULL when none are allowed). Returns 0, 1 when --help was printed, or -EINVAL
 * after printing an error naming the option. */
int custos_options_parse(const char *prog, const char *summary, struct custos_option *opts, size_t count, int argc,
                         char **argv, struct custos_strlist *positional);
void custos_options_help(FILE *f, const char *prog, const char *summary, const struct custos_option *opts,
                         size_t count);

/* ---- JSON / YAML (json.c, yaml.c) ----------------------------------------------------------- */
#define CUSTOS_YAML_MAX_DEPTH 64
#define CUSTOS_YAML_MAX_SIZE (4u << 20)
/* Parses YAML (one document) into a jansson tree. Anchors/aliases and tags are refused; depth and
 * size bounded. Error text names line and column. Caller frees *out with json_decref. */
int custos_yaml_parse(const char *text, size_t size, json_t **out, char *err, size_t err_size);
/* Makes jansson wipe every block it frees (parsed strings, object keys, dump buffers), so secrets that
 * passed through a JSON tree leave no copies in freed memory. Call once at the start of main, before
 * other threads start (idempotent; blocks allocated before the call are wiped too). A string returned
 * by json_dumps is still an ordinary malloc block: callers free() it and wipe it themselves first. */
void custos_json_wipe_init(void);
/* Test hook: called by jansson's free, after the wipe and before free(), with the block and its size. */
extern void (*custos_json_free_hook)(const void *ptr, size_t size);
/* Strict JSON parse (no duplicate keys, bounded size/depth). */
int custos_json_parse(const char *text, size_t size, json_t **out, char *err, size_t err_size);
/* Field `name` of obj as base64 of min..max bytes into out (*out_size, may be NULL, gets the length).
 * -EINVAL with err naming the field and the problem (missing, not a string, not base64, length). */
int custos_json_b64_bytes(const json_t *obj, const char *name, uint8_t *out, size_t min, size_t max, size_t *out_size,
                          char *err, size_t err_size);

/* ---- quotes (quote.c) ----------------------------------------------------------------------- */
#define CUSTOS_REPORT_DATA_SIZE 64
#define CUSTOS_MEASUREMENT_SIZE 32
#define CUSTOS_QUOTE_MAGIC "CUSTOS-QUOTE-V1"

enum custos_platform_kind { CUSTOS_PLATFORM_SIM = 1, CUSTOS_PLATFORM_TPM2 = 2, CUSTOS_PLATFORM_SGX = 3 };
const char *custos_platform_kind_name(int kind);
int custos_platform_kind_parse(const char *name);

/* What a quote binds; signed by the platform identity key. */
struct custos_quote {
    uint8_t platform_pub[CUSTOS_P256_PUB_SIZE];
    uint8_t kind;
    uint8_t measurement[CUSTOS_MEASUREMENT_SIZE];
    uint32_t tcb;
    uint8_t debug;
    uint8_t report_data[CUSTOS_REPORT_DATA_SIZE];
    uint32_t uid; /* the caller's user ID, as the kernel reported it to lasd */
    uint8_t sig[80];
    size_t sig_size;
};
#define CUSTOS_QUOTE_BODY_SIZE                                                                                         \
    (16 + CUSTOS_P256_PUB_SIZE + 1 + CUSTOS_MEASUREMENT_SIZE + 4 + 1 + CUSTOS_REPORT_DATA_SIZE + 4)

void custos_quote_body(const struct custos_quote *q, uint8_t out[CUSTOS_QUOTE_BODY_SIZE]);
/* Parses the signed body (no signature check). Error text names the field. */
int custos_quote_body_parse(const uint8_t *body, size_t size, struct custos_quote *q, char *err, size_t err_size);
/* JSON form: {"format":"custos-quote-v1","body":B64,"signature":B64}. Caller json_decref's. */
json_t *custos_quote_to_json(const struct custos_quote *q);
int custos_quote_from_json(const json_t *j, struct custos_quote *q, char *err, size_t err_size);
/* Only checks the signature against the platform key in the quote. */
int custos_quote_verify_signature(const struct custos_quote *q);
void custos_platform_id(const uint8_t pub[CUSTOS_P256_PUB_SIZE], char out[CUSTOS_PLATFORM_ID_LEN + 1]);
int custos_platform_id_parse(const char *id, uint8_t pub[CUSTOS_P256_PUB_SIZE]);

/* Trust policy applied to a quote. */
struct custos_quote_policy {
    const char **platforms; /* allowed platform IDs */
    size_t platform_count;
    const uint8_t (*measurements)[CUSTOS_MEASUREMENT_SIZE];
    size_t measurement_count;
    const uint8_t *report_data; /* expected report data, or NULL */
    uint32_t min_tcb;
    bool trust_any_platform; /* --only_for_testing-trust-any */
    bool allow_debug;        /* --only_for_testing-debug */
};
/* Full verification: signature, then platform, measurement, debug, TCB and report data.
 * -EBADMSG/-EPERM with a message naming the failing check (and both values). */
int custos_quote_check(const struct custos_quote *q, const struct custos_quote_policy *pol, char *err, size_t err_size);

/* ---- LAS protocol (las_proto.c) ------------------------------------------------------------- */
#define CUSTOS_LAS_MAX_MSG 4096
enum custos_las_op { CUSTOS_LAS_OP_QUOTE = 1, CUSTOS_LAS_OP_SEAL_KEY = 2, CUSTOS_LAS_OP_INFO = 3 };
#define CUSTOS_LAS_DEFAULT_SOCKET "/run/custos/las.sock"
/* -EINVAL when socket_path is not a path (e.g. an IP address, the reference's SCONE_LAS_ADDR form),
 * -ENAMETOOLONG; err says what to set. */
int custos_las_path_check(const char *socket_path, char *err, size_t err_size);
#define CUSTOS_SEAL_KEY_SIZE 32

/* ---- report-data bindings (binding.c) ------------------------------------------------------- */
#define CUSTOS_ATTESTATION_NONCE_MAX 32
/* A CAS's attestation: key hash of its TLS key (32 bytes) || SHA-256("custos-attestation-v1" ||
 * nonce), nonce 1..CUSTOS_ATTESTATION_NONCE_MAX bytes. -1 on bad arguments. */
int custos_attestation_report_data(const uint8_t key_hash[32], const uint8_t *nonce, size_t nonce_size,
                                   uint8_t out[CUSTOS_REPORT_DATA_SIZE]);

/* The one decoder of measurement lists (policies, allow-lists, --measurement): `count` strings of 64
 * hex digits into out. -1 with *bad (may be NULL) = the index of the first that is not. */
int custos_measurements_decode(const char *const *hex, size_t count, uint8_t (*out)[CUSTOS_MEASUREMENT_SIZE],
                               size_t *bad);

/* Client: asks the lasd at socket_path for a quote over report_data. */
int custos_las_quote(const char *socket_path, const uint8_t report_data[CUSTOS_REPORT_DATA_SIZE],
                     struct custos_quote *out, char *err, size_t err_size);
/* A client that keeps its connection to lasd open between requests (reconnects when needed).
 * Not thread-safe: one per thread. Free with custos_las_client_free (accepts NULL). */
struct custos_las_client;
int custos_las_client_open(const char *socket_path, struct custos_las_client **out);
int custos_las_client_quote(struct custos_las_client *c, const uint8_t report_data[CUSTOS_REPORT_DATA_SIZE],
                            struct custos_quote *out, char *err, size_t err_size);
void custos_las_client_free(struct custos_las_client *c);
/* Client: asks for this process's seal key for label (<= 64 bytes). Caller wipes out. */
int custos_las_seal_key(const char *socket_path, const char *label, uint8_t out[CUSTOS_SEAL_KEY_SIZE], char *err,
                        size_t err_size);
/* Client: platform ID, kind and TCB of a lasd, as JSON. Caller json_decref's. */
int custos_las_info(const char *socket_path, json_t **out, char *err, size_t err_size);
/* Framing: u32 big-endian length then payload; both sides bound the length. */
int custos_frame_write(int fd, const void *data, size_t size);
int custos_frame_read(int fd, uint8_t *buf, size_t cap, size_t *size);
/* The payload length of the first complete frame in buf[0..got), CUSTOS_FRAME_INCOMPLETE when more
 * bytes are needed, CUSTOS_FRAME_OVERSIZE when its length is over CUSTOS_LAS_MAX_MSG. */
#define CUSTOS_FRAME_INCOMPLETE (-2)
#define CUSTOS_FRAME_OVERSIZE (-1)
long custos_frame_split(const uint8_t *buf, size_t got);

/* One request payload, checked: op byte, then its data (quote: 64 bytes of report data; seal key: a
 * label of 1..64 printable ASCII bytes without spaces; info: nothing). data points into the
 * payload. -EINVAL with the problem in err (the same text lasd answers). */
struct custos_las_request {
    uint8_t op;
    const uint8_t *data;
    size_t data_size;
};
int custos_las_request_parse(const uint8_t *payload, size_t size, struct custos_las_request *out, char *err,
                             size_t err_size);
/* One answer payload: status byte 0 and the answer (returns 0, with out and out_size the bytes
 * after the status byte), or status 1 and lasd's message (-EPROTO, err = "LAS refused: " and the
 * message with unprintable bytes shown as '?'); anything else is malformed (-EPROTO, named). */
int custos_las_answer_parse(const uint8_t *payload, size_t size, const uint8_t **out, size_t *out_size, char *err,
                            size_t err_size);
/* The answer of an ok status, per op: a quote (body and signature), a seal key (exactly 32 bytes;
 * caller wipes out), the info JSON (caller json_decref's). -EPROTO/-EINVAL naming the problem. */
int custos_las_answer_quote(const uint8_t *answer, size_t size, struct custos_quote *out, char *err, size_t err_size);
int custos_las_answer_seal_key(const uint8_t *answer, size_t size, uint8_t out[CUSTOS_SEAL_KEY_SIZE], char *err,
                               size_t err_size);
int custos_las_answer_info(const uint8_t *answer, size_t size, json_t **out, char *err, size_t err_size);

/* ---- cas-run's protocol with CAS (run_proto.c; docs/design.md "cas-run: the attested launcher") --- */
#define CUSTOS_RUN_MAX_WORDS 64
#define CUSTOS_RUN_MAX_WORD 4096
#define CUSTOS_RUN_MAX_FILES 64
#define CUSTOS_RUN_MAX_AGE 600 /* seconds a request stays valid */
struct custos_run_file {
    unsigned arg; /* index of the command word that named the file (1..) */
    uint8_t sha256[CUSTOS_SHA256_SIZE];
};
/* POST /v1/run's body, checked: {"service": "SESSION/SERVICE", "request": R, "quote": Q}. */
struct custos_run_request {
    char session[129], service[129];
    const json_t *request; /* R, borrowed from the body */
    long long time;
    uint8_t key[32]; /* the launcher's X25519 public key */
    char cas_key_hash[65];
    uint8_t program[CUSTOS_MEASUREMENT_SIZE];
    const json_t *argv; /* array of strings, borrowed */
    struct custos_run_file files[CUSTOS_RUN_MAX_FILES];
    size_t file_count;
    struct custos_quote quote; /* parsed, signature not yet checked */
};
/* Strict: unknown fields, wrong types, bad sizes are -EINVAL with err naming the field. */
int custos_run_request_parse(const json_t *body, struct custos_run_request *out, char *err, size_t err_size);
/* salt = SHA-256(R dumped with sorted keys, compact); report data = SHA-256("custos-run-v1\0" || that
 * dump) || 32 zero bytes. */
int custos_run_binding(const json_t *request, uint8_t salt[CUSTOS_SHA256_SIZE],
                       uint8_t report_data[CUSTOS_REPORT_DATA_SIZE]);
/* CAS: encrypts config (plaintext JSON text) to the launcher's key: {"key","nonce","config"}. */
int custos_run_seal(const uint8_t launcher_pub[32], const uint8_t salt[CUSTOS_SHA256_SIZE], const void *config,
                    size_t size, json_t **answer);
/* cas-run: opens CAS's answer with its private key; *config NUL-terminated, caller wipes and frees. */
int custos_run_open(const uint8_t launcher_priv[32], const uint8_t salt[CUSTOS_SHA256_SIZE], const json_t *answer,
                    uint8_t **config, size_t *size, char *err, size_t err_size);
