/*
 * The saga store: instances and their history in the orchestrator's database
 * through sl_db (tables saga_instances and saga_history, library migration
 * 0003_saga.sql, the same SQL on SQLite and PostgreSQL). Every write is one
 * transaction guarded by the row's version (optimistic concurrency), so the
 * state that is durable always precedes what the driver sends.
 * tests/db/saga_test.c runs this on both backends.
 */
#include "saga/saga_int.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_LIMIT_DEFAULT 1000

static int bind_str(sl_db_stmt *st, int idx, const char *s)
{
    return sl_db_bind_text(st, idx, s, SIZE_MAX);
}

/* Runs a prepared write to completion; returns 0 or the error. */
static int run(sl_db_stmt *st)
{
    int rc = sl_db_step(st);
    return rc == SL_DB_DONE ? 0 : (rc == SL_DB_ROW ? SL_ESTATE : rc);
}

static int insert_history(sl_db *db, const sl_saga_def *def, const char *id,
                          const sl_saga_history_entry *h)
{
    static const char sql[] = "INSERT INTO saga_history (saga_id, seq, at_ms, kind, step, "
                              "call_kind, attempt, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    char detail[SL_SAGA_DETAIL_MAX + 1];
    sl__saga_text_copy(detail, sizeof detail, h->detail.ptr, h->detail.ptr ? h->detail.len : 0);
    bool step_level = h->step >= 0 && (size_t)h->step < def->n_steps;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if ((rc = bind_str(st, 1, id)) != 0 || (rc = sl_db_bind_int64(st, 2, h->seq)) != 0 ||
        (rc = sl_db_bind_int64(st, 3, h->at_ms)) != 0 ||
        (rc = bind_str(st, 4, sl_saga_hist_kind_name(h->kind))) != 0 ||
        (rc = bind_str(st, 5, step_level ? def->steps[h->step].name : "")) != 0 ||
        (rc = bind_str(st, 6, step_level ? sl_saga_call_name(h->call) : "")) != 0 ||
        (rc = sl_db_bind_int64(st, 7, h->attempt)) != 0 || (rc = bind_str(st, 8, detail)) != 0)
        goto out;
    rc = run(st);
out:
    sl_db_stmt_done(st);
    return rc;
}

int sl_saga_store_create(sl_db *tx, const sl_saga_def *def, const char *id, const char *input_json,
                         int64_t now_ms)
{
    static const char sql[] =
        "INSERT INTO saga_instances (id, type, status, input, state, stuck_reason, version, "
        "created_ms, updated_ms, next_wake_ms) VALUES (?, ?, ?, ?, ?, '', 1, ?, ?, ?)";
    if (!sl_db_in_tx(tx)) return SL_ESTATE;
    if (input_json == NULL) return SL_EINVAL;
    sl_saga_state s;
    int rc = sl_saga_state_init(&s, def, id);
    if (rc != 0) return rc;
    if (def->deadline_ms > 0) s.deadline_at_ms = now_ms + def->deadline_ms;
    sl_saga_history_entry created = {.at_ms = now_ms, .kind = SL_SAGA_HIST_CREATED, .step = -1};
    created.seq = ++s.history_seq;
    char *state = NULL;
    if ((rc = sl_saga_state_to_json(&s, &state)) != 0) return rc;
    sl_db_stmt *st;
    if ((rc = sl_db_prepare(tx, sql, &st)) != 0) goto out;
    /* next_wake_ms = now: a created saga is due at once (the driver starts it after commit; the
     * sweep picks it up if that never happened). */
    if ((rc = bind_str(st, 1, id)) == 0 && (rc = bind_str(st, 2, def->type)) == 0 &&
        (rc = bind_str(st, 3, sl_saga_status_name(s.status))) == 0 &&
        (rc = bind_str(st, 4, input_json)) == 0 && (rc = bind_str(st, 5, state)) == 0 &&
        (rc = sl_db_bind_int64(st, 6, now_ms)) == 0 &&
        (rc = sl_db_bind_int64(st, 7, now_ms)) == 0 && (rc = sl_db_bind_int64(st, 8, now_ms)) == 0)
        rc = run(st);
    sl_db_stmt_done(st);
    if (rc == 0) rc = insert_history(tx, def, id, &created);
out:
    free(state);
    return rc;
}

