/*
 * The receiver's bounded SQLite store (traces.h; schema in migrations/). One transaction per
 * received batch: the new spans, their traces' summary rows, the counters, then the bounds
 * (whole traces leave, oldest arrival first).
 */
#include "traces.h"

#include <stdlib.h>
#include <string.h>

#define EVICT_BATCH 256

static const char SQL_SPAN_INSERT[] =
    "INSERT OR IGNORE INTO spans (trace_id, span_id, parent_span_id, service, name, kind, "
    "start_ns, end_ns, status, status_message, attributes, links, order_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/* The root is the span without a parent; until one arrives, the earliest span stands in. */
static const char SQL_TRACE_UPSERT[] =
    "INSERT INTO traces (trace_id, start_ns, end_ns, span_count, error, has_root, root_service, "
    "root_name, last_added_ns) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?) "
    "ON CONFLICT (trace_id) DO UPDATE SET "
    "root_service = CASE WHEN excluded.has_root > traces.has_root OR (excluded.has_root = "
    "traces.has_root AND excluded.start_ns < traces.start_ns) THEN excluded.root_service ELSE "
    "traces.root_service END, "
    "root_name = CASE WHEN excluded.has_root > traces.has_root OR (excluded.has_root = "
    "traces.has_root AND excluded.start_ns < traces.start_ns) THEN excluded.root_name ELSE "
    "traces.root_name END, "
    "has_root = max(traces.has_root, excluded.has_root), "
    "start_ns = min(traces.start_ns, excluded.start_ns), "
    "end_ns = max(traces.end_ns, excluded.end_ns), "
    "span_count = traces.span_count + 1, "
    "error = max(traces.error, excluded.error), "
    "last_added_ns = excluded.last_added_ns";

