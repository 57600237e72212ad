/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of casd's request handling, in process: the route table's central checks (every owner
 * route, listed from the table itself), the attestation handler and a whole backup registration
 * (primary and backup CAS) against a fake LAS. The fake LAS signs quotes with a key derived from a
 * seed, as lasd does with its platform key: no lasd can be embedded in a unit test. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "casd.h"

/* ---- a fake LAS ------------------------------------------------------------------------------ */

struct fake_las {
    custos_p256 *key;
    uint8_t seal[32];
    uint8_t measurement[32];
    uint32_t tcb;
    volatile int stall_ms; /* > 0: the next quote takes this long */
    int quotes;
};

static int fake_quote(void *ctx, const uint8_t rd[CUSTOS_REPORT_DATA_SIZE], struct custos_quote *q, char *err,
                      size_t err_size)
{
    struct fake_las *f = ctx;
    uint8_t body[CUSTOS_QUOTE_BODY_SIZE];
    if (f->stall_ms)
        usleep((useconds_t)f->stall_ms * 1000u);
    memset(q, 0, sizeof(*q));
    custos_p256_public(f->key, q->platform_pub);
    q->kind = 1; /* sim */
    memcpy(q->measurement, f->measurement, 32);
    q->tcb = f->tcb;
    memcpy(q->report_data, rd, CUSTOS_REPORT_DATA_SIZE);
    q->uid = 0;
    custos_quote_body(q, body);
    f->quotes++;
    if (custos_p256_sign(f->key, body, sizeof(body), q->sig, &q->sig_size) < 0) {
        snprintf(err, err_size, "fake LAS: cannot sign");
        return -EIO;
    }
    return 0;
}

static int fake_seal_key(void *ctx, const char *label, uint8_t out[32], char *err, size_t err_size)
{
    struct fake_las *f = ctx;
    (void)label;
    (void)err;
    (void)err_size;
    memcpy(out, f->seal, 32);
    return 0;
}

static const struct cas_las_ops fake_ops = {fake_quote, fake_seal_key};

static void fake_init(struct fake_las *f, const char *seed)
{
    memset(f, 0, sizeof(*f));
    assert_int_equal(custos_p256_from_seed((const uint8_t *)seed, strlen(seed), &f->key), 0);
    custos_sha256(seed, strlen(seed), f->seal);
    memset(f->measurement, 0xAB, 32); /* the same casd binary on every node */
    f->tcb = 1;
}

/* ---- requests -------------------------------------------------------------------------------- */

struct call {
    struct http_request req;
    struct http_response resp;
    char *text;
};

static void call(struct cas_state *st, struct call *c, const char *method, const char *url, const char *caller,
                 json_t *body)
{
    memset(c, 0, sizeof(*c));
    c->req.method = method;
    c->req.url = url;
    c->resp.status = 200;
    if (caller) {
        c->req.has_caller = true;
        snprintf(c->req.caller, sizeof(c->req.caller), "%s", caller);
    }
    if (body) {
        c->text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        c->req.body = c->text;
        c->req.body_size = strlen(c->text);
    }
    cas_dispatch(st, &c->req, &c->resp);
    assert_non_null(c->resp.body);
}

static const char *err_code(const struct call *c)
{
    return json_string_value(json_object_get(json_object_get(c->resp.body, "error"), "code"));
}

static void call_done(struct call *c)
{
    json_decref(c->resp.body);
    json_decref(c->req.test_args);
    free(c->text);
}

#define M_AB "abababababababababababababababababababababababababababababababab"
#define M_CD "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
#define OWNER "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
#define STRANGER "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"

/* ---- the route table --------------------------------------------------------------------------- */

static void test_every_owner_route_is_guarded(void **state)
{
    (void)state;
    static struct cas_state st; /* no database: no handler may be reached */
    char url[128];
    size_t owner_routes = 0;
    for (size_t i = 0; i < cas_route_count; i++) {
        const struct cas_route *rt = &cas_routes[i];
        if (!(rt->flags & ROUTE_OWNER))
            continue;
        assert_true(rt->flags & ROUTE_PRIMARY);
        owner_routes++;
        snprintf(url, sizeof(url), "%s%s", rt->path, rt->flags & ROUTE_PREFIX ? "x" : "");
        struct call c;
        atomic_store(&st.pri.provisioned, false);
        call(&st, &c, rt->method, url, OWNER, NULL);
        assert_int_equal(c.resp.status, 409);
        call_done(&c);
        strcpy(st.pri.owner_hash, OWNER);
        atomic_store(&st.pri.provisioned, true);
        call(&st, &c, rt->method, url, NULL, NULL);
        assert_int_equal(c.resp.status, 401);
        call_done(&c);
        call(&st, &c, rt->method, url, STRANGER, json_pack("{s:s}", "x", "y"));
        assert_int_equal(c.resp.status, 403);
        assert_string_equal(err_code(&c), "forbidden");
        call_done(&c);
    }
    assert_true(owner_routes >= 8);
}