/* sl_saga_store_load, plus the row's lease version into *lease_version when not NULL. */
static int load_row(sl_db *db, const sl_saga_def *def, const char *id, sl_saga_state *out,
                    int64_t *lease_version)
{
    static const char sql[] =
        "SELECT type, state, version, lease_version FROM saga_instances WHERE id = ?";
    if (!sl__saga_id_valid(id)) return SL_ENOTFOUND;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if ((rc = bind_str(st, 1, id)) != 0) goto out;
    rc = sl_db_step(st);
    if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
        goto out;
    }
    if (rc != SL_DB_ROW) goto out;
    const char *type = sl_db_column_text(st, 0, NULL);
    size_t len;
    const char *json = sl_db_column_text(st, 1, &len);
    int64_t version = sl_db_column_int64(st, 2);
    if (strcmp(type, def->type) != 0 || version < 1) {
        rc = SL_EPARSE;
        goto out;
    }
    sl_saga_state s;
    memset(&s, 0, sizeof s);
    snprintf(s.id, sizeof s.id, "%s", id);
    s.version = (uint64_t)version;
    rc = sl_saga_state_from_json(&s, def, json, len);
    if (rc == 0) *out = s;
    if (rc == 0 && lease_version != NULL) *lease_version = sl_db_column_int64(st, 3);
out:
    sl_db_stmt_done(st);
    return rc;
}

int sl_saga_store_load(sl_db *db, const sl_saga_def *def, const char *id, sl_saga_state *out)
{
    return load_row(db, def, id, out, NULL);
}

int sl_saga_store_input(sl_db *db, const char *id, char **out)
{
    static const char sql[] = "SELECT input FROM saga_instances WHERE id = ?";
    *out = NULL;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if ((rc = bind_str(st, 1, id)) != 0) goto out;
    rc = sl_db_step(st);
    if (rc == SL_DB_DONE) rc = SL_ENOTFOUND;
    if (rc != SL_DB_ROW) goto out;
    size_t len;
    const char *text = sl_db_column_text(st, 0, &len);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        rc = SL_ENOMEM;
        goto out;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    *out = copy;
    rc = 0;
out:
    sl_db_stmt_done(st);
    return rc;
}

/* Lease fence for the writes of a driver: fence < 0 writes without checking the lease (the
 * version check alone, e.g. an admin abort from an instance that does not hold the lease). */
static int update_row(sl_db *db, const sl_saga_state *s, int64_t due, const char *state,
                      int64_t now_ms, int64_t fence)
{
    /* A saga that stops running (final or stuck) gives its lease back at once, so an admin
     * resume on any instance can claim it. */
    static const char sql[] =
        "UPDATE saga_instances SET status = ?, state = ?, stuck_reason = ?, version = ?, "
        "updated_ms = ?, next_wake_ms = ?, "
        "lease_owner = CASE WHEN CAST(? AS BIGINT) = 1 THEN '' ELSE lease_owner END, "
        "lease_until_ms = CASE WHEN CAST(? AS BIGINT) = 1 THEN 0 ELSE lease_until_ms END "
        "WHERE id = ? AND version = ? AND (CAST(? AS BIGINT) < 0 OR lease_version = ?)";
    bool running = s->status == SL_SAGA_RUNNING || s->status == SL_SAGA_COMPENSATING;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if ((rc = bind_str(st, 1, sl_saga_status_name(s->status))) != 0 ||
        (rc = bind_str(st, 2, state)) != 0 || (rc = bind_str(st, 3, s->stuck_reason)) != 0 ||
        (rc = sl_db_bind_int64(st, 4, (int64_t)s->version + 1)) != 0 ||
        (rc = sl_db_bind_int64(st, 5, now_ms)) != 0)
        goto out;
    rc = due > 0 ? sl_db_bind_int64(st, 6, due) : sl_db_bind_null(st, 6);
    if (rc != 0 || (rc = sl_db_bind_int64(st, 7, running ? 0 : 1)) != 0 ||
        (rc = sl_db_bind_int64(st, 8, running ? 0 : 1)) != 0 ||
        (rc = bind_str(st, 9, s->id)) != 0 ||
        (rc = sl_db_bind_int64(st, 10, (int64_t)s->version)) != 0 ||
        (rc = sl_db_bind_int64(st, 11, fence)) != 0 || (rc = sl_db_bind_int64(st, 12, fence)) != 0)
        goto out;
    rc = run(st);
    /* No row at that version: another writer saved first (or the row is gone). */
    if (rc == 0 && sl_db_changes(st) != 1) rc = SL_ECONFLICT;
out:
    sl_db_stmt_done(st);
    return rc;
}

