/*
 * The generic half of sl_db: opening by URL (dispatch to a backend vtable),
 * the per-connection statement cache, transactions and savepoints, error
 * messages and placeholder rewriting for PostgreSQL. Backends live in
 * sqlite.c and postgres.c; ids for rows come from the id module
 * (sl_uuid7_at).
 */
#include "db/db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl__db_set_err(sl_db *db, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->errmsg, sizeof db->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

static void copy_err(char *errbuf, size_t errcap, const char *msg)
{
    if (errbuf && errcap > 0) snprintf(errbuf, errcap, "%s", msg);
}

int sl_db_open(const char *url, const sl_db_options *opt, sl_db **out, char *errbuf, size_t errcap)
{
    *out = NULL;
    sl_db_options o = {0};
    if (opt) o = *opt;
    if (o.busy_timeout_ms <= 0) o.busy_timeout_ms = 5000;
    if (o.connect_timeout_s <= 0) o.connect_timeout_s = 5;
    if (o.stmt_cache_max == 0) o.stmt_cache_max = 64;
    if (o.stmt_cache_max > 4096) o.stmt_cache_max = 4096;

    const sl_db_vtable *vt = NULL;
    const char *target = NULL;
    sl_db_backend kind = SL_DB_SQLITE;
    if (url == NULL) {
        copy_err(errbuf, errcap, "no database URL");
        return SL_EINVAL;
    }
    if (strncmp(url, "sqlite:", 7) == 0) {
        vt = &sl__db_sqlite_vtable;
        target = url + 7;
        if (strncmp(target, "//", 2) == 0) target += 2; /* sqlite:///abs/path */
    } else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
        vt = &sl__db_postgres_vtable;
        kind = SL_DB_POSTGRES;
        target = url;
    }
    if (vt == NULL || target[0] == '\0') {
        copy_err(errbuf, errcap,
                 "database URL must be sqlite:PATH or postgres://user@host:port/db");
        return SL_EINVAL;
    }
    sl_db *db = calloc(1, sizeof *db);
    if (db == NULL) return SL_ENOMEM;
    db->cache = calloc(o.stmt_cache_max, sizeof *db->cache);
    if (db->cache == NULL) {
        free(db);
        return SL_ENOMEM;
    }
    db->vt = vt;
    db->kind = kind;
    db->cache_max = o.stmt_cache_max;
    int rc = vt->open(db, target, &o);
    if (rc != 0) {
        copy_err(errbuf, errcap, db->errmsg);
        free(db->cache);
        free(db);
        return rc;
    }
    *out = db;
    return 0;
}

static void stmt_free(sl_db_stmt *st)
{
    st->db->vt->finalize(st);
    free(st->sql);
    free(st);
}

void sl_db_close(sl_db *db)
{
    if (db == NULL) return;
    if (db->in_tx) sl_db_rollback(db);
    db->closing = 1;
    for (unsigned i = 0; i < db->cache_len; i++)
        stmt_free(db->cache[i]);
    db->vt->close(db);
    free(db->cache);
    free(db);
}

sl_db_backend sl_db_kind(const sl_db *db)
{
    return db->kind;
}

const char *sl_db_errmsg(const sl_db *db)
{
    return db->errmsg;
}

int sl_db_exec(sl_db *db, const char *sql)
{
    return db->vt->exec(db, sql);
}

/* Finds a free cache slot: an empty one, or the least recently used statement not in use,
 * which is finalized. Returns the slot index or -1. */
static int cache_slot(sl_db *db)
{
    if (db->cache_len < db->cache_max) return (int)db->cache_len++;
    int victim = -1;
    for (unsigned i = 0; i < db->cache_len; i++) {
        sl_db_stmt *s = db->cache[i];
        if (!s->in_use && (victim < 0 || s->used_at < db->cache[victim]->used_at)) victim = (int)i;
    }
    if (victim >= 0) {
        stmt_free(db->cache[victim]);
        db->cache[victim] = NULL;
    }
    return victim;
}

