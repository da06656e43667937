/*
 * Unit tests for the pure parts of the HTTP client: canonical request
 * serialisation (exact bytes, dropped fields, refusals) and the strict
 * response parser driven byte by byte and at every split point.
 */
#include "http_client/http_client_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define H(n, v)                                                                                    \
    {                                                                                              \
        {n, sizeof(n) - 1},                                                                        \
        {                                                                                          \
            v, sizeof(v) - 1                                                                       \
        }                                                                                          \
    }
#define S(s) ((sl_slice){s, sizeof(s) - 1})

/* Serialises one attempt's head into a static buffer; returns its length or an error. */
static int serialise(const sl_http_request *req, const char *rid, const char *key, const char *tp,
                     const char *dl, char *out, size_t cap)
{
    size_t size = 0;
    int rc = sl__http_prep_size(req, rid, key, &size);
    if (rc != 0) return rc;
    char *buf = malloc(size);
    assert_non_null(buf);
    sl__http_prep prep;
    sl__http_prep_write(req, rid, key, buf, &prep);
    assert_int_equal(prep.tail_off + prep.tail_len, size);
    rc = sl__http_head_write(&prep, "svc:8080", tp, NULL, dl, out, cap);
    free(buf);
    return rc;
}

static void test_serialise_canonical(void **state)
{
    (void)state;
    const sl_http_header hs[] = {
        H("Accept", "application/json"),
        H("Host", "evil.example"),
        H("Connection", "x-secret, keep-alive"),
        H("X-Secret", "hop"),
        H("Transfer-Encoding", "chunked"),
        H("Keep-Alive", "timeout=5"),
        H("TE", "trailers"),
        H("Upgrade", "h2c"),
        H("Content-Length", "999"),
        H("traceparent", "forged"),
        H("X-Shoal-Deadline-Ms", "999999"),
        H("x-request-id", "forged"),
        H("tracestate", "a=b"),
        H("X-Empty", ""),
    };
    sl_http_request req = {.method = SL_HTTP_GET,
                           .target = S("/orders/42?x=1"),
                           .headers = hs,
                           .nheaders = SL_ARRAY_LEN(hs)};
    char out[1024];
    int n =
        serialise(&req, "req-1", NULL, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                  "250", out, sizeof out);
    const char want[] = "GET /orders/42?x=1 HTTP/1.1\r\n"
                        "Host: svc:8080\r\n"
                        "Accept: application/json\r\n"
                        "tracestate: a=b\r\n"
                        "X-Empty: \r\n"
                        "x-request-id: req-1\r\n"
                        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
                        "x-shoal-deadline-ms: 250\r\n"
                        "\r\n";
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(out, want, strlen(want));
}

static void test_serialise_lengths(void **state)
{
    (void)state;
    char out[512];
    /* POST without a body still says Content-Length: 0 (RFC 9110 §8.6). */
    sl_http_request req = {.method = SL_HTTP_POST, .target = S("/a")};
    int n = serialise(&req, NULL, "key-9", NULL, NULL, out, sizeof out);
    const char want1[] = "POST /a HTTP/1.1\r\nHost: svc:8080\r\nidempotency-key: key-9\r\n"
                         "Content-Length: 0\r\n\r\n";
    assert_int_equal(n, (int)strlen(want1));
    assert_memory_equal(out, want1, strlen(want1));
    /* A body gets its length; a GET without one gets none. */
    req.body = "{\"a\":1}";
    req.body_len = 7;
    n = serialise(&req, NULL, NULL, NULL, NULL, out, sizeof out);
    const char want2[] = "POST /a HTTP/1.1\r\nHost: svc:8080\r\nContent-Length: 7\r\n\r\n";
    assert_int_equal(n, (int)strlen(want2));
    assert_memory_equal(out, want2, strlen(want2));
    sl_http_request get = {.method = SL_HTTP_DELETE, .target = S("/b")};
    n = serialise(&get, NULL, NULL, NULL, NULL, out, sizeof out);
    const char want3[] = "DELETE /b HTTP/1.1\r\nHost: svc:8080\r\n\r\n";
    assert_int_equal(n, (int)strlen(want3));
    assert_memory_equal(out, want3, strlen(want3));
    /* Too small an output buffer is refused, not overrun. */
    assert_int_equal(serialise(&get, NULL, NULL, NULL, NULL, out, 10), SL_ELIMIT);
}