static int save(sl_db *db, const sl_saga_def *def, sl_saga_state *s,
                const sl_saga_history_entry *hist, size_t n_hist, int64_t now_ms, int64_t fence)
{
    char *state = NULL;
    int rc = sl_saga_state_to_json(s, &state);
    if (rc != 0) return rc;
    bool own = !sl_db_in_tx(db);
    if (own && (rc = sl_db_begin(db)) != 0) goto out;
    rc = update_row(db, s, sl_saga_due_ms(def, s), state, now_ms, fence);
    for (size_t i = 0; rc == 0 && i < n_hist; i++)
        rc = insert_history(db, def, s->id, &hist[i]);
    if (own) {
        if (rc == 0)
            rc = sl_db_commit(db);
        else
            sl_db_rollback(db);
    }
    if (rc == 0) s->version++;
out:
    free(state);
    return rc;
}

int sl_saga_store_save(sl_db *db, const sl_saga_def *def, sl_saga_state *s,
                       const sl_saga_history_entry *hist, size_t n_hist, int64_t now_ms)
{
    return save(db, def, s, hist, n_hist, now_ms, -1);
}

static int apply(sl_db *db, const sl_saga_def *def, const char *id, int64_t fence,
                 const sl_saga_event *ev, int64_t now_ms, sl_rand *rand, sl_saga_state *st,
                 sl_saga_output *out)
{
    out->n_cmds = 0;
    out->n_hist = 0;
    if (sl_db_in_tx(db)) return SL_ESTATE;
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    sl_saga_state s;
    int64_t lease_version = 0;
    rc = load_row(db, def, id, &s, &lease_version);
    /* Fenced: another instance claimed the saga since this one did. */
    if (rc == 0 && fence >= 0 && lease_version != fence) rc = SL_EBUSY;
    if (rc == 0) rc = sl_saga_apply(def, &s, ev, now_ms, rand, out);
    if (rc == 0) rc = save(db, def, &s, out->hist, out->n_hist, now_ms, fence);
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) {
        sl_db_rollback(db);
        if (rc != SL_SAGA_IGNORED) {
            out->n_cmds = 0;
            out->n_hist = 0;
        }
        return rc;
    }
    *st = s;
    return 0;
}

int sl_saga_store_apply(sl_db *db, const sl_saga_def *def, const char *id, const sl_saga_event *ev,
                        int64_t now_ms, sl_rand *rand, sl_saga_state *st, sl_saga_output *out)
{
    return apply(db, def, id, -1, ev, now_ms, rand, st, out);
}

int sl_saga_store_apply_leased(sl_db *db, const sl_saga_def *def, const char *id,
                               int64_t lease_version, const sl_saga_event *ev, int64_t now_ms,
                               sl_rand *rand, sl_saga_state *st, sl_saga_output *out)
{
    if (lease_version < 0) return SL_EINVAL;
    return apply(db, def, id, lease_version, ev, now_ms, rand, st, out);
}

/*
 * Owner liveness. The owners of this process's drivers are in `live` (a process on SQLite is the
 * only one: the service host's instance lock). On PostgreSQL each owner also holds a session
 * advisory lock keyed by its name for as long as its driver lives; the server drops it with the
 * session, so a process that died lets its sagas go at once instead of after their lease.
 */
#define OWNERS_MAX 512
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static char live[OWNERS_MAX][SL_SAGA_OWNER_MAX + 1];

#define OWNER_KEY                                                                                  \
    "CAST(CAST(CAST('x' || substr(md5('saga-owner:' || CAST(? AS TEXT)), 1, 15) AS BIT(60)) AS "   \
    "BIGINT) AS BIGINT)"

static bool live_here(const char *owner)
{
    bool found = false;
    pthread_mutex_lock(&live_mu);
    for (size_t i = 0; i < OWNERS_MAX && !found; i++)
        found = strcmp(live[i], owner) == 0;
    pthread_mutex_unlock(&live_mu);
    return found;
}

/* Runs `sql` (one text parameter, one integer column) for `owner`; the value in *out. */
static int owner_query(sl_db *db, const char *sql, const char *owner, int64_t *out)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if ((rc = bind_str(st, 1, owner)) == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *out = sl_db_column_int64(st, 0);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_EIO;
    }
    sl_db_stmt_done(st);
    return rc;
}