#define REGISTRAR "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"

/* Whether a route is one of the three a registrar may call. */
static bool registrar_allowed(const struct cas_route *rt)
{
    static const char *const allowed[][2] = {{"POST", "/v1/backups/register"},
                                             {"POST", "/v1/backups/confirm"},
                                             {"GET", "/v1/backups"}};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (!strcmp(rt->method, allowed[i][0]) && !strcmp(rt->path, allowed[i][1]))
            return true;
    return false;
}

/* Every route of the table, as a registrar: refused (403 registrar_only, saying what it may do) on
 * each owner route but the three it may call, which it passes. A new route is covered by itself: an
 * owner route is refused unless it is one of the three, and a route open to all must be added to the
 * list of public ones here, on purpose. */
static void test_registrar_on_every_route(void **state)
{
    (void)state;
    static struct cas_state st; /* no database: a refused call never reaches a handler */
    static const char *const public_routes[] = {"GET /healthz", "GET /v1/attestation", "POST /v1/provision",
                                                "POST /v1/run"};
    /* any client identity; the session's access_policy decides in the handler */
    static const char *const client_routes[] = {"GET /v1/sessions", "PUT /v1/sessions/", "GET /v1/sessions/"};
    strcpy(st.pri.owner_hash, OWNER);
    strcpy(st.pri.registrars[0], REGISTRAR);
    st.pri.registrar_count = 1;
    atomic_store(&st.pri.provisioned, true);
    size_t refused = 0, passed = 0;
    for (size_t i = 0; i < cas_route_count; i++) {
        const struct cas_route *rt = &cas_routes[i];
        char url[128], name[160];
        struct call c;
        if (!(rt->flags & ROUTE_PRIMARY))
            continue;
        snprintf(url, sizeof(url), "%s%s", rt->path, rt->flags & ROUTE_PREFIX ? "x" : "");
        snprintf(name, sizeof(name), "%s %s", rt->method, rt->path);
        assert_int_equal(!!(rt->flags & ROUTE_REGISTRAR), registrar_allowed(rt));
        if (rt->flags & ROUTE_CLIENT) {
            bool known = false;
            for (size_t k = 0; k < sizeof(client_routes) / sizeof(client_routes[0]); k++)
                known |= strcmp(client_routes[k], name) == 0;
            if (!known || (rt->flags & ROUTE_OWNER))
                fail_msg("route %s takes any client identity: add it to client_routes only if it must", name);
            call(&st, &c, rt->method, url, NULL, NULL); /* without a certificate: 401 before the handler */
            assert_int_equal(c.resp.status, 401);
            call_done(&c);
            continue;
        }
        if (!(rt->flags & ROUTE_OWNER)) {
            bool known = false;
            for (size_t k = 0; k < sizeof(public_routes) / sizeof(public_routes[0]); k++)
                known |= strcmp(public_routes[k], name) == 0;
            if (!known)
                fail_msg("route %s is open to every caller: add it to public_routes only if it must be", name);
            continue;
        }
        call(&st, &c, rt->method, url, REGISTRAR, NULL);
        if (registrar_allowed(rt)) { /* past the guard: a body route then wants its body */
            assert_int_not_equal(c.resp.status, 401);
            assert_int_not_equal(c.resp.status, 403);
            assert_int_equal(c.resp.status, rt->flags & ROUTE_BODY ? 400 : 200);
            passed++;
        } else {
            if (c.resp.status != 403)
                fail_msg("a registrar got status %u on %s", c.resp.status, name);
            assert_string_equal(err_code(&c), "registrar_only");
            const char *msg = json_string_value(json_object_get(json_object_get(c.resp.body, "error"), "message"));
            assert_non_null(strstr(msg, REGISTRAR " is a registrar: it may only register backups and list them"));
            refused++;
        }
        call_done(&c);
        /* the same call from an identity that is no registrar: the owner's plain refusal */
        call(&st, &c, rt->method, url, STRANGER, NULL);
        assert_int_equal(c.resp.status, 403);
        assert_string_equal(err_code(&c), "forbidden");
        call_done(&c);
    }
    assert_int_equal(passed, 3);
    assert_true(refused >= 8);
}

