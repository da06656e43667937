/*
 * Request handlers on PostgreSQL do not block their worker's loop: a real
 * service process (the service host, one worker, a test service definition)
 * runs a handler that waits in `SELECT pg_sleep(2)` while other requests on
 * the same worker are answered first; two transactions on the same worker
 * interleave, each seeing its own uncommitted rows and committing on its own;
 * with every handler connection busy and no queue, a request is answered 503
 * "database busy" and counted; out-of-range pool settings stop the service
 * at start. Run as db.pgasync.pg; db.pgasync.sqlite runs
 * the same routes on SQLite, where handlers stay on the loop (no ordering is
 * claimed there, only the answers).
 */
#include "db_harness.h"

#include <shoal/service.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ---- the test service (runs in the child process) --------------------------------------- */

static char slow_sql[128]; /* pg_sleep(2) with a marker the parent finds in pg_stat_activity */
static char pause_sql[128];

static const sl_migration mig_items[] = {
    {1, "0001_rows.sql", NULL, "CREATE TABLE pa_rows (k TEXT NOT NULL, v TEXT NOT NULL)"}};
static const sl_migration_set mig = {"pgasync_test", mig_items, 1};

static int run_sql(sl_db *db, const char *sql)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, sql, st);
    int rc;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static int count_rows(sl_db *db, const char *k, int64_t *n)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, "SELECT count(*) FROM pa_rows WHERE k = ?", st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, k, SIZE_MAX));
    int rc = sl_db_step(st);
    *n = rc == SL_DB_ROW ? sl_db_column_int64(st, 0) : -1;
    sl_db_stmt_done(st);
    return rc == SL_DB_ROW ? 0 : rc < 0 ? rc : SL_EIO;
}

static int insert_row(sl_db *db, const char *k, const char *v)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, "INSERT INTO pa_rows (k, v) VALUES (?, ?)", st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, k, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, v, SIZE_MAX));
    return sl_db_run(st, NULL);
}

static void answer_int(sl_http_req *req, const char *name, int64_t v)
{
    char body[64];
    int n = snprintf(body, sizeof body, "{\"%s\":%lld}", name, (long long)v);
    sl_respond_json(req, 200, body, (size_t)n);
}

static void query_copy(const sl_http_req *req, const char *name, char *out, size_t cap)
{
    sl_slice v = {NULL, 0};
    out[0] = '\0';
    if (sl_http_query_param(req->query, name, &v) && v.len < cap) {
        memcpy(out, v.ptr, v.len);
        out[v.len] = '\0';
    }
}

static void h_slow(sl_http_req *req, sl_svc_worker *w)
{
    int rc = run_sql(sl_svc_worker_db(w), slow_sql);
    if (rc != 0) {
        sl_respond_db_error(req, rc, "slow");
        return;
    }
    answer_int(req, "slept", 1);
}

static void h_fast(sl_http_req *req, sl_svc_worker *w)
{
    int64_t n = 0;
    int rc = count_rows(sl_svc_worker_db(w), "none", &n);
    if (rc != 0) {
        sl_respond_db_error(req, rc, "fast");
        return;
    }
    answer_int(req, "one", n + 1);
}

static void h_count(sl_http_req *req, sl_svc_worker *w)
{
    char k[32];
    query_copy(req, "k", k, sizeof k);
    int64_t n = 0;
    int rc = count_rows(sl_svc_worker_db(w), k, &n);
    if (rc != 0) {
        sl_respond_db_error(req, rc, "count");
        return;
    }
    answer_int(req, "n", n);
}

/* POST /tx?k=K&end=commit|rollback&pause=0|1: begin, a row, (a pause), count own rows, a second
 * row, then commit or roll back; answers how many rows of K the transaction saw. */
static void h_tx(sl_http_req *req, sl_svc_worker *w)
{
    char k[32], end[16], pause[4];
    query_copy(req, "k", k, sizeof k);
    query_copy(req, "end", end, sizeof end);
    query_copy(req, "pause", pause, sizeof pause);
    sl_db *db = sl_svc_worker_db(w);
    int64_t seen = 0;
    int rc = sl_db_begin(db);
    if (rc == 0) rc = insert_row(db, k, "a");
    if (rc == 0 && strcmp(pause, "1") == 0) rc = run_sql(db, pause_sql);
    if (rc == 0) rc = count_rows(db, k, &seen);
    if (rc == 0) rc = insert_row(db, k, "b");
    if (rc == 0 && strcmp(end, "commit") == 0) {
        rc = sl_db_commit(db);
    } else if (rc == 0) {
        sl_db_rollback(db);
    }
    if (rc != 0) {
        sl_db_rollback(db);
        sl_respond_db_error(req, rc, "tx");
        return;
    }
    answer_int(req, "seen", seen);
}

static const sl_route_def routes[] = {
    {SL_HTTP_GET, "/slow", h_slow, 0},
    {SL_HTTP_GET, "/fast", h_fast, 0},
    {SL_HTTP_GET, "/count", h_count, 0},
    {SL_HTTP_POST, "/tx", h_tx, 0},
};

