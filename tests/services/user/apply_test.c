/*
 * The user context's store and read model on a real (SQLite) database:
 * commands write the write model and one outbox event each; the apply
 * function feeds user_view exactly once per event id (through the inbox),
 * never lets an older state overwrite a newer one, and moves the watermark
 * only over contiguous positions; invalid event data is refused without a
 * trace; the local projector feeds the view from the outbox, skipping a
 * poison row; lists page and filter. (PostgreSQL runs the same SQL in
 * user_api_test's pg run.)
 */
#include "db_harness.h"
#include "store.h"
#include "user.h"

#include <shoal/outbox.h>

static sl_db *fresh_user_db(void)
{
    sl_db *db = harness_fresh_lib(NULL);
    int rc = sl_db_migrate(db, &sl_migrations_user, NULL);
    if (rc != 0) fail_msg("user migrations: %s", sl_db_errmsg(db));
    return db;
}

static const int64_t T0 = (int64_t)1795869296 * 1000000000;

static void create(sl_db *db, const char *email, const char *role, user_state *out)
{
    /* One ms apart: ids are UUIDv7, so the list order (by id) is creation order. */
    static int64_t n;
    user_new u = {.email = email, .name = "Name", .role = role, .password_hash = "$argon2id$x"};
    HARNESS_OK(db, user_store_create(db, &u, NULL, T0 + 1000000 * n++, out));
}

/* Builds a bus message for `type` with data from `u` and applies it under consumer "test"
 * in one transaction. Returns the claim result (1 applied, 0 duplicate) or apply's error. */
static int deliver(sl_db *db, const char *event_id, const char *type, const user_state *u,
                   json_t *data_override)
{
    json_t *data = data_override ? json_incref(data_override) : user_event_data(u);
    sl_bus_msg msg = {.topic = type,
                      .group = "test",
                      .id = event_id,
                      .type = type,
                      .source = "/shoal/user",
                      .subject = u->id,
                      .data = data,
                      .deliveries = 1};
    HARNESS_OK(db, sl_db_begin(db));
    int rc = sl_inbox_claim(db, "test", event_id, sl_clock_wall_ms(sl_clock_system()));
    char reason[256] = {0};
    if (rc == 1) {
        int a = user_apply_event(NULL, db, &msg, reason, sizeof reason);
        if (a != 0) rc = a;
    }
    if (rc >= 0)
        HARNESS_OK(db, sl_db_commit(db));
    else
        sl_db_rollback(db);
    json_decref(data);
    return rc;
}

static void test_create_writes_model_and_event(void **state)
{
    (void)state;
    sl_db *db = fresh_user_db();
    user_state a;
    create(db, "ann@example.com", "customer", &a);
    assert_int_equal(a.position, 1);
    assert_int_equal(strncmp(a.created_at, "2026-11-28T12:34:56.", 20), 0);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM users"), 1);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM outbox WHERE type = "
                                     "'shop.user.registered.v1'"),
                     1);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM user_view"), 0); /* not projected */
    /* Duplicate email: nothing written, no position taken. */
    user_new dup = {.email = "ann@example.com",
                    .name = "X",
                    .role = "customer",
                    .password_hash = "$argon2id$y"};
    user_state b;
    assert_int_equal(user_store_create(db, &dup, NULL, T0, &b), SL_ECONFLICT);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM outbox"), 1);
    int64_t last = 0;
    HARNESS_OK(db, user_store_last_position(db, &last));
    assert_int_equal(last, 1);
    user_row row;
    HARNESS_OK(db, user_store_by_email(db, "ann@example.com", &row));
    assert_string_equal(row.s.id, a.id);
    assert_string_equal(row.password_hash, "$argon2id$x");
    assert_int_equal(row.version, 1);
    assert_int_equal(user_store_by_email(db, "nobody@example.com", &row), SL_ENOTFOUND);
    sl_db_close(db);
}