static int add_span(sl_db *db, const traces_span *s, int64_t now_ns, int *stored)
{
    *stored = 0;
    char *attrs = json_dumps(s->attributes, JSON_COMPACT);
    char *links = json_dumps(s->links, JSON_COMPACT);
    int rc = SL_ENOMEM;
    sl_db_stmt *st = NULL;
    if (!attrs || !links) goto out;
    if ((rc = sl_db_prepare(db, SQL_SPAN_INSERT, &st)) != 0) goto out;
    int64_t changes = 0;
    if ((rc = sl_db_bind_text(st, 1, s->trace_id, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_text(st, 2, s->span_id, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_text(st, 3, s->parent_span_id, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_text(st, 4, s->service, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_text(st, 5, s->name, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_int64(st, 6, s->kind)) != 0 ||
        (rc = sl_db_bind_int64(st, 7, s->start_ns)) != 0 ||
        (rc = sl_db_bind_int64(st, 8, s->end_ns)) != 0 ||
        (rc = sl_db_bind_int64(st, 9, s->status)) != 0 ||
        (rc = sl_db_bind_text(st, 10, s->status_message, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_text(st, 11, attrs, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_text(st, 12, links, SIZE_MAX)) != 0 ||
        (rc = s->order_id[0] ? sl_db_bind_text(st, 13, s->order_id, SIZE_MAX)
                             : sl_db_bind_null(st, 13)) != 0) {
        sl_db_stmt_done(st);
        goto out;
    }
    if ((rc = sl_db_run(st, &changes)) != 0 || changes == 0) goto out;
    if ((rc = sl_db_prepare(db, SQL_TRACE_UPSERT, &st)) != 0) goto out;
    if ((rc = sl_db_bind_text(st, 1, s->trace_id, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_int64(st, 2, s->start_ns)) != 0 ||
        (rc = sl_db_bind_int64(st, 3, s->end_ns)) != 0 ||
        (rc = sl_db_bind_int64(st, 4, s->status == TRACES_STATUS_ERROR)) != 0 ||
        (rc = sl_db_bind_int64(st, 5, s->parent_span_id[0] == '\0')) != 0 ||
        (rc = sl_db_bind_text(st, 6, s->service, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_text(st, 7, s->name, SIZE_MAX)) != 0 ||
        (rc = sl_db_bind_int64(st, 8, now_ns)) != 0) {
        sl_db_stmt_done(st);
        goto out;
    }
    if ((rc = sl_db_run(st, NULL)) == 0) *stored = 1;
out:
    free(attrs);
    free(links);
    return rc;
}

/* Removes whole traces picked by `pick` (a SELECT trace_id, span_count ... LIMIT ?) until
 * `enough` says stop; bound as (`arg`, EVICT_BATCH) or (EVICT_BATCH) when arg < 0. */
typedef struct victim {
    char trace_id[33];
    int64_t spans;
} victim;

static int remove_trace(sl_db *db, const char *trace_id)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, "DELETE FROM spans WHERE trace_id = ?", st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, trace_id, SIZE_MAX));
    int rc = sl_db_run(st, NULL);
    if (rc != 0) return rc;
    SL_DB_PREP(db, "DELETE FROM traces WHERE trace_id = ?", st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, trace_id, SIZE_MAX));
    return sl_db_run(st, NULL);
}

static int read_victims(sl_db *db, int64_t older_than_ns, victim *v, size_t *n)
{
    sl_db_stmt *st;
    *n = 0;
    if (older_than_ns >= 0) {
        SL_DB_PREP(db,
                   "SELECT trace_id, span_count FROM traces WHERE last_added_ns < ? "
                   "ORDER BY seq LIMIT ?",
                   st);
        SL_DB_BIND(st, sl_db_bind_int64(st, 1, older_than_ns));
        SL_DB_BIND(st, sl_db_bind_int64(st, 2, EVICT_BATCH));
    } else {
        SL_DB_PREP(db, "SELECT trace_id, span_count FROM traces ORDER BY seq LIMIT ?", st);
        SL_DB_BIND(st, sl_db_bind_int64(st, 1, EVICT_BATCH));
    }
    int rc;
    while ((rc = sl_db_step(st)) == SL_DB_ROW && *n < EVICT_BATCH) {
        sl_db_column_copy(st, 0, v[*n].trace_id, sizeof v[*n].trace_id);
        v[*n].spans = sl_db_column_int64(st, 1);
        (*n)++;
    }
    sl_db_stmt_done(st);
    return rc == SL_DB_ROW || rc == SL_DB_DONE ? 0 : rc;
}

static int read_span_total(sl_db *db, int64_t *spans)
{
    sl_db_stmt *st;
    SL_DB_PREP(db, "SELECT spans FROM trace_stats WHERE id = 1", st);
    int rc = sl_db_step(st);
    *spans = rc == SL_DB_ROW ? sl_db_column_int64(st, 0) : 0;
    sl_db_stmt_done(st);
    return rc == SL_DB_ROW ? 0 : rc == SL_DB_DONE ? SL_ENOTFOUND : rc;
}

static int bump_stats(sl_db *db, int64_t spans, int64_t evicted_traces, int64_t evicted_spans)
{
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "UPDATE trace_stats SET spans = spans + ?, evicted_traces = evicted_traces + ?, "
               "evicted_spans = evicted_spans + ? WHERE id = 1",
               st);
    SL_DB_BIND(st, sl_db_bind_int64(st, 1, spans));
    SL_DB_BIND(st, sl_db_bind_int64(st, 2, evicted_traces));
    SL_DB_BIND(st, sl_db_bind_int64(st, 3, evicted_spans));
    return sl_db_run(st, NULL);
}

static int evict(sl_db *db, const traces_bounds *bd, int64_t now_ns, int64_t spans,
                 traces_add_result *r)
{
    victim *v = malloc(EVICT_BATCH * sizeof *v);
    if (!v) return SL_ENOMEM;
    int rc = 0;
    /* Age first: a trace nobody added to for max_age goes, whatever the size. */
    if (bd->max_age_ns > 0 && now_ns > bd->max_age_ns) {
        for (;;) {
            size_t n;
            if ((rc = read_victims(db, now_ns - bd->max_age_ns, v, &n)) != 0 || n == 0) break;
            for (size_t i = 0; i < n && rc == 0; i++) {
                rc = remove_trace(db, v[i].trace_id);
                r->evicted_traces++;
                r->evicted_spans += v[i].spans;
                spans -= v[i].spans;
            }
            if (rc != 0 || n < EVICT_BATCH) break;
        }
    }
    while (rc == 0 && spans > bd->max_spans) {
        size_t n;
        if ((rc = read_victims(db, -1, v, &n)) != 0 || n == 0) break;
        for (size_t i = 0; i < n && rc == 0 && spans > bd->max_spans; i++) {
            rc = remove_trace(db, v[i].trace_id);
            r->evicted_traces++;
            r->evicted_spans += v[i].spans;
            spans -= v[i].spans;
        }
    }
    free(v);
    return rc;
}

int traces_store_add(sl_db *db, const traces_batch *b, const traces_bounds *bounds, int64_t now_ns,
                     traces_add_result *r)
{
    SL_ASSERT(db != NULL && b != NULL && bounds != NULL && r != NULL);
    memset(r, 0, sizeof *r);
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        int stored = 0;
        rc = add_span(db, &b->spans[i], now_ns, &stored);
        r->stored += stored;
    }
    int64_t spans = 0;
    if (rc == 0) rc = read_span_total(db, &spans);
    if (rc == 0) rc = evict(db, bounds, now_ns, spans + r->stored, r);
    if (rc == 0)
        rc = bump_stats(db, r->stored - r->evicted_spans, r->evicted_traces, r->evicted_spans);
    if (rc == 0) return sl_db_commit(db);
    sl_db_rollback(db);
    memset(r, 0, sizeof *r);
    return rc;
}

int traces_store_list(sl_db *db, const traces_query *q, json_t **out)
{
    SL_ASSERT(db != NULL && q != NULL && out != NULL);
    static const char head[] =
        "SELECT trace_id, root_service, root_name, start_ns, end_ns - start_ns, span_count, "
        "error FROM traces WHERE (? = 0 OR error = 1) AND (? = '' OR trace_id IN "
        "(SELECT trace_id FROM spans WHERE order_id = ?)) ";
    static const char newest[] = "ORDER BY start_ns DESC, seq DESC LIMIT ?";
    static const char slowest[] = "ORDER BY end_ns - start_ns DESC, seq DESC LIMIT ?";
    char sql[sizeof head + sizeof slowest];
    memcpy(sql, head, sizeof head - 1);
    memcpy(sql + sizeof head - 1, q->slowest ? slowest : newest,
           q->slowest ? sizeof slowest : sizeof newest);
    const char *oid = q->order_id ? q->order_id : "";
    sl_db_stmt *st;
    SL_DB_PREP(db, sql, st);
    SL_DB_BIND(st, sl_db_bind_int64(st, 1, q->errors ? 1 : 0));
    SL_DB_BIND(st, sl_db_bind_text(st, 2, oid, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_text(st, 3, oid, SIZE_MAX));
    SL_DB_BIND(st, sl_db_bind_int64(st, 4, q->limit));
    json_t *arr = json_array();
    int rc = arr ? 0 : SL_ENOMEM;
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        rc = 0;
        json_t *t = json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:I, s:b}", "trace_id", sl_db_column_text(st, 0, NULL),
            "root_service", sl_db_column_text(st, 1, NULL), "root_name",
            sl_db_column_text(st, 2, NULL), "start_ns", (json_int_t)sl_db_column_int64(st, 3),
            "duration_ns", (json_int_t)sl_db_column_int64(st, 4), "span_count",
            (json_int_t)sl_db_column_int64(st, 5), "error", (int)sl_db_column_int64(st, 6));
        if (!t || json_array_append_new(arr, t) != 0) rc = SL_ENOMEM;
    }
    sl_db_stmt_done(st);
    if (rc != SL_DB_DONE) {
        json_decref(arr);
        return rc == 0 ? SL_ENOMEM : rc;
    }
    *out = json_pack("{s:o}", "traces", arr);
    return *out ? 0 : SL_ENOMEM;
}

static json_t *stored_json(const char *text, int array)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    if (!v || (array ? !json_is_array(v) : !json_is_object(v))) {
        json_decref(v);
        v = array ? json_array() : json_object();
    }
    return v;
}

