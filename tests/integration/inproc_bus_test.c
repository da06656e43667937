/*
 * Two real services co-located in one process on the in-process bus
 * (sl_service_host_main with bus.url `inproc:`, no nats-server): `counter`
 * writes an event to its outbox with each POST /bump/{name}, `ledger`
 * consumes it into its own SQLite database. The test runs this same binary
 * as the host (argv[1] "host") over real sockets and checks that:
 *   - an event from counter is applied by ledger, and counter's outbox row is
 *     marked published only after that;
 *   - while ledger's handler fails (a hold file makes it refuse), the row
 *     stays unpublished; a kill -9 of the process then, and a restart without
 *     the hold, delivers the event exactly once (the relay sends it again);
 *     the event applied before the kill is not applied again;
 *   - an event ledger rejects as poison (a poison file) is dead-lettered into
 *     ledger's database before counter's row is marked published; after a
 *     kill -9 and a restart /admin/dlq still lists it; a redrive while it is
 *     still refused dead-letters it again under a new id; a redrive once the
 *     handler is fixed applies it exactly once and removes the dead letter.
 */
#include "harness.h"
#include "identity_harness.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/db.h>
#include <shoal/service.h>

#include <jansson.h>
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

#define TOPIC "shop.counter.bumped.v1"

/* ---- the hosted services ------------------------------------------------------------------ */

static int name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 32) return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))) return 0;
    return 1;
}

static void bump(sl_http_req *req, sl_svc_worker *w)
{
    char name[40];
    if (sl_req_path_id(req, "name", "counter", name_ok, name, sizeof name) != 0) return;
    sl_db *db = sl_svc_worker_db(w);
    json_t *data = json_pack("{s:s}", "name", name);
    sl_db_stmt *st = NULL;
    int rc = data ? sl_db_begin(db) : SL_ENOMEM;
    if (rc == 0) rc = sl_db_prepare(db, "INSERT INTO bumps(name) VALUES (?)", &st);
    if (rc == 0) rc = sl_db_bind_text(st, 1, name, strlen(name));
    if (rc == 0) rc = sl_db_step(st) == SL_DB_DONE ? 0 : SL_EIO;
    sl_db_stmt_done(st);
    if (rc == 0) rc = sl_svc_emit(w, req, db, TOPIC, name, data);
    if (rc == 0) rc = sl_db_commit(db);
    json_decref(data);
    if (rc != 0) {
        sl_db_rollback(db);
        sl_http_respond_problem(req, 503, "cannot record the bump");
        return;
    }
    static const char body[] = "{\"accepted\":true}";
    sl_respond_json(req, 202, body, sizeof body - 1);
}

/* ledger's effect: refused while the hold file exists; every attempt leaves a byte in the
 * attempts file. */
static int apply_bump(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    const char *attempts = getenv("INBUS_ATTEMPTS"), *hold = getenv("INBUS_HOLD");
    const char *poison = getenv("INBUS_POISON");
    FILE *f = attempts ? fopen(attempts, "a") : NULL;
    if (f) {
        fputc('.', f);
        fclose(f);
    }
    struct stat stt;
    if (hold && stat(hold, &stt) == 0) {
        snprintf(reason, cap, "held");
        return SL_EUNAVAIL;
    }
    if (poison && stat(poison, &stt) == 0) {
        snprintf(reason, cap, "poisoned");
        return SL_EPARSE; /* never applies: dead-lettered at once */
    }
    const char *name = json_string_value(json_object_get(msg->data, "name"));
    if (!name) return SL_EPARSE;
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx, "INSERT INTO entries(event_id, name) VALUES (?, ?)", &st);
    if (rc == 0) rc = sl_db_bind_text(st, 1, msg->id, strlen(msg->id));
    if (rc == 0) rc = sl_db_bind_text(st, 2, name, strlen(name));
    if (rc == 0) rc = sl_db_step(st) == SL_DB_DONE ? 0 : SL_EIO;
    sl_db_stmt_done(st);
    return rc;
}

