/*
 * The PostgreSQL backend of sl_db, over libpq: a statement is a rewritten
 * SQL text ($1..$n) plus its parameter arrays, prepared on the server (named
 * sl_<serial>) at its first run and then run as a prepared statement (text
 * results, bytea parameters in binary), so the server parses and plans it
 * once per connection. Every round trip goes through one of three senders
 * (q_exec, q_prepare, q_run): inside a pool task on the task's own
 * connection (pool.c) they use libpq's non-blocking calls (PQsend*, PQflush,
 * PQconsumeInput, PQisBusy) and suspend the task while the server works;
 * anywhere else they block as PQexec does. SQLSTATE classes are mapped onto
 * SL_E* codes.
 *
 * A connection the server dropped (restart, failover, a cut network) is reopened before the
 * next statement outside a transaction (PQreset, bounded by connect_timeout, at most once a
 * second; statements fail at once in between), and statements prepared on the old session
 * are prepared again. Inside a transaction the statement fails with SL_EUNAVAIL instead, so
 * the caller's rollback ends it and nothing half-done carries over to the new session
 * (tests/integration/pg_ready_test.c).
 */
#include "db/db_int.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Type OIDs from pg_type.h (stable across versions). */
#define OID_BYTEA 17
#define OID_INT8  20

typedef struct pg_stmt {
    char *sql;     /* with $n placeholders */
    char **values; /* owned copies, NULL for SQL NULL */
    int *lengths;
    int *formats;
    Oid *types;
    PGresult *res; /* result of the current run, NULL before the first step */
    int row, nrows;
    int64_t changes;
    unsigned char *blob; /* last decoded bytea column */
    char name[32];       /* server-side prepared statement, "" until prepared */
    uint64_t session;    /* the connection's session it was prepared on */
    Oid *prepared_types; /* parameter types it was prepared with (0: inferred by the server) */
} pg_stmt;

/* The connection and how many times it was reopened (a prepared statement belongs to one). */
typedef struct pg_conn {
    PGconn *c;
    uint64_t session;
    uint64_t retry_at_ms; /* no new attempt to reconnect before this (monotonic) */
} pg_conn;

/* At most one reconnection attempt per connection in this interval: while the server does not
 * answer, an attempt can block for connect_timeout, and between attempts statements fail at
 * once. */
#define RECONNECT_INTERVAL_MS 1000

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static PGconn *conn(sl_db *db)
{
    return ((pg_conn *)db->impl)->c;
}

static void notice_ignore(void *arg, const char *message)
{
    (void)arg; /* Library code never prints (it logs through sl_log); NOTICEs are dropped. */
    (void)message;
}

static int map_state(const char *st)
{
    if (st == NULL) return SL_EUNAVAIL; /* no SQLSTATE: the connection failed */
    if (strcmp(st, "23505") == 0 || strcmp(st, "23503") == 0) return SL_ECONFLICT;
    if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0)
        return SL_EBUSY;
    if (strcmp(st, "25P02") == 0) return SL_ESTATE; /* transaction already aborted */
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0) return SL_EUNAVAIL;
    if (strncmp(st, "23", 2) == 0 || strncmp(st, "42", 2) == 0 || strncmp(st, "22", 2) == 0)
        return SL_EINVAL;
    return SL_EIO;
}

/* Maps a failed result (or NULL) to an SL_E* code and keeps the server's message. */
static int fail(sl_db *db, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn(db));
    int code = PQstatus(conn(db)) == CONNECTION_BAD ? SL_EUNAVAIL : map_state(state);
    sl__db_set_err(db, code, "postgres: %s%s%s", state ? state : "", state ? " " : "",
                   msg && *msg ? msg : "unknown error");
    /* Drop libpq's trailing newline. */
    size_t n = strlen(db->errmsg);
    if (n > 0 && db->errmsg[n - 1] == '\n') db->errmsg[n - 1] = '\0';
    return code;
}

/*
 * Waits for the answer to the query just sent on a pool task's connection,
 * suspending the task while the socket has nothing; if the pool is being
 * freed, finishes with blocking calls. Returns what PQexec would: the first
 * error result, else the last result (NULL when nothing came).
 */
static PGresult *collect(sl_db *db)
{
    PGconn *c = conn(db);
    int async = 1;
    for (;;) {
        int f = PQflush(c);
        if (f == 0) break;
        if (f < 0) return NULL;
        if (sl__db_wait(db, PQsocket(c), 1) != 0) {
            async = 0;
            PQsetnonblocking(c, 0);
            if (PQflush(c) != 0) return NULL;
            break;
        }
        if (!PQconsumeInput(c)) return NULL;
    }
    PGresult *keep = NULL;
    for (;;) {
        while (async && PQisBusy(c)) {
            /* On a failed wait or a lost connection PQgetResult finishes by itself. */
            if (sl__db_wait(db, PQsocket(c), 0) != 0 || !PQconsumeInput(c)) async = 0;
        }
        PGresult *r = PQgetResult(c);
        if (r == NULL) break;
        if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
            PQclear(r);
            continue;
        }
        PQclear(keep);
        keep = r;
    }
    return keep;
}

