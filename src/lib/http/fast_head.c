/*
 * Plain HTTP/1.x heads in one pass over their lines (see fast_head.h for
 * what is accepted and why the rest is declined).
 */
#include "http/fast_head.h"

#include <string.h>

static bool case_eq_lit(const char *a, size_t alen, const char *lit, size_t llen)
{
    return alen == llen && sl_slice_case_eq_slice((sl_slice){a, alen}, (sl_slice){lit, llen});
}
#define CASE_EQ(a, alen, lit) case_eq_lit((a), (alen), lit, sizeof(lit) - 1)
/* `a` starts with `lit`, ignoring case. */
#define HAS_PREFIX(a, alen, lit)                                                                   \
    ((alen) >= sizeof(lit) - 1 && case_eq_lit((a), sizeof(lit) - 1, lit, sizeof(lit) - 1))

int sl__http_fast_fields(const char *data, size_t lim, size_t pos, sl_http_header *hs, size_t max,
                         sl__fast_fields *out)
{
    if (lim > SL_FAST_HEAD_MAX) lim = SL_FAST_HEAD_MAX;
    size_t nf = 0;
    uint64_t cl = 0;
    bool has_cl = false, close = false, keep = false;
    for (;;) {
        if (pos + 2 > lim) return 0;
        const char *line = data + pos;
        if (line[0] == '\r') {
            if (line[1] != '\n') return 0;
            pos += 2;
            break;
        }
        const char *end = memchr(line, '\n', lim - pos);
        if (!end || end == line || end[-1] != '\r') return 0;
        size_t ll = (size_t)(end - line) - 1; /* without CRLF */
        size_t nl = 0;
        while (nl < ll && sl_http_is_tchar((unsigned char)line[nl]))
            nl++;
        /* A line starting with whitespace (obs-fold) has no name and ends up here too. */
        if (nl == 0 || nl == ll || line[nl] != ':') return 0;
        /* No CR, LF or other control byte in the value: the line's only CR is its last. */
        if (!sl_http_value_ok(line + nl + 1, ll - nl - 1)) return 0;
        size_t vs = nl + 1, ve = ll;
        while (vs < ve && (line[vs] == ' ' || line[vs] == '\t'))
            vs++;
        while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
            ve--;
        const char *v = line + vs;
        size_t vl = ve - vs;
        /* The names http-parser treats specially, found by their first letter. */
        switch (line[0] | 0x20) {
        case 'c': {
            /* http-parser ends a Connection token or a Content-Length at a space, not a tab. */
            bool sp_tail = memchr(line + ve, '\t', ll - ve) == NULL;
            if (HAS_PREFIX(line, nl, "connection")) {
                if (nl != 10 || !sp_tail) return 0;
                if (CASE_EQ(v, vl, "close"))
                    close = true;
                else if (CASE_EQ(v, vl, "keep-alive"))
                    keep = true;
                else
                    return 0;
            } else if (HAS_PREFIX(line, nl, "content-length")) {
                if (nl != 14 || has_cl || vl == 0 || vl > 15 || !sp_tail) return 0;
                for (size_t i = 0; i < vl; i++) {
                    unsigned d = (unsigned char)v[i] - '0';
                    if (d > 9) return 0;
                    cl = cl * 10 + d;
                }
                has_cl = true;
            }
            break;
        }
        case 't':
            if (HAS_PREFIX(line, nl, "transfer-encoding")) return 0;
            break;
        case 'u':
            if (HAS_PREFIX(line, nl, "upgrade")) return 0;
            break;
        case 'p':
            if (HAS_PREFIX(line, nl, "proxy-connection")) return 0;
            break;
        default:
            break;
        }
        if (nf == max) return 0;
        hs[nf++] = (sl_http_header){{line, nl}, {v, vl}};
        pos += ll + 2;
    }
    *out = (sl__fast_fields){.end = pos,
                             .nfields = nf,
                             .content_length = cl,
                             .has_cl = has_cl,
                             .conn_close = close,
                             .conn_keep = keep};
    return 1;
}

int sl__http_fast_request(const char *data, size_t len, sl_http_header *hs, size_t max,
                          sl__fast_request *out)
{
    size_t lim = len < SL_FAST_HEAD_MAX ? len : SL_FAST_HEAD_MAX;
    const char *sp = memchr(data, ' ', lim < 8 ? lim : 8); /* OPTIONS is the longest */
    if (!sp) return 0;
    sl_http_method m = sl_http_method_parse((sl_slice){data, (size_t)(sp - data)});
    if (m == SL_HTTP_OTHER) return 0;
    size_t t0 = (size_t)(sp - data) + 1, t = t0;
    if (t >= lim || data[t] != '/') return 0;
    while (t < lim) {
        unsigned char c = (unsigned char)data[t];
        if (c < 0x21 || c > 0x7e || c == '#') break;
        t++;
    }
    /* " HTTP/1.x\r\n" */
    if (lim - t < 11 || memcmp(data + t, " HTTP/1.", 8) != 0 ||
        (data[t + 8] != '0' && data[t + 8] != '1') || data[t + 9] != '\r' || data[t + 10] != '\n')
        return 0;
    out->method = m;
    out->http_minor = data[t + 8] - '0';
    out->target = (sl_slice){data + t0, t - t0};
    return sl__http_fast_fields(data, lim, t + 11, hs, max, &out->f);
}