static const sl_migration counter_items[] = {
    {1, "0001_counter.sql", NULL,
     "CREATE TABLE bumps(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL)"},
};
static const sl_migration_set counter_migrations = {"counter", counter_items, 1};
static const sl_route_def counter_routes[] = {{SL_HTTP_POST, "/bump/{name}", bump, 1024}};
static const char *const counter_publishes[] = {"counter", NULL};
static const sl_service_def counter_service = {
    .name = "counter",
    .default_port = 0,
    .routes = counter_routes,
    .nroutes = 1,
    .migrations = &counter_migrations,
    .publishes = counter_publishes,
};

static const sl_migration ledger_items[] = {
    {1, "0001_ledger.sql", NULL,
     "CREATE TABLE entries(event_id TEXT NOT NULL, name TEXT NOT NULL)"},
};
static const sl_migration_set ledger_migrations = {"ledger", ledger_items, 1};
static const sl_subscription_def ledger_subs[] = {{.topic = TOPIC, .apply = apply_bump}};
static const sl_service_def ledger_service = {
    .name = "ledger",
    .default_port = 0,
    .migrations = &ledger_migrations,
    .subscriptions = ledger_subs,
    .nsubscriptions = 1,
};

/* ---- the test ----------------------------------------------------------------------------- */

static struct {
    char dir[64], self[4096];
    int port_counter, port_ledger;
    char env[10][1200];
    int nenv;
    th_idkeys key; /* ledger's identity keys (the admin routes) */
    pid_t pid;     /* the host while it runs */
} t;

static pid_t start_host(void)
{
    char *env[11];
    int n = t.nenv ? t.nenv : 8;
    for (int i = 0; i < n; i++)
        env[i] = t.env[i];
    env[n] = NULL;
    char *argv[] = {t.self, "host", NULL};
    char log[128];
    snprintf(log, sizeof log, "%s/host.log", t.dir);
    pid_t pid = th_spawn(argv, env, log);
    t.pid = pid;
    assert_int_equal(th_wait_port(t.port_counter, 20000), 0);
    assert_int_equal(th_wait_port(t.port_ledger, 20000), 0);
    /* Ready: both answer /readyz 200 (their bus is open). */
    for (int i = 0; i < 2; i++) {
        int port = i ? t.port_ledger : t.port_counter, status = 0;
        for (int k = 0; k < 200 && status != 200; k++) {
            static const char rq[] = "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
            th_response r;
            status = th_roundtrip(port, rq, sizeof rq - 1, &r, 5000);
            if (status > 0) th_response_free(&r);
            if (status != 200) usleep(50000);
        }
        assert_int_equal(status, 200);
    }
    return pid;
}

static void post_bump(const char *name)
{
    char rq[256];
    int n = snprintf(rq, sizeof rq,
                     "POST /bump/%s HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: "
                     "close\r\n\r\n",
                     name);
    th_response r;
    assert_int_equal(th_roundtrip(t.port_counter, rq, (size_t)n, &r, 10000), 202);
    th_response_free(&r);
}

/* One integer from the SQLite database `file` of t.dir (-1 when it cannot be read yet). */
static long long query(const char *file, const char *sql)
{
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/%s", t.dir, file);
    sl_db *db;
    if (sl_db_open(url, NULL, &db, NULL, 0) != 0) return -1;
    sl_db_stmt *st;
    long long v = -1;
    if (sl_db_prepare(db, sql, &st) == 0) {
        if (sl_db_step(st) == SL_DB_ROW) v = sl_db_column_int64(st, 0);
        sl_db_stmt_done(st);
    }
    sl_db_close(db);
    return v;
}

/* Polls until query(file, sql) == want (at most ms). Returns the last value. */
static long long wait_for(const char *file, const char *sql, long long want, int ms)
{
    long long v = -1;
    for (int i = 0; i <= ms / 50; i++) {
        if ((v = query(file, sql)) == want) break;
        usleep(50000);
    }
    return v;
}

