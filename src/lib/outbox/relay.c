/*
 * The outbox relay: a pump that reads unpublished outbox rows in `seq`
 * order, hands them to a publisher in batches, and marks each batch
 * published only when the publisher confirmed all of it. Up to
 * max_inflight batches are with the publisher at once (the publish acks of
 * one overlap the sending of the next), each the rows after the previous
 * one. A failed batch stops new batches until the pipeline is empty; then,
 * after an exponential backoff, the relay starts again from the oldest
 * unpublished row, so a retry resends the failed rows before anything
 * newer. A crash between publish and mark republishes (at least once; the
 * bus and the consumers' inbox drop the duplicate). Plus a thin libuv
 * driver.
 *
 * Several instances on one PostgreSQL database: only the relay holding the
 * database's relay lease (a session advisory lock keyed by the outbox's
 * schema) publishes; the others stand by and try to take the lock every
 * poll_ms. The server drops the lock with the holder's session, so a
 * crashed or killed holder is replaced within poll_ms; the holder checks at
 * the start of every pipeline (at most every poll_ms) that its session
 * still holds the lock, so a relay whose connection was replaced stops
 * before a second relay would publish the same rows for long (and the
 * inbox drops what was published twice meanwhile). docs/events.md explains
 * why one relay per database rather than rows claimed by every relay.
 */
#include <shoal/outbox.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct relay_batch {
    sl_outbox_relay *r;
    sl_outbox_msg *msgs; /* batch_max slots; each row's strings in one block at msgs[i].id */
    size_t n;
    bool busy; /* with the publisher */
} relay_batch;

struct sl_outbox_relay {
    sl_db *db;
    sl_outbox_publisher pub;
    sl_outbox_relay_options o;
    relay_batch *slots; /* max_inflight */
    unsigned inflight;
    int64_t cursor; /* highest seq handed out while batches are in flight */
    bool draining;  /* a batch failed: start nothing until the pipeline is empty */
    int failures;
    int64_t retry_at_ms;   /* monotonic */
    int64_t next_prune_ms; /* monotonic */
    /* PostgreSQL relay lease */
    bool leased;           /* the backend is PostgreSQL: publish only while holding the lock */
    bool held;             /* this relay's session holds the lock (as last checked) */
    int64_t lease_key;     /* advisory lock key, 0 until read from the database */
    int64_t lease_next_ms; /* monotonic: next take-over attempt or check */
    /* libuv driver */
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_async_t async;
    int started;
    int open_handles;
};

static void free_batch(relay_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free((char *)b->msgs[i].id);
    memset(b->msgs, 0, b->n * sizeof *b->msgs);
    b->n = 0;
}

static int lease_query(sl_outbox_relay *r, const char *sql, int64_t *out);

void sl_outbox_relay_free(sl_outbox_relay *r)
{
    if (r == NULL) return;
    SL_ASSERT(r->open_handles == 0 && "sl_outbox_relay_stop, then run the loop, then free");
    SL_ASSERT(r->inflight == 0 && "the publisher still holds a batch");
    /* A clean stop hands the lease over at once (closing the connection would too). */
    int64_t unlocked;
    if (r->held && !sl_db_in_tx(r->db) &&
        lease_query(r, "SELECT CAST(pg_advisory_unlock(CAST(? AS BIGINT)) AS INTEGER)",
                    &unlocked) != 0) {
        /* The lock goes with the session. */
    }
    for (unsigned i = 0; i < r->o.max_inflight; i++) {
        if (r->slots[i].msgs) free_batch(&r->slots[i]);
        free(r->slots[i].msgs);
    }
    free(r->slots);
    free(r);
}

