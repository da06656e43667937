/*
 * The HTTP server over real sockets: shoal-hello runs as a child process and
 * every malformed request of the foundation issue is sent raw. Each case
 * checks the status (and that the connection closes where framing can no
 * longer be trusted), then that the server still serves the next client.
 */
#include "harness.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static int port;
static pid_t server;

static int setup(void **state)
{
    (void)state;
    port = th_free_port();
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    char *argv[] = {"shoal-hello", "--port", portbuf, NULL};
    char *env[] = {"SHOAL_HTTP__HEADER_TIMEOUT_MS=400", "SHOAL_HTTP__IDLE_TIMEOUT_MS=1500",
                   "SHOAL_HTTP__MAX_CONNECTIONS=40", "SHOAL_LOG__LEVEL=warn", NULL};
    server = th_spawn(argv, env, "http_test.server.log");
    if (th_wait_port(port, 10000) != 0) {
        fprintf(stderr, "shoal-hello did not start; see http_test.server.log\n");
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int st = th_stop(server, SIGTERM, 10000);
    /* A clean drain exits 0. */
    return (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1;
}

/* The server must still answer a well-formed request on a fresh connection. */
static void assert_still_serving(void)
{
    th_response r;
    const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(port, req, sizeof req - 1, &r, 5000), 200);
    assert_string_equal(r.body, "{\"message\":\"hello\"}");
    th_response_free(&r);
    assert_true(th_alive(server));
}

/* Sends raw bytes on a new connection, expects `status`, and that the server closes. */
static void expect_status_and_close(const char *raw, size_t len, int status)
{
    int fd = th_connect(port);
    assert_true(fd >= 0);
    assert_int_equal(th_send(fd, raw, len), 0);
    th_reader rb;
    th_reader_init(&rb, fd);
    th_response r;
    int rc = th_read_response(&rb, &r, 5000);
    if (rc != 0 || r.status != status)
        fprintf(stderr, "request %.60s... -> rc %d status %d body %s\n", raw, rc, r.status,
                r.body ? r.body : "");
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, status);
    const char *ct = th_header(&r, "content-type");
    assert_non_null(ct);
    assert_string_equal(ct, "application/problem+json");
    json_error_t e;
    json_t *doc = json_loads(r.body, 0, &e);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "status")), status);
    assert_non_null(json_string_value(json_object_get(doc, "title")));
    json_decref(doc);
    assert_false(r.keep_alive);
    th_response_free(&r);
    assert_true(th_wait_closed(fd, 5000));
    close(fd);
    assert_still_serving();
}

#define EXPECT(raw, status) expect_status_and_close(raw, sizeof(raw) - 1, status)

