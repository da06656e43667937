/*
 * The user context's SQL (store.h): write model and outbox events, read
 * model queries, the apply function of the read model's subscriptions, and
 * the local projector over this database's outbox.
 */
#include "store.h"

#include <shoal/clock.h>
#include <shoal/json.h>
#include <shoal/outbox.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_SOURCE "/shoal/user"
/* Positions the watermark may advance in one apply; the rest moves on the next one. */
#define WATERMARK_STEP_MAX 1024

/* Binds `n` text arguments (NULL binds SQL NULL). */
static int bind_texts(sl_db_stmt *st, const char *const *v, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = v[i] ? sl_db_bind_text(st, i + 1, v[i], SIZE_MAX) : sl_db_bind_null(st, i + 1);
        if (rc != 0) return rc;
    }
    return 0;
}

/* Runs a statement without results; stores the changed rows in *changes (may be NULL). */
static int exec_texts(sl_db *db, const char *sql, const char *const *v, int n, int64_t *changes)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    rc = bind_texts(st, v, n);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) rc = SL_DB_DONE;
    if (rc == SL_DB_DONE && changes) *changes = sl_db_changes(st);
    sl_db_stmt_done(st);
    return rc;
}

/* Runs a query returning one integer (0 rows: SL_ENOTFOUND). */
static int query_int(sl_db *db, const char *sql, const char *arg, int64_t *out)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if (arg) rc = sl_db_bind_text(st, 1, arg, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *out = sl_db_column_int64(st, 0);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

static void col_copy(sl_db_stmt *st, int col, char *out, size_t cap)
{
    size_t n = 0;
    const char *s = sl_db_column_text(st, col, &n);
    if (!s || n >= cap) n = 0;
    if (n) memcpy(out, s, n);
    out[n] = '\0';
}

/* Takes the next position; the UPDATE also serialises every user write on this row. */
static int next_position(sl_db *tx, int64_t *pos)
{
    int rc = exec_texts(tx, "UPDATE user_position SET position = position + 1 WHERE id = 1", NULL,
                        0, NULL);
    if (rc != 0) return rc;
    return query_int(tx, "SELECT position FROM user_position WHERE id = 1", NULL, pos);
}

static int emit(sl_db *tx, const char *type, const user_state *u, const char *traceparent,
                int64_t now_ns)
{
    json_t *data = user_event_data(u);
    char *text = data ? sl_json_dump(data, NULL) : NULL;
    json_decref(data);
    if (!text) return SL_ENOMEM;
    sl_outbox_event ev = {.source = USER_SOURCE,
                          .type = type,
                          .subject = u->id,
                          .data_json = text,
                          .traceparent = traceparent};
    int rc = sl_outbox_add(tx, &ev, now_ns, NULL);
    free(text);
    return rc;
}

int user_store_create(sl_db *db, const user_new *u, const char *traceparent, int64_t now_ns,
                      user_state *out)
{
    memset(out, 0, sizeof *out);
    int rc = sl_uuid7_at(now_ns / 1000000, out->id);
    if (rc != 0) return rc;
    if (sl_rfc3339_format(now_ns, out->created_at, sizeof out->created_at) < 0) return SL_EINVAL;
    memcpy(out->updated_at, out->created_at, sizeof out->updated_at);
    snprintf(out->email, sizeof out->email, "%s", u->email);
    snprintf(out->name, sizeof out->name, "%s", u->name);
    snprintf(out->role, sizeof out->role, "%s", u->role);

    rc = sl_db_begin(db);
    if (rc != 0) return rc;
    rc = next_position(db, &out->position);
    if (rc == 0) {
        char pos[24];
        snprintf(pos, sizeof pos, "%lld", (long long)out->position);
        const char *v[] = {out->id,          out->email,      out->name,       out->role,
                           u->password_hash, out->created_at, out->updated_at, pos};
        rc = exec_texts(db,
                        "INSERT INTO users (id, email, name, role, password_hash, created_at, "
                        "updated_at, version, position) VALUES (?, ?, ?, ?, ?, ?, ?, 1, "
                        "CAST(? AS BIGINT))",
                        v, 8, NULL);
    }
    if (rc == 0) rc = emit(db, USER_EVENT_REGISTERED, out, traceparent, now_ns);
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) sl_db_rollback(db);
    return rc;
}