static const sl_service_def test_def = {
    .name = "pgasync",
    .default_port = 0,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .migrations = &mig,
};

/* ---- the parent: a real process over real sockets ----------------------------------------- */

static struct {
    pid_t pid;
    int port;
    char url[600];
    char marker[48];
} g;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail_msg("free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
}

/* Sends a request (Connection: close) and returns the socket. */
static int send_req(const char *method, const char *target)
{
    int fd = connect_port(g.port);
    assert_true(fd >= 0);
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n",
                     method, target);
    assert_int_equal(send(fd, buf, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

/* 1 when `fd` has an answer (or EOF) to read now. */
static int answered(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* Reads the whole response (the server closes); returns the status, body in `body`. */
static int read_resp(int fd, char *body, size_t cap)
{
    static char buf[16384];
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 30000) <= 0) fail_msg("no answer within 30 s");
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        if (n == sizeof buf - 1) break;
    }
    close(fd);
    buf[n] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1) fail_msg("not an HTTP answer: %s", buf);
    const char *b = strstr(buf, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return status;
}

static int call(const char *method, const char *target, char *body, size_t cap)
{
    return read_resp(send_req(method, target), body, cap);
}

/* PostgreSQL: waits until a query holding `marker` runs on the server (the request that sent it
 * is in its handler), so what follows overlaps it. */
static void wait_running(const char *marker)
{
    if (!harness_g.pg) return;
    sl_db *db;
    harness_open_url(harness_g.base, &db);
    for (int i = 0; i < 400; i++) {
        sl_db_stmt *st;
        assert_int_equal(sl_db_prepare(db,
                                       "SELECT count(*) FROM pg_stat_activity WHERE state = "
                                       "'active' AND pid <> pg_backend_pid() AND "
                                       "position(? in query) > 0",
                                       &st),
                         0);
        assert_int_equal(sl_db_bind_text(st, 1, marker, SIZE_MAX), 0);
        assert_int_equal(sl_db_step(st), SL_DB_ROW);
        int64_t n = sl_db_column_int64(st, 0);
        sl_db_stmt_done(st);
        if (n > 0) {
            sl_db_close(db);
            return;
        }
        usleep(25 * 1000);
    }
    sl_db_close(db);
    fail_msg("the query marked %s never started", marker);
}

static int start_service(void **state)
{
    (void)state;
    snprintf(g.marker, sizeof g.marker, "pgasync_%ld", (long)getpid());
    harness_fresh_url(g.url, sizeof g.url);
    g.port = free_port();
    fflush(NULL);
    g.pid = fork();
    if (g.pid < 0) return -1;
    if (g.pid == 0) {
        if (harness_g.pg) {
            snprintf(slow_sql, sizeof slow_sql, "SELECT pg_sleep(2) /* %s_slow */", g.marker);
            snprintf(pause_sql, sizeof pause_sql, "SELECT pg_sleep(2) /* %s_tx */", g.marker);
        } else { /* SQLite has no sleep: the same routes, without the wait */
            snprintf(slow_sql, sizeof slow_sql, "SELECT 2");
            snprintf(pause_sql, sizeof pause_sql, "SELECT 1");
        }
        setenv("SHOAL_DB__URL", g.url, 1);
        setenv("SHOAL_DB__POOL_SIZE", "2", 1);
        setenv("SHOAL_DB__POOL_QUEUE_MAX", "0", 1);
        setenv("SHOAL_LOG__LEVEL", "error", 1);
        setenv("SHOAL_IDENTITY__KEY_FILE", "/nonexistent/identity.key", 1);
        char port[16];
        snprintf(port, sizeof port, "%d", g.port);
        char *argv[] = {"shoal-pgasync", "--port", port, "--workers", "1", NULL};
        exit(sl_service_main(&test_def, 5, argv)); /* exit: the sanitizers check for leaks */
    }
    for (int i = 0; i < 600; i++) { /* up to 30 s for migrations and the listener */
        int fd = connect_port(g.port);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        int st;
        if (waitpid(g.pid, &st, WNOHANG) == g.pid) {
            g.pid = 0;
            return -1;
        }
        usleep(50 * 1000);
    }
    return -1;
}

static int stop_service(void **state)
{
    (void)state;
    if (g.pid <= 0) return 0;
    kill(g.pid, SIGTERM);
    int st = 0;
    if (waitpid(g.pid, &st, 0) != g.pid) return -1;
    g.pid = 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void test_slow_query_does_not_block_others(void **state)
{
    (void)state;
    char body[256], marker[64];
    int slow = send_req("GET", "/slow");
    snprintf(marker, sizeof marker, "%s_slow", g.marker);
    wait_running(marker);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(call("GET", "/fast", body, sizeof body), 200);
        assert_string_equal(body, "{\"one\":1}");
    }
    /* Every fast request came back while the slow one is still in its handler. */
    if (harness_g.pg) assert_false(answered(slow));
    assert_int_equal(read_resp(slow, body, sizeof body), 200);
    assert_string_equal(body, "{\"slept\":1}");
}