int sl_outbox_relay_new(sl_db *db, const sl_outbox_publisher *pub,
                        const sl_outbox_relay_options *opt, sl_outbox_relay **out)
{
    *out = NULL;
    if (db == NULL || pub == NULL || pub->publish == NULL) return SL_EINVAL;
    sl_outbox_relay *r = calloc(1, sizeof *r);
    if (r == NULL) return SL_ENOMEM;
    r->db = db;
    r->pub = *pub;
    if (opt) r->o = *opt;
    if (r->o.batch_max == 0) r->o.batch_max = 64;
    if (r->o.batch_max > 1024) r->o.batch_max = 1024;
    if (r->o.max_inflight == 0) r->o.max_inflight = 4;
    if (r->o.max_inflight > 64) r->o.max_inflight = 64;
    if (r->o.retry_base_ms <= 0) r->o.retry_base_ms = 100;
    if (r->o.retry_max_ms <= 0) r->o.retry_max_ms = 30000;
    if (r->o.poll_ms <= 0) r->o.poll_ms = 1000;
    if (r->o.clock == NULL) r->o.clock = sl_clock_system();
    r->leased = sl_db_kind(db) == SL_DB_POSTGRES;
    r->slots = calloc(r->o.max_inflight, sizeof *r->slots);
    for (unsigned i = 0; r->slots && i < r->o.max_inflight; i++) {
        r->slots[i].r = r;
        if ((r->slots[i].msgs = calloc(r->o.batch_max, sizeof(sl_outbox_msg))) == NULL) break;
    }
    if (r->slots == NULL || r->slots[r->o.max_inflight - 1].msgs == NULL) {
        if (r->slots == NULL) r->o.max_inflight = 0;
        sl_outbox_relay_free(r);
        return SL_ENOMEM;
    }
    *out = r;
    return 0;
}

int sl_outbox_relay_busy(const sl_outbox_relay *r)
{
    return (int)r->inflight;
}

int sl_outbox_relay_failures(const sl_outbox_relay *r)
{
    return r->failures;
}

static void hook(sl_outbox_relay *r, const char *what, int64_t v)
{
    if (r->o.hook) r->o.hook(r->o.hook_data, what, v);
}

static int64_t backoff_ms(const sl_outbox_relay *r)
{
    int64_t d = r->o.retry_base_ms;
    for (int i = 1; i < r->failures && d < r->o.retry_max_ms; i++)
        d *= 2;
    return d < r->o.retry_max_ms ? d : r->o.retry_max_ms;
}

static void failed(sl_outbox_relay *r)
{
    r->failures++;
    r->retry_at_ms = sl_clock_mono_ms(r->o.clock) + backoff_ms(r);
    r->draining = r->inflight > 0;
    hook(r, "publish_failed", r->failures);
}

/* Runs a one-value query; binds the lease key when the SQL has a parameter. */
static int lease_query(sl_outbox_relay *r, const char *sql, int64_t *out)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(r->db, sql, &st);
    if (rc != 0) return rc;
    if (strchr(sql, '?') != NULL) rc = sl_db_bind_int64(st, 1, r->lease_key);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *out = sl_db_column_int64(st, 0);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_EIO;
    }
    sl_db_stmt_done(st);
    return rc;
}

/*
 * Takes or checks the relay lease; 1 when this relay may publish, 0 when another relay holds
 * the lease, or a database error. The key: 60 bits of the md5 of the outbox's schema, so
 * databases (and schemas) do not share one lease.
 */
