/*
 * Internals of the HTTP client shared by its files, its unit tests and its
 * fuzz target: the pure request serialiser (request.c) and the pure,
 * incremental response parser (response.c). Neither does I/O.
 */
#ifndef SHOAL_HTTP_CLIENT_INT_H
#define SHOAL_HTTP_CLIENT_INT_H

#include <shoal/http_client.h>

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- Request serialisation (request.c) ---- */

/*
 * The parts of a request head that are fixed for the whole call, in one
 * buffer: the request line, the caller's header fields (minus the ones the
 * client manages), x-request-id and idempotency-key, and the tail
 * (Content-Length when needed, then the blank line).
 */
typedef struct sl__http_prep {
    const char *buf;
    size_t line_len;               /* "GET /x HTTP/1.1\r\n" at buf */
    size_t fields_off, fields_len; /* "name: value\r\n"... */
    size_t tail_off, tail_len;     /* "Content-Length: n\r\n\r\n" or "\r\n" */
} sl__http_prep;

/*
 * Validates `req` (and the two optional strings, NULL = absent) and returns
 * in *size the bytes sl__http_prep_write needs. Returns 0, SL_EINVAL or
 * SL_ELIMIT (head over SL_HTTP_CLIENT_HEAD_MAX). Pure.
 */
SL_API int sl__http_prep_size(const sl_http_request *req, const char *request_id,
                              const char *idempotency_key, size_t *size) SL_MUST_CHECK;

/*
 * Writes the fixed parts for a request validated by sl__http_prep_size into
 * `buf` (that many bytes, borrowed: `out` points into it). Pure.
 */
SL_API void sl__http_prep_write(const sl_http_request *req, const char *request_id,
                                const char *idempotency_key, char *buf, sl__http_prep *out);

/*
 * Writes one attempt's full head into `out` (capacity `cap`): request line,
 * Host, fixed fields, traceparent, tracestate and x-shoal-deadline-ms (each
 * NULL = omitted), tail. Returns the length, or SL_ELIMIT when `cap` is too small.
 */
SL_API int sl__http_head_write(const sl__http_prep *prep, const char *host, const char *traceparent,
                               const char *tracestate, const char *deadline_ms, char *out,
                               size_t cap) SL_MUST_CHECK;

/* Returns 1 when `name` is one the client never forwards from the caller's headers. */
SL_API int sl__http_header_dropped(sl_slice name);

/* ---- Response parsing (response.c) ---- */

typedef struct sl__http_resp_field {
    uint32_t name_off, name_len, value_off, value_len; /* offsets into hbuf */
} sl__http_resp_field;

/* Which of http-parser's header callbacks ran last (a field or value may arrive in pieces). */
typedef enum sl__http_resp_cb {
    SL__HTTP_RESP_CB_NONE,
    SL__HTTP_RESP_CB_FIELD,
    SL__HTTP_RESP_CB_VALUE,
} sl__http_resp_cb;

/* Parser state; caller's storage. Not thread-safe. */
typedef struct sl__http_resp {
    http_parser parser;
    size_t header_max, body_max;
    bool head;  /* the request was HEAD: no body */
    char *hbuf; /* status line + headers (+ interim responses), owned */
    size_t hlen, hcap;
    char *body; /* owned */
    size_t body_len, body_cap;
    size_t nfields;
    sl_http_response res;
    size_t last_end; /* offset in hbuf of the end of the last status/field/value
                      * piece (an offset: hbuf moves when it grows) */
    sl__http_resp_cb last_cb;
    int te_count, te_chunked, status_seen;
    size_t scan_off, line_start, block_start; /* line scanner over hbuf */
    bool scan_cr, scan_done;
    bool in_headers;  /* the final response's headers are not complete yet */
    bool done;        /* a final response was parsed */
    bool keep_alive;  /* the connection may carry another request */
    bool got_bytes;   /* any byte arrived */
    bool no_fast;     /* tests only: always take http-parser's path (kept by reset) */
    bool fast;        /* the head took the fast path (response.c) */
    size_t body_left; /* fast path: Content-Length bytes still to come (0 = not in use) */
    int error;        /* 0, SL_EPARSE, SL_ELIMIT, SL_EIO, SL_ENOMEM */
    const char *error_detail;
    /* Last, and not cleared by sl__http_resp_init (4 KiB): only the first nfields are ever read. */
    sl__http_resp_field fields[SL_HTTP_CLIENT_HEADERS_MAX];
    sl_http_header headers[SL_HTTP_CLIENT_HEADERS_MAX];
} sl__http_resp;

/* Initialises `r` with its limits (no allocation yet). */
SL_API void sl__http_resp_init(sl__http_resp *r, size_t header_max, size_t body_max);

/* Prepares `r` for a new response (keeps its buffers). `head`: the request was HEAD. */
SL_API void sl__http_resp_reset(sl__http_resp *r, bool head);

/* Frees the buffers. */
SL_API void sl__http_resp_free(sl__http_resp *r);

/*
 * Feeds `len` bytes. Returns 0 (need more), 1 (a final response is complete;
 * *consumed says how many of these bytes belonged to it, the rest were sent
 * after it), or a negative error (r->error; r->error_detail says why):
 * SL_EPARSE malformed, SL_ELIMIT over a limit, SL_ENOMEM. After 1 or an
 * error, further calls return the same.
 */
SL_API int sl__http_resp_feed(sl__http_resp *r, const char *data, size_t len, size_t *consumed);

/* The peer closed the connection. Returns 1 (a close-delimited body ended) or SL_EIO. */
SL_API int sl__http_resp_eof(sl__http_resp *r);

/* The parsed response, after sl__http_resp_feed or sl__http_resp_eof returned 1. */
SL_API const sl_http_response *sl__http_resp_get(sl__http_resp *r);

#endif
