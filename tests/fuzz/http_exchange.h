/*
 * For the tests of the server's fast path (tests/unit/http_fast_test.c and
 * tests/fuzz/http_server_fuzz.c): a handler that echoes what it was given
 * (method, target, version, fields, body), and an exchange of raw bytes with
 * a fresh server on a socketpair, fast path on or off.
 */
#ifndef SHOAL_TEST_HTTP_EXCHANGE_H
#define SHOAL_TEST_HTTP_EXCHANGE_H

#include "http/http_int.h"

#include <shoal/http.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct echo_buf {
    char p[8192];
    size_t n;
} echo_buf;

static void echo_put(echo_buf *b, const char *s, size_t n)
{
    if (n > sizeof b->p - b->n) n = sizeof b->p - b->n;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void echo_str(echo_buf *b, const char *s)
{
    echo_put(b, s, strlen(s));
}

static void on_request(sl_http_req *req, void *data)
{
    (void)data;
    echo_buf b = {.n = 0};
    char v[16];
    echo_str(&b, sl_http_method_name(req->method));
    echo_str(&b, " ");
    echo_put(&b, req->target.ptr, req->target.len);
    snprintf(v, sizeof v, " 1.%d\n", req->http_minor);
    echo_str(&b, v);
    for (size_t i = 0; i < req->nheaders; i++) {
        echo_str(&b, "[");
        echo_put(&b, req->headers[i].name.ptr, req->headers[i].name.len);
        echo_str(&b, "]=[");
        echo_put(&b, req->headers[i].value.ptr, req->headers[i].value.len);
        echo_str(&b, "]\n");
    }
    echo_str(&b, "body=[");
    echo_put(&b, req->body.ptr, req->body.len);
    echo_str(&b, "]");
    sl_http_respond_body(req, 200, "text/plain", b.p, b.n);
}

/* Cuts "\r\nDate: ...\r\n" down to "\r\n" in `got` (the clock may tick between two runs);
 * returns the new length. */
static size_t cut_dates(char *got, size_t len)
{
    for (size_t i = 0; i + 8 <= len;) {
        if (memcmp(got + i, "\r\nDate: ", 8) != 0) {
            i++;
            continue;
        }
        size_t e = i + 8;
        while (e + 1 < len && !(got[e] == '\r' && got[e + 1] == '\n'))
            e++;
        memmove(got + i, got + e, len - e + 1);
        len -= e - i;
        i += 2;
    }
    return len;
}

/* Sends `len` bytes of `raw` to a fresh server (fast path on or off), half-closes, and returns
 * all it answered (NUL-terminated, `*out_len` bytes) with the Date lines cut out; `*taken` is
 * the number of requests the fast path read. */
static char *exchange(const char *raw, size_t len_in, bool fast, size_t *taken, size_t *out_len)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_http_limits lim;
    sl_http_limits_default(&lim);
    lim.max_headers = 8;
    lim.max_header_bytes = 1024;
    sl_http_callbacks cbs = {.on_request = on_request};
    sl_http_server *srv;
    if (sl_http_server_new(&loop, &lim, &cbs, &srv) != 0) abort();
    sl__http_server_set_fast(srv, fast);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) abort();
    if (sl__http_server_adopt(srv, sv[0]) != 0) abort();
    if (send(sv[1], raw, len_in, MSG_NOSIGNAL) != (ssize_t)len_in) abort();
    shutdown(sv[1], SHUT_WR);
    size_t cap = 1 << 20, len = 0;
    char *got = malloc(cap);
    for (int i = 0; i < 200; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t k;
        while ((k = recv(sv[1], got + len, cap - len - 1, 0)) > 0)
            len += (size_t)k;
        if (k == 0) break; /* the server closed */
    }
    close(sv[1]);
    *taken = sl__http_server_fast_taken(srv);
    sl_http_server_close(srv, NULL, NULL);
    for (int i = 0; uv_loop_close(&loop) == UV_EBUSY; i++) {
        if (i == 1000) abort(); /* a handle the server never closed */
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    got[len] = '\0';
    *out_len = cut_dates(got, len);
    return got;
}

#endif