static void test_serialise_refusals(void **state)
{
    (void)state;
    char out[512];
    sl_http_request req = {.method = SL_HTTP_GET, .target = S("/a")};
    const sl_http_header cr[] = {H("X-A", "a\rb")};
    const sl_http_header lf[] = {H("X-A", "a\nInjected: 1")};
    const sl_http_header nul[] = {{{"X-A", 3}, {"a\0b", 3}}};
    const sl_http_header badname[] = {H("X A", "v")};
    const sl_http_header colon[] = {H("X:A", "v")};
    const sl_http_header empty[] = {H("", "v")};
    const sl_http_header *bad[] = {cr, lf, nul, badname, colon, empty};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        req.headers = bad[i];
        req.nheaders = 1;
        assert_int_equal(serialise(&req, NULL, NULL, NULL, NULL, out, sizeof out), SL_EINVAL);
    }
    req.headers = NULL;
    req.nheaders = 0;
    assert_int_equal(serialise(&req, "a\r\nb", NULL, NULL, NULL, out, sizeof out), SL_EINVAL);
    assert_int_equal(serialise(&req, NULL, "k\n", NULL, NULL, out, sizeof out), SL_EINVAL);
    const sl_slice targets[] = {S(""),       S("a"),       S("http://x/"), S("/a b"),
                                S("/a\r\n"), {"/\x80", 2}, {"/\0", 2}};
    for (size_t i = 0; i < SL_ARRAY_LEN(targets); i++) {
        req.target = targets[i];
        assert_int_equal(serialise(&req, NULL, NULL, NULL, NULL, out, sizeof out), SL_EINVAL);
    }
    req.target = S("/a");
    req.method = SL_HTTP_OTHER;
    assert_int_equal(serialise(&req, NULL, NULL, NULL, NULL, out, sizeof out), SL_EINVAL);
    /* A head over the limit is SL_ELIMIT. */
    req.method = SL_HTTP_GET;
    size_t big = SL_HTTP_CLIENT_HEAD_MAX;
    char *v = malloc(big);
    memset(v, 'v', big);
    sl_http_header h = {{"X-Big", 5}, {v, big}};
    req.headers = &h;
    req.nheaders = 1;
    size_t size;
    assert_int_equal(sl__http_prep_size(&req, NULL, NULL, &size), SL_ELIMIT);
    free(v);
}

/* ---- response parsing ---- */

typedef struct parsed {
    int rc;
    size_t consumed;
} parsed;

/* Feeds `text` in pieces of `step` bytes (0 = all at once), then EOF if `eof`. */
static parsed feed(sl__http_resp *r, const char *text, size_t len, size_t step, int eof)
{
    parsed p = {0, 0};
    size_t off = 0;
    while (off < len) {
        size_t n = step && step < len - off ? step : len - off;
        size_t c = 0;
        p.rc = sl__http_resp_feed(r, text + off, n, &c);
        p.consumed = off + c;
        if (p.rc != 0) return p;
        off += n;
    }
    if (eof) p.rc = sl__http_resp_eof(r);
    return p;
}

static void check_ok(const char *text, size_t step, int eof, bool head, int status,
                     const char *body, bool keep_alive)
{
    sl__http_resp r;
    sl__http_resp_init(&r, 16 * 1024, 1024);
    sl__http_resp_reset(&r, head);
    parsed p = feed(&r, text, strlen(text), step, eof);
    if (p.rc != 1)
        fprintf(stderr, "step %zu: rc %d (%s) for %s\n", step, p.rc,
                r.error_detail ? r.error_detail : "", text);
    assert_int_equal(p.rc, 1);
    const sl_http_response *res = sl__http_resp_get(&r);
    assert_int_equal(res->status, status);
    assert_int_equal(res->body.len, strlen(body));
    assert_memory_equal(res->body.ptr, body, strlen(body));
    assert_int_equal(r.keep_alive, keep_alive);
    sl__http_resp_free(&r);
}