int sl_db_prepare(sl_db *db, const char *sql, sl_db_stmt **out)
{
    *out = NULL;
    for (unsigned i = 0; i < db->cache_len; i++) {
        sl_db_stmt *s = db->cache[i];
        if (!s->in_use && strcmp(s->sql, sql) == 0) {
            s->in_use = 1;
            s->used_at = ++db->tick;
            *out = s;
            return 0;
        }
    }
    int n = sl__db_rewrite_params(sql, NULL, 0);
    if (n < 0) return sl__db_set_err(db, n, "unterminated literal or comment in SQL");
    int slot = cache_slot(db);
    if (slot < 0) return sl__db_set_err(db, SL_ELIMIT, "every cached statement is in use");
    sl_db_stmt *st = calloc(1, sizeof *st);
    if (st == NULL || (st->sql = strdup(sql)) == NULL) {
        free(st);
        db->cache[slot] = db->cache[--db->cache_len];
        return SL_ENOMEM;
    }
    st->db = db;
    st->nparams = n;
    int rc = db->vt->prepare(db, st);
    if (rc != 0) {
        free(st->sql);
        free(st);
        /* Keep the cache dense: move the last entry into the slot. */
        db->cache[slot] = db->cache[--db->cache_len];
        return rc;
    }
    st->in_use = 1;
    st->used_at = ++db->tick;
    db->cache[slot] = st;
    *out = st;
    return 0;
}

void sl_db_stmt_done(sl_db_stmt *st)
{
    if (st == NULL) return;
    st->db->vt->reset(st);
    st->db->vt->clear(st);
    st->in_use = 0;
}

static int check_idx(sl_db_stmt *st, int idx)
{
    if (idx < 1 || idx > st->nparams)
        return sl__db_set_err(st->db, SL_EINVAL, "bind index %d out of range 1..%d", idx,
                              st->nparams);
    return 0;
}

int sl_db_bind_int64(sl_db_stmt *st, int idx, int64_t v)
{
    int rc = check_idx(st, idx);
    return rc ? rc : st->db->vt->bind_int64(st, idx, v);
}

int sl_db_bind_text(sl_db_stmt *st, int idx, const char *s, size_t len)
{
    int rc = check_idx(st, idx);
    if (rc) return rc;
    if (s == NULL) return st->db->vt->bind_null(st, idx);
    if (len == SIZE_MAX) len = strlen(s);
    return st->db->vt->bind_text(st, idx, s, len);
}

int sl_db_bind_blob(sl_db_stmt *st, int idx, const void *p, size_t len)
{
    int rc = check_idx(st, idx);
    return rc ? rc : st->db->vt->bind_blob(st, idx, p, len);
}

int sl_db_bind_null(sl_db_stmt *st, int idx)
{
    int rc = check_idx(st, idx);
    return rc ? rc : st->db->vt->bind_null(st, idx);
}

int sl_db_step(sl_db_stmt *st)
{
    return st->db->vt->step(st);
}

void sl_db_reset(sl_db_stmt *st)
{
    st->db->vt->reset(st);
}

int64_t sl_db_changes(const sl_db_stmt *st)
{
    return st->db->vt->changes(st);
}

int sl_db_column_count(const sl_db_stmt *st)
{
    return st->db->vt->column_count(st);
}

int sl_db_column_is_null(const sl_db_stmt *st, int col)
{
    return st->db->vt->column_is_null(st, col);
}

int64_t sl_db_column_int64(const sl_db_stmt *st, int col)
{
    return st->db->vt->column_int64(st, col);
}

const char *sl_db_column_text(const sl_db_stmt *st, int col, size_t *len)
{
    return st->db->vt->column_text(st, col, len);
}

const void *sl_db_column_blob(const sl_db_stmt *st, int col, size_t *len)
{
    return st->db->vt->column_blob(st, col, len);
}

/* Transaction control. On SQLite it goes through the statement cache: parsing BEGIN, COMMIT
 * and SAVEPOINT text on every call cost more than running them. */
static int ctl(sl_db *db, const char *sql)
{
    if (db->kind != SL_DB_SQLITE) return db->vt->exec(db, sql);
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc) return rc;
    rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : (rc < 0 ? rc : SL_EIO);
}

int sl_db_begin(sl_db *db)
{
    if (db->in_tx) return sl__db_set_err(db, SL_ESTATE, "transaction already open");
    int rc = ctl(db, db->vt->begin_sql);
    if (rc != 0) return rc;
    db->in_tx = 1;
    db->tx_flags = 0;
    return 0;
}

int sl_db_commit(sl_db *db)
{
    if (!db->in_tx) return sl__db_set_err(db, SL_ESTATE, "commit without a transaction");
    int rc = ctl(db, "COMMIT");
    if (rc != 0) {
        /* A failed COMMIT may leave SQLite's transaction open (BUSY); end it either way. */
        char keep[SL_DB_ERRMSG_MAX];
        memcpy(keep, db->errmsg, sizeof keep);
        (void)db->vt->exec(db, "ROLLBACK");
        memcpy(db->errmsg, keep, sizeof keep);
        db->in_tx = 0;
        return rc;
    }
    unsigned flags = db->tx_flags;
    db->in_tx = 0;
    db->tx_flags = 0;
    if (db->commit_cb) db->commit_cb(db->commit_data, flags);
    return 0;
}