static void test_update_rules(void **state)
{
    (void)state;
    sl_db *db = fresh_user_db();
    user_state a, b, out;
    create(db, "ann@example.com", "customer", &a);
    create(db, "bob@example.com", "customer", &b);
    HARNESS_OK(db, user_store_update(db, a.id, NULL, "Ann Lee", NULL, T0 + 1000000, &out));
    assert_int_equal(out.position, 3);
    assert_string_equal(out.name, "Ann Lee");
    assert_string_equal(out.email, "ann@example.com");
    assert_string_equal(out.updated_at, "2026-11-28T12:34:56.001Z");
    /* Taken email: refused, nothing written. */
    assert_int_equal(user_store_update(db, a.id, "bob@example.com", NULL, NULL, T0, &out),
                     SL_ECONFLICT);
    /* No change: no write, no event, the current position. */
    HARNESS_OK(db, user_store_update(db, a.id, "ann@example.com", "Ann Lee", NULL, T0, &out));
    assert_int_equal(out.position, 3);
    assert_int_equal(
        user_store_update(db, "01a22234-d416-7a29-8db6-000000000000", NULL, "x", NULL, T0, &out),
        SL_ENOTFOUND);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM outbox"), 3);
    assert_int_equal(harness_int(db, "SELECT position FROM user_position"), 3);
    assert_int_equal(harness_int(db, "SELECT version FROM users WHERE email = 'ann@example.com'"),
                     2);
    sl_db_close(db);
}

static void test_apply_once_and_in_position_order(void **state)
{
    (void)state;
    sl_db *db = fresh_user_db();
    user_state u;
    create(db, "ann@example.com", "customer", &u); /* position 1 */
    assert_int_equal(deliver(db, "ev-1", USER_EVENT_REGISTERED, &u, NULL), 1);
    user_state v;
    HARNESS_OK(db, user_view_get(db, u.id, &v));
    assert_string_equal(v.email, "ann@example.com");
    assert_int_equal(v.position, 1);
    int64_t wm = 0;
    HARNESS_OK(db, user_view_watermark(db, &wm));
    assert_int_equal(wm, 1);
    /* The same event again: claimed already, not applied. */
    assert_int_equal(deliver(db, "ev-1", USER_EVENT_REGISTERED, &u, NULL), 0);

    /* Position 3 arrives before 2: the row takes 3, the watermark waits for 2. */
    user_state s2 = u, s3 = u;
    strcpy(s2.name, "Two");
    s2.position = 2;
    strcpy(s3.name, "Three");
    s3.position = 3;
    assert_int_equal(deliver(db, "ev-3", USER_EVENT_UPDATED, &s3, NULL), 1);
    HARNESS_OK(db, user_view_watermark(db, &wm));
    assert_int_equal(wm, 1);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM user_view_pending"), 1);
    assert_int_equal(deliver(db, "ev-2", USER_EVENT_UPDATED, &s2, NULL), 1);
    HARNESS_OK(db, user_view_get(db, u.id, &v));
    assert_string_equal(v.name, "Three"); /* the older state did not win */
    assert_int_equal(v.position, 3);
    HARNESS_OK(db, user_view_watermark(db, &wm));
    assert_int_equal(wm, 3);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM user_view_pending"), 0);
    sl_db_close(db);
}

static void test_apply_refuses_bad_data_without_trace(void **state)
{
    (void)state;
    sl_db *db = fresh_user_db();
    user_state u;
    create(db, "ann@example.com", "customer", &u);
    json_t *bad = user_event_data(&u);
    json_object_set_new(bad, "role", json_string("superuser"));
    assert_int_equal(deliver(db, "ev-bad", USER_EVENT_REGISTERED, &u, bad), SL_EPARSE);
    json_decref(bad);
    assert_int_equal(deliver(db, "ev-x", "shop.user.deleted.v1", &u, NULL), SL_EPARSE);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM user_view"), 0);
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM inbox"), 0);
    assert_int_equal(harness_int(db, "SELECT watermark FROM user_view_state"), 0);
    sl_db_close(db);
}