static void test_transactions_interleave(void **state)
{
    (void)state;
    char body[256], marker[64], target[160];
    snprintf(target, sizeof target, "/tx?k=%s_a&end=commit&pause=1", g.marker);
    int a = send_req("POST", target);
    snprintf(marker, sizeof marker, "%s_tx", g.marker);
    wait_running(marker);
    /* B runs whole while A is open on the same worker: each sees only its own rows. */
    snprintf(target, sizeof target, "/tx?k=%s_b&end=commit&pause=0", g.marker);
    assert_int_equal(call("POST", target, body, sizeof body), 200);
    assert_string_equal(body, "{\"seen\":1}");
    snprintf(target, sizeof target, "/count?k=%s_b", g.marker);
    assert_int_equal(call("GET", target, body, sizeof body), 200);
    assert_string_equal(body, "{\"n\":2}"); /* B committed on its own */
    snprintf(target, sizeof target, "/count?k=%s_a", g.marker);
    assert_int_equal(call("GET", target, body, sizeof body), 200);
    if (harness_g.pg) {
        assert_string_equal(body, "{\"n\":0}"); /* A's rows are not committed yet */
        assert_false(answered(a));
    }
    assert_int_equal(read_resp(a, body, sizeof body), 200);
    assert_string_equal(body, "{\"seen\":1}");
    assert_int_equal(call("GET", target, body, sizeof body), 200);
    assert_string_equal(body, "{\"n\":2}");
    /* A rollback leaves nothing. */
    snprintf(target, sizeof target, "/tx?k=%s_c&end=rollback&pause=0", g.marker);
    assert_int_equal(call("POST", target, body, sizeof body), 200);
    assert_string_equal(body, "{\"seen\":1}");
    snprintf(target, sizeof target, "/count?k=%s_c", g.marker);
    assert_int_equal(call("GET", target, body, sizeof body), 200);
    assert_string_equal(body, "{\"n\":0}");
}

static void test_full_pool_answers_busy(void **state)
{
    (void)state;
    char body[1024], marker[64];
    if (!harness_g.pg) { /* SQLite has no handler pool: nothing is ever refused as busy */
        int s1 = send_req("GET", "/slow"), s2 = send_req("GET", "/slow");
        assert_int_equal(call("GET", "/fast", body, sizeof body), 200);
        assert_int_equal(read_resp(s1, body, sizeof body), 200);
        assert_int_equal(read_resp(s2, body, sizeof body), 200);
        return;
    }
    snprintf(marker, sizeof marker, "%s_slow", g.marker);
    int s1 = send_req("GET", "/slow");
    wait_running(marker);
    int s2 = send_req("GET", "/slow");
    /* Both handler connections are now taken (pool_size 2, queue 0) once s2 is dispatched;
     * /fast is answered 503 then. Retry until s2 has been dispatched. */
    int status = 200;
    for (int i = 0; i < 100 && status == 200; i++) {
        status = call("GET", "/fast", body, sizeof body);
        if (status == 200) usleep(10 * 1000);
    }
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "database busy"));
    assert_non_null(strstr(body, "\"reason\":\"database_busy\""));
    assert_int_equal(read_resp(s1, body, sizeof body), 200);
    assert_int_equal(read_resp(s2, body, sizeof body), 200);
    /* Counted. */
    static char metrics[65536];
    assert_int_equal(call("GET", "/metrics", metrics, sizeof metrics), 200);
    const char *m = strstr(metrics, "\ndb_pool_busy_total ");
    assert_non_null(m);
    assert_true(atoll(m + strlen("\ndb_pool_busy_total ")) >= 1);
    /* And the pool serves again. */
    assert_int_equal(call("GET", "/fast", body, sizeof body), 200);
}

/* The pool's settings are bounded: out of range stops the service at start (status 2). */
static void test_pool_settings_are_checked(void **state)
{
    (void)state;
    const char *bad[][2] = {{"SHOAL_DB__POOL_SIZE", "0"},
                            {"SHOAL_DB__POOL_SIZE", "65"},
                            {"SHOAL_DB__POOL_QUEUE_MAX", "65537"}};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            setenv("SHOAL_DB__URL", g.url, 1);
            setenv(bad[i][0], bad[i][1], 1);
            if (!freopen("/dev/null", "w", stderr)) _exit(99);
            char *argv[] = {"shoal-pgasync", "--port", "0", NULL};
            exit(sl_service_main(&test_def, 3, argv));
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 2);
    }
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_query_does_not_block_others),
        cmocka_unit_test(test_transactions_interleave),
        cmocka_unit_test(test_full_pool_answers_busy),
        cmocka_unit_test(test_pool_settings_are_checked),
    };
    int rc = cmocka_run_group_tests(tests, start_service, stop_service);
    harness_done();
    return rc;
}