static int read_row(sl_db *db, const char *sql, const char *arg, user_row *out)
{
    memset(out, 0, sizeof *out);
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, arg, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        col_copy(st, 0, out->s.id, sizeof out->s.id);
        col_copy(st, 1, out->s.email, sizeof out->s.email);
        col_copy(st, 2, out->s.name, sizeof out->s.name);
        col_copy(st, 3, out->s.role, sizeof out->s.role);
        col_copy(st, 4, out->password_hash, sizeof out->password_hash);
        col_copy(st, 5, out->s.created_at, sizeof out->s.created_at);
        col_copy(st, 6, out->s.updated_at, sizeof out->s.updated_at);
        out->version = sl_db_column_int64(st, 7);
        out->s.position = sl_db_column_int64(st, 8);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

#define ROW_COLUMNS                                                                                \
    "SELECT id, email, name, role, password_hash, created_at, updated_at, version, position "      \
    "FROM users "

int user_store_by_email(sl_db *db, const char *email, user_row *out)
{
    return read_row(db, ROW_COLUMNS "WHERE email = ?", email, out);
}

int user_store_by_id(sl_db *db, const char *id, user_row *out)
{
    return read_row(db, ROW_COLUMNS "WHERE id = ?", id, out);
}

int user_store_update(sl_db *db, const char *id, const char *email, const char *name,
                      const char *traceparent, int64_t now_ns, user_state *out)
{
    user_row row;
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    /* The position first: it serialises this command with every other user write. */
    int64_t pos = 0;
    rc = next_position(db, &pos);
    if (rc == 0) rc = user_store_by_id(db, id, &row);
    if (rc != 0) goto fail;
    int same =
        (!email || strcmp(email, row.s.email) == 0) && (!name || strcmp(name, row.s.name) == 0);
    if (same) {
        /* Nothing to write: the rollback also returns the position taken above. */
        sl_db_rollback(db);
        *out = row.s;
        return 0;
    }
    *out = row.s;
    if (email) snprintf(out->email, sizeof out->email, "%s", email);
    if (name) snprintf(out->name, sizeof out->name, "%s", name);
    if (sl_rfc3339_format(now_ns, out->updated_at, sizeof out->updated_at) < 0) {
        rc = SL_EINVAL;
        goto fail;
    }
    out->position = pos;
    char ps[24];
    snprintf(ps, sizeof ps, "%lld", (long long)pos);
    const char *v[] = {out->email, out->name, out->updated_at, ps, id};
    rc = exec_texts(db,
                    "UPDATE users SET email = ?, name = ?, updated_at = ?, version = version + 1, "
                    "position = CAST(? AS BIGINT) WHERE id = ?",
                    v, 5, NULL);
    if (rc == 0) rc = emit(db, USER_EVENT_UPDATED, out, traceparent, now_ns);
    if (rc == 0) rc = sl_db_commit(db);
    if (rc == 0) return 0;
fail:
    sl_db_rollback(db);
    return rc;
}

int user_store_count_admins(sl_db *db, int64_t *n)
{
    return query_int(db, "SELECT COUNT(*) FROM users WHERE role = 'admin'", NULL, n);
}

int user_store_last_position(sl_db *db, int64_t *pos)
{
    return query_int(db, "SELECT position FROM user_position WHERE id = 1", NULL, pos);
}

/* ---- read model ---------------------------------------------------------------------------- */

static void view_row(sl_db_stmt *st, user_state *u)
{
    col_copy(st, 0, u->id, sizeof u->id);
    col_copy(st, 1, u->email, sizeof u->email);
    col_copy(st, 2, u->name, sizeof u->name);
    col_copy(st, 3, u->role, sizeof u->role);
    col_copy(st, 4, u->created_at, sizeof u->created_at);
    col_copy(st, 5, u->updated_at, sizeof u->updated_at);
    u->position = sl_db_column_int64(st, 6);
}

#define VIEW_COLUMNS                                                                               \
    "SELECT id, email, name, role, created_at, updated_at, position FROM user_view "

int user_view_get(sl_db *db, const char *id, user_state *out)
{
    memset(out, 0, sizeof *out);
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, VIEW_COLUMNS "WHERE id = ?", &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, id, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        view_row(st, out);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

int user_view_watermark(sl_db *db, int64_t *wm)
{
    return query_int(db, "SELECT watermark FROM user_view_state WHERE id = 1", NULL, wm);
}

json_t *user_json(const user_state *u)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "user_id", u->id, "email", u->email, "name",
                     u->name, "role", u->role, "created_at", u->created_at, "updated_at",
                     u->updated_at);
}