static void test_hello_and_headers(void **state)
{
    (void)state;
    th_response r;
    const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\nx-request-id: abc-123\r\n"
                       "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
                       "\r\n";
    assert_int_equal(th_roundtrip(port, req, sizeof req - 1, &r, 5000), 200);
    assert_string_equal(r.body, "{\"message\":\"hello\"}");
    assert_string_equal(th_header(&r, "content-type"), "application/json");
    assert_string_equal(th_header(&r, "x-request-id"), "abc-123");
    const char *tp = th_header(&r, "traceparent");
    assert_non_null(tp);
    /* Same trace, a new span id (the server span), sampled flag kept. */
    assert_int_equal(strlen(tp), 55);
    assert_memory_equal(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
    assert_memory_not_equal(tp + 36, "00f067aa0ba902b7", 16);
    th_response_free(&r);

    /* Without a request id, one is generated. */
    const char req2[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(port, req2, sizeof req2 - 1, &r, 5000), 200);
    assert_non_null(th_header(&r, "x-request-id"));
    assert_true(strlen(th_header(&r, "x-request-id")) >= 16);
    assert_non_null(th_header(&r, "traceparent"));
    th_response_free(&r);
}

static void test_keepalive_and_pipelining(void **state)
{
    (void)state;
    int fd = th_connect(port);
    th_reader rb;
    th_reader_init(&rb, fd);
    /* Three requests in one write: answered in order on one connection. */
    const char reqs[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                        "Content-Length: 15\r\n\r\n{\"text\":\"pipe\"}"
                        "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /slow?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n"
                        "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_send(fd, reqs, sizeof reqs - 1), 0);
    int expect[] = {200, 200, 404, 200, 200};
    const char *bodies[] = {"{\"message\":\"hello\"}", "{\"text\":\"pipe\"}", NULL,
                            "{\"message\":\"slept\"}", "{\"message\":\"hello\"}"};
    for (int i = 0; i < 5; i++) {
        th_response r;
        assert_int_equal(th_read_response(&rb, &r, 5000), 0);
        assert_int_equal(r.status, expect[i]);
        if (bodies[i]) assert_string_equal(r.body, bodies[i]);
        assert_true(r.keep_alive);
        th_response_free(&r);
    }
    /* The same connection keeps serving afterwards. */
    const char again[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_send(fd, again, sizeof again - 1), 0);
    th_response r;
    assert_int_equal(th_read_response(&rb, &r, 5000), 0);
    assert_int_equal(r.status, 200);
    th_response_free(&r);
    close(fd);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    /* A request split at every byte parses the same (slices survive buffer moves). */
    const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nX-Long-Header-Name: some value\r\n"
                       "Content-Length: 17\r\n\r\n{\"text\":\"bytes\"}\n";
    int fd = th_connect(port);
    for (size_t i = 0; i < sizeof req - 1; i++)
        assert_int_equal(th_send(fd, req + i, 1), 0);
    th_reader rb;
    th_reader_init(&rb, fd);
    th_response r;
    assert_int_equal(th_read_response(&rb, &r, 5000), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"text\":\"bytes\"}");
    th_response_free(&r);
    close(fd);
}

static void test_chunked_body(void **state)
{
    (void)state;
    const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\n{\"tex\r\n"
                       "a;ext=1\r\nt\":\"chunk\"\r\n"
                       "1\r\n}\r\n"
                       "0\r\nX-Trailer: yes\r\n\r\n";
    th_response r;
    assert_int_equal(th_roundtrip(port, req, sizeof req - 1, &r, 5000), 200);
    assert_string_equal(r.body, "{\"text\":\"chunk\"}");
    th_response_free(&r);
}

static void test_framing_attacks(void **state)
{
    (void)state;
    /* RFC 9112 §6.1: CL together with TE is a smuggling vector. */
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           400);
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
           "Content-Length: 5\r\n\r\n0\r\n\r\n",
           400);
    /* Two Content-Length values, different or identical. */
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
           "hello!",
           400);
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
           "hello",
           400);
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400);
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n", 400);
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
           400);
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello", 400);
    /* Unsupported transfer codings. */
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
           501);
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           400);
    /* A chunk size that overflows. */
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
           "ffffffffffffffffff\r\n",
           400);
}

