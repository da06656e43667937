/*
 * What the gateway forwards: the client's request headers minus hop-by-hop
 * ones (RFC 9110 §7.6.1: Connection and every header it names, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade), minus framing
 * (Host, Content-Length: the client re-serialises those), minus anything a
 * client could use to claim an identity (x-user-*, x-shoal-identity) or to
 * forge forwarding data; plus Via and X-Forwarded-For/-Proto. The same
 * filter applies to upstream responses on their way back. Pure.
 */
#ifndef SHOAL_PROXY_HEADERS_H
#define SHOAL_PROXY_HEADERS_H

#include <shoal/http_types.h>

#include <stddef.h>

#define PX_FWD_HEADERS_MAX 110 /* the server accepts at most 100, plus what the gateway adds */

/* Headers kept for forwarding, plus storage for the ones the gateway adds. */
typedef struct px_fwd_headers {
    sl_http_header h[PX_FWD_HEADERS_MAX];
    size_t n;
    char xff[256]; /* X-Forwarded-For value */
} px_fwd_headers;

/*
 * Filters `in` (a request's headers) into `out` and appends Via, and
 * X-Forwarded-For = the client's chain plus `client_ip` (when it fits;
 * otherwise just `client_ip`). Slices in `out` point into `in` and `out`.
 */
void px_filter_request_headers(const sl_http_header *in, size_t n, const char *client_ip,
                               px_fwd_headers *out);

/*
 * Filters an upstream response's headers for the client: hop-by-hop and
 * framing headers and the upstream's Date, x-request-id and traceparent
 * (the gateway's server writes its own) are dropped. Returns the count kept
 * in `out` (at most `cap`).
 */
size_t px_filter_response_headers(const sl_http_header *in, size_t n, sl_http_header *out,
                                  size_t cap);

/* Returns 1 when `name` is hop-by-hop, or is listed in the Connection header `connection`. */
int px_is_hop_by_hop(sl_slice name, sl_slice connection);

#endif
