/*
 * sl_db: one small SQL API over SQLite (the embedded default) and PostgreSQL
 * (through libpq), chosen by URL. Prepared statements with `?` placeholders
 * and typed binds, typed column reads, row iteration, transactions and
 * savepoints, driver errors mapped onto a few SL_E* codes (the driver's own
 * message is kept for logs), and embedded, checksummed migrations.
 *
 * Threading: an sl_db connection and its statements belong to one thread at a
 * time (one connection per worker thread). Database work is synchronous from
 * the caller's view. On PostgreSQL the calls block on the socket (libpq),
 * except inside a task of an sl_db_pool (below) on the task's own
 * connection, where waiting suspends the task and the loop keeps running.
 *
 * Error mapping (both backends):
 *   SL_ECONFLICT  unique, primary-key or foreign-key violation
 *   SL_EBUSY      database locked / busy, serialization failure, deadlock
 *   SL_EINVAL     bad SQL, NOT NULL or CHECK violation, bad argument
 *   SL_EUNAVAIL   cannot connect, connection lost
 *   SL_EIO        I/O error, corrupted file, anything else from the driver
 *   SL_ESTATE     API misuse (commit without begin, nested begin) or a
 *                 migration that changed after it was applied
 * sl_db_errmsg() returns the driver's message for the last failure.
 */
#ifndef SHOAL_DB_H
#define SHOAL_DB_H

#include <shoal/common.h>
#include <shoal/id.h>

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sl_db sl_db;
typedef struct sl_db_stmt sl_db_stmt;

typedef enum sl_db_backend { SL_DB_SQLITE = 0, SL_DB_POSTGRES = 1 } sl_db_backend;

/* sl_db_step() results besides negative errors. */
enum { SL_DB_DONE = 0, SL_DB_ROW = 1 };

/* Room for a canonical UUID string and its NUL (the id columns' text). */
#define SL_DB_UUID_STR SL_UUID_STR_MAX

typedef struct sl_db_options {
    int sqlite_sync_full;    /* 1: synchronous=FULL (power-loss safe); 0: NORMAL (default) */
    int busy_timeout_ms;     /* SQLite busy_timeout; 0 → 5000 */
    int connect_timeout_s;   /* PostgreSQL connect_timeout; 0 → 5 */
    unsigned stmt_cache_max; /* prepared statements kept per connection; 0 → 64 */
    int lock_timeout_ms;     /* PostgreSQL: the session's lock_timeout (a lock wait longer than
                              * this fails with SL_EBUSY); 0 → the server's default (none) */
} sl_db_options;

/*
 * Opens a connection. `url` is `sqlite:PATH` (`sqlite::memory:` for an
 * in-memory database, `sqlite:///abs/path` also accepted) or
 * `postgres://user@host:port/db` (`postgresql://` too; every libpq URI
 * parameter works). `opt` may be NULL for defaults; it is borrowed.
 * SQLite is set up with WAL, synchronous NORMAL or FULL, busy
 * timeout, foreign keys on.
 * On success stores a connection in *out (returns owned, free with
 * sl_db_close) and returns 0. Returns SL_EINVAL for a malformed or unknown
 * URL, SL_EUNAVAIL when the server cannot be reached or the file cannot be
 * opened, SL_EIO for a file that is not a database, SL_ENOMEM. On failure
 * *out is set to NULL and, when `errbuf` is not NULL, a message is written
 * to it (`errcap` bytes, NUL-terminated).
 */
SL_API int sl_db_open(const char *url, const sl_db_options *opt, sl_db **out, char *errbuf,
                      size_t errcap) SL_MUST_CHECK;

/* Closes the connection, rolling back an open transaction and freeing every cached statement
 * (statements still checked out become invalid). NULL is ignored. */
SL_API void sl_db_close(sl_db *db);

/* Returns which backend `db` uses. */
SL_API sl_db_backend sl_db_kind(const sl_db *db);

/* Returns the driver's message for the last failure on `db` ("" if none). Valid until the next
 * call on `db`. */