static void test_bodies_methods_and_modes(void **state)
{
    (void)state;
    static struct cas_state st;
    static struct cas_backup_session session;
    strcpy(st.pri.owner_hash, OWNER);
    atomic_store(&st.pri.provisioned, true);
    struct call c;
    for (size_t i = 0; i < cas_route_count; i++) {
        const struct cas_route *rt = &cas_routes[i];
        char url[128];
        snprintf(url, sizeof(url), "%s%s", rt->path, rt->flags & ROUTE_PREFIX ? "x" : "");
        st.backup = rt->flags & ROUTE_BACKUP ? &session : NULL;
        if (rt->flags & ROUTE_BODY) { /* a body route without a body: 400 before the handler */
            call(&st, &c, rt->method, url, OWNER, NULL);
            assert_int_equal(c.resp.status, 400);
            call_done(&c);
        } else { /* and a route without a body refuses one */
            call(&st, &c, rt->method, url, OWNER, json_pack("{s:i}", "x", 1));
            assert_int_equal(c.resp.status, 400);
            assert_string_equal(err_code(&c), "unexpected_body");
            call_done(&c);
        }
    }
    st.backup = NULL;
    call(&st, &c, "PATCH", "/v1/backups", OWNER, NULL);
    assert_int_equal(c.resp.status, 405);
    call_done(&c);
    call(&st, &c, "GET", "/v1/backup/request", NULL, NULL); /* a backup route: not on a primary */
    assert_int_equal(c.resp.status, 404);
    call_done(&c);
    st.backup = &session;
    call(&st, &c, "GET", "/v1/secrets/x", OWNER, NULL); /* a primary route: not on a backup */
    assert_int_equal(c.resp.status, 404);
    call_done(&c);
}

/* ---- the attestation handler ------------------------------------------------------------------- */

static struct fake_las g_gate_las;

static void attest_call(struct cas_state *st, struct call *c, const char *nonce_hex)
{
    memset(c, 0, sizeof(*c));
    c->req.method = "GET";
    c->req.url = "/v1/attestation";
    c->req.test_args = json_pack("{s:s}", "nonce", nonce_hex);
    c->resp.status = 200;
    cas_dispatch(st, &c->req, &c->resp);
}

static void test_attestation(void **state)
{
    (void)state;
    static struct cas_state st;
    struct call c;
    uint8_t kh[32], nonce[16], rd[CUSTOS_REPORT_DATA_SIZE];
    struct custos_quote q;
    char err[256];
    fake_init(&g_gate_las, "gate node");
    assert_int_equal(cas_las_gate_start(&fake_ops, &g_gate_las, "fake LAS"), 0);
    memset(kh, 0x11, sizeof(kh));
    custos_hex_encode(kh, 32, st.tls.key_hash, false);
    st.tls.cert_pem = "CERT";
    strcpy(st.node.platform_kind, "sim");
    memset(nonce, 0x5c, sizeof(nonce));
    attest_call(&st, &c, "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c");
    assert_int_equal(c.resp.status, 200);
    assert_int_equal(custos_quote_from_json(json_object_get(c.resp.body, "quote"), &q, err, sizeof(err)), 0);
    assert_int_equal(custos_quote_verify_signature(&q), 0);
    custos_attestation_report_data(kh, nonce, sizeof(nonce), rd);
    assert_memory_equal(q.report_data, rd, sizeof(rd)); /* binds the key hash and the nonce */
    call_done(&c);
    /* a bad nonce never reaches the LAS */
    int before = g_gate_las.quotes;
    attest_call(&st, &c, "xyz");
    assert_int_equal(c.resp.status, 400);
    assert_int_equal(g_gate_las.quotes, before);
    call_done(&c);
    /* a stalled LAS: 503, and while it stays stalled, 503 again without waiting for it */
    g_gate_las.stall_ms = 2500;
    for (int i = 0; i < 2; i++) {
        attest_call(&st, &c, "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c");
        assert_int_equal(c.resp.status, 503);
        assert_string_equal(err_code(&c), "las_unavailable");
        call_done(&c);
    }
    g_gate_las.stall_ms = 0;
}

/* ---- a whole registration ---------------------------------------------------------------------- */

struct node {
    struct cas_state st;
    struct fake_las las;
};

static char g_dir[256];

