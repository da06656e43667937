/*
 * Fuzz target for the HTTP server's request handling: the parser glue,
 * buffer moves between the shared and per-connection buffers, pipelining,
 * chunked bodies, limits and error answers. The input is written in pieces
 * (sizes taken from the input itself) into one end of a socketpair whose
 * other end the server adopts, and the loop runs between pieces. Handlers
 * answer synchronously or, for paths starting with /async, from a timer.
 */
#include "http/http_int.h"

#include <shoal/http.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static sl_http_server *srv;
static int initialised;

typedef struct later {
    uv_timer_t t;
    sl_http_req *req;
} later;

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_fire(uv_timer_t *t)
{
    later *l = t->data;
    sl_http_respond_body(l->req, 200, "text/plain", l->req->body.ptr, l->req->body.len);
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static int on_headers(sl_http_req *req, void *data)
{
    (void)data;
    if (req->path.len >= 6 && memcmp(req->path.ptr, "/small", 6) == 0) req->body_max_bytes = 16;
    return 0;
}

static void on_request(sl_http_req *req, void *data)
{
    (void)data;
    /* Touch every slice so ASan sees a stale pointer if a buffer moved under it. */
    size_t sum = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        for (size_t k = 0; k < req->headers[i].name.len; k++)
            sum +=
                (unsigned char)req->headers[i].name.ptr[k] +
                (k < req->headers[i].value.len ? (unsigned char)req->headers[i].value.ptr[k] : 0);
    for (size_t k = 0; k < req->target.len; k++)
        sum += (unsigned char)req->target.ptr[k];
    (void)sum;
    if (req->path.len >= 6 && memcmp(req->path.ptr, "/async", 6) == 0) {
        later *l = malloc(sizeof *l);
        l->req = req;
        uv_timer_init(&loop, &l->t);
        l->t.data = l;
        uv_timer_start(&l->t, later_fire, 0, 0);
        return;
    }
    sl_http_respond_body(req, 200, "text/plain", req->body.ptr, req->body.len);
}

static void init(void)
{
    uv_loop_init(&loop);
    sl_http_limits lim;
    sl_http_limits_default(&lim);
    lim.max_header_bytes = 2048;
    lim.max_headers = 16;
    lim.body_max_bytes = 4096;
    sl_http_callbacks cbs = {.on_headers = on_headers, .on_request = on_request};
    if (sl_http_server_new(&loop, &lim, &cbs, &srv) != 0) abort();
    initialised = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!initialised) init();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 0;
    if (sl__http_server_adopt(srv, sv[0]) != 0) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    size_t off = 0;
    char sink[65536];
    while (off < size) {
        /* The first byte of each piece picks the size of the next write (1..256). */
        size_t piece = (size_t)data[off] + 1;
        off++;
        if (piece > size - off) piece = size - off;
        if (piece > 0 && send(sv[1], data + off, piece, MSG_NOSIGNAL) < 0) break;
        off += piece;
        for (int i = 0; i < 4; i++)
            uv_run(&loop, UV_RUN_NOWAIT);
        while (recv(sv[1], sink, sizeof sink, 0) > 0) {
        }
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 8; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        while (recv(sv[1], sink, sizeof sink, 0) > 0) {
        }
    }
    close(sv[1]);
    /* Let the server notice the close and free the connection. */
    for (int i = 0; i < 50 && sl_http_server_connections(srv) > 0; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
