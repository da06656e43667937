/*
 * Internals of sl_db: the backend vtable (one file per backend: sqlite.c,
 * postgres.c), the connection and statement structs shared by the generic
 * layer (db.c: URL dispatch, statement cache, transactions, error text) and
 * the backends.
 */
#ifndef SHOAL_DB_INT_H
#define SHOAL_DB_INT_H

#include <shoal/db.h>

#include <stdarg.h>

#define SL_DB_ERRMSG_MAX 512

typedef struct sl_db_vtable {
    const char *name;
    /* Opens `target` (path or libpq URI) into db->impl. Writes errors with db_set_err. */
    int (*open)(sl_db *db, const char *target, const sl_db_options *opt);
    void (*close)(sl_db *db);
    int (*exec)(sl_db *db, const char *sql);
    /* Prepares st->sql into st->impl; st->nparams must be set. */
    int (*prepare)(sl_db *db, sl_db_stmt *st);
    void (*finalize)(sl_db_stmt *st);
    int (*bind_int64)(sl_db_stmt *st, int idx, int64_t v);
    int (*bind_text)(sl_db_stmt *st, int idx, const char *s, size_t len);
    int (*bind_blob)(sl_db_stmt *st, int idx, const void *p, size_t len);
    int (*bind_null)(sl_db_stmt *st, int idx);
    int (*step)(sl_db_stmt *st);
    void (*reset)(sl_db_stmt *st);
    void (*clear)(sl_db_stmt *st);
    int64_t (*changes)(const sl_db_stmt *st);
    int (*column_count)(const sl_db_stmt *st);
    int (*column_is_null)(const sl_db_stmt *st, int col);
    int64_t (*column_int64)(const sl_db_stmt *st, int col);
    const char *(*column_text)(const sl_db_stmt *st, int col, size_t *len);
    const void *(*column_blob)(const sl_db_stmt *st, int col, size_t *len);
    const char *begin_sql;
    /* Run first inside the migration transaction to serialise migrators (NULL: none). */
    const char *migrate_lock_sql;
} sl_db_vtable;

struct sl_db_stmt {
    sl_db *db;
    char *sql;        /* the caller's text, the cache key */
    int nparams;      /* number of `?` placeholders */
    int in_use;       /* checked out by a caller */
    uint64_t used_at; /* cache LRU tick */
    void *impl;
};

struct sl_db {
    const sl_db_vtable *vt;
    sl_db_backend kind;
    void *impl;
    sl_db_stmt **cache;
    unsigned cache_len, cache_max;
    uint64_t tick;
    uint64_t stmt_serial; /* names server-side prepared statements (PostgreSQL) */
    int closing;          /* sl_db_close is finalizing: the connection is about to go */
    int in_tx;
    unsigned tx_flags;
    sl_db_commit_cb commit_cb;
    void *commit_data;
    char errmsg[SL_DB_ERRMSG_MAX];
};

extern const sl_db_vtable sl__db_sqlite_vtable;
extern const sl_db_vtable sl__db_postgres_vtable;

/* Formats the connection's last error message. Returns `code` for tail calls. */
int sl__db_set_err(sl_db *db, int code, const char *fmt, ...) SL_PRINTF(3, 4);

/*
 * Counts the `?` placeholders of `sql` outside '...' literals, "..."
 * identifiers, -- and block comments. When `out` is not NULL (capacity `cap`)
 * also writes the text with each `?` replaced by $1..$n. Returns the count,
 * or SL_ELIMIT when `out` is too small, SL_EINVAL for an unterminated
 * literal or comment.
 */
int sl__db_rewrite_params(const char *sql, char *out, size_t cap);

/*
 * Suspending waits (pool.c). sl__db_async: 1 when the caller runs in a pool
 * task whose connection is `db` (the backend may then wait with
 * sl__db_wait instead of blocking). sl__db_wait: suspends the task until `fd`
 * is readable (or writable too, when `writable`); returns 0, a negative
 * libuv error, or SL_ESTATE / SL_ECLOSED when the caller must finish with
 * blocking I/O instead (not in a task, or the pool is being freed).
 */
int sl__db_async(const sl_db *db);
/* PostgreSQL: 1 when the connection is lost (the pool then opens a new one). */
int sl__db_pg_broken(const sl_db *db);
int sl__db_wait(sl_db *db, int fd, int writable);

#endif /* SHOAL_DB_INT_H */