static void primary_init(struct node *p)
{
    char err[512];
    uint8_t seal[32], id[CAS_DB_ID_SIZE] = {7}, kh[32];
    struct custos_quote q;
    uint8_t zero[CUSTOS_REPORT_DATA_SIZE] = {0};
    struct cas_state *st = &p->st;
    fake_init(&p->las, "primary node");
    st->node.las_ops = &fake_ops;
    st->node.las_ctx = &p->las;
    pthread_mutex_init(&st->lock, NULL);
    st->cfg.node_name = "n1";
    assert_int_equal(fake_quote(&p->las, zero, &q, err, sizeof(err)), 0);
    cas_node_from_quote(st, &q);
    snprintf(g_dir, sizeof(g_dir), "/tmp/custos-test-api-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    char db[300];
    snprintf(db, sizeof(db), "%s/db", g_dir);
    st->cfg.db_dir = strdup(db);
    assert_int_equal(cas_keystore_path(db, st->pri.keystore_path, sizeof(st->pri.keystore_path)), 0);
    assert_int_equal(custos_random(st->pri.dbkey, 32), 0);
    assert_int_equal(cas_db_create(db, st->pri.dbkey, id, &st->pri.db, err, sizeof(err)), 0);
    struct cas_keystore_entry e = {.tcb = 1, .time = 1};
    strcpy(e.platform_id, st->node.platform_id);
    strcpy(e.kind, "sim");
    strcpy(e.node, "n1");
    strcpy(e.measurement, st->node.measurement_hex); /* as casd creates its own entry */
    st->pri.ks.version = CAS_KS_VERSION;
    st->pri.ks.generation = 1;
    memcpy(st->pri.ks.database_id, id, sizeof(id));
    fake_seal_key(&p->las, "cas-db", seal, err, sizeof(err));
    assert_int_equal(cas_keystore_seal_node(&e, seal), 0);
    assert_int_equal(cas_keystore_wrap(&st->pri.ks, &e, st->pri.dbkey), 0);
    assert_int_equal(cas_keystore_upsert(&st->pri.ks, &e), 0);
    assert_int_equal(cas_keystore_save(st->pri.keystore_path, &st->pri.ks, st->pri.dbkey), 0);
    assert_int_equal(custos_key_generate(&st->tls.key), 0);
    assert_int_equal(custos_key_hash(st->tls.key, kh), 0);
    custos_hex_encode(kh, 32, st->tls.key_hash, false);
    strcpy(st->pri.owner_hash, OWNER);
    atomic_store(&st->pri.provisioned, true);
}

static void test_registration_with_fake_las(void **state)
{
    (void)state;
    static struct node primary, backup;
    char err[512];
    uint8_t got[32];
    struct call c1, c2, c3, c4, c5;
    primary_init(&primary);
    struct cas_state *b = &backup.st;
    fake_init(&backup.las, "backup node");
    b->node.las_ops = &fake_ops;
    b->node.las_ctx = &backup.las;
    b->cfg.node_name = "n2";
    pthread_mutex_init(&b->lock, NULL);
    assert_int_equal(cas_backup_prepare(b), 0);

    /* a platform the owner has not allowed: refused */
    call(b, &c1, "GET", "/v1/backup/request", NULL, NULL);
    assert_int_equal(c1.resp.status, 200);
    call(&primary.st, &c2, "POST", "/v1/backups/register", OWNER, json_pack("{s:O}", "request", c1.resp.body));
    assert_int_equal(c2.resp.status, 403);
    call_done(&c2);
    /* allowed: the owner trusts any platform */
    const char *policy = "{\"allow_debug\":false,\"measurements\":[],\"platforms\":[],\"trust_any_platform\":true}";
    assert_int_equal(cas_db_put(primary.st.pri.db, REC_POLICY, policy, strlen(policy)), 0);
    call(&primary.st, &c2, "POST", "/v1/backups/register", OWNER, json_pack("{s:O}", "request", c1.resp.body));
    assert_int_equal(c2.resp.status, 200);
    call(b, &c3, "POST", "/v1/backup/complete", NULL,
         json_pack("{s:O}", "offer", json_object_get(c2.resp.body, "offer")));
    assert_int_equal(c3.resp.status, 200);
    call(&primary.st, &c4, "POST", "/v1/backups/confirm", OWNER,
         json_pack("{s:O}", "completion", json_object_get(c3.resp.body, "completion")));
    assert_int_equal(c4.resp.status, 200);
    assert_string_equal(json_string_value(json_object_get(c4.resp.body, "node")), "n2");
    uint8_t *audit = NULL;
    size_t audit_size = 0; /* its audit record names who registered it */
    assert_int_equal(cas_db_get(primary.st.pri.db, "audit/00000000000000000000", &audit, &audit_size), 0);
    assert_non_null(strstr((const char *)audit, "\"event\":\"backup registering\""));
    assert_non_null(strstr((const char *)audit, "\"by\":\"" OWNER "\""));
    cas_db_value_free(audit, audit_size);
    /* the backup's entry opens with the backup node's seal key only, to the primary's database key */
    assert_int_equal(primary.st.pri.ks.count, 2);
    assert_null(cas_keystore_find(&primary.st.pri.ks, b->node.platform_id, NULL));
    const struct cas_keystore_entry *e = cas_keystore_find(&primary.st.pri.ks, b->node.platform_id, M_AB);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(c4.resp.body, "measurement")), M_AB);
    assert_int_equal(cas_keystore_open(&primary.st.pri.ks, e, backup.las.seal, got), 0);
    assert_memory_equal(got, primary.st.pri.dbkey, 32);
    assert_int_equal(cas_keystore_open(&primary.st.pri.ks, e, primary.las.seal, got), -EBADMSG);
    /* a retried confirmation changes nothing and says so */
    call(&primary.st, &c5, "POST", "/v1/backups/confirm", OWNER,
         json_pack("{s:O}", "completion", json_object_get(c3.resp.body, "completion")));
    assert_int_equal(c5.resp.status, 200);
    assert_true(json_is_true(json_object_get(c5.resp.body, "already")));
    struct cas_keystore disk;
    assert_int_equal(cas_keystore_load(primary.st.pri.keystore_path, &disk, err, sizeof(err)), 0);
    assert_int_equal(disk.count, 2);
    assert_int_equal(cas_keystore_verify_mac(&disk, primary.st.pri.dbkey), 0);
    cas_keystore_free(&disk);
    call_done(&c1);
    call_done(&c2);
    call_done(&c3);
    call_done(&c4);
    call_done(&c5);
    cas_backup_wipe(b);
    cas_state_wipe(&primary.st);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
}