int sl_saga_store_owner_up(sl_db *db, const char *owner)
{
    if (owner == NULL || owner[0] == '\0' || strlen(owner) > SL_SAGA_OWNER_MAX) return SL_EINVAL;
    int rc = SL_ELIMIT;
    pthread_mutex_lock(&live_mu);
    for (size_t i = 0; i < OWNERS_MAX; i++)
        if (live[i][0] == '\0') {
            snprintf(live[i], sizeof live[i], "%s", owner);
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&live_mu);
    if (rc != 0 || sl_db_kind(db) != SL_DB_POSTGRES) return rc;
    int64_t v = 0;
    rc = owner_query(db, "SELECT CASE WHEN pg_try_advisory_lock(" OWNER_KEY ") THEN 1 ELSE 0 END",
                     owner, &v);
    return rc != 0 ? rc : (v == 1 ? 0 : SL_EBUSY);
}

void sl_saga_store_owner_down(sl_db *db, const char *owner)
{
    if (owner == NULL || owner[0] == '\0') return;
    bool had = false;
    pthread_mutex_lock(&live_mu);
    for (size_t i = 0; i < OWNERS_MAX; i++)
        if (strcmp(live[i], owner) == 0) {
            live[i][0] = '\0';
            had = true;
            break;
        }
    pthread_mutex_unlock(&live_mu);
    int64_t v;
    if (had && sl_db_kind(db) == SL_DB_POSTGRES && !sl_db_in_tx(db) &&
        owner_query(db, "SELECT CASE WHEN pg_advisory_unlock(" OWNER_KEY ") THEN 1 ELSE 0 END",
                    owner, &v) != 0) {
        /* The lock goes with the session. */
    }
}

/* False only when `holder` is known to be gone: not a driver of this process and, on
 * PostgreSQL, its advisory lock is free (taken here for the test, then released at once). On
 * SQLite a holder that is not in this process is gone (one process per file). */
static bool holder_alive(sl_db *db, const char *holder)
{
    if (live_here(holder)) return true;
    if (sl_db_kind(db) != SL_DB_POSTGRES) return false;
    int64_t v = 0;
    if (owner_query(db, "SELECT CASE WHEN pg_try_advisory_lock(" OWNER_KEY ") THEN 1 ELSE 0 END",
                    holder, &v) != 0)
        return true; /* unknown: wait for the lease */
    if (v != 1) return true;
    int64_t u;
    if (owner_query(db, "SELECT CASE WHEN pg_advisory_unlock(" OWNER_KEY ") THEN 1 ELSE 0 END",
                    holder, &u) != 0) {
        /* Held by this session until it ends; owner names are not reused. */
    }
    return false;
}

int sl_saga_store_claim(sl_db *db, const char *id, const char *owner, int64_t now_ms,
                        int64_t lease_ms, int64_t *lease_version)
{
    if (owner == NULL || owner[0] == '\0' || lease_ms <= 0) return SL_EINVAL;
    sl_db_stmt *st;
    int rc = sl_db_prepare(
        db, "SELECT lease_owner, lease_until_ms, lease_version FROM saga_instances WHERE id = ?",
        &st);
    if (rc != 0) return rc;
    int64_t seen = 0;
    if ((rc = bind_str(st, 1, id)) == 0) rc = sl_db_step(st);
    char holder[SL_SAGA_OWNER_MAX + 1] = "";
    bool held = false;
    if (rc == SL_DB_ROW) {
        sl_db_column_copy(st, 0, holder, sizeof holder);
        held =
            holder[0] != '\0' && strcmp(holder, owner) != 0 && sl_db_column_int64(st, 1) > now_ms;
        seen = sl_db_column_int64(st, 2);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    if (rc != 0) return rc;
    if (held && holder_alive(db, holder)) return SL_EBUSY;
    /* Compare-and-set on the version read: of two instances claiming at once, one wins. */
    if ((rc = sl_db_prepare(db,
                            "UPDATE saga_instances SET lease_owner = ?, lease_until_ms = ?, "
                            "lease_version = ? WHERE id = ? AND lease_version = ?",
                            &st)) != 0)
        return rc;
    if ((rc = bind_str(st, 1, owner)) == 0 &&
        (rc = sl_db_bind_int64(st, 2, now_ms + lease_ms)) == 0 &&
        (rc = sl_db_bind_int64(st, 3, seen + 1)) == 0 && (rc = bind_str(st, 4, id)) == 0 &&
        (rc = sl_db_bind_int64(st, 5, seen)) == 0)
        rc = run(st);
    if (rc == 0 && sl_db_changes(st) != 1) rc = SL_EBUSY;
    sl_db_stmt_done(st);
    if (rc == 0) *lease_version = seen + 1;
    return rc;
}

int sl_saga_store_renew(sl_db *db, const char *type, const char *owner, int64_t now_ms,
                        int64_t lease_ms, int64_t *renewed)
{
    if (renewed) *renewed = 0;
    if (owner == NULL || owner[0] == '\0' || lease_ms <= 0) return SL_EINVAL;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "UPDATE saga_instances SET lease_until_ms = ? WHERE lease_owner = ? "
                           "AND type = ?",
                           &st);
    if (rc != 0) return rc;
    if ((rc = sl_db_bind_int64(st, 1, now_ms + lease_ms)) == 0 &&
        (rc = bind_str(st, 2, owner)) == 0 && (rc = bind_str(st, 3, type)) == 0)
        rc = run(st);
    if (rc == 0 && renewed) *renewed = sl_db_changes(st);
    sl_db_stmt_done(st);
    return rc;
}