/* Sends with `sent` (a PQsend* call's result) and collects, in non-blocking mode. */
static PGresult *finish_async(sl_db *db, int sent)
{
    PGresult *r = sent ? collect(db) : NULL;
    PQsetnonblocking(conn(db), 0);
    return r;
}

static PGresult *q_exec(sl_db *db, const char *sql)
{
    PGconn *c = conn(db);
    if (!sl__db_async(db) || PQsetnonblocking(c, 1) != 0) return PQexec(c, sql);
    return finish_async(db, PQsendQuery(c, sql));
}

static PGresult *q_prepare(sl_db *db, const char *name, const char *sql, int n, const Oid *types)
{
    PGconn *c = conn(db);
    if (!sl__db_async(db) || PQsetnonblocking(c, 1) != 0) return PQprepare(c, name, sql, n, types);
    return finish_async(db, PQsendPrepare(c, name, sql, n, types));
}

static PGresult *q_run(sl_db *db, const char *name, int n, const char *const *values,
                       const int *lengths, const int *formats)
{
    PGconn *c = conn(db);
    if (!sl__db_async(db) || PQsetnonblocking(c, 1) != 0)
        return PQexecPrepared(c, name, n, values, lengths, formats, 0);
    return finish_async(db, PQsendQueryPrepared(c, name, n, values, lengths, formats, 0));
}

static int pg_exec(sl_db *db, const char *sql);

int sl__db_pg_broken(const sl_db *db)
{
    return db->kind == SL_DB_POSTGRES && PQstatus(((const pg_conn *)db->impl)->c) == CONNECTION_BAD;
}

static int pg_open(sl_db *db, const char *url, const sl_db_options *o)
{
    char *perr = NULL;
    PQconninfoOption *parsed = PQconninfoParse(url, &perr);
    if (parsed == NULL) {
        int code = sl__db_set_err(db, SL_EINVAL, "postgres: invalid URL: %s",
                                  perr ? perr : "out of memory");
        PQfreemem(perr);
        return code;
    }
    PQconninfoFree(parsed);
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", o->connect_timeout_s);
    const char *keys[] = {"dbname", "connect_timeout", NULL};
    const char *vals[] = {url, timeout, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL) return sl__db_set_err(db, SL_ENOMEM, "postgres: out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        sl__db_set_err(db, SL_EUNAVAIL, "postgres: cannot connect: %s", PQerrorMessage(c));
        size_t n = strlen(db->errmsg);
        if (n > 0 && db->errmsg[n - 1] == '\n') db->errmsg[n - 1] = '\0';
        PQfinish(c);
        return SL_EUNAVAIL;
    }
    pg_conn *pc = calloc(1, sizeof *pc);
    if (pc == NULL) {
        PQfinish(c);
        return sl__db_set_err(db, SL_ENOMEM, "postgres: out of memory");
    }
    PQsetNoticeProcessor(c, notice_ignore, NULL);
    pc->c = c;
    db->impl = pc;
    if (o->lock_timeout_ms > 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "SET lock_timeout = %d", o->lock_timeout_ms);
        int rc = pg_exec(db, sql);
        if (rc != 0) {
            PQfinish(c);
            free(pc);
            db->impl = NULL;
            return rc;
        }
    }
    return 0;
}

static void pg_close(sl_db *db)
{
    PQfinish(conn(db));
    free(db->impl);
}

/* Reopens a connection the server dropped, outside a transaction (see the top of the file).
 * Returns 0 when the connection is usable, else SL_EUNAVAIL with the reason. */
static int usable(sl_db *db)
{
    pg_conn *pc = db->impl;
    if (PQstatus(pc->c) == CONNECTION_OK) return 0;
    if (db->in_tx)
        return sl__db_set_err(db, SL_EUNAVAIL, "postgres: connection lost inside a transaction");
    uint64_t now = now_ms();
    if (now < pc->retry_at_ms)
        return sl__db_set_err(db, SL_EUNAVAIL, "postgres: connection lost; reconnecting");
    pc->retry_at_ms = now + RECONNECT_INTERVAL_MS;
    PQreset(pc->c);
    pc->session++; /* the old session's prepared statements are gone with it */
    if (PQstatus(pc->c) != CONNECTION_OK) return fail(db, NULL);
    PQsetNoticeProcessor(pc->c, notice_ignore, NULL);
    return 0;
}

