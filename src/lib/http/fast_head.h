/*
 * One-pass parsing of plain HTTP/1.x heads, for the server (requests) and
 * the client (responses). Pure.
 *
 * http-parser reads a head byte by byte through a state machine and calls
 * back for every piece. Most heads are plain: token names, CRLF lines, no
 * Transfer-Encoding. These functions read such a head line by line instead,
 * and accept only what http-parser, plus the strict checks the server and
 * the client add to it (listed in server.c), accept with the same result. Anything
 * else is declined, nothing is decided, and the caller runs http-parser as
 * before; so an unusual head costs one extra look, never a different answer.
 * The differential fuzz targets http_fast, http_server and http_response
 * hold them to that.
 */
#ifndef SHOAL_HTTP_FAST_HEAD_H
#define SHOAL_HTTP_FAST_HEAD_H

#include <shoal/http_types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Heads longer than this are declined (http-parser's own limit is 80 KiB). */
#define SL_FAST_HEAD_MAX (64 * 1024)

typedef struct sl__fast_fields {
    size_t end;              /* offset just past the blank line that ends the head */
    size_t nfields;          /* fields stored */
    uint64_t content_length; /* when has_cl */
    bool has_cl;
    bool conn_close, conn_keep; /* "Connection: close" / "Connection: keep-alive" seen */
} sl__fast_fields;

/*
 * Reads the field lines of a head from offset `pos` of `data` (`lim` bytes
 * may be read) to the blank line that ends it. Accepts when every line ends
 * in CRLF, every name is a token followed by ':', every value is free of
 * control bytes, there are at most `max` fields, no name starts with
 * Transfer-Encoding, Upgrade or Proxy-Connection (http-parser also takes some
 * longer names for those), a Connection field is exactly "close" or
 * "keep-alive", and there is at most one Content-Length, of 1 to 15 digits.
 * The fields go to `hs` as slices of `data`, values without the whitespace
 * around them. Returns 1 (accepted, `*out` filled) or 0 (declined; `hs` may
 * have been written).
 */
SL_API int sl__http_fast_fields(const char *data, size_t lim, size_t pos, sl_http_header *hs,
                                size_t max, sl__fast_fields *out);

typedef struct sl__fast_request {
    sl_http_method method; /* one of the methods Shoal routes */
    int http_minor;        /* 0 or 1 */
    sl_slice target;       /* "/...": a path and maybe a query */
    sl__fast_fields f;
} sl__fast_request;

/*
 * Reads a whole request head from the start of `data`: "METHOD /target
 * HTTP/1.x" with single spaces and CRLF, a method Shoal routes, a target of
 * visible ASCII starting with '/' and holding no '#', then the fields as
 * above. Returns 1 (accepted) or 0 (declined).
 */
SL_API int sl__http_fast_request(const char *data, size_t len, sl_http_header *hs, size_t max,
                                 sl__fast_request *out);

#endif