int sl_saga_store_release(sl_db *db, const char *type, const char *owner)
{
    if (owner == NULL || owner[0] == '\0') return SL_EINVAL;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "UPDATE saga_instances SET lease_owner = '', lease_until_ms = 0 "
                           "WHERE lease_owner = ? AND type = ?",
                           &st);
    if (rc != 0) return rc;
    if ((rc = bind_str(st, 1, owner)) == 0 && (rc = bind_str(st, 2, type)) == 0) rc = run(st);
    sl_db_stmt_done(st);
    return rc;
}

static void read_summary(sl_db_stmt *st, sl_saga_summary *o)
{
    memset(o, 0, sizeof *o);
    size_t len;
    const char *t = sl_db_column_text(st, 0, &len);
    sl__saga_text_copy(o->id, sizeof o->id, t, len);
    t = sl_db_column_text(st, 1, &len);
    sl__saga_text_copy(o->type, sizeof o->type, t, len);
    if (sl_saga_status_parse(sl_db_column_text(st, 2, NULL), &o->status) != 0)
        o->status = SL_SAGA_STUCK; /* unreadable status: show it to the operator as stuck */
    o->created_ms = sl_db_column_int64(st, 3);
    o->updated_ms = sl_db_column_int64(st, 4);
    o->next_wake_ms = sl_db_column_is_null(st, 5) ? 0 : sl_db_column_int64(st, 5);
    t = sl_db_column_text(st, 6, &len);
    sl__saga_text_copy(o->stuck_reason, sizeof o->stuck_reason, t, len);
    o->step = -1;
}

int sl_saga_store_list(sl_db *db, const char *type, sl_saga_filter filter, const char *after_id,
                       sl_saga_summary *out, size_t cap, size_t *n)
{
    static const char sql_all[] =
        "SELECT id, type, status, created_ms, updated_ms, next_wake_ms, stuck_reason "
        "FROM saga_instances WHERE (status = ? OR status = ?) AND id > ? ORDER BY id LIMIT ?";
    static const char sql_type[] =
        "SELECT id, type, status, created_ms, updated_ms, next_wake_ms, stuck_reason "
        "FROM saga_instances WHERE (status = ? OR status = ?) AND id > ? AND type = ? "
        "ORDER BY id LIMIT ?";
    *n = 0;
    if (cap == 0) return 0;
    const char *s1 = sl_saga_status_name(SL_SAGA_RUNNING);
    const char *s2 = sl_saga_status_name(SL_SAGA_COMPENSATING);
    if (filter == SL_SAGA_LIST_STUCK) s1 = s2 = sl_saga_status_name(SL_SAGA_STUCK);
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, type ? sql_type : sql_all, &st);
    if (rc != 0) return rc;
    int idx = 4;
    if ((rc = bind_str(st, 1, s1)) != 0 || (rc = bind_str(st, 2, s2)) != 0 ||
        (rc = bind_str(st, 3, after_id ? after_id : "")) != 0)
        goto out;
    if (type != NULL && (rc = bind_str(st, idx++, type)) != 0) goto out;
    if ((rc = sl_db_bind_int64(st, idx, (int64_t)(cap > INT64_MAX ? INT64_MAX : cap))) != 0)
        goto out;
    while ((rc = sl_db_step(st)) == SL_DB_ROW && *n < cap)
        read_summary(st, &out[(*n)++]);
    if (rc == SL_DB_ROW || rc == SL_DB_DONE) rc = 0;
