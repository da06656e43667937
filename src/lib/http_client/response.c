/*
 * Strict, incremental HTTP/1.1 response parsing for the client (pure, no
 * I/O): http-parser in HTTP_RESPONSE mode plus the checks it leaves to its
 * user (tchar-only field names, CRLF line endings, no obs-fold: it is
 * lenient there), the same ones the server applies to requests.
 *
 * Bytes are fed as they arrive. Until the final response's headers are
 * complete they are appended to `hbuf` (at most header_max bytes, interim
 * 1xx responses included) and parsed there, so every header is a contiguous
 * range of one buffer and the CRLF and obs-fold checks can look at the
 * bytes around it; fields are kept as offsets because hbuf may move when it
 * grows. Body bytes are copied into `body` (at most body_max bytes). The
 * parser is paused at the end of the final response, so bytes sent after it
 * are reported (the connection is then not reused).
 *
 * Framing (RFC 9112 §6.3): a response to HEAD, any 1xx, 204 and 304 have no
 * body whatever their headers say; otherwise chunked, Content-Length, or
 * close-delimited (the body ends at EOF, see sl__http_resp_eof). Content-Length
 * with Transfer-Encoding is refused (http-parser's strict default), as are a
 * transfer coding other than exactly "chunked", a repeated
 * Transfer-Encoding, bad chunk sizes, and a 101 (we never ask to upgrade).
 *
 * Fast path: when the first read holds a whole final head of the plain kind
 * (HTTP/1.0 or 1.1, a 2xx-5xx status, token names, no Transfer-Encoding,
 * Upgrade or Proxy-Connection, Connection only "close" or "keep-alive", at
 * most one Content-Length of digits, and a body that is either empty or of
 * that length), fast_head parses it in one pass over its lines instead of
 * through http-parser's per-byte state machine. It accepts only heads that
 * http-parser and the checks above accept with the same result, and declines
 * everything else to the general path; the differential fuzz target
 * (http_response_fuzz) holds it to that.
 */
#include "http_client_int.h"

#include "http/fast_head.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The names of a call's result kinds (http_client.h), here with the other pure parts so the
 * client and its metrics can both name them. */
static const char *const result_names[] = {
#define SL_HTTP_RESULT_NAME_(name, text) text,
    SL_HTTP_RESULT_MAP(SL_HTTP_RESULT_NAME_)
#undef SL_HTTP_RESULT_NAME_
};

const char *sl_http_result_kind_name(sl_http_result_kind kind)
{
    if ((unsigned)kind >= SL_HTTP_RESULT_COUNT) return "unknown";
    return result_names[kind];
}

#define HBUF_INITIAL 2048
#define BODY_INITIAL 4096

/* Records the first error; returns non-zero, which makes http-parser stop (its callbacks' rule). */
static int fail(sl__http_resp *r, int code, const char *detail)
{
    if (!r->error) {
        r->error = code;
        r->error_detail = detail;
    }
    return -1;
}

static int on_message_begin(http_parser *p)
{
    sl__http_resp *r = p->data;
    r->nfields = 0;
    r->last_cb = SL__HTTP_RESP_CB_NONE;
    r->last_end = 0;
    r->te_count = r->te_chunked = r->status_seen = 0;
    return 0;
}

static int on_status(http_parser *p, const char *at, size_t len)
{
    sl__http_resp *r = p->data;
    if (!r->in_headers) return 0;
    r->status_seen = 1;
    r->last_end = (size_t)(at + len - r->hbuf);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    sl__http_resp *r = p->data;
    if (!r->in_headers) return 0; /* trailer fields are read and ignored */
    for (size_t i = 0; i < len; i++)
        if (!sl_http_is_tchar((unsigned char)at[i]))
            return fail(r, SL_EPARSE, "invalid character in header name");
    size_t off = (size_t)(at - r->hbuf);
    if (r->last_cb == SL__HTTP_RESP_CB_FIELD && off == r->last_end) {
        r->fields[r->nfields - 1].name_len += (uint32_t)len; /* split across feeds */
    } else {
        if (r->nfields == SL_HTTP_CLIENT_HEADERS_MAX)
            return fail(r, SL_ELIMIT, "too many header fields");
        sl__http_resp_field *f = &r->fields[r->nfields++];
        f->name_off = (uint32_t)off;
        f->name_len = (uint32_t)len;
        f->value_off = (uint32_t)(off + len);
        f->value_len = 0;
    }
    r->last_cb = SL__HTTP_RESP_CB_FIELD;
    r->last_end = off + len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    sl__http_resp *r = p->data;
    if (!r->in_headers) return 0;
    sl__http_resp_field *f = &r->fields[r->nfields - 1];
    size_t off = (size_t)(at - r->hbuf);
    if (r->last_cb == SL__HTTP_RESP_CB_VALUE) {
        /* RFC 9112 §5.2: a piece that does not continue the value is an obs-fold. */
        if (off != r->last_end) return fail(r, SL_EPARSE, "obsolete line folding");
        f->value_len += (uint32_t)len;
    } else {
        f->value_off = (uint32_t)off;
        f->value_len = (uint32_t)len;
    }
    if (!sl_http_value_ok(at, len)) return fail(r, SL_EPARSE, "invalid character in header value");
    r->last_cb = SL__HTTP_RESP_CB_VALUE;
    r->last_end = off + len;
    return 0;
}