/* Allowing and denying a registrar: checked input, an audit record with each change, kept in the
 * database (read again at start), and a denial takes effect on the next request. */
static void test_registrar_allow_deny(void **state)
{
    (void)state;
    static struct node primary;
    struct cas_state *st = &primary.st;
    struct call c;
    uint8_t *raw = NULL;
    size_t size = 0;
    primary_init(&primary);
    assert_int_equal(cas_registrars_load(st), 0); /* none stored: none */
    assert_int_equal(st->pri.registrar_count, 0);
    call(st, &c, "GET", "/v1/backups", REGISTRAR, NULL);
    assert_int_equal(c.resp.status, 403);
    assert_string_equal(err_code(&c), "forbidden");
    call_done(&c);
    /* refusals, each named */
    call(st, &c, "POST", "/v1/owner/registrars", OWNER, json_pack("{s:s}", "key_hash", "c2c2"));
    assert_int_equal(c.resp.status, 400);
    assert_string_equal(err_code(&c), "invalid_key_hash");
    call_done(&c);
    call(st, &c, "POST", "/v1/owner/registrars", OWNER,
         json_pack("{s:s}", "key_hash", "g2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"));
    assert_int_equal(c.resp.status, 400);
    assert_string_equal(err_code(&c), "invalid_key_hash");
    call_done(&c);
    call(st, &c, "POST", "/v1/owner/registrars", OWNER, json_pack("{s:s, s:i}", "key_hash", REGISTRAR, "x", 1));
    assert_int_equal(c.resp.status, 400);
    assert_string_equal(err_code(&c), "invalid_request");
    call_done(&c);
    call(st, &c, "POST", "/v1/owner/registrars", OWNER, json_pack("{s:s}", "key_hash", OWNER));
    assert_int_equal(c.resp.status, 400);
    assert_string_equal(err_code(&c), "owner_identity");
    call_done(&c);
    assert_int_equal(cas_db_get(st->pri.db, REC_REGISTRARS, &raw, &size), -ENOENT);
    /* allowed (given in uppercase: stored as casd computes callers' hashes) */
    char upper[65];
    for (size_t i = 0; i < 64; i++)
        upper[i] = REGISTRAR[i] == 'c' ? 'C' : REGISTRAR[i];
    upper[64] = '\0';
    call(st, &c, "POST", "/v1/owner/registrars", OWNER, json_pack("{s:s}", "key_hash", upper));
    assert_int_equal(c.resp.status, 200);
    assert_string_equal(json_string_value(json_object_get(c.resp.body, "allowed")), REGISTRAR);
    call_done(&c);
    assert_int_equal(cas_db_get(st->pri.db, "audit/00000000000000000000", &raw, &size), 0);
    assert_non_null(strstr((const char *)raw, "registrar allowed"));
    assert_non_null(strstr((const char *)raw, REGISTRAR));
    cas_db_value_free(raw, size);
    call(st, &c, "POST", "/v1/owner/registrars", OWNER, json_pack("{s:s}", "key_hash", REGISTRAR));
    assert_int_equal(c.resp.status, 200); /* again: no change, no second audit record */
    assert_true(json_is_true(json_object_get(c.resp.body, "already")));
    call_done(&c);
    assert_int_equal(cas_db_get(st->pri.db, "audit/00000000000000000001", &raw, &size), -ENOENT);
    call(st, &c, "GET", "/v1/backups", REGISTRAR, NULL);
    assert_int_equal(c.resp.status, 200);
    call_done(&c);
    call(st, &c, "GET", "/v1/owner", OWNER, NULL);
    assert_int_equal(c.resp.status, 500); /* no owner record in this test's database ... */
    call_done(&c);
    /* ... read again at start from the database */
    st->pri.registrar_count = 0;
    assert_int_equal(cas_registrars_load(st), 0);
    assert_int_equal(st->pri.registrar_count, 1);
    assert_string_equal(st->pri.registrars[0], REGISTRAR);
    json_t *list = cas_registrars_list(st);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "key_hash")), REGISTRAR);
    json_decref(list);
    /* a registrar cannot deny itself or anyone */
    call(st, &c, "DELETE", "/v1/owner/registrars/" REGISTRAR, REGISTRAR, NULL);
    assert_int_equal(c.resp.status, 403);
    assert_string_equal(err_code(&c), "registrar_only");
    call_done(&c);
    call(st, &c, "DELETE", "/v1/owner/registrars/nothex", OWNER, NULL);
    assert_int_equal(c.resp.status, 400);
    assert_string_equal(err_code(&c), "invalid_key_hash");
    call_done(&c);
    call(st, &c, "DELETE", "/v1/owner/registrars/" STRANGER, OWNER, NULL);
    assert_int_equal(c.resp.status, 404);
    call_done(&c);
    call(st, &c, "DELETE", "/v1/owner/registrars/" REGISTRAR, OWNER, NULL);
    assert_int_equal(c.resp.status, 200);
    call_done(&c);
    assert_int_equal(cas_db_get(st->pri.db, "audit/00000000000000000001", &raw, &size), 0);
    assert_non_null(strstr((const char *)raw, "registrar denied"));
    cas_db_value_free(raw, size);
    /* at once: the next request of that identity is refused */
    call(st, &c, "GET", "/v1/backups", REGISTRAR, NULL);
    assert_int_equal(c.resp.status, 403);
    assert_string_equal(err_code(&c), "forbidden");
    call_done(&c);
    st->pri.registrar_count = 5; /* memory is replaced by what is stored */
    assert_int_equal(cas_registrars_load(st), 0);
    assert_int_equal(st->pri.registrar_count, 0);
    /* a damaged record stops casd at start rather than being read as "no registrars" */
    const char *bad[] = {"{\"registrars\":[{\"key_hash\":\"C2\",\"allowed_at\":1}]}", "{\"registrars\":{}}", "[]",
                         "{\"registrars\":[{\"key_hash\":\"" REGISTRAR "\"}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cas_db_put(st->pri.db, REC_REGISTRARS, bad[i], strlen(bad[i])), 0);
        assert_int_equal(cas_registrars_load(st), -EBADMSG);
    }
    cas_state_wipe(st);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
}