static int lease_ensure(sl_outbox_relay *r, int64_t now)
{
    if (!r->leased) return 1;
    if (r->held && now < r->lease_next_ms) return 1;
    if (!r->held && now < r->lease_next_ms) return 0;
    int rc = 0;
    if (r->lease_key == 0)
        rc = lease_query(r,
                         "SELECT CAST(CAST(CAST('x' || substr(md5(current_schema() || "
                         "'.outbox.relay'), 1, 15) AS BIT(60)) AS BIGINT) AS BIGINT)",
                         &r->lease_key);
    if (rc == 0 && r->lease_key == 0) r->lease_key = 1;
    int64_t v = 0;
    if (rc == 0 && r->held) {
        /* Still ours? (A replaced connection lost it with the old session.) */
        rc = lease_query(r,
                         "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                         "AND pid = pg_backend_pid() AND objsubid = 1 AND "
                         "(CAST(classid AS BIGINT) * 4294967296 + CAST(objid AS BIGINT)) = "
                         "CAST(? AS BIGINT)",
                         &v);
        if (rc == 0 && v == 0) {
            r->held = false;
            hook(r, "lease", 0);
        }
    }
    if (rc == 0 && !r->held) {
        rc = lease_query(r,
                         "SELECT CASE WHEN pg_try_advisory_lock(CAST(? AS BIGINT)) THEN 1 ELSE 0 "
                         "END",
                         &v);
        if (rc == 0 && v == 1) {
            r->held = true;
            hook(r, "lease", 1);
        }
    }
    r->lease_next_ms = now + r->o.poll_ms;
    if (rc != 0) {
        r->held = false;
        return rc;
    }
    return r->held ? 1 : 0;
}

int sl_outbox_relay_leader(const sl_outbox_relay *r)
{
    return !r->leased || r->held;
}

#define ROW_COLUMNS "SELECT seq, id, subject, type, envelope FROM outbox WHERE published_ms IS NULL"

/* Runs one of the row queries (`arg` bound first when >= 0, then the limit) into b. */
static int load_rows(sl_outbox_relay *r, relay_batch *b, const char *sql, int64_t arg)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(r->db, sql, &st);
    if (rc) return rc;
    int p = 1;
    if (arg >= 0) rc = sl_db_bind_int64(st, p++, arg);
    if (rc == 0) rc = sl_db_bind_int64(st, p, r->o.batch_max);
    while (rc == 0 && b->n < r->o.batch_max && (rc = sl_db_step(st)) == SL_DB_ROW) {
        sl_outbox_msg *m = &b->msgs[b->n];
        size_t li, ls, lt, le;
        /* The column pointers stay valid until the next step. */
        const char *id = sl_db_column_text(st, 1, &li);
        const char *subj = sl_db_column_text(st, 2, &ls);
        const char *type = sl_db_column_text(st, 3, &lt);
        const char *env = sl_db_column_text(st, 4, &le);
        char *blk = malloc(li + ls + lt + le + 4);
        if (blk == NULL) {
            rc = SL_ENOMEM;
            break;
        }
        m->seq = sl_db_column_int64(st, 0);
        m->id = memcpy(blk, id, li);
        blk[li] = '\0';
        m->subject = memcpy(blk + li + 1, subj, ls);
        blk[li + 1 + ls] = '\0';
        m->type = memcpy(blk + li + ls + 2, type, lt);
        blk[li + ls + 2 + lt] = '\0';
        m->envelope = memcpy(blk + li + ls + lt + 3, env, le);
        blk[li + ls + lt + 3 + le] = '\0';
        m->envelope_len = le;
        b->n++;
        rc = 0;
    }
    sl_db_stmt_done(st);
    if (rc < 0) free_batch(b);
    return rc < 0 ? rc : 0;
}

/* Fills b with the next rows: from the oldest when nothing is in flight; else rows that
 * became visible below everything in flight (a PostgreSQL transaction that took its seq
 * before, but committed after, the rows around it), then the rows after the cursor. */
static int load_batch(sl_outbox_relay *r, relay_batch *b)
{
    if (r->inflight == 0) return load_rows(r, b, ROW_COLUMNS " ORDER BY seq LIMIT ?", -1);
    int64_t low = INT64_MAX;
    for (unsigned i = 0; i < r->o.max_inflight; i++)
        if (r->slots[i].busy && r->slots[i].msgs[0].seq < low) low = r->slots[i].msgs[0].seq;
    int rc = load_rows(r, b, ROW_COLUMNS " AND seq < ? ORDER BY seq LIMIT ?", low);
    if (rc == 0 && b->n == 0)
        rc = load_rows(r, b, ROW_COLUMNS " AND seq > ? ORDER BY seq LIMIT ?", r->cursor);
    return rc;
}