SL_API const char *sl_db_errmsg(const sl_db *db);

/*
 * Runs one or more SQL statements without parameters or results (DDL,
 * PRAGMAs). Returns 0 or a mapped error (see the header comment).
 */
SL_API int sl_db_exec(sl_db *db, const char *sql) SL_MUST_CHECK;

/*
 * Prepares `sql` (with `?` placeholders; for PostgreSQL they are rewritten to
 * $1..$n outside string literals, quoted identifiers and comments), reusing a
 * cached statement for the same text. Stores a statement in *out, which the
 * caller borrows until sl_db_stmt_done(). Returns 0, SL_EINVAL for bad SQL,
 * SL_ELIMIT when every cache slot is checked out, SL_ENOMEM.
 */
SL_API int sl_db_prepare(sl_db *db, const char *sql, sl_db_stmt **out) SL_MUST_CHECK;

/* Resets `st`, clears its binds and returns it to its connection's cache. NULL is ignored. */
SL_API void sl_db_stmt_done(sl_db_stmt *st);

/*
 * Binds parameter `idx` (1-based) of `st`. Text and blobs are copied before
 * return (borrowed). `len` of SIZE_MAX for text means strlen(s). Returns 0
 * or SL_EINVAL for an index out of range, SL_ENOMEM.
 */
SL_API int sl_db_bind_int64(sl_db_stmt *st, int idx, int64_t v) SL_MUST_CHECK;
SL_API int sl_db_bind_text(sl_db_stmt *st, int idx, const char *s, size_t len) SL_MUST_CHECK;
SL_API int sl_db_bind_blob(sl_db_stmt *st, int idx, const void *p, size_t len) SL_MUST_CHECK;
SL_API int sl_db_bind_null(sl_db_stmt *st, int idx) SL_MUST_CHECK;

/*
 * Runs `st` or advances to its next row. Returns SL_DB_ROW when a row is
 * available, SL_DB_DONE when the statement has finished, or a mapped error.
 * After SL_DB_DONE or an error, call sl_db_stmt_done() (or rebind and step
 * again after sl_db_reset()).
 */
SL_API int sl_db_step(sl_db_stmt *st) SL_MUST_CHECK;

/* Rewinds `st` so it can run again; binds are kept. */
SL_API void sl_db_reset(sl_db_stmt *st);

/* Rows changed by the last completed INSERT/UPDATE/DELETE run through `st`. */
SL_API int64_t sl_db_changes(const sl_db_stmt *st);

/* Column reads on the current row (0-based `col`). Text and blob pointers are valid until the
 * next step, reset or done on `st`. A NULL value reads as 0, "" or an empty blob. */
SL_API int sl_db_column_count(const sl_db_stmt *st);
SL_API int sl_db_column_is_null(const sl_db_stmt *st, int col);
SL_API int64_t sl_db_column_int64(const sl_db_stmt *st, int col);
SL_API const char *sl_db_column_text(const sl_db_stmt *st, int col, size_t *len);
SL_API const void *sl_db_column_blob(const sl_db_stmt *st, int col, size_t *len);

/*
 * Transactions. sl_db_begin starts a write transaction (`BEGIN IMMEDIATE` on
 * SQLite, so writers serialise at begin and never fail later with BUSY;
 * `BEGIN` on PostgreSQL, READ COMMITTED). Nested begins are SL_ESTATE; use
 * savepoints inside a transaction. sl_db_commit runs the commit hook (see
 * sl_db_set_commit_hook) after a successful commit. A failed commit leaves
 * no transaction open. sl_db_rollback never fails from the caller's view
 * (errors are kept in sl_db_errmsg) and is a no-op outside a transaction.
 */
SL_API int sl_db_begin(sl_db *db) SL_MUST_CHECK;
SL_API int sl_db_commit(sl_db *db) SL_MUST_CHECK;
SL_API void sl_db_rollback(sl_db *db);
/* Returns 1 while a transaction started with sl_db_begin is open, 0 otherwise. */
SL_API int sl_db_in_tx(const sl_db *db);

