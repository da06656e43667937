/*
 * The server's fast path for plain requests (http/fast_head.h) against
 * http-parser's path, through a real server on a socketpair: the same bytes
 * must give byte for byte the same answers (the handler echoes what it was
 * given: method, target, version, fields, body), and the fast path must
 * actually take the plain requests. Also the pure functions' refusals.
 */
#include "../fuzz/http_exchange.h"
#include "http/fast_head.h"

#include <shoal/http.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static void test_same_answers(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        size_t fast; /* requests the fast path must take */
        bool silent; /* the client leaves mid-body: no answer */
    } cases[] = {
        {"GET /hello HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\n\r\n", 1, false},
        {"GET /a?b=c HTTP/1.1\r\nHost: a\r\nX-Ws: \t v w \t\r\nX-Empty:\r\n\r\n", 1, false},
        {"GET /a HTTP/1.1\r\nX-Empty:  \r\nHost: a\r\nX-Sp: \t \r\n\r\n", 1, false},
        {"POST /o HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /2 HTTP/1.1\r\nHost: "
         "a\r\n\r\n",
         2, false},
        {"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /y HTTP/1.0\r\n\r\nGET /z "
         "HTTP/1.1\r\nHost: a\r\n\r\n",
         2, false},
        {"DELETE /d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: "
         "a\r\n\r\n",
         1, false},
        {"POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok", 1,
         false},
        {"PUT /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort", 0, true},
        /* refused by the server's own checks after the fast path read them */
        {"GET /h HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 0, false},
        {"GET /h HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, false},
        {"GET /h HTTP/1.1\r\nHost: a\r\nExpect: nothing\r\n\r\n", 0, false},
        /* declined: http-parser's path answers */
        {"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         0, false},
        {"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 0,
         false},
        {"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\nx", 0,
         false},
        {"GET /h HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n", 0, false},
        {"GET /h HTTP/1.1\nHost: a\n\n", 0, false},
        {"GET /h HTTP/1.1\r\nHost : a\r\n\r\n", 0, false},
        {"BREW /h HTTP/1.1\r\nHost: a\r\n\r\n", 0, false},
        {"GET http://a/h HTTP/1.1\r\nHost: a\r\n\r\n", 0, false},
        {"GET /h HTTP/2.0\r\nHost: a\r\n\r\n", 0, false},
        {"GET /h#f HTTP/1.1\r\nHost: a\r\n\r\n", 0, false},
        {"GET /h HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: "
         "1\r\n\r\n",
         0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t taken_fast = 0, taken_slow = 0, la, lb, n = strlen(cases[i].raw);
        char *a = exchange(cases[i].raw, n, true, &taken_fast, &la);
        char *b = exchange(cases[i].raw, n, false, &taken_slow, &lb);
        if (strcmp(a, b) != 0 || taken_fast != cases[i].fast)
            fprintf(stderr, "case %zu (fast took %zu)\n--- fast\n%s\n--- http-parser\n%s\n", i,
                    taken_fast, a, b);
        assert_string_equal(a, b);
        assert_int_equal(taken_fast, cases[i].fast);
        assert_int_equal(taken_slow, 0);
        assert_int_equal(strstr(a, "HTTP/1.1 ") == NULL, cases[i].silent);
        free(a);
        free(b);
    }
}

/* The pure reader: what it returns for a plain request, and where it steps aside. */
static void test_fast_request(void **state)
{
    (void)state;
    sl_http_header hs[4];
    sl__fast_request fr;
    const char *ok = "PATCH /a/b?c HTTP/1.0\r\nContent-Length: 0012 \r\nConnection: Close\r\n"
                     "X:  y \r\n\r\nrest";
    assert_int_equal(sl__http_fast_request(ok, strlen(ok), hs, 4, &fr), 1);
    assert_int_equal(fr.method, SL_HTTP_PATCH);
    assert_int_equal(fr.http_minor, 0);
    assert_int_equal(fr.target.len, 6);
    assert_memory_equal(fr.target.ptr, "/a/b?c", 6);
    assert_int_equal(fr.f.nfields, 3);
    assert_true(fr.f.has_cl);
    assert_int_equal(fr.f.content_length, 12);
    assert_true(fr.f.conn_close);
    assert_false(fr.f.conn_keep);
    assert_int_equal(hs[2].value.len, 1);
    assert_memory_equal(hs[2].value.ptr, "y", 1);
    assert_int_equal(fr.f.end, strlen(ok) - 4);
    /* one field too many for `max`, an incomplete head, a Content-Length of 16 digits */
    assert_int_equal(sl__http_fast_request(ok, strlen(ok), hs, 2, &fr), 0);
    assert_int_equal(sl__http_fast_request(ok, 40, hs, 4, &fr), 0);
    const char *big = "GET / HTTP/1.1\r\nContent-Length: 1234567890123456\r\n\r\n";
    assert_int_equal(sl__http_fast_request(big, strlen(big), hs, 4, &fr), 0);
    const char *conn = "GET / HTTP/1.1\r\nConnection: close, te\r\n\r\n";
    assert_int_equal(sl__http_fast_request(conn, strlen(conn), hs, 4, &fr), 0);
    const char *ctl = "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n";
    assert_int_equal(sl__http_fast_request(ctl, strlen(ctl), hs, 4, &fr), 0);
    const char *cr = "GET / HTTP/1.1\r\nX: a\rz\r\n\r\n";
    assert_int_equal(sl__http_fast_request(cr, strlen(cr), hs, 4, &fr), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_answers),
        cmocka_unit_test(test_fast_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