static void test_projector_feeds_view_and_skips_poison(void **state)
{
    (void)state;
    sl_db *db = fresh_user_db();
    user_state a, b, out;
    create(db, "ann@example.com", "customer", &a);
    create(db, "root@example.com", "admin", &b);
    HARNESS_OK(db, user_store_update(db, a.id, "ann@example.org", NULL, NULL, T0, &out));
    /* A poison row of our type in the outbox (written by hand). */
    HARNESS_OK(db, sl_db_begin(db));
    sl_outbox_event ev = {.source = "/shoal/user",
                          .type = USER_EVENT_UPDATED,
                          .subject = "x",
                          .data_json = "{\"user_id\":\"x\"}"};
    HARNESS_OK(db, sl_outbox_add(db, &ev, T0, NULL));
    HARNESS_OK(db, sl_db_commit(db));
    user_state c;
    create(db, "cy@example.com", "customer", &c); /* position 4, after the poison row */

    int applied = -1, skipped = -1;
    HARNESS_OK(db, user_project_outbox(db, 10, &applied, &skipped));
    assert_int_equal(applied, 4);
    assert_int_equal(skipped, 1);
    user_state v;
    HARNESS_OK(db, user_view_get(db, a.id, &v));
    assert_string_equal(v.email, "ann@example.org");
    assert_int_equal(v.position, 3);
    assert_int_equal(harness_int(db, "SELECT watermark FROM user_view_state"), 4);
    /* Again: nothing left to do. */
    HARNESS_OK(db, user_project_outbox(db, 10, &applied, &skipped));
    assert_int_equal(applied, 0);
    assert_int_equal(skipped, 0);

    /* Lists: oldest first, paged, filtered by role, with the total. */
    json_t *items = json_array();
    int64_t total = 0;
    HARNESS_OK(db, user_view_list(db, NULL, 1, 2, items, &total));
    assert_int_equal(total, 3);
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "user_id")),
                        a.id);
    json_array_clear(items);
    HARNESS_OK(db, user_view_list(db, NULL, 2, 2, items, &total));
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "user_id")),
                        c.id);
    json_array_clear(items);
    HARNESS_OK(db, user_view_list(db, "admin", 1, 20, items, &total));
    assert_int_equal(total, 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(items, 0), "email")),
                        "root@example.com");
    json_decref(items);
    sl_db_close(db);
}

/* A view rebuilt from zero (truncate, rewind the checkpoint) ends identical. */
static void test_rebuild_from_zero(void **state)
{
    (void)state;
    sl_db *db = fresh_user_db();
    user_state a, out;
    create(db, "ann@example.com", "customer", &a);
    HARNESS_OK(db, user_store_update(db, a.id, NULL, "Ann 2", NULL, T0, &out));
    HARNESS_OK(db, user_project_outbox(db, 10, NULL, NULL));
    HARNESS_OK(db, sl_db_exec(db, "DELETE FROM user_view; DELETE FROM inbox; "
                                  "UPDATE user_view_state SET watermark = 0, outbox_seq = 0"));
    int applied = 0;
    HARNESS_OK(db, user_project_outbox(db, 10, &applied, NULL));
    assert_int_equal(applied, 2);
    user_state v;
    HARNESS_OK(db, user_view_get(db, a.id, &v));
    assert_string_equal(v.name, "Ann 2");
    assert_int_equal(v.position, 2);
    sl_db_close(db);
}

/* Sessions on the store: rotation, revoke-all of a user (what a role change must do), and
 * the revoked feed's order and bounds. */