/* Savepoints inside a transaction. `name` must be an identifier [A-Za-z_][A-Za-z0-9_]* of at
 * most 48 bytes (SL_EINVAL otherwise); outside a transaction SL_ESTATE. rollback_to keeps the
 * savepoint open (release it afterwards). */
SL_API int sl_db_savepoint(sl_db *db, const char *name) SL_MUST_CHECK;
SL_API int sl_db_release(sl_db *db, const char *name) SL_MUST_CHECK;
SL_API int sl_db_rollback_to(sl_db *db, const char *name) SL_MUST_CHECK;

/*
 * Transaction flags: modules mark the open transaction (sl_db_tx_mark) and
 * the commit hook receives the union after a successful commit; flags are
 * dropped on rollback. SL_DB_TXF_OUTBOX is set by sl_outbox_add.
 */
enum { SL_DB_TXF_OUTBOX = 1u << 0, SL_DB_TXF_EVENTS = 1u << 1 };
typedef void (*sl_db_commit_cb)(void *data, unsigned flags);

/* Sets the hook run on the caller's thread after every successful commit (NULL clears it).
 * Only one hook per connection; the hook must not use `db`. */
SL_API void sl_db_set_commit_hook(sl_db *db, sl_db_commit_cb cb, void *data);
/* ORs `flags` into the open transaction's flags; no-op outside a transaction. */
SL_API void sl_db_tx_mark(sl_db *db, unsigned flags);

/*
 * Migrations. A set is one component's numbered scripts ("shoal" for the
 * library's own tables, the service name for a service's), generated at build
 * time by the CMake function shoal_embed_migrations(). A script with
 * `backend` NULL runs on both backends; "sqlite" / "postgres" scripts only on
 * theirs (files NNNN_name.sql, NNNN_name.sqlite.sql, NNNN_name.postgres.sql).
 */
typedef struct sl_migration {
    int version;         /* > 0, ascending within a set */
    const char *name;    /* file name, for messages */
    const char *backend; /* NULL, "sqlite" or "postgres" */
    const char *sql;
} sl_migration;

typedef struct sl_migration_set {
    const char *component;
    const sl_migration *items;
    size_t count;
} sl_migration_set;

/*
 * Applies the unapplied migrations of `set` in version order, all inside one
 * transaction, recording each in `schema_migrations` (component, version,
 * name, checksum). A migration already applied whose checksum changed, or an
 * applied version the set does not know, is SL_ESTATE; a failing script
 * returns its mapped error. On any failure nothing of this call remains
 * (one transaction). `db` must not be in a transaction (SL_ESTATE).
 * Stores the number applied in *applied when not NULL. Borrows everything.
 */
SL_API int sl_db_migrate(sl_db *db, const sl_migration_set *set, int *applied) SL_MUST_CHECK;

/*
 * Runs a statement that returns no row and releases it (sl_db_stmt_done),
 * whatever the outcome. Stores the changed row count in *changes when not
 * NULL. Returns 0 or the statement's error.
 */
SL_API int sl_db_run(sl_db_stmt *st, int64_t *changes) SL_MUST_CHECK;

/*
 * Copies text column `col` of the current row into dst (`cap` > 0 bytes),
 * truncated to fit and NUL-terminated; NULL reads as "".
 */
SL_API void sl_db_column_copy(const sl_db_stmt *st, int col, char *dst, size_t cap);

/* In a function returning int: prepares `sql` into `st`, or returns the error. */
#define SL_DB_PREP(db, sql, st)                                                                    \
    do {                                                                                           \
        int sl_prc_ = sl_db_prepare((db), (sql), &(st));                                           \
        if (sl_prc_ != 0) return sl_prc_;                                                          \
    } while (0)

