/* SPDX-License-Identifier: Apache-2.0 */
/* The lasd wire protocol: frames of a 4-byte big-endian length and a payload.
 * Request payload: op byte, then op data. Response payload: status byte (0 ok, 1 error), then the
 * answer or a UTF-8 error message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "custos.h"

static int io_all(int fd, void *buf, size_t size, bool writing)
{
    uint8_t *p = buf;
    while (size) {
        ssize_t n = writing ? send(fd, p, size, MSG_NOSIGNAL) : recv(fd, p, size, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        if (n == 0)
            return -ECONNRESET;
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

int custos_frame_write(int fd, const void *data, size_t size)
{
    uint8_t frame[4 + CUSTOS_LAS_MAX_MSG];
    struct custos_buf b;
    if (size > CUSTOS_LAS_MAX_MSG)
        return -EMSGSIZE;
    custos_buf_init(&b, frame, sizeof(frame));
    custos_buf_put_bytes_u32(&b, data, size);
    /* One send per frame: the peer wakes up once and reads the whole request. */
    int ret = custos_buf_ok(&b) ? io_all(fd, frame, custos_buf_len(&b), true) : -EMSGSIZE;
    custos_wipe(frame, custos_buf_len(&b));
    return ret;
}

int custos_frame_read(int fd, uint8_t *buf, size_t cap, size_t *size)
{
    uint8_t hdr[4];
    uint32_t n = 0;
    struct custos_buf r;
    int ret = io_all(fd, hdr, sizeof(hdr), false);
    if (ret < 0)
        return ret;
    custos_buf_reader(&r, hdr, sizeof(hdr));
    custos_buf_get_u32(&r, &n);
    if (n > cap)
        return -EMSGSIZE;
    *size = n;
    return io_all(fd, buf, n, false);
}

