/*
 * The service host's event plumbing over real processes and a real
 * nats-server: shoal-tally writes commands and their events in one
 * transaction, the relay publishes them to JetStream, and the host's runner
 * applies them to the read model exactly once — also when the service is
 * killed with SIGKILL in the middle and restarted. The outbox backlog gauge
 * drains to zero.
 */
#include "harness.h"

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-svc-events-XXXXXX";
static int nats_port;
static pid_t nats;

static pid_t start_tally(int port, const char *log)
{
    char p[16], bus[64], db[600];
    snprintf(p, sizeof p, "%d", port);
    snprintf(bus, sizeof bus, "SHOAL_BUS__URL=nats://127.0.0.1:%d", nats_port);
    snprintf(db, sizeof db, "SHOAL_DB__URL=sqlite:%s/tally.db", dir);
    char *argv[] = {"shoal-tally", "--port", p, NULL};
    /* A short ack_wait: deliveries the killed process held come back quickly. */
    char *env[] = {bus, db, "SHOAL_LOG__LEVEL=warn", "SHOAL_BUS__ACK_WAIT_MS=1500", NULL};
    pid_t pid = th_spawn(argv, env, log);
    assert_int_equal(th_wait_port(port, 15000), 0);
    return pid;
}

static int post(int port, const char *counter, int amount)
{
    char body[64], req[512];
    int bl = snprintf(body, sizeof body, "{\"amount\":%d}", amount);
    int n = snprintf(req, sizeof req,
                     "POST /counters/%s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     counter, bl, body);
    th_response r;
    int st = th_roundtrip(port, req, (size_t)n, &r, 5000);
    th_response_free(&r);
    return st;
}

static long long view(int port, const char *counter, long long *events)
{
    char req[256];
    int n = snprintf(req, sizeof req, "GET /counters/%s HTTP/1.1\r\nHost: t\r\n\r\n", counter);
    th_response r;
    long long total = -1;
    if (th_roundtrip(port, req, (size_t)n, &r, 5000) == 200) {
        json_t *doc = json_loads(r.body, 0, NULL);
        total = json_integer_value(json_object_get(doc, "total"));
        *events = json_integer_value(json_object_get(doc, "events"));
        json_decref(doc);
    }
    th_response_free(&r);
    return total;
}

static long long wait_total(int port, const char *counter, long long want, long long *events)
{
    long long total = -1;
    for (int i = 0; i < 600; i++) {
        total = view(port, counter, events);
        if (total == want) break;
        usleep(50000);
    }
    return total;
}

static void test_events_applied_once_across_kill(void **state)
{
    (void)state;
    int port = th_free_port();
    pid_t svc = start_tally(port, "svc_events.tally1.log");
    long long sum = 0;
    for (int i = 1; i <= 40; i++) {
        assert_int_equal(post(port, "k", i), 202);
        sum += i;
    }
    long long events = 0;
    assert_int_equal(wait_total(port, "k", sum, &events), sum);
    assert_int_equal(events, 40);

    /* More commands, then SIGKILL before (or while) they are relayed and applied. */
    for (int i = 1; i <= 40; i++) {
        assert_int_equal(post(port, "k", 1000), 202);
        sum += 1000;
    }
    kill(svc, SIGKILL);
    waitpid(svc, NULL, 0);
    svc = start_tally(port, "svc_events.tally2.log");
    assert_int_equal(wait_total(port, "k", sum, &events), sum);
    assert_int_equal(events, 80); /* every event once: none lost, none twice */

    /* The backlog gauge drains to zero. */
    th_response r;
    const char m[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    int drained = 0;
    for (int i = 0; i < 50 && !drained; i++, usleep(100000)) {
        assert_int_equal(th_roundtrip(port, m, sizeof m - 1, &r, 5000), 200);
        drained = strstr(r.body, "outbox_backlog{service=\"tally\"} 0\n") != NULL;
        th_response_free(&r);
    }
    assert_true(drained);
    int st = th_stop(svc, SIGTERM, 15000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_bad_input_is_refused(void **state)
{
    (void)state;
    int port = th_free_port();
    pid_t svc = start_tally(port, "svc_events.tally3.log");
    assert_int_equal(post(port, "BAD!", 1), 400);
    assert_int_equal(post(port, "ok", 0), 400);
    assert_int_equal(post(port, "ok", 2000000), 400);
    long long events = -1;
    assert_int_equal(view(port, "ok", &events), 0);
    assert_int_equal(events, 0);
    th_stop(svc, SIGTERM, 15000);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    nats_port = th_free_port();
    char p[16], sd[600];
    snprintf(p, sizeof p, "%d", nats_port);
    snprintf(sd, sizeof sd, "%s/js", dir);
    char *argv[] = {"/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", p, "-js", "-sd", sd, NULL};
    nats = th_spawn(argv, NULL, "svc_events.nats.log");
    return th_wait_port(nats_port, 15000);
}

static int teardown(void **state)
{
    (void)state;
    th_stop(nats, SIGTERM, 10000);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_applied_once_across_kill),
        cmocka_unit_test(test_bad_input_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
