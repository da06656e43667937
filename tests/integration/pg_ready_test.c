/*
 * /readyz follows a real PostgreSQL server: shoal-inventory (a real process over real sockets,
 * one worker) on its own PostgreSQL cluster (scripts/pg-fixture.sh, in a private directory, so
 * stopping it disturbs no other suite) answers 200; once the server is stopped (pg_ctl stop
 * -m fast: every connection is cut) it answers 503 problem+json naming `database`, while
 * /healthz stays 200 (an orchestrator must not restart it); once the server is back on the same
 * port, the service reconnects by itself and answers 200 again. The waits are polls with a
 * bound, never timed assertions.
 */
#include "harness.h"
#include "identity_harness.h"

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static struct {
    char dir[64];      /* the fixture's directory (url, cluster) */
    char cluster[512]; /* where the cluster lives */
    char url[512];     /* postgresql://postgres@127.0.0.1:<port>/postgres */
    int pg_port;
    char key_path[128];
    char log_path[128];
    pid_t pid;
    int port;
} g;

static int read_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

/* pg_ctl `action` on the cluster (as the postgres user when run as root, like the fixture). */
static int pg_ctl(const char *action)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "bin=$(pg_config --bindir 2>/dev/null); [ -x \"$bin/pg_ctl\" ] || "
             "for d in /usr/lib/postgresql/*/bin; do [ -x \"$d/pg_ctl\" ] && bin=$d; done; "
             "c=\"'$bin/pg_ctl' -D '%s/data' -l '%s/server.log' -w -t 30 %s -m fast "
             "-o \\\"-p %d -k '%s/sock' -c listen_addresses=127.0.0.1 -c fsync=off\\\"\"; "
             "if [ \"$(id -u)\" = 0 ]; then su postgres -s /bin/sh -c \"$c\"; else sh -c \"$c\"; "
             "fi >/dev/null",
             g.cluster, g.cluster, action, g.pg_port, g.cluster);
    return system(cmd);
}

/* GET path; for a 503 checks the problem names `what`. Returns the status or -1. */
static int probe(const char *path, const char *what)
{
    char raw[256];
    int n =
        snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    th_response r;
    int st = th_roundtrip(g.port, raw, (size_t)n, &r, 5000);
    if (st == 503) {
        assert_non_null(strstr(th_header(&r, "content-type"), "problem+json"));
        json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "reason")), "not_ready");
        json_t *missing = json_object_get(j, "missing");
        int named = 0;
        for (size_t i = 0; i < json_array_size(missing); i++)
            named |= strcmp(json_string_value(json_array_get(missing, i)), what) == 0;
        if (!named) fail_msg("503 without %s: %.*s", what, (int)r.body_len, r.body);
        json_decref(j);
    }
    if (st >= 0) th_response_free(&r);
    return st;
}

/* Polls /readyz (at most 30 s) until it answers `want`; returns the last status. */
static int wait_ready(int want)
{
    int st = -1;
    for (int i = 0; i < 300 && (st = probe("/readyz", "database")) != want; i++)
        usleep(100 * 1000);
    return st;
}

static void test_ready_follows_the_server(void **state)
{
    (void)state;
    assert_int_equal(wait_ready(200), 200);
    assert_int_equal(pg_ctl("stop"), 0);
    assert_int_equal(wait_ready(503), 503);
    assert_int_equal(probe("/healthz", ""), 200);
    assert_int_equal(pg_ctl("start"), 0);
    assert_int_equal(wait_ready(200), 200);
    /* And it stays ready: the reconnected session serves query after query. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(probe("/readyz", "database"), 200);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g.dir, sizeof g.dir, "pg-ready-%ld", (long)getpid());
    const char *src = getenv("SHOAL_SOURCE_DIR");
    char cmd[1024], path[256];
    snprintf(cmd, sizeof cmd, "'%s/scripts/pg-fixture.sh' start '%s' >/dev/null", src ? src : "..",
             g.dir);
    if (system(cmd) != 0) fail_msg("scripts/pg-fixture.sh could not start PostgreSQL");
    snprintf(path, sizeof path, "%s/url", g.dir);
    assert_int_equal(read_line(path, g.url, sizeof g.url), 0);
    snprintf(path, sizeof path, "%s/cluster", g.dir);
    assert_int_equal(read_line(path, g.cluster, sizeof g.cluster), 0);
    const char *colon = strrchr(g.url, ':');
    assert_non_null(colon);
    g.pg_port = atoi(colon + 1);

    th_idkeys key;
    char err[256];
    snprintf(g.key_path, sizeof g.key_path, "pg-ready-%ld.key", (long)getpid());
    snprintf(g.log_path, sizeof g.log_path, "pg-ready-%ld.log", (long)getpid());
    unlink(g.key_path);
    if (th_idkeys_make(g.key_path, "inventory", &key, err) != 0) fail_msg("key: %s", err);
    g.port = th_free_port();
    char port[16], dbenv[600], keyenv[200];
    snprintf(port, sizeof port, "%d", g.port);
    snprintf(dbenv, sizeof dbenv, "SHOAL_DB__URL=%s", g.url);
    snprintf(keyenv, sizeof keyenv, "SHOAL_IDENTITY__KEY_FILE=%s", g.key_path);
    char *env[] = {dbenv, keyenv, NULL};
    char *argv[] = {(char *)th_bin("shoal-inventory"), "--port", port, "--workers", "1", NULL};
    g.pid = th_spawn(argv, env, g.log_path);
    if (th_wait_port(g.port, 15000) != 0)
        fail_msg("shoal-inventory did not start; see %s", g.log_path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    int st = th_stop(g.pid, SIGTERM, 15000);
    char cmd[1024];
    const char *src = getenv("SHOAL_SOURCE_DIR");
    snprintf(cmd, sizeof cmd, "'%s/scripts/pg-fixture.sh' stop '%s' >/dev/null", src ? src : "..",
             g.dir);
    int stopped = system(cmd);
    unlink(g.key_path);
    assert_true(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(stopped, 0);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_follows_the_server, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
