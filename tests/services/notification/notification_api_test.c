/*
 * shoal-notification on SQLite (argv[1] = sqlite) and PostgreSQL (pg): the
 * binary runs with the file sender on a private mailbox directory. The test
 * applies events on its own connection exactly as the host's consumer does
 * (inbox claim + apply in one transaction, the same event twice), which is
 * also the state a crash right after the commit leaves behind: recorded,
 * not delivered. The server's delivery pump must then write each mailbox
 * file exactly once and mark it delivered; GET /notifications lists them to
 * the user and admins only, with bad input refused.
 */
#include "db_harness.h"
#include "harness.h"
#include "identity_harness.h"
#include "notification.h"

#include <shoal/bus.h>
#include <shoal/identity.h>
#include <shoal/outbox.h>

#include <dirent.h>
#include <sys/wait.h>
#include <time.h>

static struct {
    char url[600];
    char key_path[256];
    char mailbox[256];
    th_idkeys key;
    int port;
    pid_t pid;
    sl_db *db;
} g;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g.key_path, sizeof g.key_path, "/tmp/notif-api-%ld.key", (long)getpid());
    snprintf(g.mailbox, sizeof g.mailbox, "/tmp/notif-api-%ld-mail", (long)getpid());
    char err[256];
    if (th_idkeys_make(g.key_path, "notification", &g.key, err) != 0) return -1;
    harness_fresh_url(g.url, sizeof g.url);
    g.port = th_free_port();
    char portbuf[16], dbenv[700], keyenv[300], mailenv[300];
    snprintf(portbuf, sizeof portbuf, "%d", g.port);
    snprintf(dbenv, sizeof dbenv, "SHOAL_DB__URL=%s", g.url);
    snprintf(keyenv, sizeof keyenv, "SHOAL_IDENTITY__KEY_FILE=%s", g.key_path);
    snprintf(mailenv, sizeof mailenv, "SHOAL_NOTIFICATION__MAILBOX_DIR=%s", g.mailbox);
    char *argv[] = {"shoal-notification", "--port", portbuf, NULL};
    char *env[] = {
        dbenv, keyenv, mailenv, "SHOAL_LOG__LEVEL=warn", "SHOAL_NOTIFICATION__DELIVERY_POLL_MS=20",
        NULL};
    g.pid = th_spawn(argv, env, "notification_api_test.server.log");
    if (th_wait_port(g.port, 15000) != 0) fail_msg("shoal-notification did not start");
    harness_open_url(g.url, &g.db);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sl_db_close(g.db);
    int st = th_stop(g.pid, SIGTERM, 10000);
    unlink(g.key_path);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g.mailbox);
    if (system(cmd) != 0) return -1;
    return (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1;
}

/* Applies one event as the host's consumer does; returns 1 when it was applied. */
static int deliver_event(const char *id, const char *type, const char *data_json)
{
    json_error_t e;
    json_t *data = json_loads(data_json, 0, &e);
    assert_non_null(data);
    sl_bus_msg msg = {.topic = type, .id = id, .type = type, .data = data};
    HARNESS_OK(g.db, sl_db_begin(g.db));
    int claimed = sl_inbox_claim(g.db, "notification", id, now_ms());
    assert_true(claimed >= 0);
    char reason[256] = "";
    if (claimed) {
        int rc = notif_apply(NULL, g.db, &msg, reason, sizeof reason);
        if (rc) fail_msg("apply %s: %s %s", type, sl_errname(rc), reason);
    }
    HARNESS_OK(g.db, sl_db_commit(g.db));
    json_decref(data);
    return claimed;
}

static int count_files(const char *user)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/%s", g.mailbox, user);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strstr(de->d_name, ".txt") != NULL && de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Waits (bounded) until every delivery is marked delivered. */
static void wait_delivered(void)
{
    for (int i = 0; i < 1000; i++) {
        if (harness_int(g.db, "SELECT count(*) FROM deliveries WHERE delivered_ms IS NULL") == 0)
            return;
        usleep(10000);
    }
    fail_msg("deliveries still pending after 10 s");
}

static int call(const char *target, const char *uid, const char *role, th_response *res)
{
    char raw[2048], ident[512] = "";
    if (role) {
        char proof[SL_IDENTITY_PROOF_MAX];
        assert_int_equal(
            th_idsign(&g.key, uid, role, SL_HTTP_GET, target, NULL, NULL, 0, now_ms(), proof), 0);
        snprintf(ident, sizeof ident,
                 "x-user-id: %s\r\nx-user-role: %s\r\nx-shoal-identity: %s\r\n", uid, role, proof);
    }
    int n = snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n",
                     target, ident);
    th_response tmp;
    th_response *r = res ? res : &tmp;
    int st = th_roundtrip(g.port, raw, (size_t)n, r, 10000);
    if (!res) th_response_free(&tmp);
    return st;
}