void sl_db_rollback(sl_db *db)
{
    if (!db->in_tx) return;
    /* Statements left mid-iteration would keep SQLite's read transaction alive. */
    for (unsigned i = 0; i < db->cache_len; i++)
        db->vt->reset(db->cache[i]);
    (void)db->vt->exec(db, "ROLLBACK");
    db->in_tx = 0;
    db->tx_flags = 0;
}

int sl_db_in_tx(const sl_db *db)
{
    return db->in_tx;
}

static int savepoint_sql(sl_db *db, const char *verb, const char *name)
{
    if (!db->in_tx) return sl__db_set_err(db, SL_ESTATE, "savepoint outside a transaction");
    size_t n = strlen(name);
    if (n == 0 || n > 48) return sl__db_set_err(db, SL_EINVAL, "bad savepoint name");
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) return sl__db_set_err(db, SL_EINVAL, "bad savepoint name");
    }
    char sql[96];
    snprintf(sql, sizeof sql, "%s %s", verb, name);
    return ctl(db, sql);
}

int sl_db_savepoint(sl_db *db, const char *name)
{
    return savepoint_sql(db, "SAVEPOINT", name);
}

int sl_db_release(sl_db *db, const char *name)
{
    return savepoint_sql(db, "RELEASE SAVEPOINT", name);
}

int sl_db_rollback_to(sl_db *db, const char *name)
{
    return savepoint_sql(db, "ROLLBACK TO SAVEPOINT", name);
}

void sl_db_set_commit_hook(sl_db *db, sl_db_commit_cb cb, void *data)
{
    db->commit_cb = cb;
    db->commit_data = data;
}

void sl_db_tx_mark(sl_db *db, unsigned flags)
{
    if (db->in_tx) db->tx_flags |= flags;
}

/* Appends `c` to out[*o] when writing; fails when full. */
static int put(char *out, size_t cap, size_t *o, char c)
{
    if (out == NULL) return 0;
    if (*o + 1 >= cap) return SL_ELIMIT;
    out[(*o)++] = c;
    return 0;
}

/*
 * A small lexer over SQL: '...' literals (with '' escapes), "..." identifiers,
 * -- line comments and block comments are copied verbatim; a `?` anywhere
 * else is a placeholder. Dollar-quoted strings are not recognised (the
 * library's SQL does not use them). Guarded by db_test's rewrite cases.
 */
int sl__db_rewrite_params(const char *sql, char *out, size_t cap)
{
    SL_ASSERT(sql != NULL);
    size_t o = 0;
    int n = 0;
    char quote = 0; /* '\'', '"', '-' (line comment), '*' (block comment) */
    for (size_t i = 0; sql[i] != '\0'; i++) {
        char c = sql[i];
        if (quote == '\'' || quote == '"') {
            if (c == quote) quote = 0; /* a doubled quote re-enters on the next char */
        } else if (quote == '-') {
            if (c == '\n') quote = 0;
        } else if (quote == '*') {
            if (c == '*' && sql[i + 1] == '/') {
                if (put(out, cap, &o, c)) return SL_ELIMIT;
                c = sql[++i];
                quote = 0;
            }
        } else if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '-' && sql[i + 1] == '-') {
            quote = '-';
        } else if (c == '/' && sql[i + 1] == '*') {
            if (put(out, cap, &o, c)) return SL_ELIMIT;
            c = sql[++i];
            quote = '*';
        } else if (c == '?') {
            n++;
            if (out) {
                char num[16];
                int k = snprintf(num, sizeof num, "$%d", n);
                for (int j = 0; j < k; j++)
                    if (put(out, cap, &o, num[j])) return SL_ELIMIT;
            }
            continue;
        }
        if (put(out, cap, &o, c)) return SL_ELIMIT;
    }
    if (quote == '\'' || quote == '"' || quote == '*') return SL_EINVAL;
    if (out) {
        if (o >= cap) return SL_ELIMIT;
        out[o] = '\0';
    }
    return n;
}

int sl_db_run(sl_db_stmt *st, int64_t *changes)
{
    int rc = sl_db_step(st);
    if (rc == SL_DB_DONE && changes) *changes = sl_db_changes(st);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

void sl_db_column_copy(const sl_db_stmt *st, int col, char *dst, size_t cap)
{
    size_t len = 0;
    const char *s = sl_db_column_text(st, col, &len);
    if (!s) len = 0;
    if (len >= cap) len = cap - 1;
    if (len) memcpy(dst, s, len);
    dst[len] = '\0';
}
