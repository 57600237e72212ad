/* SPDX-License-Identifier: Apache-2.0 */
/* The CLI's HTTPS client (libcurl over OpenSSL): the server is trusted by the key hash it was
 * attested with (public-key pinning), the caller is identified by its client certificate. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctype.h>

#include <curl/curl.h>

#include "cli.h"

#define RESPONSE_MAX (8u << 20)

struct buffer {
    char *data;
    size_t size;
    bool overflow;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct buffer *b = userdata;
    size_t n = size * nmemb;
    if (b->size + n > RESPONSE_MAX) {
        b->overflow = true;
        return 0;
    }
    char *nd = realloc(b->data, b->size + n + 1);
    if (!nd)
        return 0;
    b->data = nd;
    memcpy(b->data + b->size, ptr, n);
    b->size += n;
    b->data[b->size] = '\0';
    return n;
}

int cli_normalize_address(const char *addr, char *url, size_t url_size, char *host, size_t host_size)
{
    const char *p = addr;
    if (!strncmp(p, "https://", 8))
        p += 8;
    else if (strstr(p, "://")) {
        return -EINVAL;
    }
    size_t n = strcspn(p, "/");
    char hostport[300];
    if (n == 0 || n >= sizeof(hostport))
        return -EINVAL;
    memcpy(hostport, p, n);
    hostport[n] = '\0';
    if (p[n] && strcmp(p + n, "/") != 0)
        return -EINVAL;
    for (const char *c = hostport; *c; c++)
        if (!(isalnum((unsigned char)*c) || strchr(".-:_[]", *c)))
            return -EINVAL;
    char *colon = strrchr(hostport, ':');
    if (colon && !strchr(colon, ']')) {
        *colon = '\0';
        char *end = NULL;
        long port = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || port < 1 || port > 65535)
            return -EINVAL;
        snprintf(host, host_size, "%s", hostport);
        snprintf(url, url_size, "https://%s:%ld", hostport, port);
    } else {
        snprintf(host, host_size, "%s", hostport);
        snprintf(url, url_size, "https://%s:8081", hostport);
    }
    return host[0] ? 0 : -EINVAL;
}

static int peer_key_hash(CURL *curl, char out[65])
{
    struct curl_certinfo *ci = NULL;
    if (curl_easy_getinfo(curl, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci || ci->num_of_certs < 1)
        return -ENOENT;
    for (struct curl_slist *s = ci->certinfo[0]; s; s = s->next) {
        if (strncmp(s->data, "Cert:", 5) == 0) {
            uint8_t h[32];
            if (custos_cert_pem_key_hash(s->data + 5, h) < 0)
                return -EINVAL;
            custos_hex_encode(h, sizeof(h), out, false);
            return 0;
        }
    }
    return -ENOENT;
}

int cli_https(const char *url, const char *method, const char *path, const char *body, const char *pin,
              const struct cli_identity *id, struct cli_response *resp, char *err, size_t err_size)
{
    char full[1024], pinned[128];
    struct buffer buf = {0};
    struct curl_slist *headers = NULL;
    int ret = -EIO;
    memset(resp, 0, sizeof(*resp));
    CURL *curl = curl_easy_init();
    if (!curl)
        return -ENOMEM;
    snprintf(full, sizeof(full), "%s%s", url, path);
    curl_easy_setopt(curl, CURLOPT_URL, full);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
    /* No CA: a CAS is trusted through attestation and then by its key hash. */
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(curl, CURLOPT_CERTINFO, 1L);
    if (pin) {
        uint8_t h[32];
        if (custos_hex_decode(pin, h, sizeof(h)) < 0) {
            snprintf(err, err_size, "CAS key hash '%s' is not 64 hex digits", pin);
            ret = -EINVAL;
            goto out;
        }
        char *b64 = custos_base64_encode(h, sizeof(h));
        snprintf(pinned, sizeof(pinned), "sha256//%s", b64 ? b64 : "");
        free(b64);
        curl_easy_setopt(curl, CURLOPT_PINNEDPUBLICKEY, pinned);
    }
    if (id) {
        struct curl_blob cert = {.data = id->cert_pem, .len = strlen(id->cert_pem), .flags = CURL_BLOB_COPY};
        struct curl_blob key = {.data = id->key_pem, .len = strlen(id->key_pem), .flags = CURL_BLOB_COPY};
        curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &key);
        curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (body) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
        char got[65];
        if (peer_key_hash(curl, got) == 0)
            snprintf(err, err_size,
                     "the server at %s does not hold the expected CAS key: its key hash is %s, expected %s (nothing "
                     "was sent)",
                     url, got, pin);
        else
            snprintf(err, err_size,
                     "the server at %s does not hold the expected CAS key (key hash %s; nothing was sent)", url, pin);
        goto out;
    }
    if (rc != CURLE_OK) {
        snprintf(err, err_size, "%s %s%s: %s", method, url, path,
                 buf.overflow ? "answer too large" : curl_easy_strerror(rc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    peer_key_hash(curl, resp->peer_key_hash);
    if (buf.size) {
        char perr[256];
        if (custos_json_parse(buf.data, buf.size, &resp->body, perr, sizeof(perr)) < 0) {
            snprintf(err, err_size, "%s %s%s answered status %ld with invalid JSON: %s", method, url, path,
                     resp->status, perr);
            goto out;
        }
    }
    ret = 0;
out:
    if (buf.data) {
        custos_wipe(buf.data, buf.size);
        free(buf.data);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return ret;
}

void cli_response_free(struct cli_response *resp)
{
    if (!resp)
        return;
    json_decref(resp->body);
    resp->body = NULL;
}

const char *cli_error_message(const struct cli_response *resp)
{
    const char *m = json_string_value(json_object_get(json_object_get(resp->body, "error"), "message"));
    return m ? m : "unexpected answer";
}
