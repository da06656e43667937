/* Internals of the HTTP module shared with its tests and fuzz targets. */
#ifndef SHOAL_HTTP_INT_H
#define SHOAL_HTTP_INT_H

#include <shoal/http.h>

/*
 * Serves an already connected stream socket `fd` as if it had been accepted
 * (the server takes ownership). For the fuzz target and tests, which drive a
 * socketpair instead of a listener. Returns 0 or a negative error.
 */
SL_API int sl__http_server_adopt(sl_http_server *srv, int fd) SL_MUST_CHECK;

#endif
