/*
 * The SQLite backend of sl_db. One sqlite3 connection per sl_db, opened
 * without SQLite's own mutexes (a connection belongs to one thread), set up
 * as docs/data.md describes: WAL journal, synchronous NORMAL or FULL, busy timeout,
 * foreign keys. Extended result codes are mapped onto SL_E* codes.
 */
#include "db/db_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static sqlite3 *conn(sl_db *db)
{
    return db->impl;
}

static int map_rc(int rc)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return SL_ECONFLICT;
    case SQLITE_NOMEM:
        return SL_ENOMEM;
    case SQLITE_CANTOPEN:
        return SL_EUNAVAIL;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
        return SL_EINVAL;
    default:
        break;
    }
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return SL_EBUSY;
    case SQLITE_CONSTRAINT:
    case SQLITE_ERROR:
    case SQLITE_MISMATCH:
        return SL_EINVAL;
    default:
        return SL_EIO; /* IOERR, CORRUPT, NOTADB, FULL, ... */
    }
}

static int fail(sl_db *db, int rc)
{
    return sl__db_set_err(db, map_rc(rc), "sqlite: %s (%s)", sqlite3_errmsg(conn(db)),
                          sqlite3_errstr(rc));
}

static int lite_exec(sl_db *db, const char *sql)
{
    int rc = sqlite3_exec(conn(db), sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail(db, sqlite3_extended_errcode(conn(db)));
}

/* Process-wide settings, before SQLite's first use. Memory statistics off: with them on,
 * every allocation of every connection takes one global mutex, which threads with their
 * own connections (workers, the bus's producer and consumer) then fight over. Connections
 * are opened NOMUTEX (one thread each), so multi-thread mode is all they need. Both calls
 * fail harmlessly when the application initialised SQLite first. */
static void lite_configure(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    (void)sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
}

static int lite_open(sl_db *db, const char *path, const sl_db_options *o)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lite_configure);
    sqlite3 *c = NULL;
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    int rc = sqlite3_open_v2(path, &c, flags, NULL);
    if (rc != SQLITE_OK) {
        int code = map_rc(rc);
        sl__db_set_err(db, code == SL_EIO ? SL_EIO : SL_EUNAVAIL, "sqlite: cannot open %s: %s",
                       path, c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
        sqlite3_close(c);
        return code == SL_EIO ? SL_EIO : SL_EUNAVAIL;
    }
    db->impl = c;
    sqlite3_extended_result_codes(c, 1);
    sqlite3_busy_timeout(c, o->busy_timeout_ms);
    /* journal_mode reads the file header first: a file that is not a database fails here. */
    int code = 0;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(c, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        /* An in-memory database reports "memory"; anything else must be WAL. */
        if (mode == NULL || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0))
            code = sl__db_set_err(db, SL_EIO, "sqlite: %s: cannot switch to WAL (mode %s)", path,
                                  mode ? mode : "?");
    } else {
        code = sl__db_set_err(db, map_rc(sqlite3_extended_errcode(c)), "sqlite: %s: %s", path,
                              sqlite3_errmsg(c));
    }
    sqlite3_finalize(st);
    if (code == 0) {
        char sql[160];
        snprintf(sql, sizeof sql, "PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;",
                 o->sqlite_sync_full ? "FULL" : "NORMAL");
        code = lite_exec(db, sql);
    }
    if (code != 0) {
        sqlite3_close(c);
        db->impl = NULL;
    }
    return code;
}

static void lite_close(sl_db *db)
{
    sqlite3_close(conn(db));
}

static int lite_prepare(sl_db *db, sl_db_stmt *st)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v3(conn(db), st->sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) return fail(db, rc);
    if (s == NULL) return sl__db_set_err(db, SL_EINVAL, "sqlite: empty statement");
    st->impl = s;
    return 0;
}

static void lite_finalize(sl_db_stmt *st)
{
    sqlite3_finalize(st->impl);
}

static int bind_rc(sl_db_stmt *st, int rc)
{
    return rc == SQLITE_OK ? 0 : fail(st->db, rc);
}

static int lite_bind_int64(sl_db_stmt *st, int idx, int64_t v)
{
    return bind_rc(st, sqlite3_bind_int64(st->impl, idx, v));
}

static int lite_bind_text(sl_db_stmt *st, int idx, const char *s, size_t len)
{
    return bind_rc(st, sqlite3_bind_text64(st->impl, idx, s, len, SQLITE_TRANSIENT, SQLITE_UTF8));
}

static int lite_bind_blob(sl_db_stmt *st, int idx, const void *p, size_t len)
{
    return bind_rc(st, sqlite3_bind_blob64(st->impl, idx, len ? p : "", len, SQLITE_TRANSIENT));
}

static int lite_bind_null(sl_db_stmt *st, int idx)
{
    return bind_rc(st, sqlite3_bind_null(st->impl, idx));
}

static int lite_step(sl_db_stmt *st)
{
    int rc = sqlite3_step(st->impl);
    if (rc == SQLITE_ROW) return SL_DB_ROW;
    if (rc == SQLITE_DONE) return SL_DB_DONE;
    rc = fail(st->db, sqlite3_extended_errcode(conn(st->db)));
    sqlite3_reset(st->impl);
    return rc;
}

static void lite_reset(sl_db_stmt *st)
{
    sqlite3_reset(st->impl);
}

static void lite_clear(sl_db_stmt *st)
{
    sqlite3_clear_bindings(st->impl);
}

static int64_t lite_changes(const sl_db_stmt *st)
{
    return sqlite3_changes64(conn(st->db));
}

static int lite_column_count(const sl_db_stmt *st)
{
    return sqlite3_data_count(st->impl);
}

static int lite_column_is_null(const sl_db_stmt *st, int col)
{
    return sqlite3_column_type(st->impl, col) == SQLITE_NULL;
}

static int64_t lite_column_int64(const sl_db_stmt *st, int col)
{
    return sqlite3_column_int64(st->impl, col);
}

static const char *lite_column_text(const sl_db_stmt *st, int col, size_t *len)
{
    const unsigned char *p = sqlite3_column_text(st->impl, col);
    if (len) *len = (size_t)sqlite3_column_bytes(st->impl, col);
    return p ? (const char *)p : "";
}

static const void *lite_column_blob(const sl_db_stmt *st, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(st->impl, col);
    if (len) *len = (size_t)sqlite3_column_bytes(st->impl, col);
    return p ? p : "";
}

const sl_db_vtable sl__db_sqlite_vtable = {
    .name = "sqlite",
    .open = lite_open,
    .close = lite_close,
    .exec = lite_exec,
    .prepare = lite_prepare,
    .finalize = lite_finalize,
    .bind_int64 = lite_bind_int64,
    .bind_text = lite_bind_text,
    .bind_blob = lite_bind_blob,
    .bind_null = lite_bind_null,
    .step = lite_step,
    .reset = lite_reset,
    .clear = lite_clear,
    .changes = lite_changes,
    .column_count = lite_column_count,
    .column_is_null = lite_column_is_null,
    .column_int64 = lite_column_int64,
    .column_text = lite_column_text,
    .column_blob = lite_column_blob,
    .begin_sql = "BEGIN IMMEDIATE",
};