/* In a function returning int: evaluates a bind; on failure releases `st` and returns. */
#define SL_DB_BIND(st, expr)                                                                       \
    do {                                                                                           \
        int sl_brc_ = (expr);                                                                      \
        if (sl_brc_ != 0) {                                                                        \
            sl_db_stmt_done(st);                                                                   \
            return sl_brc_;                                                                        \
        }                                                                                          \
    } while (0)

/* Returns the library's own migrations (outbox, inbox, event store). Static storage. */
SL_API const sl_migration_set *sl_db_lib_migrations(void);

/* ---- A per-loop pool of PostgreSQL connections for work that must not block the loop ---------
 *
 * A pool belongs to one libuv loop and is used only on its thread. Each task
 * runs as a coroutine (its own stack) with a connection of its own: when a
 * statement on that connection waits for the server, the task is suspended
 * (a uv_poll_t watches the socket) and the loop goes on serving; the task
 * resumes where it stopped when the answer is there. The API above is
 * unchanged inside a task; any other connection used inside a task, and every
 * call outside one, stays blocking. Meant for the PostgreSQL backend (on
 * SQLite nothing ever suspends). See docs/data.md.
 */
typedef struct sl_db_pool sl_db_pool;

/* A task: `db` is its connection, or NULL with `rc` the reason (cannot connect: SL_EUNAVAIL...;
 * SL_ECLOSED when the pool was freed before the task could start). */
typedef void (*sl_db_task_cb)(void *arg, sl_db *db, int rc);
/* Called once for every connection the pool opens (e.g. to set its commit hook). */
typedef void (*sl_db_open_cb)(sl_db *db, void *data);

typedef struct sl_db_pool_config {
    const char *url;          /* borrowed; copied */
    const sl_db_options *opt; /* borrowed; copied; NULL for defaults */
    unsigned size;            /* connections, and tasks running at once: 1..64 */
    unsigned queue_max;       /* tasks waiting for a free connection: 0..65536 */
    size_t stack_bytes;       /* per task; 0 → 512 KiB (rounded up to pages, plus a guard page) */
    sl_db_open_cb on_open;    /* optional */
    void *on_open_data;
} sl_db_pool_config;

typedef struct sl_db_pool_stats {
    uint64_t started; /* tasks started on a free connection at once */
    uint64_t queued;  /* tasks that waited for a connection */
    uint64_t refused; /* tasks refused: every connection busy and the queue full */
    uint64_t waits;   /* times a task was suspended on its socket */
    unsigned active;  /* tasks running or suspended now */
    unsigned waiting; /* tasks queued now */
    unsigned open;    /* connections open now */
} sl_db_pool_stats;

/* Creates a pool on `loop` (connections open when first needed). Returns 0, SL_EINVAL for a
 * size or queue_max out of range, SL_ENOMEM. */
SL_API int sl_db_pool_new(uv_loop_t *loop, const sl_db_pool_config *cfg,
                          sl_db_pool **out) SL_MUST_CHECK;

/*
 * Runs fn(arg, db, rc) as a task: at once on a free connection (the call
 * returns when the task finishes or first suspends), or later when one frees
 * up. Returns 0; SL_EBUSY when every connection is busy and the queue is full
 * (fn is not called); SL_ECLOSED while the pool is being freed; SL_ENOMEM.
 * A task that returns with a transaction open has it rolled back.
 */
SL_API int sl_db_pool_run(sl_db_pool *p, sl_db_task_cb fn, void *arg) SL_MUST_CHECK;

/* The connection of the task of `p` running now, or NULL outside such a task. */
SL_API sl_db *sl_db_pool_current(const sl_db_pool *p);

/* Copies the pool's counters. */
SL_API void sl_db_pool_get_stats(const sl_db_pool *p, sl_db_pool_stats *out);

/* Frees the pool on its loop's thread: suspended tasks finish with blocking I/O, queued ones run
 * with db NULL and rc SL_ECLOSED, connections close; the loop must run afterwards so the socket
 * watchers can close. NULL is ignored. */
SL_API void sl_db_pool_free(sl_db_pool *p);

#endif /* SHOAL_DB_H */