static long long file_size(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", t.dir, name);
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

#define UNPUBLISHED "SELECT count(*) FROM outbox WHERE published_ms IS NULL"
#define ENTRIES_A   "SELECT count(*) FROM entries WHERE name = 'a'"
#define ENTRIES_B   "SELECT count(*) FROM entries WHERE name = 'b'"

static void test_event_applied_once_across_kill(void **state)
{
    (void)state;
    snprintf(t.dir, sizeof t.dir, "/tmp/shoal-inbus-XXXXXX");
    assert_non_null(mkdtemp(t.dir));
    ssize_t n = readlink("/proc/self/exe", t.self, sizeof t.self - 1);
    assert_true(n > 0);
    t.self[n] = '\0';
    t.port_counter = th_free_port();
    do
        t.port_ledger = th_free_port();
    while (t.port_ledger == t.port_counter);
    snprintf(t.env[0], sizeof t.env[0], "SHOAL_BUS__URL=inproc:");
    snprintf(t.env[1], sizeof t.env[1], "SHOAL_HOSTED_COUNTER__SERVICE__PORT=%d", t.port_counter);
    snprintf(t.env[2], sizeof t.env[2], "SHOAL_HOSTED_COUNTER__DB__URL=sqlite:%s/counter.db",
             t.dir);
    snprintf(t.env[3], sizeof t.env[3], "SHOAL_HOSTED_LEDGER__SERVICE__PORT=%d", t.port_ledger);
    snprintf(t.env[4], sizeof t.env[4], "SHOAL_HOSTED_LEDGER__DB__URL=sqlite:%s/ledger.db", t.dir);
    snprintf(t.env[5], sizeof t.env[5], "INBUS_HOLD=%s/hold", t.dir);
    snprintf(t.env[6], sizeof t.env[6], "INBUS_ATTEMPTS=%s/attempts", t.dir);
    snprintf(t.env[7], sizeof t.env[7], "SHOAL_SERVICE__WORKERS=1");

    pid_t pid = start_host();
    /* An event from counter is applied by ledger; then (not before) the row is published. */
    post_bump("a");
    assert_int_equal(wait_for("ledger.db", ENTRIES_A, 1, 20000), 1);
    assert_int_equal(wait_for("counter.db", UNPUBLISHED, 0, 20000), 0);

    /* ledger refuses the next one: it stays unpublished in counter's outbox. */
    char hold[128];
    snprintf(hold, sizeof hold, "%s/hold", t.dir);
    FILE *f = fopen(hold, "w");
    assert_non_null(f);
    fclose(f);
    long long before = file_size("attempts");
    post_bump("b");
    for (int i = 0; i < 400 && file_size("attempts") == before; i++)
        usleep(25000);
    assert_true(file_size("attempts") > before); /* delivered and refused at least once */
    assert_int_equal(query("counter.db", UNPUBLISHED), 1);
    assert_int_equal(query("ledger.db", ENTRIES_B), 0);

    /* kill -9 between publish and apply; restart without the hold. */
    int st = th_stop(pid, SIGKILL, 10000);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    assert_int_equal(unlink(hold), 0);
    pid = start_host();
    assert_int_equal(wait_for("ledger.db", ENTRIES_B, 1, 20000), 1);
    assert_int_equal(wait_for("counter.db", UNPUBLISHED, 0, 20000), 0);
    usleep(500000); /* anything sent twice would be applied by now */
    assert_int_equal(query("ledger.db", ENTRIES_B), 1);
    assert_int_equal(query("ledger.db", ENTRIES_A), 1);
    assert_int_equal(query("ledger.db", "SELECT count(DISTINCT event_id) FROM entries"), 2);
    assert_int_equal(th_stop(pid, SIGTERM, 20000), 0);
    t.pid = 0;

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", t.dir);
    assert_int_equal(system(cmd), 0);
}

/* An admin call to ledger, signed as the gateway signs it. Returns the status; *r is filled. */
static int ledger_admin(const char *method, const char *path, th_response *r)
{
    char proof[SL_IDENTITY_PROOF_MAX], rq[2048];
    sl_http_method m = sl_http_method_parse((sl_slice){method, strlen(method)});
    assert_int_equal(th_idsign(&t.key, "ops", "admin", m, path, NULL, NULL, 0,
                               sl_clock_wall_ms(sl_clock_system()), proof),
                     0);
    int n = snprintf(rq, sizeof rq,
                     "%s %s HTTP/1.1\r\nHost: t\r\nx-user-id: ops\r\nx-user-role: admin\r\n"
                     "x-shoal-identity: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     method, path, proof);
    assert_true(n > 0 && (size_t)n < sizeof rq);
    return th_roundtrip(t.port_ledger, rq, (size_t)n, r, 10000);
}

/* GET /admin/dlq of ledger: its `total`, and the first item's message_id and last_error. */
static long long ledger_dlq(char *mid, size_t mcap, char *err, size_t ecap)
{
    th_response r;
    assert_int_equal(ledger_admin("GET", "/admin/dlq", &r), 200);
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(doc);
    long long total = json_integer_value(json_object_get(doc, "total"));
    json_t *first = json_array_get(json_object_get(doc, "items"), 0);
    if (mid)
        snprintf(mid, mcap, "%s",
                 first ? json_string_value(json_object_get(first, "message_id")) : "");
    if (err)
        snprintf(err, ecap, "%s",
                 first ? json_string_value(json_object_get(first, "last_error")) : "");
    if (first) {
        assert_string_equal(json_string_value(json_object_get(first, "service")), "ledger");
        assert_string_equal(json_string_value(json_object_get(first, "topic")), TOPIC);
        assert_string_equal(json_string_value(json_object_get(first, "subject")), "d");
    }
    json_decref(doc);
    th_response_free(&r);
    return total;
}

#define DEAD      "SELECT count(*) FROM dead_letters"
#define ENTRIES_D "SELECT count(*) FROM entries WHERE name = 'd'"

static void test_dead_letter_survives_kill_and_redrives_once(void **state)
{
    (void)state;
    snprintf(t.dir, sizeof t.dir, "/tmp/shoal-indlq-XXXXXX");
    assert_non_null(mkdtemp(t.dir));
    ssize_t n = readlink("/proc/self/exe", t.self, sizeof t.self - 1);
    assert_true(n > 0);
    t.self[n] = '\0';
    t.port_counter = th_free_port();
    do
        t.port_ledger = th_free_port();
    while (t.port_ledger == t.port_counter);
    char keyfile[128], err[256], poison[128];
    snprintf(keyfile, sizeof keyfile, "%s/ledger.key", t.dir);
    assert_int_equal(th_idkeys_make(keyfile, "ledger", &t.key, err), 0);
    snprintf(poison, sizeof poison, "%s/poison", t.dir);
    snprintf(t.env[0], sizeof t.env[0], "SHOAL_BUS__URL=inproc:");
    snprintf(t.env[1], sizeof t.env[1], "SHOAL_HOSTED_COUNTER__SERVICE__PORT=%d", t.port_counter);
    snprintf(t.env[2], sizeof t.env[2], "SHOAL_HOSTED_COUNTER__DB__URL=sqlite:%s/counter.db",
             t.dir);
    snprintf(t.env[3], sizeof t.env[3], "SHOAL_HOSTED_LEDGER__SERVICE__PORT=%d", t.port_ledger);
    snprintf(t.env[4], sizeof t.env[4], "SHOAL_HOSTED_LEDGER__DB__URL=sqlite:%s/ledger.db", t.dir);
    snprintf(t.env[5], sizeof t.env[5], "INBUS_POISON=%s", poison);
    snprintf(t.env[6], sizeof t.env[6], "INBUS_ATTEMPTS=%s/attempts", t.dir);
    snprintf(t.env[7], sizeof t.env[7], "SHOAL_SERVICE__WORKERS=1");
    snprintf(t.env[8], sizeof t.env[8], "SHOAL_HOSTED_LEDGER__IDENTITY__KEY_FILE=%s", keyfile);
    t.nenv = 9;
    FILE *f = fopen(poison, "w");
    assert_non_null(f);
    fclose(f);

    pid_t pid = start_host();
    post_bump("d");
    /* The row is marked published only once the dead letter is in ledger's database. */
    assert_int_equal(wait_for("counter.db", UNPUBLISHED, 0, 20000), 0);
    assert_int_equal(query("ledger.db", DEAD), 1);
    assert_int_equal(query("ledger.db", ENTRIES_D), 0);
    char mid[256], mid2[256], why[256];
    assert_int_equal(ledger_dlq(mid, sizeof mid, why, sizeof why), 1);
    assert_non_null(strstr(why, "poisoned"));
    assert_int_equal(strncmp(mid, "ledger~" TOPIC "~", strlen("ledger~" TOPIC "~")), 0);
    /* The row count shows on ledger's /metrics (refreshed every second). */
    int shown = 0;
    for (int i = 0; i < 100 && !shown; i++) {
        static const char rq[] = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        th_response m;
        if (th_roundtrip(t.port_ledger, rq, sizeof rq - 1, &m, 5000) == 200) {
            shown = strstr(m.body, "dead_letters_stored{service=\"ledger\"} 1") != NULL;
            th_response_free(&m);
        }
        if (!shown) usleep(50000);
    }
    assert_true(shown);

    /* kill -9, restart: the dead letter is still listed, under the same id. */
    int st = th_stop(pid, SIGKILL, 10000);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    pid = start_host();
    assert_int_equal(ledger_dlq(mid2, sizeof mid2, NULL, 0), 1);
    assert_string_equal(mid2, mid);
    assert_int_equal(query("ledger.db", ENTRIES_D), 0);

    /* Redriven while still refused: dead-lettered again under a new id, the old one gone. */
    char path[400];
    snprintf(path, sizeof path, "/admin/dlq/%s/redrive", mid);
    th_response r;
    assert_int_equal(ledger_admin("POST", path, &r), 200);
    th_response_free(&r);
    for (int i = 0; i < 400 && strcmp(mid2, mid) == 0; i++) {
        usleep(25000);
        assert_int_equal(ledger_dlq(mid2, sizeof mid2, NULL, 0), 1);
    }
    assert_string_not_equal(mid2, mid);
    assert_int_equal(ledger_admin("POST", path, &r), 404);
    th_response_free(&r);
    assert_int_equal(query("ledger.db", DEAD), 1);
    assert_int_equal(query("ledger.db", ENTRIES_D), 0);

    /* The handler fixed, a redrive applies it once and removes the dead letter. */
    assert_int_equal(unlink(poison), 0);
    snprintf(mid, sizeof mid, "%s", mid2);
    snprintf(path, sizeof path, "/admin/dlq/%s/redrive", mid);
    assert_int_equal(ledger_admin("POST", path, &r), 200);
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(doc, "redriven")), 1);
    json_decref(doc);
    th_response_free(&r);
    assert_int_equal(wait_for("ledger.db", ENTRIES_D, 1, 20000), 1);
    assert_int_equal(wait_for("ledger.db", DEAD, 0, 20000), 0);
    assert_int_equal(ledger_dlq(NULL, 0, NULL, 0), 0);
    assert_int_equal(ledger_admin("POST", path, &r), 404); /* gone */
    th_response_free(&r);
    usleep(500000); /* anything applied twice would be by now */
    assert_int_equal(query("ledger.db", ENTRIES_D), 1);
    assert_int_equal(th_stop(pid, SIGTERM, 20000), 0);
    t.pid = 0;

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", t.dir);
    assert_int_equal(system(cmd), 0);
}

/* A failed case leaves no host running. */
static int stop_host(void **state)
{
    (void)state;
    if (t.pid > 0) th_stop(t.pid, SIGKILL, 10000);
    t.pid = 0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "host") == 0) {
        const sl_service_def *const defs[] = {&counter_service, &ledger_service};
        return sl_service_host_main(defs, 2, argc - 1, argv + 1);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_event_applied_once_across_kill, stop_host),
        cmocka_unit_test_teardown(test_dead_letter_survives_kill_and_redrives_once, stop_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