static void test_sessions_store(void **state)
{
    (void)state;
    sl_db *db = fresh_user_db();
    int64_t now = 1795869296000;
    char sa[SL_DB_UUID_STR], sb[SL_DB_UUID_STR], sc[SL_DB_UUID_STR];
    char ta[USER_REFRESH_TOKEN_MAX + 1], tb[USER_REFRESH_TOKEN_MAX + 1],
        tc[USER_REFRESH_TOKEN_MAX + 1];
    HARNESS_OK(db, user_session_open(db, "u-1", now, 86400000, sa, ta));
    HARNESS_OK(db, user_session_open(db, "u-1", now + 1, 86400000, sb, tb));
    HARNESS_OK(db, user_session_open(db, "u-2", now + 2, 86400000, sc, tc));
    assert_int_equal(harness_int(db, "SELECT COUNT(*) FROM refresh_tokens WHERE hash LIKE '%-%'"),
                     0); /* hashes only, never the tokens */
    user_refreshed r;
    HARNESS_OK(db, user_session_refresh(db, ta, now + 10, &r));
    assert_string_equal(r.sid, sa);
    assert_string_equal(r.user_id, "u-1");
    char ta2[USER_REFRESH_TOKEN_MAX + 1];
    snprintf(ta2, sizeof ta2, "%s", r.refresh_token);
    /* Revoke every session of u-1 (in a transaction, as a role change would). */
    HARNESS_OK(db, sl_db_begin(db));
    HARNESS_OK(db, user_sessions_revoke_user(db, "u-1", now + 20));
    HARNESS_OK(db, sl_db_commit(db));
    assert_int_equal(user_session_refresh(db, ta2, now + 30, &r), SL_ESTATE);
    assert_int_equal(user_session_refresh(db, tb, now + 30, &r), SL_ESTATE);
    HARNESS_OK(db, user_session_refresh(db, tc, now + 30, &r)); /* u-2 untouched */
    /* The feed: both sessions of u-1, in order, after 0; nothing after its last. */
    user_revoked out[8];
    size_t n = 0;
    int64_t last = 0;
    HARNESS_OK(db, user_sessions_revoked(db, 0, now, 8, out, &n, &last));
    assert_int_equal(n, 2);
    assert_true(strcmp(out[0].sid, sa) == 0 || strcmp(out[0].sid, sb) == 0);
    assert_int_equal(out[0].revoked_ms, now + 20);
    HARNESS_OK(db, user_sessions_revoked(db, last, now, 8, out, &n, &last));
    assert_int_equal(n, 0);
    /* Revocations older than `since` are read past but not listed (their tokens expired). */
    HARNESS_OK(db, user_sessions_revoked(db, 0, now + 21, 8, out, &n, &last));
    assert_int_equal(n, 0);
    assert_true(last >= 1);
    /* A full read that may have cut the group of its last number starts at that number
     * again: numbers 1, 1, 2 read 3 at a time → ask after 1 next, which repeats 2. */
    char se[SL_DB_UUID_STR], te[USER_REFRESH_TOKEN_MAX + 1];
    HARNESS_OK(db, user_session_open(db, "u-4", now, 86400000, se, te));
    HARNESS_OK(db, user_session_logout(db, te, now + 40));
    HARNESS_OK(db, user_sessions_revoked(db, 0, now, 3, out, &n, &last));
    assert_int_equal(n, 3);
    assert_int_equal(last, 1);
    HARNESS_OK(db, user_sessions_revoked(db, last, now, 3, out, &n, &last));
    assert_int_equal(n, 1);
    assert_string_equal(out[0].sid, se);
    assert_int_equal(last, 2);
    /* An expired session cannot be refreshed. */
    char sd[SL_DB_UUID_STR], td[USER_REFRESH_TOKEN_MAX + 1];
    HARNESS_OK(db, user_session_open(db, "u-3", now, 1000, sd, td));
    assert_int_equal(user_session_refresh(db, td, now + 1000, &r), SL_ESTATE);
    assert_int_equal(user_session_refresh(db, "unknown", now, &r), SL_ESTATE);
    sl_db_close(db);
}

int main(int argc, char **argv)
{
    harness_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_writes_model_and_event),
        cmocka_unit_test(test_update_rules),
        cmocka_unit_test(test_apply_once_and_in_position_order),
        cmocka_unit_test(test_apply_refuses_bad_data_without_trace),
        cmocka_unit_test(test_projector_feeds_view_and_skips_poison),
        cmocka_unit_test(test_rebuild_from_zero),
        cmocka_unit_test(test_sessions_store),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    harness_done();
    return rc;
}