/* One registration of a backup CAS on fake LAS `seed` running measurement m (a new casd build: its
 * seal key differs too). Returns the confirmation's status; *completion (if given) gets the backup's
 * completion, and forge (if given) rewrites it before it is sent. */
static int register_one(struct node *primary, const char *seed, uint8_t m, void (*forge)(struct node *, json_t **),
                        int *status)
{
    static struct node backup;
    struct call c1, c2, c3, c4;
    struct cas_state *b = &backup.st;
    memset(&backup, 0, sizeof(backup));
    fake_init(&backup.las, seed);
    memset(backup.las.measurement, m, 32);
    backup.las.seal[0] ^= m; /* lasd derives the seal key from the caller's measurement */
    b->node.las_ops = &fake_ops;
    b->node.las_ctx = &backup.las;
    b->cfg.node_name = "n2";
    pthread_mutex_init(&b->lock, NULL);
    assert_int_equal(cas_backup_prepare(b), 0);
    call(b, &c1, "GET", "/v1/backup/request", NULL, NULL);
    call(&primary->st, &c2, "POST", "/v1/backups/register", OWNER, json_pack("{s:O}", "request", c1.resp.body));
    assert_int_equal(c2.resp.status, 200);
    call(b, &c3, "POST", "/v1/backup/complete", NULL,
         json_pack("{s:O}", "offer", json_object_get(c2.resp.body, "offer")));
    assert_int_equal(c3.resp.status, 200);
    json_t *completion = json_deep_copy(json_object_get(c3.resp.body, "completion"));
    if (forge)
        forge(primary, &completion);
    call(&primary->st, &c4, "POST", "/v1/backups/confirm", OWNER, json_pack("{s:o}", "completion", completion));
    *status = c4.resp.status;
    int ret = strcmp(err_code(&c4) ? err_code(&c4) : "", "entry_mismatch") == 0 &&
                      strstr(json_string_value(json_object_get(json_object_get(c4.resp.body, "error"), "message")),
                             "measurement " M_CD) == NULL
                  ? -1
                  : 0;
    call_done(&c1);
    call_done(&c2);
    call_done(&c3);
    call_done(&c4);
    cas_backup_wipe(b);
    cas_state_wipe(b); /* its TLS key and certificate: the next call reuses the struct */
    custos_p256_free(backup.las.key);
    return ret;
}