static void test_bad_header_bytes(void **state)
{
    (void)state;
    /* Obsolete line folding. */
    EXPECT("GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", 400);
    EXPECT("GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\r\n\tb\r\n\r\n", 400);
    /* NUL and control characters. */
    const char nul_value[] = "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n";
    expect_status_and_close(nul_value, sizeof nul_value - 1, 400);
    const char nul_name[] = "GET /hello HTTP/1.1\r\nHost: t\r\nX\0A: a\r\n\r\n";
    expect_status_and_close(nul_name, sizeof nul_name - 1, 400);
    EXPECT("GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\x01\r\n\r\n", 400);
    EXPECT("GET /hello HTTP/1.1\r\nHost: t\r\nX\x7f: a\r\n\r\n", 400);
    EXPECT("GET /hello HTTP/1.1\r\nHost: t\r\nX A: a\r\n\r\n", 400);
    /* A CR that is not followed by LF, in a value or ending a line (http-parser alone
     * would take some of these as line ends). */
    EXPECT("GET /hello HTTP/1.1\r\nHost: a\r5\r\n\r\n", 400);
    EXPECT("GET /hello HTTP/1.1\r\nHost: a\r\nX: b\rc: d\r\n\r\n", 400);
    EXPECT("GET /hello HTTP/1.1\rHost: a\r\n\r\n", 400);
    /* Bare LF line endings. */
    EXPECT("GET /hello HTTP/1.1\nHost: t\n\n", 400);
    EXPECT("GET /hello HTTP/1.1\r\nHost: t\n\r\n", 400);
    /* Host rules for HTTP/1.1, versions, methods, targets. */
    EXPECT("GET /hello HTTP/1.1\r\n\r\n", 400);
    EXPECT("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    EXPECT("GET /hello HTTP/2.0\r\nHost: t\r\n\r\n", 505);
    EXPECT("BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n", 501);
    EXPECT("CONNECT t:443 HTTP/1.1\r\nHost: t\r\n\r\n", 501);
    EXPECT("\x01\x02\x03 / HTTP/1.1\r\n\r\n", 400);
    EXPECT("GET http://t/hello HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    EXPECT("GET /hello HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\n\r\n", 417);
}

static void test_limits(void **state)
{
    (void)state;
    /* Headers over 16 KiB → 431; a request line over 16 KiB → 431. */
    size_t big = 17 * 1024;
    char *req = malloc(big + 256);
    int n = snprintf(req, 256, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 4);
    expect_status_and_close(req, (size_t)n + big + 4, 431);
    n = snprintf(req, 256, "GET /hello?");
    memset(req + n, 'a', big);
    memcpy(req + n + big, " HTTP/1.1\r\nHost: t\r\n\r\n", 22);
    expect_status_and_close(req, (size_t)n + big + 22, 431);
    /* Many small headers: over the count limit → 431. */
    size_t off = (size_t)snprintf(req, 256, "GET /hello HTTP/1.1\r\nHost: t\r\n");
    free(req);
    req = malloc(200 * 16 + 256);
    off = (size_t)sprintf(req, "GET /hello HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 150; i++)
        off += (size_t)sprintf(req + off, "X-%d: v\r\n", i);
    off += (size_t)sprintf(req + off, "\r\n");
    expect_status_and_close(req, off, 431);
    free(req);

    /* Body over the route's limit (/echo: 16 KiB) by Content-Length: 413 before reading it. */
    EXPECT("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 20000\r\n\r\n", 413);
    /* Over the default limit (1 MiB) on another route. */
    EXPECT("GET /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", 413);
    /* Chunked over the limit: 413 once the total passes it. */
    size_t chunk = 8192;
    char *body = malloc(4 * (chunk + 16) + 256);
    off = (size_t)sprintf(body,
                          "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        off += (size_t)sprintf(body + off, "%zx\r\n", chunk);
        memset(body + off, 'x', chunk);
        off += chunk;
        off += (size_t)sprintf(body + off, "\r\n");
    }
    expect_status_and_close(body, off, 413);
    free(body);
}

static void test_body_sent_after_413_still_reads_response(void **state)
{
    (void)state;
    /* The client keeps sending a large body after a 413: lingering close lets it read
     * the answer instead of a reset. */
    size_t len = 300 * 1024;
    char *req = malloc(len + 256);
    int n = sprintf(req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", len);
    memset(req + n, 'x', len);
    int fd = th_connect(port);
    th_send(fd, req, (size_t)n + len);
    th_reader rb;
    th_reader_init(&rb, fd);
    th_response r;
    assert_int_equal(th_read_response(&rb, &r, 5000), 0);
    assert_int_equal(r.status, 413);
    th_response_free(&r);
    close(fd);
    free(req);
    assert_still_serving();
}

static void test_abandoned_requests(void **state)
{
    (void)state;
    /* Clients that vanish mid-body, mid-headers, or while a handler works: the server
     * releases everything (the sanitizer build checks for leaks at exit) and serves on. */
    for (int i = 0; i < 20; i++) {
        int fd = th_connect(port);
        const char part[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"te";
        th_send(fd, part, sizeof part - 1);
        close(fd);
        fd = th_connect(port);
        th_send(fd, "GET /hel", 8);
        close(fd);
        fd = th_connect(port);
        const char slow[] = "GET /slow?ms=30 HTTP/1.1\r\nHost: t\r\n\r\n";
        th_send(fd, slow, sizeof slow - 1);
        close(fd);
    }
    usleep(200000);
    assert_still_serving();
}

static void test_expect_continue(void **state)
{
    (void)state;
    int fd = th_connect(port);
    const char head[] = "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                        "Content-Length: 14\r\n\r\n";
    th_send(fd, head, sizeof head - 1);
    th_reader rb;
    th_reader_init(&rb, fd);
    char buf[64] = {0};
    ssize_t got = recv(fd, buf, 25, MSG_WAITALL);
    assert_int_equal(got, 25);
    assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    th_send(fd, "{\"text\":\"100\"}", 14);
    th_response r;
    assert_int_equal(th_read_response(&rb, &r, 5000), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"text\":\"100\"}");
    th_response_free(&r);
    close(fd);
}

static void test_slow_headers_get_408(void **state)
{
    (void)state;
    /* Half a request, then silence: the header timeout (400 ms here) answers 408 and closes. */
    int fd = th_connect(port);
    const char part[] = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    th_send(fd, part, sizeof part - 1);
    th_reader rb;
    th_reader_init(&rb, fd);
    th_response r;
    assert_int_equal(th_read_response(&rb, &r, 10000), 0);
    assert_int_equal(r.status, 408);
    th_response_free(&r);
    assert_true(th_wait_closed(fd, 10000));
    close(fd);

    /* Trickling bytes does not extend the deadline. */
    fd = th_connect(port);
    th_reader_init(&rb, fd);
    th_send(fd, part, sizeof part - 1);
    int status = 0;
    for (int i = 0; i < 200 && status == 0; i++) {
        if (th_send(fd, "a", 1) != 0) break;
        if (th_read_response(&rb, &r, 50) == 0) {
            status = r.status;
            th_response_free(&r);
        }
    }
    assert_int_equal(status, 408);
    close(fd);
    assert_still_serving();
}

static void test_idle_keepalive_closed(void **state)
{
    (void)state;
    int fd = th_connect(port);
    th_reader rb;
    th_reader_init(&rb, fd);
    const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    th_send(fd, req, sizeof req - 1);
    th_response r;
    assert_int_equal(th_read_response(&rb, &r, 5000), 0);
    th_response_free(&r);
    /* Idle timeout is 1.5 s here: the server closes the silent connection. */
    assert_true(th_wait_closed(fd, 15000));
    close(fd);
    /* A connection that never sends anything is closed too. */
    fd = th_connect(port);
    assert_true(th_wait_closed(fd, 15000));
    close(fd);
}

static void test_max_connections(void **state)
{
    (void)state;
    /* max_connections is 40 here: hold 40, the 41st is refused with 503 and closed. */
    int fds[40];
    for (int i = 0; i < 40; i++) {
        fds[i] = th_connect(port);
        assert_true(fds[i] >= 0);
        /* Each one in the middle of a request keeps its slot. */
        th_send(fds[i], "GET /hello HTTP/1.1\r\n", 21);
    }
    usleep(100000);
    int extra = th_connect(port);
    th_reader rb;
    th_reader_init(&rb, extra);
    th_response r;
    assert_int_equal(th_read_response(&rb, &r, 5000), 0);
    assert_int_equal(r.status, 503);
    assert_non_null(th_header(&r, "retry-after"));
    th_response_free(&r);
    close(extra);
    for (int i = 0; i < 40; i++)
        close(fds[i]);
    usleep(200000);
    assert_still_serving();
}

static void test_routing_errors(void **state)
{
    (void)state;
    th_response r;
    const char nf[] = "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(port, nf, sizeof nf - 1, &r, 5000), 404);
    assert_string_equal(th_header(&r, "content-type"), "application/problem+json");
    th_response_free(&r);
    const char na[] = "DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(port, na, sizeof na - 1, &r, 5000), 405);
    assert_string_equal(th_header(&r, "allow"), "GET, HEAD");
    th_response_free(&r);
    /* HEAD: the GET headers, no body. */
    int fd = th_connect(port);
    th_reader rb;
    th_reader_init(&rb, fd);
    const char head[] =
        "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    th_send(fd, head, sizeof head - 1);
    /* http-parser cannot know a response answers HEAD; read the raw bytes instead. */
    char buf[4096];
    size_t have = 0;
    while (have < sizeof buf - 1) {
        ssize_t k = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (k <= 0) break;
        have += (size_t)k;
        buf[have] = 0;
        if (strstr(buf, "{\"message\":\"hello\"}")) break;
    }
    assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
    assert_non_null(strstr(buf, "Content-Length: 19\r\n"));
    /* The HEAD answer has no body: the first body bytes belong to the GET that follows. */
    char *second = strstr(buf + 1, "HTTP/1.1 200 OK\r\n");
    assert_non_null(second);
    assert_memory_equal(second - 4, "\r\n\r\n", 4);
    close(fd);
}

static void test_echo_validation(void **state)
{
    (void)state;
    struct {
        const char *body;
        int status;
        const char *field;
    } cases[] = {
        {"{\"text\":5}", 400, "text"},
        {"{}", 400, "text"},
        {"{\"text\":\"ok\",\"extra\":1}", 400, "extra"},
        {"{\"text\":", 400, NULL},
        {"[1,2]", 400, NULL},
        {"{\"text\":\"\xff\xfe\"}", 400, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char req[2048];
        int n = snprintf(req, sizeof req,
                         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         strlen(cases[i].body), cases[i].body);
        th_response r;
        assert_int_equal(th_roundtrip(port, req, (size_t)n, &r, 5000), cases[i].status);
        assert_string_equal(th_header(&r, "content-type"), "application/problem+json");
        json_t *doc = json_loads(r.body, 0, NULL);
        assert_non_null(doc);
        if (cases[i].field) {
            json_t *errs = json_object_get(doc, "errors");
            assert_true(json_is_array(errs));
            const char *f = json_string_value(json_object_get(json_array_get(errs, 0), "field"));
            assert_non_null(f);
            assert_string_equal(f, cases[i].field);
        }
        json_decref(doc);
        th_response_free(&r);
    }
    /* 1000 characters (code points) are fine; 1001 are not. */
    char text[4096];
    for (int len = 1000; len <= 1001; len++) {
        char body[4200];
        memset(text, 0, sizeof text);
        for (int k = 0; k < len; k++)
            strcat(text, "\xc3\xa9"); /* é: two bytes, one character */
        snprintf(body, sizeof body, "{\"text\":\"%s\"}", text);
        char req[8400];
        int n = snprintf(req, sizeof req,
                         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
                         strlen(body), body);
        th_response r;
        assert_int_equal(th_roundtrip(port, req, (size_t)n, &r, 5000), len == 1000 ? 200 : 400);
        th_response_free(&r);
    }
    /* A non-JSON content type is 415. */
    const char xml[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/xml\r\n"
                       "Content-Length: 2\r\n\r\n<a";
    th_response r;
    assert_int_equal(th_roundtrip(port, xml, sizeof xml - 1, &r, 5000), 415);
    th_response_free(&r);
}

static void test_operations_endpoints(void **state)
{
    (void)state;
    th_response r;
    const char h[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(port, h, sizeof h - 1, &r, 5000), 200);
    th_response_free(&r);
    const char rd[] = "GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(port, rd, sizeof rd - 1, &r, 5000), 200);
    th_response_free(&r);
    const char nf[] = "GET /no/such/path-4711 HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(port, nf, sizeof nf - 1, &r, 5000), 404);
    th_response_free(&r);
    const char m[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(port, m, sizeof m - 1, &r, 5000), 200);
    assert_non_null(strstr(th_header(&r, "content-type"), "text/plain"));
    /* The request counter carries the names of the design article, and the route template. */
    assert_non_null(strstr(r.body, "service_requests_total{service=\"hello\",method=\"GET\","
                                   "route=\"/healthz\",status=\"200\"}"));
    assert_non_null(strstr(r.body, "service_request_duration_seconds_bucket{service=\"hello\","
                                   "method=\"GET\",route=\"/readyz\",le=\"0.005\"}"));
    /* A path no route matches is counted as "unmatched", never under its own text. */
    assert_non_null(strstr(r.body, "service_requests_total{service=\"hello\",method=\"GET\","
                                   "route=\"unmatched\",status=\"404\"} "));
    assert_null(strstr(r.body, "4711"));
    /* build_info and the standard process families. */
    assert_non_null(strstr(r.body, "build_info{version=\""));
    assert_non_null(strstr(r.body, "\",commit=\""));
    assert_non_null(strstr(r.body, "\n# TYPE process_cpu_seconds_total counter\n"));
    assert_non_null(strstr(r.body, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(r.body, "\nprocess_virtual_memory_bytes "));
    assert_non_null(strstr(r.body, "\nprocess_open_fds "));
    assert_non_null(strstr(r.body, "\nprocess_max_fds "));
    assert_non_null(strstr(r.body, "\nprocess_start_time_seconds "));
    /* promtool (Debian prometheus) accepts the exposition. */
    FILE *p = popen("promtool check metrics > promtool.out 2>&1", "w");
    assert_non_null(p);
    fwrite(r.body, 1, r.body_len, p);
    int st = pclose(p);
    if (st != 0) {
        char out[4096] = {0};
        FILE *f = fopen("promtool.out", "r");
        if (f) {
            size_t k = fread(out, 1, sizeof out - 1, f);
            out[k] = 0;
            fclose(f);
        }
        fprintf(stderr, "promtool check metrics failed:\n%s\n", out);
    }
    assert_int_equal(st, 0);
    th_response_free(&r);
}

static void test_drain_finishes_in_flight(void **state)
{
    (void)state;
    /* A second server: SIGTERM while a slow request is in flight; the request completes
     * with Connection: close and the process exits 0. */
    int p2 = th_free_port();
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", p2);
    char *argv[] = {"shoal-hello", "--port", portbuf, NULL};
    char *env[] = {"SHOAL_LOG__LEVEL=warn", NULL};
    pid_t pid = th_spawn(argv, env, "http_test.drain.log");
    assert_int_equal(th_wait_port(p2, 10000), 0);
    int fd = th_connect(p2);
    const char req[] = "GET /slow?ms=500 HTTP/1.1\r\nHost: t\r\n\r\n";
    th_send(fd, req, sizeof req - 1);
    usleep(100000);
    kill(pid, SIGTERM);
    th_reader rb;
    th_reader_init(&rb, fd);
    th_response r;
    assert_int_equal(th_read_response(&rb, &r, 5000), 0);
    assert_int_equal(r.status, 200);
    assert_false(r.keep_alive);
    th_response_free(&r);
    close(fd);
    int st = th_stop(pid, 0, 10000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* The port is released: nothing accepts any more. */
    assert_true(th_connect(p2) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_and_headers),
        cmocka_unit_test(test_keepalive_and_pipelining),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_framing_attacks),
        cmocka_unit_test(test_bad_header_bytes),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_body_sent_after_413_still_reads_response),
        cmocka_unit_test(test_abandoned_requests),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_slow_headers_get_408),
        cmocka_unit_test(test_idle_keepalive_closed),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_routing_errors),
        cmocka_unit_test(test_echo_validation),
        cmocka_unit_test(test_operations_endpoints),
        cmocka_unit_test(test_drain_finishes_in_flight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