static int step_update(sl_db *db, const char *sql, int64_t a, int64_t b, int64_t c, int nargs)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_int64(st, 1, a)) == 0 && (rc = sl_db_bind_int64(st, 2, b)) == 0 &&
        (nargs < 3 || (rc = sl_db_bind_int64(st, 3, c)) == 0))
        rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : (rc < 0 ? rc : SL_EIO);
}

static int mark_published(sl_outbox_relay *r, const relay_batch *b)
{
    if (sl_db_in_tx(r->db)) return SL_ESTATE; /* not inside the owner's transaction */
    int64_t now = sl_clock_wall_ms(r->o.clock);
    int64_t first = b->msgs[0].seq, last = b->msgs[b->n - 1].seq;
    /* Every seq of the range is in the batch: one statement marks exactly these rows. */
    if (last - first + 1 == (int64_t)b->n)
        return step_update(r->db,
                           "UPDATE outbox SET published_ms = ? WHERE seq BETWEEN ? AND ? "
                           "AND published_ms IS NULL",
                           now, first, last, 3);
    int rc = sl_db_begin(r->db);
    for (size_t i = 0; i < b->n && rc == 0; i++)
        rc = step_update(r->db, "UPDATE outbox SET published_ms = ? WHERE seq = ?", now,
                         b->msgs[i].seq, 0, 2);
    if (rc == 0) return sl_db_commit(r->db);
    sl_db_rollback(r->db);
    return rc;
}

static void schedule(sl_outbox_relay *r, int64_t delay_ms);

static void on_done(void *data, int status)
{
    relay_batch *b = data;
    sl_outbox_relay *r = b->r;
    SL_ASSERT(b->busy && r->inflight > 0);
    /* Not marked (status or database failure) → the rows come back once the pipeline is
     * empty. */
    if (status == 0 && mark_published(r, b) == 0) {
        hook(r, "published", (int64_t)b->n);
        if (!r->draining) r->failures = 0;
        b->busy = false;
        r->inflight--;
    } else {
        b->busy = false;
        r->inflight--;
        failed(r);
    }
    free_batch(b);
    if (r->inflight == 0) {
        r->draining = false;
        r->cursor = 0;
    }
    int64_t now = sl_clock_mono_ms(r->o.clock);
    schedule(r, r->failures && r->retry_at_ms > now ? r->retry_at_ms - now : 0);
}

static void maybe_prune(sl_outbox_relay *r, int64_t now_mono)
{
    if (r->o.retention_ms <= 0 || now_mono < r->next_prune_ms) return;
    /* Prune at most every tenth of the retention (bounded to a minute). */
    int64_t every = r->o.retention_ms / 10;
    r->next_prune_ms = now_mono + (every < 60000 ? every : 60000);
    int64_t cutoff = sl_clock_wall_ms(r->o.clock) - r->o.retention_ms, a = 0, b = 0;
    if (sl_outbox_prune(r->db, cutoff, &a) == 0 && sl_inbox_prune(r->db, cutoff, &b) == 0)
        hook(r, "pruned", a + b);
}

