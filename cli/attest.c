/* SPDX-License-Identifier: Apache-2.0 */
/* Attesting a CAS: fetch its quote over a fresh nonce, check that it binds the TLS key the
 * connection used, and apply the caller's trust policy. Shared by `cas attest` and `cas provision`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int cli_attest_cas(const char *url, const char *expected_key_hash, const struct cli_trust *trust, json_t **evidence,
                   char **cert_pem, char key_hash[65], char *err, size_t err_size)
{
    uint8_t nonce[16], kh[32], rd[CUSTOS_REPORT_DATA_SIZE];
    char nonce_hex[33], path[64], qerr[1024];
    struct cli_response resp;
    struct custos_quote q;
    int ret = -EPERM;
    if (!trust->ignore_signer && trust->measurements.count == 0) {
        snprintf(err, err_size,
                 "no expected CAS measurement: pass --measurement HEX (SHA-256 of the "
                 "casd binary you trust) or, for testing only, --only_for_testing-ignore-signer");
        return -EINVAL;
    }
    if (custos_random(nonce, sizeof(nonce)) < 0)
        return -EIO;
    custos_hex_encode(nonce, sizeof(nonce), nonce_hex, false);
    snprintf(path, sizeof(path), "/v1/attestation?nonce=%s", nonce_hex);
    ret = cli_https(url, "GET", path, NULL, expected_key_hash, NULL, &resp, err, err_size);
    if (ret < 0)
        return ret;
    ret = -EPERM;
    const char *got_hash = expected_key_hash ? expected_key_hash : resp.peer_key_hash;
    json_t *qj = json_object_get(resp.body, "quote");
    const char *cert = json_string_value(json_object_get(resp.body, "certificate"));
    if (resp.status != 200 || !qj || !cert) {
        snprintf(err, err_size, "CAS at %s did not answer an attestation (status %ld: %s)", url, resp.status,
                 cli_error_message(&resp));
        goto out;
    }
    if (strlen(got_hash) != 64 || custos_hex_decode(got_hash, kh, sizeof(kh)) < 0) {
        snprintf(err, err_size, "cannot tell the key of the CAS at %s", url);
        goto out;
    }
    uint8_t cert_hash[32];
    if (custos_cert_pem_key_hash(cert, cert_hash) < 0 || !custos_ct_equal(cert_hash, kh, 32)) {
        snprintf(err, err_size, "CAS at %s sent a certificate for another key than its TLS connection", url);
        goto out;
    }
    if (custos_quote_from_json(qj, &q, qerr, sizeof(qerr)) < 0) {
        snprintf(err, err_size, "CAS at %s: %s", url, qerr);
        goto out;
    }
    custos_attestation_report_data(kh, nonce, sizeof(nonce), rd);
    uint8_t(*ms)[CUSTOS_MEASUREMENT_SIZE] = calloc(trust->measurements.count + 1, sizeof(*ms));
    size_t bad = 0;
    if (ms && custos_measurements_decode((const char *const *)trust->measurements.items, trust->measurements.count, ms,
                                         &bad) < 0) {
        snprintf(err, err_size, "--measurement '%s' is not 64 hex digits", trust->measurements.items[bad]);
        free(ms);
        ret = -EINVAL;
        goto out;
    }
    struct custos_quote_policy pol = {
        .platforms = trust->platforms.items,
        .platform_count = trust->platforms.count,
        .measurements = (const uint8_t(*)[CUSTOS_MEASUREMENT_SIZE])ms,
        .measurement_count = trust->ignore_signer ? 0 : trust->measurements.count,
        .report_data = rd,
        .trust_any_platform = trust->trust_any,
        .allow_debug = trust->debug,
    };
    ret = custos_quote_check(&q, &pol, qerr, sizeof(qerr));
    free(ms);
    if (ret < 0) {
        snprintf(err, err_size, "CAS at %s is NOT trustworthy: %s", url, qerr);
        goto out;
    }
    char id[CUSTOS_PLATFORM_ID_LEN + 1], m[65];
    custos_platform_id(q.platform_pub, id);
    custos_hex_encode(q.measurement, sizeof(q.measurement), m, false);
    *evidence =
        json_pack("{s:O, s:s, s:s, s:s, s:i, s:b, s:I, s:I, s:{s:b, s:b, s:b, s:b, s:b}}", "quote", qj, "platform_id",
                  id, "platform_kind", custos_platform_kind_name(q.kind), "measurement", m, "tcb", (int)q.tcb, "debug",
                  q.debug, "uid", (json_int_t)q.uid, "verified_at", (json_int_t)time(NULL), "tolerated", "trust_any",
                  trust->trust_any, "debug", trust->debug, "ignore_signer", trust->ignore_signer, "outdated_tcb",
                  trust->tolerate_g, "config_needed", trust->tolerate_c);
    *cert_pem = strdup(cert);
    snprintf(key_hash, 65, "%s", got_hash);
    ret = *evidence && *cert_pem ? 0 : -ENOMEM;
out:
    cli_response_free(&resp);
    return ret;
}
