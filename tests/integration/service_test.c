/*
 * The service host as a process: configuration errors stop it with exit 2
 * and a located message, a port in use is an error, several workers share
 * one port, SIGHUP does not stop it, SIGTERM drains it cleanly, and a
 * caller's exhausted x-shoal-deadline-ms gets a 504 without the handler;
 * a second instance on the same SQLite file is refused at start.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char *slurp(const char *path)
{
    static char buf[1 << 20];
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int run_to_exit(char *const argv[], char *const env[], const char *log)
{
    pid_t pid = th_spawn(argv, env, log);
    int st = th_stop(pid, 0, 10000);
    assert_true(st != -1);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_config_errors_are_located(void **state)
{
    (void)state;
    FILE *f = fopen("svc_bad.yaml", "w");
    fputs("service:\n  port: 99999\n", f);
    fclose(f);
    char *argv[] = {"shoal-hello", "--config", "svc_bad.yaml", NULL};
    assert_int_equal(run_to_exit(argv, NULL, "svc_bad.log"), 2);
    assert_non_null(
        strstr(slurp("svc_bad.log"), "svc_bad.yaml:2:9: service.port: must be at most 65535"));

    char *argv2[] = {"shoal-hello", NULL};
    char *env[] = {"SHOAL_HTTP__IDLE_TIMEOUT_MS=soon", NULL};
    assert_int_equal(run_to_exit(argv2, env, "svc_env.log"), 2);
    assert_non_null(strstr(slurp("svc_env.log"), "env SHOAL_HTTP__IDLE_TIMEOUT_MS"));

    char *argv3[] = {"shoal-hello", "--config", "does-not-exist.yaml", NULL};
    assert_int_equal(run_to_exit(argv3, NULL, "svc_missing.log"), 2);
    char *argv4[] = {"shoal-hello", "--workers", "0", NULL};
    assert_int_equal(run_to_exit(argv4, NULL, "svc_workers.log"), 2);

    f = fopen("svc_alias.yaml", "w");
    fputs("base: &b {port: 1}\nservice: *b\n", f);
    fclose(f);
    char *argv5[] = {"shoal-hello", "--config", "svc_alias.yaml", NULL};
    assert_int_equal(run_to_exit(argv5, NULL, "svc_alias.log"), 2);
}

static void test_port_in_use(void **state)
{
    (void)state;
    /* A plain listener (no SO_REUSEPORT) holds the port: the service cannot bind. */
    int port = th_free_port();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(0x7f000001)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    char *argv[] = {"shoal-hello", "--port", portbuf, NULL};
    assert_int_equal(run_to_exit(argv, NULL, "svc_inuse.log"), 1);
    assert_non_null(strstr(slurp("svc_inuse.log"), "\"level\":\"error\""));
    close(fd);
}