static void test_recorded_once_delivered_once(void **state)
{
    (void)state;
    const char *created = "{\"order_id\":\"o-1\",\"user_id\":\"u-1\",\"items\":[],"
                          "\"total_amount\":{\"amount\":1200,\"currency\":\"JPY\"}}";
    assert_int_equal(deliver_event("e-1", "shop.order.created.v1", created), 1);
    assert_int_equal(deliver_event("e-1", "shop.order.created.v1", created), 0); /* duplicate */
    assert_int_equal(deliver_event("e-2", "shop.order.cancelled.v1",
                                   "{\"order_id\":\"o-1\",\"user_id\":\"u-1\","
                                   "\"reason\":\"insufficient_funds\"}"),
                     1);
    assert_int_equal(deliver_event("e-3", "shop.payment.refunded.v1",
                                   "{\"order_id\":\"o-1\",\"user_id\":\"u-1\",\"amount\":"
                                   "{\"amount\":1200,\"currency\":\"JPY\"}}"),
                     1);
    assert_int_equal(harness_int(g.db, "SELECT count(*) FROM notifications"), 3);
    /* Even without the inbox, the same event id records nothing new. */
    json_error_t e;
    json_t *d = json_loads(created, 0, &e);
    sl_bus_msg msg = {.id = "e-1", .type = "shop.order.created.v1", .data = d};
    char reason[128];
    HARNESS_OK(g.db, sl_db_begin(g.db));
    HARNESS_OK(g.db, notif_apply(NULL, g.db, &msg, reason, sizeof reason));
    HARNESS_OK(g.db, sl_db_commit(g.db));
    json_decref(d);
    assert_int_equal(harness_int(g.db, "SELECT count(*) FROM notifications"), 3);
    wait_delivered();
    assert_int_equal(count_files("u-1"), 3);
    /* Each delivery was attempted once (no duplicate sends). */
    assert_int_equal(harness_int(g.db, "SELECT max(attempts) FROM deliveries"), 1);
    /* A redelivery (as after a crash before the mark) rewrites the same file, no new one. */
    HARNESS_OK(g.db, sl_db_exec(g.db, "UPDATE deliveries SET delivered_ms = NULL"));
    wait_delivered();
    assert_int_equal(count_files("u-1"), 3);
}

/* More than two batches (NOTIF_BATCH 16) due at once: each delivered once, and the marks of a
 * batch are written together (one transaction, one time), so 40 rows carry at most 3 times. */
static void test_backlog_in_batches(void **state)
{
    (void)state;
    enum { N = 40 };
    HARNESS_OK(g.db, sl_db_begin(g.db));
    for (int i = 0; i < N; i++) {
        char id[32], order[32], data[200];
        snprintf(id, sizeof id, "batch-e-%d", i);
        snprintf(order, sizeof order, "batch-o-%d", i);
        snprintf(data, sizeof data,
                 "{\"order_id\":\"%s\",\"user_id\":\"u-batch\",\"items\":[],"
                 "\"total_amount\":{\"amount\":100,\"currency\":\"JPY\"}}",
                 order);
        json_error_t e;
        json_t *d = json_loads(data, 0, &e);
        assert_non_null(d);
        sl_bus_msg msg = {.id = id, .type = "shop.order.confirmed.v1", .data = d};
        char reason[128];
        assert_int_equal(sl_inbox_claim(g.db, "notification", id, now_ms()), 1);
        HARNESS_OK(g.db, notif_apply(NULL, g.db, &msg, reason, sizeof reason));
        json_decref(d);
    }
    HARNESS_OK(g.db, sl_db_commit(g.db));
    wait_delivered();
    assert_int_equal(count_files("u-batch"), N);
    assert_int_equal(harness_int(g.db, "SELECT count(*) FROM deliveries d JOIN notifications n "
                                       "USING (notification_id) WHERE n.user_id = 'u-batch' "
                                       "AND d.attempts = 1"),
                     N);
    int64_t times = harness_int(g.db, "SELECT count(DISTINCT d.delivered_ms) FROM deliveries d "
                                      "JOIN notifications n USING (notification_id) "
                                      "WHERE n.user_id = 'u-batch'");
    assert_true(times >= 1 && times <= 3);
}

static void test_list(void **state)
{
    (void)state;
    th_response r;
    assert_int_equal(call("/notifications?user_id=u-1&per_page=2", "u-1", "customer", &r), 200);
    json_error_t e;
    json_t *v = json_loads(r.body, 0, &e);
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 3);
    json_t *items = json_object_get(v, "items");
    assert_int_equal(json_array_size(items), 2);
    json_t *first = json_array_get(items, 0);
    assert_string_equal(json_string_value(json_object_get(first, "user_id")), "u-1");
    assert_non_null(json_string_value(json_object_get(first, "delivered_at")));
    assert_non_null(json_string_value(json_object_get(first, "subject")));
    json_decref(v);
    th_response_free(&r);
    assert_int_equal(call("/notifications?user_id=u-1&page=2&per_page=2", "root", "admin", &r),
                     200);
    v = json_loads(r.body, 0, &e);
    assert_int_equal(json_array_size(json_object_get(v, "items")), 1);
    json_decref(v);
    th_response_free(&r);
    assert_int_equal(call("/notifications?user_id=u-1", "u-2", "customer", NULL), 403);
    assert_int_equal(call("/notifications?user_id=u-1", NULL, NULL, NULL), 401);
    assert_int_equal(call("/notifications", "u-1", "customer", NULL), 400);
    assert_int_equal(call("/notifications?user_id=..%2Fx", "u-1", "customer", NULL), 400);
    assert_int_equal(call("/notifications?user_id=u-1&per_page=500", "u-1", "customer", NULL), 400);
}

static void test_poison_event(void **state)
{
    (void)state;
    json_t *d = json_pack("{s:s}", "order_id", "o-9");
    sl_bus_msg msg = {.id = "e-9", .type = "shop.order.shipped.v1", .data = d};
    char reason[128] = "";
    HARNESS_OK(g.db, sl_db_begin(g.db));
    assert_int_equal(notif_apply(NULL, g.db, &msg, reason, sizeof reason), SL_EPARSE);
    sl_db_rollback(g.db);
    assert_non_null(strstr(reason, "user_id"));
    json_decref(d);
    assert_int_equal(harness_int(g.db, "SELECT count(*) FROM notifications"), 3);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded_once_delivered_once),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_poison_event),
        cmocka_unit_test(test_backlog_in_batches),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    harness_done();
    return rc;
}