int traces_store_get(sl_db *db, const char *trace_id, json_t **out)
{
    SL_ASSERT(db != NULL && trace_id != NULL && out != NULL);
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "SELECT span_id, parent_span_id, service, name, kind, start_ns, end_ns, status, "
               "status_message, attributes, links FROM spans WHERE trace_id = ? "
               "ORDER BY start_ns, span_id",
               st);
    SL_DB_BIND(st, sl_db_bind_text(st, 1, trace_id, SIZE_MAX));
    json_t *arr = json_array();
    int rc = arr ? 0 : SL_ENOMEM;
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        rc = 0;
        const char *parent = sl_db_column_text(st, 1, NULL);
        json_t *s = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:o, s:o}", "span_id",
            sl_db_column_text(st, 0, NULL), "parent_span_id", parent, "service",
            sl_db_column_text(st, 2, NULL), "name", sl_db_column_text(st, 3, NULL), "kind",
            traces_kind_name((int)sl_db_column_int64(st, 4)), "start_ns",
            (json_int_t)sl_db_column_int64(st, 5), "end_ns", (json_int_t)sl_db_column_int64(st, 6),
            "status", traces_status_name((int)sl_db_column_int64(st, 7)), "status_message",
            sl_db_column_text(st, 8, NULL), "attributes",
            stored_json(sl_db_column_text(st, 9, NULL), 0), "links",
            stored_json(sl_db_column_text(st, 10, NULL), 1));
        if (!s || json_array_append_new(arr, s) != 0) rc = SL_ENOMEM;
    }
    sl_db_stmt_done(st);
    if (rc != SL_DB_DONE) {
        json_decref(arr);
        return rc == 0 ? SL_ENOMEM : rc;
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return SL_ENOTFOUND;
    }
    *out = json_pack("{s:s, s:o}", "trace_id", trace_id, "spans", arr);
    return *out ? 0 : SL_ENOMEM;
}

int traces_store_stats(sl_db *db, traces_stats *out)
{
    SL_ASSERT(db != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    sl_db_stmt *st;
    SL_DB_PREP(db,
               "SELECT spans, evicted_traces, evicted_spans, (SELECT count(*) FROM traces) "
               "FROM trace_stats WHERE id = 1",
               st);
    int rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        out->spans = sl_db_column_int64(st, 0);
        out->evicted_traces = sl_db_column_int64(st, 1);
        out->evicted_spans = sl_db_column_int64(st, 2);
        out->traces = sl_db_column_int64(st, 3);
    }
    sl_db_stmt_done(st);
    return rc == SL_DB_ROW ? 0 : rc == SL_DB_DONE ? SL_ENOTFOUND : rc;
}
