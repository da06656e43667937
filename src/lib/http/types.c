/*
 * Method names, reason phrases, header lookup and percent-decoding: the
 * small pure pieces of HTTP that the server, router and client share.
 */
#include <shoal/http_types.h>

#include <stdint.h>
#include <string.h>

static const char *const method_names[] = {
#define SL_HTTP_METHOD_NAME_(name, text) text,
    SL_HTTP_METHOD_MAP(SL_HTTP_METHOD_NAME_)
#undef SL_HTTP_METHOD_NAME_
};

const char *sl_http_method_name(sl_http_method m)
{
    if ((unsigned)m < SL_ARRAY_LEN(method_names)) return method_names[m];
    return "OTHER";
}

sl_http_method sl_http_method_parse(sl_slice token)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(method_names); i++)
        if (sl_slice_eq(token, method_names[i])) return (sl_http_method)i;
    return SL_HTTP_OTHER;
}

const char *sl_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int sl_http_header_find(const sl_http_header *h, size_t n, const char *name, sl_slice *value)
{
    sl_slice want = {name, strlen(name)};
    for (size_t i = 0; i < n; i++) {
        if (sl_slice_case_eq_slice(h[i].name, want)) {
            *value = h[i].value;
            return 1;
        }
    }
    return 0;
}


static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int sl_http_pct_decode(sl_slice in, int plus_as_space, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.ptr[i];
        if (o >= cap) return SL_ELIMIT;
        if (c == '%') {
            if (i + 2 >= in.len) return SL_EPARSE;
            int hi = hexval((unsigned char)in.ptr[i + 1]),
                lo = hexval((unsigned char)in.ptr[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return SL_EPARSE;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_as_space) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    return (int)o;
}

int sl_http_query_param(sl_slice query, const char *name, sl_slice *value)
{
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i <= query.len && query.len > 0) {
        size_t end = i;
        while (end < query.len && query.ptr[end] != '&')
            end++;
        const char *kv = query.ptr + i;
        size_t kvlen = end - i;
        const char *eq = memchr(kv, '=', kvlen);
        size_t klen = eq ? (size_t)(eq - kv) : kvlen;
        if (klen == nlen && memcmp(kv, name, nlen) == 0) {
            value->ptr = eq ? eq + 1 : kv + kvlen;
            value->len = eq ? kvlen - klen - 1 : 0;
            return 1;
        }
        i = end + 1;
    }
    return 0;
}

/* No control characters but HTAB, and no DEL (RFC 9110 §5.5). Eight bytes at a time while no
 * byte is below 0x20 or equal to 0x7f; from the first word that has one (a tab, maybe), byte by
 * byte. */
int sl_http_value_ok(const char *at, size_t len)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, at + i, 8);
        uint64_t below = (w - ones * 0x20) & ~w & highs; /* some byte < 0x20 */
        uint64_t x = w ^ (ones * 0x7f);
        uint64_t del = (x - ones) & ~x & highs; /* some byte == 0x7f */
        if ((below | del) != 0) break;
    }
    for (; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return 0;
    }
    return 1;
}
