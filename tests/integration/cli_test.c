/*
 * `shoal up` as a supervisor, over real processes: it starts nats-server and
 * the configured services, `shoal status` sees them ready, a child killed
 * with SIGKILL is restarted, and `shoal down` stops everything (the ports
 * close, the pid file goes).
 */
#include "harness.h"

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

static int hello_pid(const char *dir)
{
    /* The supervisor logs "hello ... started (pid N)"; take the last one. */
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/up.log", dir);
    FILE *f = fopen(path, "r");
    int pid = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *p = strstr(line, "hello");
        char *q = p ? strstr(p, "started (pid ") : NULL;
        if (q) pid = atoi(q + 13);
    }
    if (f) fclose(f);
    return pid;
}

static void test_up_status_restart_down(void **state)
{
    (void)state;
    char dir[] = "/tmp/shoal-cli-XXXXXX";
    assert_non_null(mkdtemp(dir));
    int nats = th_free_port(), hello = th_free_port();
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/local.yaml", dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f,
            "data_dir: %s/data\nnats:\n  port: %d\nservices:\n"
            "  - {name: hello, port: %d, env: {SHOAL_LOG__LEVEL: warn}}\n"
            "  - {name: notbuilt, port: 1}\n",
            dir, nats, hello);
    fclose(f);
    char log[600];
    snprintf(log, sizeof log, "%s/up.log", dir);
    char *up[] = {"shoal", "up", "--config", cfg, NULL};
    /* The supervisor prints to stdout; keep it in a file through a shell redirect. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec %s up --config %s > %s 2>&1", th_bin("shoal"), cfg, log);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    (void)up;
    pid_t pid = th_spawn(sh, NULL, NULL);
    assert_int_equal(th_wait_port(nats, 15000), 0);
    assert_int_equal(th_wait_port(hello, 15000), 0);

    th_response r;
    const char req[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(th_roundtrip(hello, req, sizeof req - 1, &r, 5000), 200);
    th_response_free(&r);

    char status[2048];
    snprintf(status, sizeof status, "%s status --config %s > %s/status.out", th_bin("shoal"), cfg,
             dir);
    assert_int_equal(system(status), 0);

    /* Kill the service: the supervisor restarts it with a new pid. */
    int first = 0;
    for (int i = 0; i < 100 && !first; i++, usleep(50000))
        first = hello_pid(dir);
    assert_true(first > 0);
    kill(first, SIGKILL);
    int second = 0;
    for (int i = 0; i < 200; i++, usleep(50000)) {
        second = hello_pid(dir);
        if (second != first && second > 0) break;
    }
    assert_true(second > 0 && second != first);
    assert_int_equal(th_wait_port(hello, 15000), 0);

    /* `shoal down` stops it all. */
    char down[2048];
    snprintf(down, sizeof down, "%s down --config %s > /dev/null", th_bin("shoal"), cfg);
    assert_int_equal(system(down), 0);
    int st = th_stop(pid, 0, 30000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(th_connect(hello) < 0);
    assert_true(th_connect(nats) < 0);
    char pidfile[600];
    snprintf(pidfile, sizeof pidfile, "%s/data/shoal.pid", dir);
    assert_int_not_equal(access(pidfile, F_OK), 0);
    /* The not-built service was reported, not fatal. */
    FILE *lf = fopen(log, "r");
    char buf[8192] = {0};
    fread(buf, 1, sizeof buf - 1, lf);
    fclose(lf);
    assert_non_null(strstr(buf, "notbuilt       not built yet"));
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
}

static void test_bad_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/shoal-cli-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cfg[600], cmd[2048];
    snprintf(cfg, sizeof cfg, "%s/bad.yaml", dir);
    FILE *f = fopen(cfg, "w");
    fputs("data_dir: x\nservices: []\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s up --config %s 2> %s/err > /dev/null", th_bin("shoal"), cfg, dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    snprintf(cmd, sizeof cmd, "grep -q 'services: must be a non-empty list' %s/err", dir);
    assert_int_equal(system(cmd), 0);
    /* The catalogue check's target is sent as a request line: no spaces, starts with /. */
    f = fopen(cfg, "w");
    fputs("data_dir: x\nready_stock_path: \"/x HTTP/1.0\"\nservices: [{name: a, port: 1}]\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s up --config %s 2> %s/err > /dev/null", th_bin("shoal"), cfg, dir);
    st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    snprintf(cmd, sizeof cmd, "grep -q 'ready_stock_path: must be a request target' %s/err", dir);
    assert_int_equal(system(cmd), 0);
    /* A service pointed at another through its environment must declare the call (its identity
     * keys come from `calls`), or its requests would all be refused at run time. */
    f = fopen(cfg, "w");
    fprintf(f,
            "data_dir: %s/data\nservices:\n  - {name: payment, port: 1}\n"
            "  - {name: order, port: 2, env: {SHOAL_UPSTREAMS__PAYMENT__URL: "
            "\"http://127.0.0.1:1\"}}\n",
            dir);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s up --config %s 2> %s/err > /dev/null", th_bin("shoal"), cfg, dir);
    st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    snprintf(cmd, sizeof cmd, "grep -q 'does not list payment in its calls' %s/err", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_up_status_restart_down),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