static sl_slice field_name(const sl__http_resp *r, const sl__http_resp_field *f)
{
    return (sl_slice){r->hbuf + f->name_off, f->name_len};
}

static void trim(const sl__http_resp *r, sl__http_resp_field *f)
{
    const char *v = r->hbuf + f->value_off;
    while (f->value_len && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        f->value_off++;
        f->value_len--;
    }
    while (f->value_len && (v[f->value_len - 1] == ' ' || v[f->value_len - 1] == '\t'))
        f->value_len--;
}

static int on_headers_complete(http_parser *p)
{
    sl__http_resp *r = p->data;
    if (p->http_major != 1) return fail(r, SL_EPARSE, "only HTTP/1.x is supported");
    if (p->status_code < 100 || p->status_code > 599)
        return fail(r, SL_EPARSE, "status code out of range");
    if (p->status_code == 101 || p->upgrade)
        return fail(r, SL_EPARSE, "unexpected protocol switch");
    for (size_t i = 0; i < r->nfields; i++) {
        sl__http_resp_field *f = &r->fields[i];
        trim(r, f);
        if (sl_slice_case_eq(field_name(r, f), "transfer-encoding")) {
            r->te_count++;
            r->te_chunked =
                sl_slice_case_eq((sl_slice){r->hbuf + f->value_off, f->value_len}, "chunked");
        }
    }
    if (r->te_count > 1) return fail(r, SL_EPARSE, "repeated Transfer-Encoding");
    if (r->te_count == 1 && !r->te_chunked)
        return fail(r, SL_EPARSE, "unsupported transfer coding");
    if (r->te_count == 1 && p->http_minor == 0)
        return fail(r, SL_EPARSE, "Transfer-Encoding in an HTTP/1.0 response");
    int st = p->status_code;
    if (st < 200) return 1; /* interim: no body; the final response follows */
    r->in_headers = false;
    /* RFC 9112 §6.3 rules 1 and 2: these have no content, whatever the fields say. */
    if (r->head || st == 204 || st == 304) return 1;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->body_max)
        return fail(r, SL_ELIMIT, "response body too large");
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > 0 && r->body_cap < p->content_length) {
        char *b = realloc(r->body, (size_t)p->content_length);
        if (!b) return fail(r, SL_ENOMEM, "out of memory");
        r->body = b;
        r->body_cap = (size_t)p->content_length;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    sl__http_resp *r = p->data;
    if (len > r->body_max - r->body_len) return fail(r, SL_ELIMIT, "response body too large");
    if (r->body_len + len > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : BODY_INITIAL;
        while (cap < r->body_len + len)
            cap *= 2;
        if (cap > r->body_max) cap = r->body_max;
        char *b = realloc(r->body, cap);
        if (!b) return fail(r, SL_ENOMEM, "out of memory");
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    sl__http_resp *r = p->data;
    if (r->in_headers) return 0; /* an interim 1xx response ended */
    r->done = true;
    r->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void sl__http_resp_init(sl__http_resp *r, size_t header_max, size_t body_max)
{
    memset(r, 0, offsetof(sl__http_resp, fields));
    r->header_max = header_max;
    r->body_max = body_max;
    sl__http_resp_reset(r, false);
}

void sl__http_resp_reset(sl__http_resp *r, bool head)
{
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
    r->head = head;
    r->hlen = 0;
    r->body_len = 0;
    r->nfields = 0;
    r->last_end = 0;
    r->last_cb = SL__HTTP_RESP_CB_NONE;
    r->te_count = r->te_chunked = r->status_seen = 0;
    r->scan_off = r->line_start = r->block_start = 0;
    r->scan_cr = r->scan_done = false;
    r->in_headers = true;
    r->done = false;
    r->keep_alive = false;
    r->got_bytes = false;
    r->body_left = 0;
    r->fast = false;
    r->error = 0;
    r->error_detail = NULL;
}

void sl__http_resp_free(sl__http_resp *r)
{
    free(r->hbuf);
    free(r->body);
    r->hbuf = r->body = NULL;
    r->hcap = r->body_cap = 0;
}

/*
 * Checks the line structure of the header blocks appended to hbuf before the
 * parser sees them (RFC 9112 §2.2, §5.2): every line ends in CRLF (a bare CR
 * or LF is refused: http-parser itself takes CR followed by any byte, or a
 * bare LF, as a line end), no line of a block but the first starts with
 * whitespace (obs-fold), and the empty line ends the block. Blocks of interim
 * 1xx responses are followed by another block; scanning stops after the
 * final one, where the body begins. Doing this on the bytes, not in the
 * parser's callbacks, makes the result independent of how reads were split.
 */
static int scan(sl__http_resp *r)
{
    /* The state lives in locals while the bytes go by (stores through r would be redone for
     * every byte: hbuf is a char buffer and may alias r). */
    const char *h = r->hbuf;
    size_t i = r->scan_off, end = r->hlen, ls = r->line_start, bs = r->block_start;
    bool cr = r->scan_cr, done = r->scan_done;
    while (i < end && !done) {
        char c = h[i];
        if (cr) {
            if (c != '\n') return fail(r, SL_EPARSE, "line endings must be CRLF");
            cr = false;
            if (i - 1 == ls) { /* an empty line ends a block */
                if (ls == bs) return fail(r, SL_EPARSE, "empty status line");
                /* "HTTP/1.1 1xx": an interim block, another block follows. */
                bool interim = ls - bs >= 12 && h[bs + 9] == '1';
                if (interim)
                    bs = i + 1;
                else
                    done = true;
            }
            ls = ++i;
            continue;
        }
        if (i == ls && i != bs && (c == ' ' || c == '\t'))
            return fail(r, SL_EPARSE, "obsolete line folding");
        /* To the line's end: its first CR must come right before its LF, which the next turn
         * checks; an LF with no CR before it is a bare LF. */
        const char *lf = memchr(h + i, '\n', end - i);
        size_t stop = lf ? (size_t)(lf - h) : end;
        const char *crp = memchr(h + i, '\r', stop - i);
        if (crp == NULL) {
            if (lf) return fail(r, SL_EPARSE, "line endings must be CRLF");
            i = end;
            continue;
        }
        i = (size_t)(crp - h) + 1;
        cr = true;
    }
    r->scan_cr = cr;
    r->scan_done = done;
    r->line_start = ls;
    r->block_start = bs;
    r->scan_off = end;
    return 0;
}

/* Runs the parser over `len` bytes at `at`; returns the bytes it consumed, or -1. */
static long run(sl__http_resp *r, const char *at, size_t len)
{
    size_t n = http_parser_execute(&r->parser, &settings, at, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_OK || (e == HPE_PAUSED && r->done)) return (long)n;
    if (!r->error) {
        int code = e == HPE_HEADER_OVERFLOW ? SL_ELIMIT : SL_EPARSE;
        fail(r, code, http_errno_description(e));
    }
    return -1;
}

static int grow_hbuf(sl__http_resp *r, size_t need)
{
    if (need <= r->hcap) return 0;
    size_t cap = r->hcap ? r->hcap : HBUF_INITIAL;
    while (cap < need)
        cap *= 2;
    if (cap > r->header_max) cap = r->header_max;
    char *b = realloc(r->hbuf, cap);
    if (!b) return fail(r, SL_ENOMEM, "out of memory");
    r->hbuf = b;
    r->hcap = cap;
    return 0;
}

/* ---- fast path (see the top of the file and http/fast_head.h) ---- */

enum { FAST_DECLINE = 2 };

/*
 * Parses the head at the start of `data` when it is of the plain kind, copies it to hbuf and
 * starts the body. Returns FAST_DECLINE (nothing changed but the scratch `headers`), or what
 * sl__http_resp_feed returns.
 */
static int fast_head(sl__http_resp *r, const char *data, size_t len, size_t *consumed)
{
    size_t lim = len < r->header_max ? len : r->header_max;
    /* Status line: "HTTP/1.x ddd" then CRLF or SP reason CRLF. */
    if (lim < 14 || memcmp(data, "HTTP/1.", 7) != 0 || (data[7] != '0' && data[7] != '1') ||
        data[8] != ' ')
        return FAST_DECLINE;
    unsigned d0 = (unsigned char)data[9] - '0', d1 = (unsigned char)data[10] - '0',
             d2 = (unsigned char)data[11] - '0';
    if (d0 < 2 || d0 > 5 || d1 > 9 || d2 > 9) return FAST_DECLINE;
    if (data[12] != ' ' && data[12] != '\r') return FAST_DECLINE;
    const char *lf = memchr(data, '\n', lim);
    if (!lf || lf[-1] != '\r' || memchr(data, '\r', (size_t)(lf - data)) != lf - 1)
        return FAST_DECLINE;
    unsigned status = d0 * 100 + d1 * 10 + d2;
    bool minor1 = data[7] == '1';
    sl__fast_fields ff;
    if (!sl__http_fast_fields(data, lim, (size_t)(lf - data) + 1, r->headers,
                              SL_HTTP_CLIENT_HEADERS_MAX, &ff))
        return FAST_DECLINE;
    size_t pos = ff.end;
    bool no_body = r->head || status == 204 || status == 304;
    if (!no_body && (!ff.has_cl || ff.content_length > r->body_max)) return FAST_DECLINE;

    /* Accepted: the head goes to hbuf (the fields are offsets into it), the body to body. */
    if (grow_hbuf(r, pos)) return r->error;
    memcpy(r->hbuf, data, pos);
    r->hlen = pos;
    r->nfields = ff.nfields;
    for (size_t i = 0; i < ff.nfields; i++) {
        const sl_http_header *h = &r->headers[i];
        r->fields[i] =
            (sl__http_resp_field){(uint32_t)(h->name.ptr - data), (uint32_t)h->name.len,
                                  (uint32_t)(h->value.ptr - data), (uint32_t)h->value.len};
    }
    r->parser.http_major = 1;
    r->parser.http_minor = minor1 ? 1 : 0;
    r->parser.status_code = status;
    r->in_headers = false;
    r->fast = true;
    r->keep_alive = minor1 ? !ff.conn_close : ff.conn_keep;
    size_t want = no_body ? 0 : (size_t)ff.content_length;
    if (want > r->body_cap) {
        char *b = realloc(r->body, want);
        if (!b) return fail(r, SL_ENOMEM, "out of memory");
        r->body = b;
        r->body_cap = want;
    }
    size_t have = len - pos < want ? len - pos : want;
    if (have) memcpy(r->body, data + pos, have);
    r->body_len = have;
    r->body_left = want - have;
    *consumed = pos + have;
    if (r->body_left) return 0;
    r->done = true;
    return 1;
}

/* The rest of a fast-path body. */
static int fast_body(sl__http_resp *r, const char *data, size_t len, size_t *consumed)
{
    size_t n = len < r->body_left ? len : r->body_left;
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body_left -= n;
    *consumed = n;
    if (r->body_left) return 0;
    r->done = true;
    return 1;
}

int sl__http_resp_feed(sl__http_resp *r, const char *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (r->error) return r->error;
    if (r->done) return 1;
    if (len == 0) return 0;
    r->got_bytes = true;
    if (r->body_left) return fast_body(r, data, len, consumed);
    if (r->hlen == 0 && !r->no_fast) {
        int rc = fast_head(r, data, len, consumed);
        if (rc != FAST_DECLINE) return rc;
    }
    size_t used = 0;
    while (used < len && r->in_headers) {
        size_t room = r->header_max - r->hlen;
        if (room == 0) {
            fail(r, SL_ELIMIT, "response header block too large");
            return r->error;
        }
        size_t n = len - used < room ? len - used : room;
        if (grow_hbuf(r, r->hlen + n)) return r->error;
        memcpy(r->hbuf + r->hlen, data + used, n);
        size_t start = r->hlen;
        r->hlen += n;
        if (scan(r)) return r->error;
        long k = run(r, r->hbuf + start, n);
        if (k < 0) return r->error;
        used += (size_t)k;
        if (r->done) {
            *consumed = used;
            return 1;
        }
    }
    if (used < len) {
        long k = run(r, data + used, len - used);
        if (k < 0) return r->error;
        used += (size_t)k;
    }
    *consumed = used;
    return r->done ? 1 : 0;
}

int sl__http_resp_eof(sl__http_resp *r)
{
    if (r->done) return 1;
    if (r->error) return r->error;
    if (r->body_left) {
        fail(r, SL_EIO, "connection closed mid-response");
        return SL_EIO;
    }
    /* http-parser ends a close-delimited body on a zero-length execute. */
    http_parser_execute(&r->parser, &settings, NULL, 0);
    if (r->done) return 1;
    fail(r, SL_EIO, r->got_bytes ? "connection closed mid-response" : "connection closed");
    return SL_EIO;
}

const sl_http_response *sl__http_resp_get(sl__http_resp *r)
{
    sl__http_resp *m = r;
    for (size_t i = 0; i < r->nfields; i++) {
        const sl__http_resp_field *f = &r->fields[i];
        m->headers[i].name = (sl_slice){r->hbuf + f->name_off, f->name_len};
        m->headers[i].value = (sl_slice){r->hbuf + f->value_off, f->value_len};
    }
    m->res.status = r->parser.status_code;
    m->res.http_minor = r->parser.http_minor;
    m->res.headers = m->headers;
    m->res.nheaders = r->nfields;
    m->res.body = (sl_slice){r->body_len ? r->body : "", r->body_len};
    return &m->res;
}