int user_view_list(sl_db *db, const char *role, int64_t page, int64_t per_page, json_t *items,
                   int64_t *total)
{
    /* `? IS NULL OR role = ?` keeps one statement text (and one cached plan) for both cases. */
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "SELECT COUNT(*) FROM user_view WHERE CAST(? AS TEXT) IS NULL OR "
                           "role = ?",
                           &st);
    if (rc != 0) return rc;
    const char *v[] = {role, role};
    rc = bind_texts(st, v, 2);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) *total = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    if (rc != SL_DB_ROW) return rc < 0 ? rc : SL_EIO;

    rc = sl_db_prepare(db,
                       VIEW_COLUMNS "WHERE CAST(? AS TEXT) IS NULL OR role = ? ORDER BY id "
                                    "LIMIT ? OFFSET ?",
                       &st);
    if (rc != 0) return rc;
    rc = bind_texts(st, v, 2);
    if (rc == 0) rc = sl_db_bind_int64(st, 3, per_page);
    if (rc == 0) rc = sl_db_bind_int64(st, 4, (page - 1) * per_page);
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        user_state u;
        view_row(st, &u);
        json_t *j = user_json(&u);
        rc = j && json_array_append_new(items, j) == 0 ? 0 : SL_ENOMEM;
    }
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : rc;
}

