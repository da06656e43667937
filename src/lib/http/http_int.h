/* Internals of the HTTP module shared with its tests and fuzz targets. */
#ifndef SHOAL_HTTP_INT_H
#define SHOAL_HTTP_INT_H

#include <shoal/http.h>

#include <stdbool.h>

/*
 * Serves an already connected stream socket `fd` as if it had been accepted
 * (the server takes ownership). For the fuzz target and tests, which drive a
 * socketpair instead of a listener. Returns 0 or a negative error.
 */
SL_API int sl__http_server_adopt(sl_http_server *srv, int fd) SL_MUST_CHECK;

/* Turns the fast path for plain requests (http/fast_head.h) on (the default) or off, so that
 * tests can compare both paths on the same bytes. */
SL_API void sl__http_server_set_fast(sl_http_server *srv, bool on);

/* How many requests the fast path has read. */
SL_API size_t sl__http_server_fast_taken(const sl_http_server *srv);

#endif