out:
    sl_db_stmt_done(st);
    return rc;
}

int sl_saga_store_history(sl_db *db, const char *id, uint32_t after_seq, size_t limit,
                          sl_saga_history_cb cb, void *data)
{
    static const char sql[] = "SELECT seq, at_ms, kind, step, call_kind, attempt, detail "
                              "FROM saga_history WHERE saga_id = ? AND seq > ? ORDER BY seq "
                              "LIMIT ?";
    if (limit == 0) limit = HISTORY_LIMIT_DEFAULT;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if ((rc = bind_str(st, 1, id)) != 0 || (rc = sl_db_bind_int64(st, 2, after_seq)) != 0 ||
        (rc = sl_db_bind_int64(st, 3, (int64_t)(limit > INT64_MAX ? INT64_MAX : limit))) != 0)
        goto out;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        sl_saga_history_row row = {
            .seq = (uint32_t)sl_db_column_int64(st, 0),
            .at_ms = sl_db_column_int64(st, 1),
            .kind = sl_db_column_text(st, 2, NULL),
            .step = sl_db_column_text(st, 3, NULL),
            .call = sl_db_column_text(st, 4, NULL),
            .attempt = (uint32_t)sl_db_column_int64(st, 5),
            .detail = sl_db_column_text(st, 6, NULL),
        };
        rc = cb(data, &row);
        if (rc != 0) goto out;
    }
    if (rc == SL_DB_DONE) rc = 0;
out:
    sl_db_stmt_done(st);
    return rc;
}

int sl_saga_store_count(sl_db *db,
                        void (*cb)(void *data, const char *type, sl_saga_status status,
                                   int64_t count),
                        void *data)
{
    static const char sql[] =
        "SELECT type, status, count(*) FROM saga_instances GROUP BY type, status";
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        sl_saga_status s;
        if (sl_saga_status_parse(sl_db_column_text(st, 1, NULL), &s) != 0) continue;
        cb(data, sl_db_column_text(st, 0, NULL), s, sl_db_column_int64(st, 2));
    }
    if (rc == SL_DB_DONE) rc = 0;
    sl_db_stmt_done(st);
    return rc;
}

/* Runs one of the sweep's listings: `sql` binds the two unfinished statuses, type, a time,
 * after_id and the limit. */
static int list_timed(sl_db *db, const char *sql, const char *type, int64_t t, const char *after_id,
                      sl_saga_summary *out, size_t cap, size_t *n)
{
    *n = 0;
    if (cap == 0) return 0;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if ((rc = bind_str(st, 1, sl_saga_status_name(SL_SAGA_RUNNING))) != 0 ||
        (rc = bind_str(st, 2, sl_saga_status_name(SL_SAGA_COMPENSATING))) != 0 ||
        (rc = bind_str(st, 3, type)) != 0 || (rc = sl_db_bind_int64(st, 4, t)) != 0 ||
        (rc = bind_str(st, 5, after_id ? after_id : "")) != 0 ||
        (rc = sl_db_bind_int64(st, 6, (int64_t)(cap > INT64_MAX ? INT64_MAX : cap))) != 0)
        goto out;
    while ((rc = sl_db_step(st)) == SL_DB_ROW && *n < cap)
        read_summary(st, &out[(*n)++]);
    if (rc == SL_DB_ROW || rc == SL_DB_DONE) rc = 0;
out:
    sl_db_stmt_done(st);
    return rc;
}

int sl_saga_store_list_due(sl_db *db, const char *type, int64_t due_before_ms, const char *after_id,
                           sl_saga_summary *out, size_t cap, size_t *n)
{
    /* next_wake_ms is the saga's next TIMER (sl_saga_due_ms) or, for a created saga, its
     * creation; NULL only for final and stuck ones. */
    static const char sql[] =
        "SELECT id, type, status, created_ms, updated_ms, next_wake_ms, stuck_reason "
        "FROM saga_instances WHERE (status = ? OR status = ?) AND type = ? AND next_wake_ms <= ? "
        "AND id > ? ORDER BY id LIMIT ?";
    return list_timed(db, sql, type, due_before_ms, after_id, out, cap, n);
}

