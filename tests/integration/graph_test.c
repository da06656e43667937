/*
 * `shoal graph` as a command: on the repository's own config/local.yaml and
 * config/gateway.yaml (with the definitions the build wrote beside the binary) the rules hold
 * and it exits 0; on configurations written here that break one rule each (a cycle, a 4-hop
 * chain, a shared database) and on a trace file with a 4-hop request it exits 1 naming the
 * path; and it reads traces from a receiver's JSON API over a real socket (a small server in
 * this test answering as the local receiver's contract says).
 */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
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

static char dir[] = "/tmp/shoal-graph-XXXXXX";

/* Runs `shoal graph ARGS` in directory `cwd`; stdout and stderr land in dir/out and dir/err.
 * Returns the exit status. */
static int graph(const char *cwd, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s graph %s > %s/out 2> %s/err", cwd, th_bin("shoal"), args,
             dir, dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static const char *output(const char *name);

/* Fails with the command's stderr when its status is not `want`. */
static void status_is(int got, int want)
{
    if (got != want) fail_msg("exit status %d, not %d; stderr:\n%s", got, want, output("err"));
}

/* The contents of dir/<name> (a static buffer per name). */
static const char *output(const char *name)
{
    static char out[65536], err[65536];
    char *buf = strcmp(name, "out") == 0 ? out : err;
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void expect(const char *name, const char *text)
{
    const char *s = output(name);
    if (!strstr(s, text)) fail_msg("%s lacks \"%s\":\n%s", name, text, s);
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_real_shop(void **state)
{
    (void)state;
    const char *src = getenv("SHOAL_SOURCE_DIR");
    assert_non_null(src);
    status_is(graph(src, "--config config/local.yaml"), 0);
    /* The gateway's routes, the checkout saga's calls, the events from the definitions. */
    expect("out", "gateway -> order ");
    expect("out", "order -> inventory           sync");
    expect("out", "order -> payment             sync");
    expect("out", "order -> notification        async");
    expect("out", "user -> payment              async        1      0  shop.user.registered.v1");
    expect("out", "longest request path: 2 hops: gateway -> order -> inventory");
    expect("out", ": ok\n");
    status_is(graph(src, "--config config/local.yaml --dot"), 0);
    expect("out", "digraph shoal {");
    expect("out", "\"order\" -> \"notification\" [label=\"\", tooltip=\"shop.order.created.v1");
}

static void test_bad_configurations(void **state)
{
    (void)state;
    write_file("gw.yaml", "clusters:\n  a: {endpoints: [127.0.0.1:1]}\n"
                          "routes:\n  - {name: ra, match: {prefix: /a}, cluster: a}\n");
    /* A cycle. */
    write_file("cycle.yaml", "data_dir: d\nservices:\n"
                             "  - {name: a, port: 1, calls: [b]}\n"
                             "  - {name: b, port: 2, calls: [a]}\n"
                             "  - {name: gateway, port: 3, config: gw.yaml}\n");
    status_is(graph(dir, "--config cycle.yaml --no-defs"), 1);
    expect("err", "cycle: a -> b -> a\n");
    expect("out", ": VIOLATED\n");
    /* A 4-hop chain. */
    write_file("chain.yaml", "data_dir: d\nservices:\n"
                             "  - {name: a, port: 1, calls: [b]}\n"
                             "  - {name: b, port: 2, calls: [c]}\n"
                             "  - {name: c, port: 3, calls: [d]}\n"
                             "  - {name: d, port: 4}\n"
                             "  - {name: gateway, port: 5, config: gw.yaml}\n");
    status_is(graph(dir, "--config chain.yaml --no-defs"), 1);
    expect("err", "path of 4 hops: gateway -> a -> b -> c -> d\n");
    status_is(graph(dir, "--config chain.yaml --no-defs --max-hops 4"), 0);
    /* A shared database, one of them through its environment. */
    write_file("shared.yaml",
               "data_dir: d\nservices:\n"
               "  - {name: a, port: 1, db_url: \"sqlite:d/shop.db\"}\n"
               "  - {name: b, port: 2, env: {SHOAL_DB__URL: \"sqlite:./d/shop.db\"}}\n"
               "  - {name: c, port: 3}\n");
    status_is(graph(dir, "--config shared.yaml --no-defs"), 1);
    expect("err", "shared database: a, b use sqlite:d/shop.db\n");
    /* An unreadable configuration is an error (2) naming the field. */
    write_file("broken.yaml", "services:\n  - {name: a, port: 1, calls: [7]}\n");
    status_is(graph(dir, "--config broken.yaml --no-defs"), 2);
    expect("err", "services[0].calls[0]");
}

/* gateway -> a -> b -> c -> d in one trace. */
static const char four_hops[] =
    "{\"trace_id\": \"4bf92f3577b34da6a3ce929d0e0e4736\", \"spans\": ["
    "{\"span_id\": \"01\", \"parent_span_id\": \"\", \"service\": \"gateway\","
    " \"name\": \"GET /api/v1/a\", \"kind\": \"server\"},"
    "{\"span_id\": \"02\", \"parent_span_id\": \"01\", \"service\": \"gateway\", \"name\": \"GET\","
    " \"kind\": \"client\"},"
    "{\"span_id\": \"03\", \"parent_span_id\": \"02\", \"service\": \"a\", \"name\": \"GET /a\","
    " \"kind\": \"server\"},"
    "{\"span_id\": \"04\", \"parent_span_id\": \"03\", \"service\": \"a\", \"name\": \"GET\","
    " \"kind\": \"client\", \"attributes\": {\"peer.service\": \"b\"}},"
    "{\"span_id\": \"05\", \"parent_span_id\": \"04\", \"service\": \"b\", \"name\": \"GET /b\","
    " \"kind\": \"server\"},"
    "{\"span_id\": \"06\", \"parent_span_id\": \"05\", \"service\": \"b\", \"name\": \"GET\","
    " \"kind\": \"client\", \"attributes\": {\"peer.service\": \"c\"}},"
    "{\"span_id\": \"07\", \"parent_span_id\": \"06\", \"service\": \"c\", \"name\": \"GET /c\","
    " \"kind\": \"server\"},"
    "{\"span_id\": \"08\", \"parent_span_id\": \"07\", \"service\": \"c\", \"name\": \"GET\","
    " \"kind\": \"client\", \"attributes\": {\"peer.service\": \"d\"}}]}";

static void test_spans_file(void **state)
{
    (void)state;
    char doc[sizeof four_hops + 8];
    snprintf(doc, sizeof doc, "[%s]", four_hops);
    write_file("spans.json", doc);
    status_is(graph(dir, "--no-config --spans spans.json"), 1);
    expect("err", "path of 4 hops: gateway -> a -> b -> c -> d\n");
    expect("err", "spans.json: 1 traces, 8 spans");
    expect("out", "c -> d                       sync         0      1  GET\n");
    /* A file that is not a trace document: an error naming the field. */
    write_file("bad.json", "[{\"trace_id\": \"t\", \"spans\": [{\"span_id\": \"1\","
                           " \"service\": \"a\", \"kind\": \"sideways\"}]}]");
    status_is(graph(dir, "--no-config --spans bad.json"), 2);
    expect("err", "bad.json: [0].spans[0].kind: ");
    status_is(graph(dir, "--no-config --spans missing.json"), 2);
    expect("err", "cannot read missing.json");
}

/* ---- a receiver answering the JSON API -------------------------------------------------- */

typedef struct receiver {
    int fd, port, served;
    pthread_t thread;
} receiver;

static void answer(int c, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, strlen(body));
    /* The server thread asserts nothing (cmocka's asserts belong to the test's thread): a
     * failed send shows as the command's error. */
    if (th_send(c, head, (size_t)n) == 0) (void)th_send(c, body, strlen(body));
}

static void *serve(void *arg)
{
    receiver *r = arg;
    for (;;) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0) return NULL;
        char req[4096];
        size_t len = 0;
        req[0] = '\0';
        while (len < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
            ssize_t n = recv(c, req + len, sizeof req - 1 - len, 0);
            if (n <= 0) break;
            len += (size_t)n;
            req[len] = '\0';
        }
        if (strncmp(req, "GET /api/traces?limit=5 ", 24) == 0)
            answer(c, 200,
                   "{\"traces\": [{\"trace_id\": \"4bf92f3577b34da6a3ce929d0e0e4736\","
                   " \"root_service\": \"gateway\", \"root_name\": \"GET /api/v1/a\","
                   " \"start_ns\": 1, \"duration_ns\": 2, \"span_count\": 8, \"error\": false}]}");
        else if (strncmp(req, "GET /api/traces/4bf92f3577b34da6a3ce929d0e0e4736 ", 49) == 0)
            answer(c, 200, four_hops);
        else
            answer(c, 404, "{}");
        r->served++;
        close(c);
    }
}

