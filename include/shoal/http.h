/*
 * The HTTP/1.1 server of libshoal, on libuv and http-parser.
 *
 * One sl_http_server per worker loop; it accepts on a listening socket that
 * the caller bound (SO_REUSEPORT lets every worker have its own), parses
 * requests strictly (see docs/http.md for every rule and the status it
 * answers), and hands each complete request to the request callback. A
 * connection handles one request at a time, so pipelined requests are
 * answered in order; a handler may answer synchronously, inside the callback,
 * or later from any callback on the same loop.
 *
 * Threading: a server and its requests belong to the loop thread that created
 * them; nothing here is thread-safe.
 */
#ifndef SHOAL_HTTP_H
#define SHOAL_HTTP_H

#include <shoal/http_types.h>
#include <shoal/router.h>

#include <stdint.h>
#include <uv.h>

typedef struct sl_http_server sl_http_server;
typedef struct sl_tls_ctx sl_tls_ctx;
typedef struct sl_http_req sl_http_req;

/* Limits of a server. Every field has a bounded default (sl_http_limits_default). */
typedef struct sl_http_limits {
    size_t max_header_bytes;    /* request line + headers; over → 431 (16 KiB) */
    size_t max_headers;         /* number of header fields; over → 431 (100) */
    size_t body_max_bytes;      /* default per-request body limit; over → 413 (1 MiB) */
    uint32_t header_timeout_ms; /* from a request's first byte to its end of headers → 408 (10 s) */
    uint32_t body_timeout_ms;   /* from end of headers to end of body → 408 (30 s) */
    uint32_t idle_timeout_ms;   /* keep-alive connection with no request → closed (60 s) */
    uint32_t linger_ms;         /* after an error response, read and discard this long (2 s) */
    uint32_t max_connections;   /* per server; beyond, a 503 and close (10,000) */
    size_t max_output_bytes;    /* unsent responses per connection before reads pause (4 MiB) */
} sl_http_limits;

/* Fills `lim` with the defaults above. */
SL_API void sl_http_limits_default(sl_http_limits *lim);

/*
 * A request. Fields are read-only for handlers and valid until the response
 * is sent (sl_http_respond*) — slices point into the connection's buffer.
 */
struct sl_http_req {
    sl_http_method method;
    sl_slice method_token; /* as sent ("GET") */
    sl_slice target;       /* request-target as sent ("/a/b?x=1") */
    sl_slice path;         /* target before '?' */
    sl_slice query;        /* target after '?', without it; empty when absent */
    const sl_http_header *headers;
    size_t nheaders;
    sl_slice body; /* the whole body, de-chunked; empty when none */
    int http_minor;
    int64_t start_ns; /* monotonic time the request's first byte was processed */

    /* Set by the headers callback (the service host routes there). */
    size_t body_max_bytes;
    const void *route;
    sl_route_params params;

    /* Written into the response headers when non-empty (set by the host). */
    char request_id[64];
    char traceparent[64];

    void *data;     /* free for the handler/host */
    void *host;     /* free for the host (one per request) */
    int _cancelled; /* the client went away; see sl_http_req_cancelled */
    void *_conn;
    void *_local; /* an in-process request (sl_http_local_request), else NULL */
};

/*
 * Called when a request's headers are complete, before its body is read:
 * route here and set req->body_max_bytes (already holding the server
 * default) and req->route. Returning a non-zero HTTP status answers it at
 * once with a problem body and closes the connection (used for refusals that
 * must not read the body).
 */
typedef int (*sl_http_headers_cb)(sl_http_req *req, void *data);

/* Called once per complete request. The handler must eventually call one of sl_http_respond*. */
typedef void (*sl_http_request_cb)(sl_http_req *req, void *data);

/*
 * Called after a response was queued (before the request is freed), with
 * its status and body length: the host records metrics and access logs here.
 */
typedef void (*sl_http_response_cb)(sl_http_req *req, int status, size_t body_len, void *data);

typedef struct sl_http_callbacks {
    sl_http_headers_cb on_headers;   /* optional */
    sl_http_request_cb on_request;   /* required */
    sl_http_response_cb on_response; /* optional */
    void *data;
} sl_http_callbacks;

/*
 * Creates a server on `loop`. `lim` and `cbs` are copied. Returns 0 and the
 * server in *out (free with sl_http_server_close), or SL_ENOMEM.
 */
SL_API int sl_http_server_new(uv_loop_t *loop, const sl_http_limits *lim,
                              const sl_http_callbacks *cbs, sl_http_server **out) SL_MUST_CHECK;

/*
 * Starts accepting on `fd`, a bound TCP socket (the server takes ownership
 * and listens on it). Returns 0 or a negated errno from libuv.
 */
SL_API int sl_http_server_listen_fd(sl_http_server *srv, int fd) SL_MUST_CHECK;

/*
 * Graceful drain: stops accepting, closes idle connections, lets requests in
 * flight finish (their responses carry `Connection: close`), and calls
 * `done` once no connection is left. May call `done` synchronously.
 */