static void check_all_steps(const char *text, int eof, bool head, int status, const char *body,
                            bool keep_alive)
{
    for (size_t step = 0; step <= 7; step++)
        check_ok(text, step, eof, head, status, body, keep_alive);
}

static void test_response_framings(void **state)
{
    (void)state;
    check_all_steps("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  padded \t\r\n\r\nhello", 0,
                    false, 200, "hello", true);
    check_all_steps("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer-A: x\r\n\r\n",
                    0, false, 200, "hello world", true);
    /* Close-delimited: the body ends at EOF and the connection is not reusable. */
    check_all_steps("HTTP/1.1 200 OK\r\n\r\nuntil the end", 1, false, 200, "until the end", false);
    check_all_steps("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, false, 200, "ok", false);
    check_all_steps("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 0,
                    false, 200, "ok", true);
    check_all_steps("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: "
                    "2\r\n\r\nno",
                    0, false, 503, "no", false);
    /* No body for HEAD, 204 and 304, whatever the fields say (RFC 9112 §6.3). */
    check_all_steps("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0, true, 200, "", true);
    check_all_steps("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, false, 204, "",
                    true);
    check_all_steps("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0, false,
                    304, "", true);
    /* Interim responses are skipped; only the final one's headers are kept. */
    check_all_steps("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                    "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                    "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew",
                    0, false, 201, "new", true);
    /* Empty field values, with and without whitespace. */
    check_all_steps("HTTP/1.1 200 OK\r\nX-E:\r\nX-F: \r\nContent-Length: 1\r\nX-G:\r\n\r\nz", 0,
                    false, 200, "z", true);
    /* An empty reason phrase is fine, with or without its separator. */
    check_all_steps("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", 0, false, 200, "", true);
    check_all_steps("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0, false, 200, "", true);

    sl__http_resp r;
    sl__http_resp_init(&r, 16 * 1024, 1024);
    sl__http_resp_reset(&r, false);
    const char *t = "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 200 OK\r\n"
                    "X-A:  padded \t\r\nContent-Length: 0\r\n\r\nEXTRA";
    parsed p = feed(&r, t, strlen(t), 0, 0);
    assert_int_equal(p.rc, 1);
    assert_int_equal(p.consumed, strlen(t) - 5); /* bytes after the response are reported */
    const sl_http_response *res = sl__http_resp_get(&r);
    assert_int_equal(res->nheaders, 2);
    sl_slice v;
    assert_int_equal(sl_http_response_header(res, "x-a", &v), 1);
    assert_int_equal(v.len, 6);
    assert_memory_equal(v.ptr, "padded", 6);
    assert_int_equal(sl_http_response_header(res, "x-interim", &v), 0);
    /* The parser is reusable after a reset. */
    sl__http_resp_reset(&r, false);
    p = feed(&r, "HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx", 48, 1, 0);
    assert_int_equal(p.rc, 1);
    assert_int_equal(sl__http_resp_get(&r)->status, 404);
    sl__http_resp_free(&r);
}

static void check_error(const char *text, int eof, int want)
{
    for (size_t step = 0; step <= 3; step++) {
        sl__http_resp r;
        sl__http_resp_init(&r, 512, 64);
        sl__http_resp_reset(&r, false);
        parsed p = feed(&r, text, strlen(text), step, eof);
        if (p.rc != want)
            fprintf(stderr, "step %zu: rc %d want %d for %s\n", step, p.rc, want, text);
        assert_int_equal(p.rc, want);
        /* Once failed, it stays failed. */
        size_t c;
        assert_int_equal(sl__http_resp_feed(&r, "x", 1, &c), want);
        sl__http_resp_free(&r);
    }
}

static void test_response_rejections(void **state)
{
    (void)state;
    /* Framing that could desynchronise the connection. */
    check_error("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
                SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 0,
                SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 0,
                SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, SL_EPARSE);
    check_error(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
        SL_EPARSE);
    check_error("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 0,
                SL_EPARSE);
    /* Syntax the server also refuses. */
    check_error("HTTP/1.1 200 OK\nContent-Length: 0\n\n", 0, SL_EPARSE);
    /* http-parser takes CR + any byte as a line end; found by the fuzz target (cr_not_crlf). */
    check_error("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No200 OK\r5\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nX-A: a\r5X-B: b\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nX-A: a\r\nContent-Length: 0\r5\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nX A: a\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 200 OK\r\nX-A: a\x01\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 600 Nope\r\nContent-Length: 0\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 099 Nope\r\nContent-Length: 0\r\n\r\n", 0, SL_EPARSE);
    check_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", 0, SL_EPARSE);
    check_error("HTCPCP/1.0 418 Teapot\r\n\r\n", 0, SL_EPARSE);
    /* Limits: header block 512 bytes, body 64 bytes in these cases. */
    char big[1024];
    snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX-Big: %0600d\r\n\r\n", 7);
    check_error(big, 0, SL_ELIMIT);
    check_error("HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", 0, SL_ELIMIT);
    check_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
                "1\r\nx\r\n0\r\n\r\n",
                0, SL_ELIMIT);
    check_error("HTTP/1.1 200 OK\r\n\r\n01234567890123456789012345678901234567890123456789"
                "0123456789012345",
                1, SL_ELIMIT);
    /* A connection closed before the response ended. */
    check_error("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1, SL_EIO);
    check_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 1, SL_EIO);
    check_error("HTTP/1.1 200 OK\r\nContent-Le", 1, SL_EIO);
    check_error("", 1, SL_EIO);
}

/* Header values are checked eight bytes at a time: a control character or DEL anywhere in a long
 * value is still refused, and a tab or UTF-8 anywhere is still accepted. */
static void test_header_value_bytes(void **state)
{
    (void)state;
    for (size_t at = 0; at < 24; at++) {
        char value[25], text[128];
        memset(value, 'v', 24);
        value[24] = '\0';
        const char bad[] = {'\x01', '\x1f', '\x7f', '\0'};
        for (const char *b = bad; *b; b++) {
            value[at] = *b;
            snprintf(text, sizeof text, "HTTP/1.1 200 OK\r\nX-V: %s\r\nContent-Length: 0\r\n\r\n",
                     value);
            check_error(text, 0, SL_EPARSE);
        }
        value[at] = '\t';
        snprintf(text, sizeof text, "HTTP/1.1 200 OK\r\nX-V: x%sx\r\nContent-Length: 0\r\n\r\n",
                 value);
        check_ok(text, 0, 0, false, 200, "", true);
        if (at + 1 < 24) {
            memcpy(value + at, "\xc3\xa9", 2);
            snprintf(text, sizeof text, "HTTP/1.1 200 OK\r\nX-V: %s\r\nContent-Length: 0\r\n\r\n",
                     value);
            check_ok(text, 0, 0, false, 200, "", true);
        }
    }
}

static void test_too_many_headers(void **state)
{
    (void)state;
    char *t = malloc(16 * 1024);
    size_t n = (size_t)sprintf(t, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i <= SL_HTTP_CLIENT_HEADERS_MAX; i++)
        n += (size_t)sprintf(t + n, "X-%d: v\r\n", i);
    n += (size_t)sprintf(t + n, "\r\n");
    sl__http_resp r;
    sl__http_resp_init(&r, 16 * 1024, 64);
    sl__http_resp_reset(&r, false);
    size_t c;
    assert_int_equal(sl__http_resp_feed(&r, t, n, &c), SL_ELIMIT);
    sl__http_resp_free(&r);
    free(t);
}

/* Every split point of a response into two feeds gives the same parse. */
static void test_every_split(void **state)
{
    (void)state;
    const char *t = "HTTP/1.1 200 OK\r\nX-One: 1\r\nTransfer-Encoding: chunked\r\nX-Two: "
                    "two\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    size_t len = strlen(t);
    for (size_t cut = 0; cut <= len; cut++) {
        sl__http_resp r;
        sl__http_resp_init(&r, 4096, 64);
        sl__http_resp_reset(&r, false);
        size_t c1 = 0, c2 = 0;
        int rc = sl__http_resp_feed(&r, t, cut, &c1);
        if (rc == 0) rc = sl__http_resp_feed(&r, t + cut, len - cut, &c2);
        assert_int_equal(rc, 1);
        const sl_http_response *res = sl__http_resp_get(&r);
        assert_int_equal(res->nheaders, 3);
        sl_slice v;
        assert_int_equal(sl_http_response_header(res, "x-two", &v), 1);
        assert_int_equal(v.len, 3);
        assert_memory_equal(v.ptr, "two", 3);
        assert_int_equal(res->body.len, 5);
        assert_memory_equal(res->body.ptr, "abcde", 5);
        sl__http_resp_free(&r);
    }
}

/* A header block that outgrows hbuf's first allocation mid-field: hbuf moves (always under
 * AddressSanitizer), and a name or value split across the two feeds around that point must
 * still be one name and one value. */
static void test_split_across_growth(void **state)
{
    (void)state;
    char t[4096];
    size_t n = (size_t)sprintf(t, "HTTP/1.1 200 OK\r\nX-Pad: ");
    while (n < 2000)
        t[n++] = 'p';
    n += (size_t)sprintf(t + n, "\r\nX-Long-Name: ");
    size_t vstart = n;
    while (n < 2100)
        t[n++] = 'v';
    size_t vlen = n - vstart;
    n += (size_t)sprintf(t + n, "\r\nContent-Length: 2\r\n\r\nok");
    for (size_t cut = 1990; cut <= 2110; cut++) {
        for (int pass = 0; pass < 2; pass++) {
            sl__http_resp r;
            sl__http_resp_init(&r, 8192, 64);
            sl__http_resp_reset(&r, false);
            size_t c1 = 0, c2 = 0;
            /* pass 0: all bytes up to the cut at once; pass 1: the cut feed is one byte */
            size_t first = pass ? cut - 1 : cut;
            int rc = sl__http_resp_feed(&r, t, first, &c1);
            if (rc == 0 && pass) rc = sl__http_resp_feed(&r, t + first, 1, &c2);
            if (rc == 0) rc = sl__http_resp_feed(&r, t + cut, n - cut, &c2);
            if (rc != 1) fprintf(stderr, "cut %zu: %s\n", cut, r.error_detail);
            assert_int_equal(rc, 1);
            const sl_http_response *res = sl__http_resp_get(&r);
            assert_int_equal(res->nheaders, 3);
            sl_slice v;
            assert_int_equal(sl_http_response_header(res, "x-long-name", &v), 1);
            assert_int_equal(v.len, vlen);
            assert_memory_equal(v.ptr, t + vstart, vlen);
            assert_int_equal(res->body.len, 2);
            sl__http_resp_free(&r);
        }
    }
}

/* Parses `text` (fed in two pieces at `cut`, 0 = whole) with the fast path allowed or not. */
static int parse_with(sl__http_resp *r, const char *text, size_t cut, bool head, bool no_fast,
                      size_t *consumed)
{
    size_t len = strlen(text), c1 = 0, c2 = 0;
    sl__http_resp_init(r, 4096, 1024);
    r->no_fast = no_fast;
    sl__http_resp_reset(r, head);
    int rc = sl__http_resp_feed(r, text, cut ? cut : len, &c1);
    if (rc == 0 && cut) {
        rc = sl__http_resp_feed(r, text + cut, len - cut, &c2);
        c1 = cut + c2;
    }
    *consumed = c1;
    return rc;
}

/* The fast path takes the plain heads, steps aside for the rest, and gives http-parser's answer. */
static void test_fast_path(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool head, fast;
        size_t cut;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok", false, true,
         0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, true, 40}, /* body split */
        {"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false, true,
         0},
        {"HTTP/1.0 200 OK\r\nConnection: Keep-Alive \r\nContent-Length: 1\r\n\r\nx", false, true,
         0},
        {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA", false, true, 0},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", false, true, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true, true, 0},
        {"HTTP/1.1 503\r\nRetry-After: 1\r\nX-E:\r\nContent-Length: 0\r\n\r\n", false, true, 0},
        /* declined: the general path decides */
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false, false,
         0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encodingx: 1\r\n\r\nok", false, false,
         0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\t\r\n\r\nok", false, false, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false, false, 0},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, false,
         0},
        {"HTTP/1.1 200 OK\r\nConnection: close, x\r\n\r\nto the end", false, false, 0},
        {"HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", false, false, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r", false, false, 0}, /* head incomplete */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl__http_resp a, b;
        size_t ca, cb;
        int ra = parse_with(&a, cases[i].text, cases[i].cut, cases[i].head, false, &ca);
        int rb = parse_with(&b, cases[i].text, cases[i].cut, cases[i].head, true, &cb);
        if (a.fast != cases[i].fast || ra != rb) fprintf(stderr, "case %zu\n", i);
        assert_int_equal(a.fast, cases[i].fast);
        assert_false(b.fast);
        assert_int_equal(ra, rb);
        if (ra == 1) {
            const sl_http_response *x = sl__http_resp_get(&a), *y = sl__http_resp_get(&b);
            assert_int_equal(ca, cb);
            assert_int_equal(x->status, y->status);
            assert_int_equal(x->http_minor, y->http_minor);
            assert_int_equal(a.keep_alive, b.keep_alive);
            assert_int_equal(x->nheaders, y->nheaders);
            for (size_t k = 0; k < x->nheaders; k++) {
                assert_int_equal(x->headers[k].name.len, y->headers[k].name.len);
                assert_memory_equal(x->headers[k].name.ptr, y->headers[k].name.ptr,
                                    x->headers[k].name.len);
                assert_int_equal(x->headers[k].value.len, y->headers[k].value.len);
                assert_memory_equal(x->headers[k].value.ptr, y->headers[k].value.ptr,
                                    x->headers[k].value.len);
            }
            assert_int_equal(x->body.len, y->body.len);
            assert_memory_equal(x->body.ptr, y->body.ptr, x->body.len);
        }
        sl__http_resp_free(&a);
        sl__http_resp_free(&b);
    }
    /* Spot checks of what both agree on. */
    sl__http_resp r;
    size_t c;
    assert_int_equal(
        parse_with(&r, "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA", 0, false, false, &c),
        1);
    assert_true(r.fast);
    assert_int_equal(c, 39);    /* EXTRA is not part of the response */
    assert_false(r.keep_alive); /* HTTP/1.0 without keep-alive */
    sl__http_resp_free(&r);
    assert_int_equal(
        parse_with(&r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 0, false, false, &c), 0);
    assert_true(r.fast);
    assert_int_equal(sl__http_resp_eof(&r), SL_EIO); /* closed mid-body */
    sl__http_resp_free(&r);
}

static void test_result_names(void **state)
{
    (void)state;
    assert_string_equal(sl_http_result_kind_name(SL_HTTP_RESULT_BREAKER_OPEN), "breaker_open");
    assert_string_equal(sl_http_result_kind_name(SL_HTTP_RESULT_OK), "ok");
    assert_string_equal(sl_http_result_kind_name(SL_HTTP_RESULT_COUNT), "unknown");
    assert_int_equal(sl__http_header_dropped(S("CONNECTION")), 1);
    assert_int_equal(sl__http_header_dropped(S("accept")), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serialise_canonical), cmocka_unit_test(test_serialise_lengths),
        cmocka_unit_test(test_serialise_refusals),  cmocka_unit_test(test_response_framings),
        cmocka_unit_test(test_response_rejections), cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_header_value_bytes),  cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_split_across_growth), cmocka_unit_test(test_fast_path),
        cmocka_unit_test(test_result_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