/* A backup whose completion states another measurement than its quote (a valid proof: it holds the key). */
static void forge_measurement(struct node *primary, json_t **completion)
{
    struct backup_completion c;
    char err[256];
    assert_int_equal(backup_completion_from_json(*completion, &c, err, sizeof(err)), 0);
    const struct cas_pending *p = NULL;
    for (size_t i = 0; i < CAS_PENDING_MAX; i++)
        if (primary->st.pri.pending[i].used && !strcmp(primary->st.pri.pending[i].request_id, c.request_id))
            p = &primary->st.pri.pending[i];
    assert_non_null(p);
    memset(c.entry.measurement, 'e', 64);
    assert_int_equal(backup_proof(primary->st.pri.dbkey, p->transcript, &c.entry, c.proof), 0);
    json_decref(*completion);
    *completion = backup_completion_to_json(&c);
}

static const json_t *listed(const struct call *c, const char *platform_id, const char *measurement)
{
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(c->resp.body, "backups"), i, b)
        if (!strcmp(json_string_value(json_object_get(b, "platform_id")), platform_id) &&
            !strcmp(json_string_value(json_object_get(b, "measurement")), measurement))
            return b;
    return NULL;
}

/* Entries by (platform, measurement): an upgrade's new build registers beside the old one, on the
 * primary's own node too; removal by pair, by platform and by measurement, never the current pair. */
