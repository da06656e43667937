/*
 * `shoal up` in mesh mode (`mesh: true`), over real processes: nats-server,
 * shoal-hello and shoal-tally (which `calls: [hello]`), each behind a
 * shoal-proxy sidecar with certificates from `shoal certs`. Checked: the
 * files under data/mesh are owner-only; tally's outbound listener reaches
 * hello through both sidecars with mTLS; hello's public port speaks only TLS
 * and hello itself listens on loopback; `shoal status` sees every process
 * ready; `shoal down` stops them all. The mesh ports are fixed (mesh.h):
 * 20032 is tally's outbound listener to hello, 21000 hello's sidecar admin.
 */
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-mesh-XXXXXX", cfg[600];
static pid_t pid;

/* The permission bits of <dir>/data/mesh<rel>, or -1. */
static int mode_of(const char *rel)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/data/mesh%s", dir, rel);
    return stat(p, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static int get(int port, const char *path, th_response *r)
{
    char raw[256];
    int n =
        snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    return th_roundtrip(port, raw, (size_t)n, r, 5000);
}

static void test_up_mesh(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    /* Ports below 55535: the services move to port + 10000. */
    int nats = th_free_port(), hello = 0, tally = 0;
    while (!hello || hello > 55535)
        hello = th_free_port();
    while (!tally || tally > 55535)
        tally = th_free_port();
    snprintf(cfg, sizeof cfg, "%s/local.yaml", dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "data_dir: %s/data\nmesh: true\nnats:\n  port: %d\nservices:\n"
            "  - {name: hello, port: %d, env: {SHOAL_LOG__LEVEL: warn}}\n"
            "  - {name: tally, port: %d, calls: [hello], env: {SHOAL_LOG__LEVEL: warn}}\n",
            dir, nats, hello, tally);
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec %s up --config %s > %s/up.log 2>&1", th_bin("shoal"), cfg, dir);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    pid = th_spawn(sh, NULL, NULL);
    const int ports[] = {hello, tally, hello + 10000, tally + 10000, 20032, 21000};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        if (th_wait_port(ports[i], 20000) != 0) fail_msg("port %d (logs in %s)", ports[i], dir);

    assert_int_equal(mode_of(""), 0700);
    assert_int_equal(mode_of("/ca.key"), 0600);
    assert_int_equal(mode_of("/certs/hello.key"), 0600);
    assert_int_equal(mode_of("/sidecars/tally.yaml"), 0600);

    th_response r;
    /* tally → its sidecar → hello's sidecar (mTLS, policy: tally may call hello) → hello */
    int st = -1;
    for (int i = 0; i < 100 && st != 200; i++, usleep(50000))
        st = get(20032, "/hello", &r) == 200 ? 200 : -1;
    assert_int_equal(st, 200);
    assert_non_null(strstr(r.body, "hello"));
    th_response_free(&r);
    assert_int_equal(get(hello, "/hello", &r), -1); /* the public port speaks TLS only */
    assert_int_equal(get(21000, "/metrics", &r), 200);
    assert_non_null(strstr(r.body, "service_requests_total{service=\"hello-sidecar\","
                                   "method=\"GET\",route=\"inbound\",status=\"200\"}"));
    th_response_free(&r);

    char status[2048];
    snprintf(status, sizeof status, "%s status --config %s > %s/status.out", th_bin("shoal"), cfg,
             dir);
    /* tally is ready once its bus consumer runs: give it a moment */
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++, usleep(100000))
        rc = system(status);
    assert_int_equal(rc, 0);

    char down[2048];
    snprintf(down, sizeof down, "%s down --config %s > /dev/null", th_bin("shoal"), cfg);
    assert_int_equal(system(down), 0);
    int ws = th_stop(pid, 0, 30000);
    pid = 0;
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        assert_true(th_connect(ports[i]) < 0);
}

/* After a failure too: the shop is stopped (its ports are fixed) and its directory removed. */
static int teardown(void **state)
{
    (void)state;
    char cmd[2048];
    if (pid > 0 && th_alive(pid)) {
        snprintf(cmd, sizeof cmd, "%s down --config %s > /dev/null 2>&1", th_bin("shoal"), cfg);
        if (system(cmd) != 0 || th_stop(pid, 0, 30000) == -1) th_stop(pid, SIGKILL, 5000);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return strcmp(dir + strlen(dir) - 6, "XXXXXX") == 0 || system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_up_mesh, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