/* Claimed once (lease_version > 0), and the lease expired or was given back (until 0): a saga
 * nobody claimed yet is the creator's to start and waits for the grace of list_due. */
int sl_saga_store_list_orphaned(sl_db *db, const char *type, int64_t now_ms, const char *after_id,
                                sl_saga_summary *out, size_t cap, size_t *n)
{
    static const char sql[] =
        "SELECT id, type, status, created_ms, updated_ms, next_wake_ms, stuck_reason "
        "FROM saga_instances WHERE (status = ? OR status = ?) AND type = ? AND lease_version > 0 "
        "AND lease_until_ms <= ? AND id > ? ORDER BY id LIMIT ?";
    return list_timed(db, sql, type, now_ms, after_id, out, cap, n);
}

/* The current step index of a stored state (-1 when unreadable). */
static int32_t state_step(const char *text, size_t len)
{
    json_t *o = text && len < 64 * 1024 ? json_loadb(text, len, 0, NULL) : NULL;
    json_t *x = json_object_get(o, "step");
    int32_t step = -1;
    if (json_is_integer(x) && json_integer_value(x) >= 0 &&
        json_integer_value(x) < SL_SAGA_STEPS_MAX)
        step = (int32_t)json_integer_value(x);
    json_decref(o);
    return step;
}

int sl_saga_store_page(sl_db *db, const char *type, sl_saga_status status, int64_t page,
                       int64_t per_page, sl_saga_summary *out, size_t cap, size_t *n,
                       int64_t *total)
{
    static const char sql_count[] =
        "SELECT count(*) FROM saga_instances "
        "WHERE (CAST(? AS TEXT) = '' OR type = ?) AND (CAST(? AS TEXT) = '' OR status = ?)";
    static const char sql[] =
        "SELECT id, type, status, created_ms, updated_ms, next_wake_ms, stuck_reason, state "
        "FROM saga_instances WHERE (CAST(? AS TEXT) = '' OR type = ?) AND (CAST(? AS TEXT) = '' OR "
        "status = ?) "
        "ORDER BY updated_ms DESC, id DESC LIMIT ? OFFSET ?";
    *n = 0;
    *total = 0;
    if (page < 1 || per_page < 1 || per_page > 1000) return SL_EINVAL;
    const char *t = type ? type : "";
    const char *s = status < SL_SAGA_STATUS_COUNT ? sl_saga_status_name(status) : "";
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql_count, &st);
    if (rc != 0) return rc;
    if ((rc = bind_str(st, 1, t)) == 0 && (rc = bind_str(st, 2, t)) == 0 &&
        (rc = bind_str(st, 3, s)) == 0 && (rc = bind_str(st, 4, s)) == 0) {
        rc = sl_db_step(st);
        if (rc == SL_DB_ROW) {
            *total = sl_db_column_int64(st, 0);
            rc = 0;
        } else if (rc == SL_DB_DONE) {
            rc = 0;
        }
    }
    sl_db_stmt_done(st);
    if (rc != 0 || cap == 0) return rc;
    if ((rc = sl_db_prepare(db, sql, &st)) != 0) return rc;
    int64_t lim = per_page < (int64_t)cap ? per_page : (int64_t)cap;
    if ((rc = bind_str(st, 1, t)) != 0 || (rc = bind_str(st, 2, t)) != 0 ||
        (rc = bind_str(st, 3, s)) != 0 || (rc = bind_str(st, 4, s)) != 0 ||
        (rc = sl_db_bind_int64(st, 5, lim)) != 0 ||
        (rc = sl_db_bind_int64(st, 6, (page - 1) * per_page)) != 0)
        goto out;
    while ((rc = sl_db_step(st)) == SL_DB_ROW && *n < (size_t)lim) {
        read_summary(st, &out[*n]);
        size_t len = 0;
        const char *text = sl_db_column_text(st, 7, &len);
        out[(*n)++].step = state_step(text, len);
    }
    if (rc == SL_DB_ROW || rc == SL_DB_DONE) rc = 0;
out:
    sl_db_stmt_done(st);
    return rc;
}