static void test_workers_share_port_and_reload(void **state)
{
    (void)state;
    int port = th_free_port();
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    FILE *f = fopen("svc_ok.yaml", "w");
    fputs("service:\n  workers: 3\nlog:\n  level: debug\n", f);
    fclose(f);
    char *argv[] = {"shoal-hello", "--config", "svc_ok.yaml", "--port", portbuf, NULL};
    pid_t pid = th_spawn(argv, NULL, "svc_ok.log");
    assert_int_equal(th_wait_port(port, 10000), 0);
    for (int i = 0; i < 60; i++) {
        th_response r;
        const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
        assert_int_equal(th_roundtrip(port, req, sizeof req - 1, &r, 5000), 200);
        th_response_free(&r);
    }
    kill(pid, SIGHUP);
    usleep(200000);
    assert_true(th_alive(pid));
    th_response r;
    const char m[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(port, m, sizeof m - 1, &r, 5000), 200);
    /* The counter sums every worker's shard: 60 answered before this scrape. */
    assert_non_null(strstr(r.body, "service_requests_total{service=\"hello\",method=\"GET\","
                                   "route=\"/hello\",status=\"200\"} 60\n"));
    th_response_free(&r);
    int st = th_stop(pid, SIGTERM, 10000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* Debug level logs one JSON line per request with the trace ids. */
    const char *log = slurp("svc_ok.log");
    assert_non_null(strstr(log, "\"msg\":\"request\""));
    assert_non_null(strstr(log, "\"trace_id\":\""));
    assert_non_null(strstr(log, "\"msg\":\"stopped\""));
}

/* Sends `raw` on the open connection `fd` and returns the status (the body is checked by callers).
 */
static int exchange(th_reader *rb, const char *raw, th_response *r)
{
    assert_int_equal(th_send(rb->fd, raw, strlen(raw)), 0);
    assert_int_equal(th_read_response(rb, r, 5000), 0);
    return r->status;
}

static void test_caller_deadline(void **state)
{
    (void)state;
    int port = th_free_port();
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    char *argv[] = {"shoal-hello", "--port", portbuf, NULL};
    pid_t pid = th_spawn(argv, NULL, "svc_deadline.log");
    assert_int_equal(th_wait_port(port, 10000), 0);
    int fd = th_connect(port);
    assert_true(fd >= 0);
    th_reader rb;
    th_reader_init(&rb, fd);
    th_response r;
    /* An exhausted budget: 504 without running the handler (which would answer 400 here). */
    assert_int_equal(exchange(&rb,
                              "POST /echo HTTP/1.1\r\nHost: t\r\nx-shoal-deadline-ms: 0\r\n"
                              "Content-Length: 2\r\n\r\n{]",
                              &r),
                     504);
    assert_string_equal(th_header(&r, "content-type"), "application/problem+json");
    assert_true(r.keep_alive); /* the same connection serves the next request */
    th_response_free(&r);
    assert_int_equal(
        exchange(&rb, "GET /hello HTTP/1.1\r\nHost: t\r\nx-shoal-deadline-ms: 0\r\n\r\n", &r), 504);
    th_response_free(&r);
    /* Budget left, or a malformed value (ignored): served. */
    assert_int_equal(
        exchange(&rb, "GET /hello HTTP/1.1\r\nHost: t\r\nx-shoal-deadline-ms: 5000\r\n\r\n", &r),
        200);
    th_response_free(&r);
    assert_int_equal(
        exchange(&rb, "GET /hello HTTP/1.1\r\nHost: t\r\nx-shoal-deadline-ms: -1\r\n\r\n", &r),
        200);
    th_response_free(&r);
    /* The handler sees the deadline (sl_req_deadline) and stops sleeping at it. */
    assert_int_equal(exchange(&rb,
                              "GET /slow?ms=20000 HTTP/1.1\r\nHost: t\r\n"
                              "x-shoal-deadline-ms: 100\r\n\r\n",
                              &r),
                     504);
    th_response_free(&r);
    assert_int_equal(exchange(&rb,
                              "GET /slow?ms=1 HTTP/1.1\r\nHost: t\r\n"
                              "x-shoal-deadline-ms: 10000\r\n\r\n",
                              &r),
                     200);
    th_response_free(&r);
    close(fd);
    int st = th_stop(pid, SIGTERM, 10000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* SQLite serves one instance: a second process on the same database file says so and exits 1,
 * and once the first stopped (its lock goes with it) the file serves a new instance. */
static void test_sqlite_second_instance_refused(void **state)
{
    (void)state;
    char dir[] = "/tmp/shoal-lock-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char url[128], env_url[160];
    snprintf(url, sizeof url, "sqlite:%s/inventory.db", dir);
    snprintf(env_url, sizeof env_url, "SHOAL_DB__URL=%s", url);
    char *env[] = {env_url, NULL};
    int port = th_free_port(), port2 = th_free_port();
    char p1[16], p2[16];
    snprintf(p1, sizeof p1, "%d", port);
    snprintf(p2, sizeof p2, "%d", port2);
    char *argv[] = {"shoal-inventory", "--port", p1, NULL};
    pid_t first = th_spawn(argv, env, "svc_lock1.log");
    assert_int_equal(th_wait_port(port, 20000), 0);
    char *argv2[] = {"shoal-inventory", "--port", p2, NULL};
    assert_int_equal(run_to_exit(argv2, env, "svc_lock2.log"), 1);
    assert_non_null(
        strstr(slurp("svc_lock2.log"), "another instance is using this SQLite database"));
    int st = th_stop(first, SIGTERM, 10000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    pid_t again = th_spawn(argv2, env, "svc_lock3.log");
    assert_int_equal(th_wait_port(port2, 20000), 0);
    st = th_stop(again, SIGTERM, 10000);
    assert_true(WIFEXITED(st));
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors_are_located),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_workers_share_port_and_reload),
        cmocka_unit_test(test_caller_deadline),
        cmocka_unit_test(test_sqlite_second_instance_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