static int pg_exec(sl_db *db, const char *sql)
{
    int rc0 = usable(db);
    if (rc0 != 0) return rc0;
    PGresult *r = q_exec(db, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) ? 0 : fail(db, r);
    PQclear(r);
    return rc;
}

static void free_values(pg_stmt *p, int n)
{
    for (int i = 0; i < n; i++) {
        free(p->values[i]);
        p->values[i] = NULL;
        p->lengths[i] = 0;
        p->formats[i] = 0;
        p->types[i] = 0;
    }
}

/* Drops the server-side statement. Best effort: inside an aborted transaction the server
 * refuses, and the statement then lives until the connection ends (bounded by evictions). */
static void deallocate(sl_db_stmt *st)
{
    pg_stmt *p = st->impl;
    if (p->name[0] == '\0') return;
    if (!st->db->closing && p->session == ((pg_conn *)st->db->impl)->session &&
        PQstatus(conn(st->db)) == CONNECTION_OK) {
        char sql[48];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", p->name);
        PQclear(q_exec(st->db, sql));
    }
    p->name[0] = '\0';
}

static void pg_finalize(sl_db_stmt *st)
{
    pg_stmt *p = st->impl;
    if (p == NULL) return;
    deallocate(st);
    free(p->prepared_types);
    PQclear(p->res);
    if (p->values) free_values(p, st->nparams);
    PQfreemem(p->blob);
    free(p->values);
    free(p->lengths);
    free(p->formats);
    free(p->types);
    free(p->sql);
    free(p);
}

static int pg_prepare(sl_db *db, sl_db_stmt *st)
{
    /* Each `?` becomes at most "$" + 10 digits. */
    size_t cap = strlen(st->sql) + (size_t)st->nparams * 11 + 1;
    pg_stmt *p = calloc(1, sizeof *p);
    if (p == NULL) return SL_ENOMEM;
    st->impl = p;
    size_t n = st->nparams > 0 ? (size_t)st->nparams : 1;
    p->sql = malloc(cap);
    p->values = calloc(n, sizeof *p->values);
    p->lengths = calloc(n, sizeof *p->lengths);
    p->formats = calloc(n, sizeof *p->formats);
    p->types = calloc(n, sizeof *p->types);
    p->prepared_types = calloc(n, sizeof *p->prepared_types);
    if (!p->sql || !p->values || !p->lengths || !p->formats || !p->types || !p->prepared_types) {
        pg_finalize(st);
        st->impl = NULL;
        return sl__db_set_err(db, SL_ENOMEM, "out of memory");
    }
    int rc = sl__db_rewrite_params(st->sql, p->sql, cap);
    if (rc < 0) {
        pg_finalize(st);
        st->impl = NULL;
        return sl__db_set_err(db, rc, "cannot rewrite placeholders");
    }
    return 0;
}

static int set_value(sl_db_stmt *st, int idx, const void *bytes, size_t len, int format, Oid type)
{
    pg_stmt *p = st->impl;
    if (len > INT32_MAX) return sl__db_set_err(st->db, SL_ELIMIT, "parameter too large");
    char *copy = malloc(len + 1);
    if (copy == NULL) return SL_ENOMEM;
    if (len) memcpy(copy, bytes, len);
    copy[len] = '\0';
    free(p->values[idx - 1]);
    p->values[idx - 1] = copy;
    p->lengths[idx - 1] = (int)len;
    p->formats[idx - 1] = format;
    p->types[idx - 1] = type;
    return 0;
}

static int pg_bind_int64(sl_db_stmt *st, int idx, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    return set_value(st, idx, buf, (size_t)n, 0, OID_INT8);
}

static int pg_bind_text(sl_db_stmt *st, int idx, const char *s, size_t len)
{
    /* Type 0 lets the server infer the parameter's type from its use. */
    return set_value(st, idx, s, len, 0, 0);
}

static int pg_bind_blob(sl_db_stmt *st, int idx, const void *b, size_t len)
{
    return set_value(st, idx, b, len, 1, OID_BYTEA);
}

static int pg_bind_null(sl_db_stmt *st, int idx)
{
    pg_stmt *p = st->impl;
    free(p->values[idx - 1]);
    p->values[idx - 1] = NULL;
    p->lengths[idx - 1] = 0;
    p->formats[idx - 1] = 0;
    p->types[idx - 1] = 0;
    return 0;
}

static void pg_reset(sl_db_stmt *st)
{
    pg_stmt *p = st->impl;
    PQclear(p->res);
    p->res = NULL;
    p->row = p->nrows = 0;
}