SL_API void sl_http_server_drain(sl_http_server *srv, void (*done)(void *data), void *data);

/*
 * Closes every connection at once and frees the server when all handles are
 * closed (then calls `done` if given, from the loop). Requests still pending
 * in handlers are marked cancelled; their later sl_http_respond only frees.
 */
SL_API void sl_http_server_close(sl_http_server *srv, void (*done)(void *data), void *data);

/* Returns the number of open connections (for /metrics and tests). */
SL_API size_t sl_http_server_connections(const sl_http_server *srv);

/*
 * Sends the response to `req` and releases it (the request must not be used
 * after). `headers` and `body` are borrowed (copied before return). The server
 * adds Content-Length, Date, Connection when needed, x-request-id and
 * traceparent. Header values containing CR or LF are refused (SL_EINVAL, and
 * a 500 is sent instead). For HEAD requests the body is not sent. Returns 0,
 * or SL_ECANCELED when the client had gone (the request is still released).
 */
SL_API int sl_http_respond(sl_http_req *req, int status, const sl_http_header *headers,
                           size_t nheaders, const void *body, size_t body_len);

/* Convenience: one Content-Type header plus the body. */
SL_API int sl_http_respond_body(sl_http_req *req, int status, const char *content_type,
                                const void *body, size_t body_len);

/*
 * Answers with an `application/problem+json` body (RFC 9457) built from
 * status, its standard title, and `detail` (borrowed, may be NULL).
 */
SL_API int sl_http_respond_problem(sl_http_req *req, int status, const char *detail);

/* Returns 1 when the client closed the connection while the request was being handled. */
SL_API int sl_http_req_cancelled(const sl_http_req *req);

/*
 * Writes the client's IP address (numeric, no port) into `out` (`cap` bytes,
 * 46 suffice). Returns 0, SL_ENOTFOUND when the connection is gone, or
 * SL_ELIMIT when `out` is too small.
 */
SL_API int sl_http_req_peer(const sl_http_req *req, char *out, size_t cap);

/*
 * Serves TLS (include/shoal/tls.h) on the connections accepted from now on,
 * with the server context `ctx` (takes a reference, releases the previous
 * one); NULL returns to plain HTTP. Open connections keep the context they
 * started with, so swapping in a reloaded context drops none.
 */
SL_API void sl_http_server_set_tls(sl_http_server *srv, sl_tls_ctx *ctx);

/*
 * The service name of the verified peer certificate's SPIFFE ID
 * (spiffe://shoal.local/svc/<name>) on a TLS connection; NULL on a plain
 * connection, without a client certificate, or when the connection is gone.
 */
SL_API const char *sl_http_req_peer_service(const sl_http_req *req);

/* Finds a request header (case-insensitive). Returns 1 and its value, or 0. */
SL_API int sl_http_req_header(const sl_http_req *req, const char *name, sl_slice *value);

/* ---- in-process requests ---------------------------------------------------------------------
 *
 * A request handed to a server's callbacks without a connection: a caller in
 * the same loop thread (the HTTP client, for an upstream hosted in the same
 * process) gives the canonical head it would have sent, and gets the response
 * through `done` instead of bytes on a socket. The callbacks run exactly as
 * for a request read from a connection (on_headers, then on_request, then
 * on_response when the handler answers), so routing, identity, deadline,
 * trace context, metrics and logs are the same.
 */
typedef struct sl_http_local sl_http_local;

/* The response (borrowed for the callback's duration). */
typedef void (*sl_http_local_done_cb)(void *data, int status, const sl_http_header *headers,
                                      size_t nheaders, const void *body, size_t body_len);

/*
 * Runs one request through `cbs` (borrowed; must outlive the request) with
 * body limit `body_max` (the server default). `head` is an HTTP/1.1 request
 * head ("GET /x HTTP/1.1\r\nName: value\r\n...\r\n", without Content-Length
 * or Transfer-Encoding mattering: the body is given whole); head and body are
 * copied. *out is set before any callback runs; `done` runs once when the
 * handler answers (possibly before this returns), unless detached first.
 * Returns 0, SL_EINVAL (a malformed head: nothing ran), SL_ENOMEM. Loop
 * thread of the server's callbacks only.
 */
SL_API int sl_http_local_request(const sl_http_callbacks *cbs, size_t body_max, const char *head,
                                 size_t head_len, const void *body, size_t body_len,
                                 sl_http_local_done_cb done, void *data,
                                 sl_http_local **out) SL_MUST_CHECK;

/* The caller no longer waits: `done` will not run; the handler sees sl_http_req_cancelled. */
SL_API void sl_http_local_detach(sl_http_local *l);

/* Answers an in-process request (sl_http_respond calls it for such requests). */
SL_API int sl__http_local_respond(sl_http_req *req, int status, const sl_http_header *headers,
                                  size_t nheaders, const void *body, size_t body_len);

#endif /* SHOAL_HTTP_H */