static void test_receiver(void **state)
{
    (void)state;
    receiver r = {.fd = socket(AF_INET, SOCK_STREAM, 0)};
    assert_true(r.fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(r.fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r.fd, 8), 0);
    assert_int_equal(getsockname(r.fd, (struct sockaddr *)&a, &al), 0);
    r.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r.thread, NULL, serve, &r), 0);
    char args[256];
    snprintf(args, sizeof args, "--no-config --traces --limit 5 --receiver http://127.0.0.1:%d",
             r.port);
    status_is(graph(dir, args), 1);
    expect("err", "path of 4 hops: gateway -> a -> b -> c -> d\n");
    expect("out", "gateway -> a                 sync         0      1  GET /a\n");
    shutdown(r.fd, SHUT_RDWR);
    close(r.fd);
    pthread_join(r.thread, NULL);
    assert_int_equal(r.served, 2);
    /* Nobody listening: an error that says what to start. */
    snprintf(args, sizeof args, "--no-config --traces --receiver http://127.0.0.1:%d",
             th_free_port());
    status_is(graph(dir, args), 2);
    expect("err", "is the trace receiver running?");
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_shop),
        cmocka_unit_test(test_bad_configurations),
        cmocka_unit_test(test_spans_file),
        cmocka_unit_test(test_receiver),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