/*
 * Prepares the statement on the server before a run, or again when this run binds a typed
 * parameter (int8, bytea) where it was prepared with another type. Untyped parameters (text,
 * NULL) fit any prepared type, so a statement settles after at most a few runs.
 */
static int ensure_prepared(sl_db_stmt *st)
{
    pg_stmt *p = st->impl;
    int rc = usable(st->db);
    if (rc != 0) return rc;
    uint64_t session = ((pg_conn *)st->db->impl)->session;
    if (p->name[0] != '\0' && p->session != session) p->name[0] = '\0'; /* gone with its session */
    int fits = p->name[0] != '\0';
    for (int i = 0; fits && i < st->nparams; i++)
        if (p->types[i] != 0 && p->types[i] != p->prepared_types[i]) fits = 0;
    if (fits) return 0;
    deallocate(st);
    for (int i = 0; i < st->nparams; i++)
        if (p->types[i] != 0) p->prepared_types[i] = p->types[i];
    char name[sizeof p->name];
    snprintf(name, sizeof name, "sl_%llu", (unsigned long long)++st->db->stmt_serial);
    PGresult *r = q_prepare(st->db, name, p->sql, st->nparams, p->prepared_types);
    rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : fail(st->db, r);
    PQclear(r);
    if (rc == 0) {
        memcpy(p->name, name, sizeof name);
        p->session = session;
    }
    return rc;
}

static int pg_step(sl_db_stmt *st)
{
    pg_stmt *p = st->impl;
    if (p->res == NULL) {
        int rc = ensure_prepared(st);
        if (rc) return rc;
        PGresult *r = q_run(st->db, p->name, st->nparams, (const char *const *)p->values,
                            p->lengths, p->formats);
        ExecStatusType s = PQresultStatus(r);
        if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
            rc = fail(st->db, r);
            PQclear(r);
            return rc;
        }
        p->res = r;
        p->nrows = PQntuples(r);
        p->row = -1;
        const char *ct = PQcmdTuples(r);
        p->changes = (ct && *ct) ? strtoll(ct, NULL, 10) : 0;
    }
    if (p->row < p->nrows) p->row++;
    return p->row < p->nrows ? SL_DB_ROW : SL_DB_DONE;
}

static void pg_clear(sl_db_stmt *st)
{
    free_values(st->impl, st->nparams);
}

static int64_t pg_changes(const sl_db_stmt *st)
{
    const pg_stmt *p = st->impl;
    return p->changes;
}

static int valid_cell(const pg_stmt *p, int col)
{
    return p->res && p->row >= 0 && p->row < p->nrows && col >= 0 && col < PQnfields(p->res);
}

static int pg_column_count(const sl_db_stmt *st)
{
    const pg_stmt *p = st->impl;
    return p->res ? PQnfields(p->res) : 0;
}

static int pg_column_is_null(const sl_db_stmt *st, int col)
{
    const pg_stmt *p = st->impl;
    return !valid_cell(p, col) || PQgetisnull(p->res, p->row, col);
}

static int64_t pg_column_int64(const sl_db_stmt *st, int col)
{
    const pg_stmt *p = st->impl;
    if (!valid_cell(p, col)) return 0;
    const char *v = PQgetvalue(p->res, p->row, col);
    if (v[0] == 't' && v[1] == '\0') return 1; /* boolean results */
    return strtoll(v, NULL, 10);
}

static const char *pg_column_text(const sl_db_stmt *st, int col, size_t *len)
{
    const pg_stmt *p = st->impl;
    if (!valid_cell(p, col)) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = (size_t)PQgetlength(p->res, p->row, col);
    return PQgetvalue(p->res, p->row, col);
}

static const void *pg_column_blob(const sl_db_stmt *st, int col, size_t *len)
{
    pg_stmt *p = st->impl;
    if (len) *len = 0;
    if (!valid_cell(p, col) || PQgetisnull(p->res, p->row, col)) return "";
    size_t n = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(p->res, p->row, col), &n);
    if (b == NULL) return "";
    PQfreemem(p->blob);
    p->blob = b;
    if (len) *len = n;
    return b;
}

const sl_db_vtable sl__db_postgres_vtable = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .bind_int64 = pg_bind_int64,
    .bind_text = pg_bind_text,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .reset = pg_reset,
    .clear = pg_clear,
    .changes = pg_changes,
    .column_count = pg_column_count,
    .column_is_null = pg_column_is_null,
    .column_int64 = pg_column_int64,
    .column_text = pg_column_text,
    .column_blob = pg_column_blob,
    .begin_sql = "BEGIN",
    /* Two services starting at once must not race on CREATE TABLE (key: "shoalmig"). */
    .migrate_lock_sql = "SELECT pg_advisory_xact_lock(7526747457069031783)",
};