int custos_las_path_check(const char *socket_path, char *err, size_t err_size)
{
    struct sockaddr_un addr;
    if (!socket_path || !*socket_path || !strchr(socket_path, '/')) {
        snprintf(err, err_size,
                 "LAS address '%s' is not a socket path: Custos's lasd listens on a Unix socket, not on a network "
                 "address (default %s); set --las or SCONE_LAS_ADDR to the socket's path",
                 socket_path ? socket_path : "", CUSTOS_LAS_DEFAULT_SOCKET);
        return -EINVAL;
    }
    if (strlen(socket_path) >= sizeof(addr.sun_path)) {
        snprintf(err, err_size, "LAS socket path '%s' is too long (at most %zu bytes)", socket_path,
                 sizeof(addr.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    return 0;
}

long custos_frame_split(const uint8_t *buf, size_t got)
{
    struct custos_buf r;
    uint32_t len = 0;
    custos_buf_reader(&r, buf, got);
    if (custos_buf_get_u32(&r, &len) < 0)
        return CUSTOS_FRAME_INCOMPLETE;
    if (len > CUSTOS_LAS_MAX_MSG)
        return CUSTOS_FRAME_OVERSIZE;
    return custos_buf_left(&r) >= len ? (long)len : CUSTOS_FRAME_INCOMPLETE;
}

int custos_las_request_parse(const uint8_t *payload, size_t size, struct custos_las_request *out, char *err,
                             size_t err_size)
{
    struct custos_buf r;
    uint8_t op = 0;
    const uint8_t *data = NULL;
    custos_buf_reader(&r, payload, size);
    if (custos_buf_get_u8(&r, &op) < 0) {
        snprintf(err, err_size, "empty request");
        return -EINVAL;
    }
    size_t n = custos_buf_left(&r);
    custos_buf_get_ptr(&r, n, &data);
    switch (op) {
    case CUSTOS_LAS_OP_QUOTE:
        if (n != CUSTOS_REPORT_DATA_SIZE) {
            snprintf(err, err_size, "quote request must carry %d bytes of report data, got %zu",
                     CUSTOS_REPORT_DATA_SIZE, n);
            return -EINVAL;
        }
        break;
    case CUSTOS_LAS_OP_SEAL_KEY:
        if (n == 0 || n > 64) {
            snprintf(err, err_size, "seal key label must be 1..64 bytes, got %zu", n);
            return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            if (data[i] < 0x21 || data[i] > 0x7e) {
                snprintf(err, err_size,
                         "seal key label must be printable ASCII without spaces (byte %zu is "
                         "0x%02x)",
                         i, data[i]);
                return -EINVAL;
            }
        }
        break;
    case CUSTOS_LAS_OP_INFO:
        if (n != 0) {
            snprintf(err, err_size, "info request carries no data, got %zu bytes", n);
            return -EINVAL;
        }
        break;
    default:
        snprintf(err, err_size, "unknown request type %u", op);
        return -EINVAL;
    }
    out->op = op;
    out->data = data;
    out->data_size = n;
    return 0;
}

int custos_las_answer_parse(const uint8_t *payload, size_t size, const uint8_t **out, size_t *out_size, char *err,
                            size_t err_size)
{
    struct custos_buf r;
    uint8_t status = 0;
    const uint8_t *rest = NULL;
    custos_buf_reader(&r, payload, size);
    if (custos_buf_get_u8(&r, &status) < 0) {
        snprintf(err, err_size, "LAS sent an empty answer");
        return -EPROTO;
    }
    size_t rest_size = custos_buf_left(&r);
    custos_buf_get_ptr(&r, rest_size, &rest);
    if (status == 0) {
        *out = rest;
        *out_size = rest_size;
        return 0;
    }
    if (status != 1) {
        snprintf(err, err_size, "LAS answered with unknown status %u", status);
        return -EPROTO;
    }
    /* lasd's message, shown as text: never control characters into the caller's terminal or log */
    char msg[301];
    size_t n = rest_size < sizeof(msg) - 1 ? rest_size : sizeof(msg) - 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = rest[i];
        msg[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    msg[n] = '\0';
    snprintf(err, err_size, "LAS refused: %s", msg);
    return -EPROTO;
}

int custos_las_answer_quote(const uint8_t *answer, size_t size, struct custos_quote *out, char *err, size_t err_size)
{
    struct custos_buf r;
    const uint8_t *body = NULL;
    int ret;
    if (size < CUSTOS_QUOTE_BODY_SIZE + 8 || size > CUSTOS_QUOTE_BODY_SIZE + sizeof(out->sig)) {
        snprintf(err, err_size, "LAS answered a quote of unexpected size %zu", size);
        return -EPROTO;
    }
    custos_buf_reader(&r, answer, size);
    custos_buf_get_ptr(&r, CUSTOS_QUOTE_BODY_SIZE, &body);
    if ((ret = custos_quote_body_parse(body, CUSTOS_QUOTE_BODY_SIZE, out, err, err_size)) < 0)
        return ret;
    out->sig_size = custos_buf_left(&r); /* the rest is the signature */
    custos_buf_get(&r, out->sig, out->sig_size);
    return 0;
}

int custos_las_answer_seal_key(const uint8_t *answer, size_t size, uint8_t out[CUSTOS_SEAL_KEY_SIZE], char *err,
                               size_t err_size)
{
    if (size != CUSTOS_SEAL_KEY_SIZE) {
        snprintf(err, err_size, "LAS answered a seal key of unexpected size %zu", size);
        return -EPROTO;
    }
    memcpy(out, answer, CUSTOS_SEAL_KEY_SIZE);
    return 0;
}

int custos_las_answer_info(const uint8_t *answer, size_t size, json_t **out, char *err, size_t err_size)
{
    return custos_json_parse((const char *)answer, size, out, err, err_size);
}

static int las_connect(const char *socket_path, char *err, size_t err_size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 10};
    int ret = custos_las_path_check(socket_path, err, err_size);
    if (ret < 0)
        return ret;
    strcpy(addr.sun_path, socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int e = errno;
        snprintf(err, err_size, "cannot connect to LAS at %s: %s (is lasd running? set --las or SCONE_LAS_ADDR)",
                 socket_path, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

/* One request and its answer; on success answer and answer_size are the bytes after the status byte. */
static int las_exchange(int fd, const char *socket_path, const uint8_t *req, size_t req_size, uint8_t *resp,
                        const uint8_t **answer, size_t *answer_size, char *err, size_t err_size)
{
    size_t resp_size = 0;
    int ret;
    if ((ret = custos_frame_write(fd, req, req_size)) < 0 ||
        (ret = custos_frame_read(fd, resp, CUSTOS_LAS_MAX_MSG, &resp_size)) < 0) {
        snprintf(err, err_size, "LAS at %s: %s", socket_path, strerror(-ret));
        return ret;
    }
    return custos_las_answer_parse(resp, resp_size, answer, answer_size, err, err_size);
}

struct custos_las_client {
    char *path;
    int fd;
};

int custos_las_client_open(const char *socket_path, struct custos_las_client **out)
{
    struct custos_las_client *c = calloc(1, sizeof(*c));
    if (!c || !(c->path = strdup(socket_path ? socket_path : CUSTOS_LAS_DEFAULT_SOCKET))) {
        free(c);
        return -ENOMEM;
    }
    c->fd = -1;
    *out = c;
    return 0;
}

void custos_las_client_free(struct custos_las_client *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->path);
    free(c);
}

/* One request on the client's connection; reconnects once when a kept connection was closed. */
static int client_call(struct custos_las_client *c, const uint8_t *req, size_t req_size, uint8_t *resp,
                       const uint8_t **answer, size_t *answer_size, char *err, size_t err_size)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = c->fd < 0;
        if (fresh && (c->fd = las_connect(c->path, err, err_size)) < 0)
            return c->fd;
        int ret = las_exchange(c->fd, c->path, req, req_size, resp, answer, answer_size, err, err_size);
        if (ret == 0 || ret == -EPROTO)
            return ret;
        close(c->fd);
        c->fd = -1;
        if (fresh)
            return ret;
    }
    return -EIO;
}

static int las_call(const char *socket_path, const uint8_t *req, size_t req_size, uint8_t *resp, const uint8_t **answer,
                    size_t *answer_size, char *err, size_t err_size)
{
    struct custos_las_client *c = NULL;
    int ret = custos_las_client_open(socket_path, &c);
    if (ret == 0)
        ret = client_call(c, req, req_size, resp, answer, answer_size, err, err_size);
    custos_las_client_free(c);
    return ret;
}

int custos_las_client_quote(struct custos_las_client *c, const uint8_t report_data[CUSTOS_REPORT_DATA_SIZE],
                            struct custos_quote *out, char *err, size_t err_size)
{
    uint8_t req[1 + CUSTOS_REPORT_DATA_SIZE], resp[CUSTOS_LAS_MAX_MSG];
    const uint8_t *answer = NULL;
    size_t answer_size = 0;
    struct custos_buf b;
    custos_buf_init(&b, req, sizeof(req));
    custos_buf_put_u8(&b, CUSTOS_LAS_OP_QUOTE);
    custos_buf_put(&b, report_data, CUSTOS_REPORT_DATA_SIZE);
    int ret = client_call(c, req, custos_buf_len(&b), resp, &answer, &answer_size, err, err_size);
    return ret < 0 ? ret : custos_las_answer_quote(answer, answer_size, out, err, err_size);
}

int custos_las_quote(const char *socket_path, const uint8_t report_data[CUSTOS_REPORT_DATA_SIZE],
                     struct custos_quote *out, char *err, size_t err_size)
{
    struct custos_las_client *c = NULL;
    int ret = custos_las_client_open(socket_path, &c);
    if (ret == 0)
        ret = custos_las_client_quote(c, report_data, out, err, err_size);
    custos_las_client_free(c);
    return ret;
}

int custos_las_seal_key(const char *socket_path, const char *label, uint8_t out[CUSTOS_SEAL_KEY_SIZE], char *err,
                        size_t err_size)
{
    uint8_t req[1 + 64], resp[CUSTOS_LAS_MAX_MSG];
    const uint8_t *answer = NULL;
    size_t answer_size = 0, n = strlen(label);
    struct custos_buf b;
    if (n == 0 || n > 64) {
        snprintf(err, err_size, "seal key label must be 1..64 bytes");
        return -EINVAL;
    }
    custos_buf_init(&b, req, sizeof(req));
    custos_buf_put_u8(&b, CUSTOS_LAS_OP_SEAL_KEY);
    custos_buf_put(&b, label, n);
    int ret = las_call(socket_path, req, custos_buf_len(&b), resp, &answer, &answer_size, err, err_size);
    if (ret == 0)
        ret = custos_las_answer_seal_key(answer, answer_size, out, err, err_size);
    custos_wipe(resp, sizeof(resp));
    return ret;
}

int custos_las_info(const char *socket_path, json_t **out, char *err, size_t err_size)
{
    uint8_t req[1] = {CUSTOS_LAS_OP_INFO}, resp[CUSTOS_LAS_MAX_MSG];
    const uint8_t *answer = NULL;
    size_t answer_size = 0;
    int ret = las_call(socket_path, req, 1, resp, &answer, &answer_size, err, err_size);
    if (ret < 0)
        return ret;
    return custos_las_answer_info(answer, answer_size, out, err, err_size);
}
