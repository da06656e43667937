/* Unit tests for the runtime's listening port: a port another process listens on is refused,
 * even when that process, like every shoal service, shares its port through SO_REUSEPORT. And
 * the test harness never hands one port to two of a suite's servers. */
#include "harness.h"

#include <shoal/loop.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* A listener on a free loopback port, set up as a shoal worker's is (SO_REUSEPORT). */
static int other_listener(int *port)
{
    int fd;
    assert_int_equal(sl_listen_socket("127.0.0.1", 0, &fd, port), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static int never_start(sl_worker *w, int listen_fd, void *data)
{
    (void)w;
    (void)listen_fd;
    (void)data;
    fail_msg("a worker started on a port another process listens on");
    return -1;
}

static void test_port_in_use_is_refused(void **state)
{
    (void)state;
    int port;
    int fd = other_listener(&port);
    sl_worker_hooks hooks = {.start = never_start};
    sl_runtime_config rc = {.workers = 2, .host = "127.0.0.1", .port = port};
    assert_int_equal(sl_runtime_run(&rc, &hooks), -EADDRINUSE);
    close(fd);
}

/* The workers of one runtime do share their port: the check is made once, before the first. */
static void test_workers_share_a_port(void **state)
{
    (void)state;
    int a, b, pa, pb;
    assert_int_equal(sl_listen_socket("127.0.0.1", 0, &a, &pa), 0);
    assert_int_equal(sl_listen_socket("127.0.0.1", pa, &b, &pb), 0);
    assert_int_equal(pa, pb);
    close(a);
    close(b);
}

/* The kernel's pick for port 0 repeats itself now and then; the harness must not. 2,000 picks
 * (over 200 runs of the 10 picks the shop's end-to-end suite makes) all differ. */
static void test_free_ports_differ(void **state)
{
    (void)state;
    enum { N = 2000 };
    static int seen[65536];
    for (int i = 0; i < N; i++) {
        int p = th_free_port();
        assert_true(p > 0 && p < 65536);
        assert_int_equal(seen[p]++, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_port_in_use_is_refused),
        cmocka_unit_test(test_workers_share_a_port),
        cmocka_unit_test(test_free_ports_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