static void test_registration_by_measurement(void **state)
{
    (void)state;
    static struct node primary;
    struct call c;
    int status;
    char path[256];
    primary_init(&primary);
    struct cas_state *st = &primary.st;
    const char *policy =
        "{\"allow_debug\":false,\"measurements\":[\"" M_CD "\"],\"platforms\":[],\"trust_any_platform\":true}";
    assert_int_equal(cas_db_put(st->pri.db, REC_POLICY, policy, strlen(policy)), 0);
    char pp[67], bp[67];
    strcpy(pp, st->node.platform_id);
    struct fake_las tmp;
    fake_init(&tmp, "backup node");
    struct custos_quote q;
    uint8_t zero[CUSTOS_REPORT_DATA_SIZE] = {0};
    char err[256];
    assert_int_equal(fake_quote(&tmp, zero, &q, err, sizeof(err)), 0);
    custos_platform_id(q.platform_pub, bp);
    custos_p256_free(tmp.key);

    assert_int_equal(register_one(&primary, "backup node", 0xAB, NULL, &status), 0);
    assert_int_equal(status, 200);
    assert_int_equal(st->pri.ks.count, 2);
    /* the same pair again: replaced, one entry */
    assert_int_equal(register_one(&primary, "backup node", 0xAB, NULL, &status), 0);
    assert_int_equal(status, 200);
    assert_int_equal(st->pri.ks.count, 2);
    /* a completion whose measurement is not its quote's: refused, naming both */
    assert_int_equal(register_one(&primary, "backup node", 0xCD, forge_measurement, &status), 0);
    assert_int_equal(status, 403);
    assert_int_equal(st->pri.ks.count, 2);
    /* the new build on the backup's node and on the primary's own node: beside the old entries */
    assert_int_equal(register_one(&primary, "backup node", 0xCD, NULL, &status), 0);
    assert_int_equal(status, 200);
    assert_int_equal(register_one(&primary, "primary node", 0xCD, NULL, &status), 0);
    assert_int_equal(status, 200);
    assert_int_equal(st->pri.ks.count, 4);
    assert_non_null(cas_keystore_find(&st->pri.ks, pp, M_AB));
    assert_non_null(cas_keystore_find(&st->pri.ks, pp, M_CD));
    assert_non_null(cas_keystore_find(&st->pri.ks, bp, M_AB));
    assert_non_null(cas_keystore_find(&st->pri.ks, bp, M_CD));
    call(st, &c, "GET", "/v1/backups", OWNER, NULL);
    assert_true(json_is_true(json_object_get(listed(&c, pp, M_AB), "current")));
    assert_false(json_is_true(json_object_get(listed(&c, pp, M_CD), "current")));
    assert_false(json_is_true(json_object_get(listed(&c, bp, M_AB), "current")));
    assert_string_equal(json_string_value(json_object_get(c.resp.body, "primary_measurement")), M_AB);
    call_done(&c);

    /* the current pair cannot be removed: not with its platform, not by its measurement */
    uint64_t gen = st->pri.ks.generation;
    snprintf(path, sizeof(path), "/v1/backups/%s", pp);
    call(st, &c, "DELETE", path, OWNER, NULL);
    assert_int_equal(c.resp.status, 409);
    assert_string_equal(err_code(&c), "primary_entry");
    call_done(&c);
    call(st, &c, "DELETE", path, OWNER, NULL);
    c.req.test_args = json_pack("{s:s}", "measurement", M_AB);
    json_decref(c.resp.body);
    c.resp.body = NULL;
    c.resp.status = 200;
    cas_dispatch(st, &c.req, &c.resp);
    assert_int_equal(c.resp.status, 409);
    assert_string_equal(err_code(&c), "primary_entry");
    call_done(&c);
    assert_int_equal(st->pri.ks.count, 4);
    assert_int_equal(st->pri.ks.generation, gen);
    /* another measurement's entry of the primary's platform can; the key rotates */
    memset(&c, 0, sizeof(c));
    c.req.method = "DELETE";
    c.req.url = path;
    c.req.has_caller = true;
    strcpy(c.req.caller, OWNER);
    c.req.test_args = json_pack("{s:s}", "measurement", M_CD);
    c.resp.status = 200;
    cas_dispatch(st, &c.req, &c.resp);
    assert_int_equal(c.resp.status, 200);
    assert_int_equal(json_integer_value(json_object_get(c.resp.body, "count")), 1);
    call_done(&c);
    assert_int_equal(st->pri.ks.count, 3);
    assert_null(cas_keystore_find(&st->pri.ks, pp, M_CD));
    assert_int_equal(st->pri.ks.generation, gen + 1);
    /* prune a measurement: every entry of it but the current pair, one rotation */
    memset(&c, 0, sizeof(c));
    c.req.method = "DELETE";
    c.req.url = "/v1/backups";
    c.req.has_caller = true;
    strcpy(c.req.caller, OWNER);
    c.req.test_args = json_pack("{s:s}", "measurement", M_AB);
    c.resp.status = 200;
    cas_dispatch(st, &c.req, &c.resp);
    assert_int_equal(c.resp.status, 200);
    assert_int_equal(json_integer_value(json_object_get(c.resp.body, "count")), 1);
    call_done(&c);
    assert_int_equal(st->pri.ks.count, 2);
    assert_non_null(cas_keystore_find(&st->pri.ks, pp, M_AB));
    assert_non_null(cas_keystore_find(&st->pri.ks, bp, M_CD));
    assert_int_equal(st->pri.ks.generation, gen + 2);
    /* the remaining node entry still opens to the new key */
    uint8_t got[32];
    fake_init(&tmp, "backup node");
    tmp.seal[0] ^= 0xCD;
    assert_int_equal(cas_keystore_open(&st->pri.ks, cas_keystore_find(&st->pri.ks, bp, M_CD), tmp.seal, got), 0);
    assert_memory_equal(got, st->pri.dbkey, 32);
    custos_p256_free(tmp.key);
    /* by platform: every entry of it */
    snprintf(path, sizeof(path), "/v1/backups/%s", bp);
    call(st, &c, "DELETE", path, OWNER, NULL);
    assert_int_equal(c.resp.status, 200);
    call_done(&c);
    assert_int_equal(st->pri.ks.count, 1);
    /* entries without a measurement (a version 2 key-store's) are pruned as "any" */
    struct cas_keystore_entry any = st->pri.ks.entries[0];
    any.measurement[0] = '\0';
    assert_int_equal(cas_keystore_upsert(&st->pri.ks, &any), 0);
    memset(&c, 0, sizeof(c));
    c.req.method = "DELETE";
    c.req.url = "/v1/backups";
    c.req.has_caller = true;
    strcpy(c.req.caller, OWNER);
    c.req.test_args = json_pack("{s:s}", "measurement", "any");
    c.resp.status = 200;
    cas_dispatch(st, &c.req, &c.resp);
    assert_int_equal(c.resp.status, 200);
    assert_string_equal(json_string_value(json_object_get(c.resp.body, "measurement")), "any");
    call_done(&c);
    assert_int_equal(st->pri.ks.count, 1);
    assert_non_null(cas_keystore_find(&st->pri.ks, pp, M_AB));
    call(st, &c, "DELETE", "/v1/backups", OWNER, NULL); /* prune needs a measurement */
    assert_int_equal(c.resp.status, 400);
    call_done(&c);
    cas_state_wipe(st);
    custos_p256_free(primary.las.key);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_owner_route_is_guarded), cmocka_unit_test(test_bodies_methods_and_modes),
        cmocka_unit_test(test_registrar_on_every_route),     cmocka_unit_test(test_attestation),
        cmocka_unit_test(test_registration_with_fake_las),   cmocka_unit_test(test_registrar_allow_deny),
        cmocka_unit_test(test_registration_by_measurement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