/* Moves the watermark over `pos` and every contiguous position already applied above it. */
static int advance_watermark(sl_db *tx, int64_t pos)
{
    int64_t wm = 0;
    int rc = user_view_watermark(tx, &wm);
    if (rc != 0 || pos <= wm) return rc;
    sl_db_stmt *st;
    rc = sl_db_prepare(tx,
                       "INSERT INTO user_view_pending (position) VALUES (?) "
                       "ON CONFLICT (position) DO NOTHING",
                       &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_int64(st, 1, pos);
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    if (rc < 0) return rc;
    int64_t next = wm;
    for (int i = 0; i < WATERMARK_STEP_MAX; i++) {
        rc = sl_db_prepare(tx, "DELETE FROM user_view_pending WHERE position = ?", &st);
        if (rc != 0) return rc;
        rc = sl_db_bind_int64(st, 1, next + 1);
        if (rc == 0) rc = sl_db_step(st);
        int64_t gone = rc == SL_DB_DONE ? sl_db_changes(st) : 0;
        sl_db_stmt_done(st);
        if (rc < 0) return rc;
        if (gone != 1) break;
        next++;
    }
    if (next == wm) return 0;
    rc = sl_db_prepare(tx, "UPDATE user_view_state SET watermark = ? WHERE id = 1", &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_int64(st, 1, next);
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int user_view_put(sl_db *tx, const user_state *u)
{
    SL_ASSERT(tx && u);
    char pos[24];
    snprintf(pos, sizeof pos, "%lld", (long long)u->position);
    const char *v[] = {u->id, u->email, u->name, u->role, u->created_at, u->updated_at, pos};
    /* An older state never overwrites a newer one: redelivery and reordering are harmless. */
    int rc = exec_texts(tx,
                        "INSERT INTO user_view (id, email, name, role, created_at, updated_at, "
                        "position) VALUES (?, ?, ?, ?, ?, ?, CAST(? AS BIGINT)) "
                        "ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = "
                        "excluded.name, role = excluded.role, updated_at = excluded.updated_at, "
                        "position = excluded.position WHERE excluded.position > user_view.position",
                        v, 7, NULL);
    return rc == 0 ? advance_watermark(tx, u->position) : rc;
}

/* ---- local projector ----------------------------------------------------------------------- */

/* Applies one outbox envelope. Returns 1 applied, 0 duplicate or skipped (poison), or < 0. */
static int project_one(sl_db *tx, const char *envelope, size_t len, int *skipped)
{
    json_t *env = NULL;
    sl_json_limits lim = {.max_bytes = SL_OUTBOX_ENVELOPE_MAX};
    if (sl_json_parse(envelope, len, &lim, &env, NULL) != 0) {
        (*skipped)++;
        return 0;
    }
    sl_bus_msg msg = {0};
    msg.id = json_string_value(json_object_get(env, "id"));
    msg.type = json_string_value(json_object_get(env, "type"));
    msg.topic = msg.type;
    msg.group = USER_PROJECTOR_CONSUMER;
    msg.source = json_string_value(json_object_get(env, "source"));
    msg.subject = json_string_value(json_object_get(env, "subject"));
    msg.time = json_string_value(json_object_get(env, "time"));
    msg.traceparent = json_string_value(json_object_get(env, "traceparent"));
    msg.data = json_object_get(env, "data");
    msg.payload = (sl_slice){envelope, len};
    msg.deliveries = 1;
    int rc = 0;
    if (!msg.id) {
        (*skipped)++;
        goto out;
    }
    rc = sl_inbox_claim(tx, USER_PROJECTOR_CONSUMER, msg.id, sl_clock_wall_ms(sl_clock_system()));
    if (rc != 1) goto out; /* 0: already applied; < 0: error */
    char reason[SL_BUS_REASON_MAX];
    rc = user_apply_event(NULL, tx, &msg, reason, sizeof reason);
    if (rc == SL_EPARSE) {
        (*skipped)++;
        rc = 0;
    } else if (rc == 0) {
        rc = 1;
    }
out:
    json_decref(env);
    return rc;
}

_Static_assert(USER_PROJECTOR_BATCH == 100, "the LIMIT in project_batch must match");

/* One batch: returns the rows consumed (applied or not), or < 0. */
static int project_batch(sl_db *db, int *applied, int *skipped)
{
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    /* Takes the row lock first (PostgreSQL), so two connections never project the same rows. */
    rc = exec_texts(db, "UPDATE user_view_state SET outbox_seq = outbox_seq WHERE id = 1", NULL, 0,
                    NULL);
    int64_t seq = 0, last = 0;
    if (rc == 0)
        rc = query_int(db, "SELECT outbox_seq FROM user_view_state WHERE id = 1", NULL, &seq);
    sl_db_stmt *st = NULL;
    if (rc == 0)
        rc = sl_db_prepare(db,
                           "SELECT seq, envelope FROM outbox WHERE seq > ? AND type IN "
                           "('" USER_EVENT_REGISTERED "', '" USER_EVENT_UPDATED "') "
                           "ORDER BY seq LIMIT 100",
                           &st);
    if (rc == 0) rc = sl_db_bind_int64(st, 1, seq);
    int rows = 0;
    /* Rows are copied out first: a statement's text is only valid until its next step, and
     * applying uses other statements of the same connection. */
    char *env[USER_PROJECTOR_BATCH] = {0};
    size_t envlen[USER_PROJECTOR_BATCH] = {0};
    while (rc == 0 && rows < USER_PROJECTOR_BATCH && (rc = sl_db_step(st)) == SL_DB_ROW) {
        last = sl_db_column_int64(st, 0);
        size_t n = 0;
        const char *e = sl_db_column_text(st, 1, &n);
        env[rows] = malloc(n + 1);
        if (!env[rows]) {
            rc = SL_ENOMEM;
            break;
        }
        memcpy(env[rows], e ? e : "", n);
        env[rows][n] = '\0';
        envlen[rows++] = n;
        rc = 0;
    }
    if (rc == SL_DB_DONE) rc = 0;
    sl_db_stmt_done(st);
    for (int i = 0; rc >= 0 && i < rows; i++) {
        rc = project_one(db, env[i], envlen[i], skipped);
        if (rc > 0) (*applied)++;
    }
    for (int i = 0; i < rows; i++)
        free(env[i]);
    if (rc >= 0 && rows > 0) {
        rc = sl_db_prepare(db, "UPDATE user_view_state SET outbox_seq = ? WHERE id = 1", &st);
        if (rc == 0) rc = sl_db_bind_int64(st, 1, last);
        if (rc == 0) rc = sl_db_step(st);
        sl_db_stmt_done(st);
    }
    if (rc >= 0) rc = sl_db_commit(db);
    if (rc < 0) {
        sl_db_rollback(db);
        return rc;
    }
    return rows;
}

int user_project_outbox(sl_db *db, int max_batches, int *applied, int *skipped)
{
    int a = 0, s = 0, rc = 0;
    for (int i = 0; i < max_batches; i++) {
        rc = project_batch(db, &a, &s);
        if (rc < USER_PROJECTOR_BATCH) break;
    }
    if (applied) *applied = a;
    if (skipped) *skipped = s;
    return rc < 0 ? rc : 0;
}
