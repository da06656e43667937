/*
 * HTTP vocabulary shared by the server, the router and (later) the client:
 * methods, headers, status reason phrases. No I/O.
 */
#ifndef SHOAL_HTTP_TYPES_H
#define SHOAL_HTTP_TYPES_H

#include <shoal/common.h>

#include <stdint.h>

/* Methods Shoal routes. Anything else is SL_HTTP_OTHER (and usually 405 or 501). */
#define SL_HTTP_METHOD_MAP(X)                                                                      \
    X(GET, "GET")                                                                                  \
    X(HEAD, "HEAD")                                                                                \
    X(POST, "POST")                                                                                \
    X(PUT, "PUT")                                                                                  \
    X(PATCH, "PATCH")                                                                              \
    X(DELETE, "DELETE")                                                                            \
    X(OPTIONS, "OPTIONS")

typedef enum sl_http_method {
#define SL_HTTP_METHOD_ENUM_(name, text) SL_HTTP_##name,
    SL_HTTP_METHOD_MAP(SL_HTTP_METHOD_ENUM_)
#undef SL_HTTP_METHOD_ENUM_
        SL_HTTP_OTHER,
    SL_HTTP_METHOD_COUNT
} sl_http_method;

/* A header as slices into the request buffer (valid as long as the request). */
typedef struct sl_http_header {
    sl_slice name;
    sl_slice value;
} sl_http_header;

/* Returns the method's token ("GET"), or "OTHER". Static storage. */
SL_API const char *sl_http_method_name(sl_http_method m);

/* Maps a method token (case-sensitive, RFC 9110 §9.1) to the enum; unknown → SL_HTTP_OTHER. */
SL_API sl_http_method sl_http_method_parse(sl_slice token);

/* Returns the reason phrase of a status code ("Not Found"), or "Unknown". Static storage. */
SL_API const char *sl_http_reason(int status);

/*
 * Finds the first header named `name` (case-insensitive) among `n` headers.
 * Returns 1 and stores the value in *value, or 0 when absent.
 */
SL_API int sl_http_header_find(const sl_http_header *h, size_t n, const char *name,
                               sl_slice *value);

/* Returns 1 when `len` bytes at `at` may appear in a field value: no control character but HTAB,
 * no DEL (RFC 9110 §5.5; obs-text is allowed). */
SL_API int sl_http_value_ok(const char *at, size_t len);

/* Returns 1 when `c` is an RFC 9110 tchar (allowed in a header name or method token): "!" /
 * "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT /
 * ALPHA (§5.6.2). Inline: parsers call it for every byte of every field name. */
static inline int sl_http_is_tchar(unsigned char c)
{
    static const uint64_t map[4] = {0x03ff6cfa00000000ull, 0x57ffffffc7fffffeull, 0, 0};
    return (int)(map[c >> 6] >> (c & 63)) & 1;
}

/*
 * Decodes RFC 3986 percent-escapes of `in` into `out` (capacity `cap`, at
 * least in.len bytes suffice). With `plus_as_space`, '+' becomes ' '
 * (query strings). Returns the decoded length, or SL_EPARSE for a bad escape
 * or a decoded NUL byte.
 */
SL_API int sl_http_pct_decode(sl_slice in, int plus_as_space, char *out, size_t cap);

/*
 * Looks up query parameter `name` in the raw query string `query` (without '?').
 * Returns 1 and the raw (still encoded) value, or 0 when absent.
 */
SL_API int sl_http_query_param(sl_slice query, const char *name, sl_slice *value);

#endif /* SHOAL_HTTP_TYPES_H */