int sl_outbox_relay_pump(sl_outbox_relay *r, int64_t *next_ms)
{
    *next_ms = -1;
    if (r->draining || r->inflight == r->o.max_inflight) return 0;
    int64_t now = sl_clock_mono_ms(r->o.clock);
    if (r->failures && now < r->retry_at_ms) {
        if (r->inflight == 0) *next_ms = r->retry_at_ms - now;
        return 0;
    }
    if (sl_db_in_tx(r->db)) { /* the connection's owner is mid-transaction: come back */
        *next_ms = 1;
        return 0;
    }
    if (r->inflight == 0) {
        /* Between pipelines: take, or check, the relay lease. */
        int lr = lease_ensure(r, now);
        if (lr <= 0) {
            if (lr < 0) failed(r);
            *next_ms = lr < 0 ? backoff_ms(r) : r->lease_next_ms - now;
            return lr;
        }
        maybe_prune(r, now);
    }
    relay_batch *b = NULL;
    for (unsigned i = 0; i < r->o.max_inflight && b == NULL; i++)
        if (!r->slots[i].busy) b = &r->slots[i];
    SL_ASSERT(b != NULL);
    int rc = load_batch(r, b);
    if (rc) {
        failed(r);
        if (r->inflight == 0) *next_ms = backoff_ms(r);
        return rc;
    }
    size_t n = b->n;
    if (n == 0) return 0;
    if (b->msgs[n - 1].seq > r->cursor) r->cursor = b->msgs[n - 1].seq;
    b->busy = true;
    r->inflight++;
    /* done may run inside publish (and free b): read nothing of b after the call. */
    rc = r->pub.publish(r->pub.ctx, b->msgs, n, on_done, b);
    if (rc != 0) { /* done will not be called */
        b->busy = false;
        r->inflight--;
        free_batch(b);
        failed(r);
        if (r->inflight == 0) {
            r->draining = false;
            r->cursor = 0;
        }
    }
    if (r->failures) {
        if (r->inflight == 0) *next_ms = backoff_ms(r);
    } else if (n == r->o.batch_max && r->inflight < r->o.max_inflight) {
        *next_ms = 0; /* more may be waiting, and there is room */
    } else if (r->inflight == 0) {
        *next_ms = n == r->o.batch_max ? 0 : -1;
    }
    return (int)n;
}

/* ---- libuv driver ---- */

static void drive(sl_outbox_relay *r)
{
    int64_t next = 0;
    /* Bounded: yield to the loop after a few batches so other handles run. */
    for (int i = 0; i < 8 && next == 0; i++) {
        int rc = sl_outbox_relay_pump(r, &next);
        (void)rc; /* failures are counted and retried by the pump itself */
    }
    schedule(r, next < 0 ? (r->inflight ? -1 : r->o.poll_ms) : next);
}

static void on_timer(uv_timer_t *t)
{
    drive(t->data);
}

static void on_async(uv_async_t *a)
{
    drive(a->data);
}

static void schedule(sl_outbox_relay *r, int64_t delay_ms)
{
    if (!r->started) return;
    if (delay_ms < 0) {
        uv_timer_stop(&r->timer);
        return;
    }
    uv_timer_start(&r->timer, on_timer, (uint64_t)delay_ms, 0);
}

int sl_outbox_relay_start(sl_outbox_relay *r, uv_loop_t *loop)
{
    if (r->started || r->open_handles) return SL_ESTATE;
    int rc = uv_timer_init(loop, &r->timer);
    if (rc) return rc;
    rc = uv_async_init(loop, &r->async, on_async);
    if (rc) {
        uv_close((uv_handle_t *)&r->timer, NULL);
        return rc;
    }
    r->timer.data = r->async.data = r;
    r->loop = loop;
    r->started = 1;
    r->open_handles = 2;
    schedule(r, 0);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    sl_outbox_relay *r = h->data;
    r->open_handles--;
}

void sl_outbox_relay_stop(sl_outbox_relay *r)
{
    if (!r->started) return;
    r->started = 0;
    uv_close((uv_handle_t *)&r->timer, on_closed);
    uv_close((uv_handle_t *)&r->async, on_closed);
}

void sl_outbox_notify(sl_outbox_relay *r)
{
    if (r->started) uv_async_send(&r->async);
}

static void on_commit(void *data, unsigned flags)
{
    if (flags & SL_DB_TXF_OUTBOX) sl_outbox_notify(data);
}

void sl_outbox_relay_watch(sl_outbox_relay *r, sl_db *db)
{
    sl_db_set_commit_hook(db, on_commit, r);
}
