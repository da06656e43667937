/*
 * The outbox relay: a pump that reads the oldest unpublished outbox rows in
 * `seq` order, hands them to a publisher as one batch, and marks them
 * published only when the publisher confirmed the whole batch. A failed
 * batch is retried whole after an exponential backoff, so nothing of a
 * subject overtakes an earlier event of the same subject, and a crash
 * between publish and mark republishes (at least once; the bus and the
 * consumers' inbox drop the duplicate). Plus a thin libuv driver.
 */
#include <shoal/outbox.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct sl_outbox_relay {
    sl_db *db;
    sl_outbox_publisher pub;
    sl_outbox_relay_options o;
    sl_outbox_msg *batch; /* batch_max slots; strings owned */
    size_t n;
    int inflight;
    int failures;
    int64_t retry_at_ms;   /* monotonic */
    int64_t next_prune_ms; /* monotonic */
    /* libuv driver */
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_async_t async;
    int started;
    int open_handles;
};

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
    if (r->o.retry_base_ms <= 0) r->o.retry_base_ms = 100;
    if (r->o.retry_max_ms <= 0) r->o.retry_max_ms = 30000;
    if (r->o.poll_ms <= 0) r->o.poll_ms = 1000;
    if (r->o.clock == NULL) r->o.clock = sl_clock_system();
    r->batch = calloc(r->o.batch_max, sizeof *r->batch);
    if (r->batch == NULL) {
        free(r);
        return SL_ENOMEM;
    }
    *out = r;
    return 0;
}

static void free_batch(sl_outbox_relay *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free((char *)r->batch[i].id);
        free((char *)r->batch[i].subject);
        free((char *)r->batch[i].type);
        free((char *)r->batch[i].envelope);
    }
    memset(r->batch, 0, r->n * sizeof *r->batch);
    r->n = 0;
}

void sl_outbox_relay_free(sl_outbox_relay *r)
{
    if (r == NULL) return;
    assert(r->open_handles == 0 && "sl_outbox_relay_stop, then run the loop, then free");
    free_batch(r);
    free(r->batch);
    free(r);
}

int sl_outbox_relay_busy(const sl_outbox_relay *r)
{
    return r->inflight;
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
    hook(r, "publish_failed", r->failures);
}

static int load_batch(sl_outbox_relay *r)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(r->db,
                           "SELECT seq, id, subject, type, envelope FROM outbox "
                           "WHERE published_ms IS NULL ORDER BY seq LIMIT ?",
                           &st);
    if (rc) return rc;
    rc = sl_db_bind_int64(st, 1, r->o.batch_max);
    while (rc == 0 && r->n < r->o.batch_max && (rc = sl_db_step(st)) == SL_DB_ROW) {
        sl_outbox_msg *m = &r->batch[r->n++];
        size_t len;
        m->seq = sl_db_column_int64(st, 0);
        m->id = strdup(sl_db_column_text(st, 1, NULL));
        m->subject = strdup(sl_db_column_text(st, 2, NULL));
        m->type = strdup(sl_db_column_text(st, 3, NULL));
        /* Read the length first: argument evaluation order is unspecified. */
        const char *env = sl_db_column_text(st, 4, &len);
        m->envelope = strndup(env, len);
        m->envelope_len = len;
        rc = (m->id && m->subject && m->type && m->envelope) ? 0 : SL_ENOMEM;
    }
    sl_db_stmt_done(st);
    if (rc < 0) free_batch(r);
    return rc < 0 ? rc : 0;
}

static int mark_published(sl_outbox_relay *r)
{
    int rc = sl_db_begin(r->db);
    if (rc) return rc;
    int64_t now = sl_clock_wall_ms(r->o.clock);
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        sl_db_stmt *st;
        rc = sl_db_prepare(r->db, "UPDATE outbox SET published_ms = ? WHERE seq = ?", &st);
        if (rc) break;
        if ((rc = sl_db_bind_int64(st, 1, now)) == 0 &&
            (rc = sl_db_bind_int64(st, 2, r->batch[i].seq)) == 0)
            rc = sl_db_step(st);
        rc = rc == SL_DB_DONE ? 0 : (rc < 0 ? rc : SL_EIO);
        sl_db_stmt_done(st);
    }
    if (rc == 0) return sl_db_commit(r->db);
    sl_db_rollback(r->db);
    return rc;
}

static void schedule(sl_outbox_relay *r, int64_t delay_ms);

static void on_done(void *data, int status)
{
    sl_outbox_relay *r = data;
    assert(r->inflight);
    r->inflight = 0;
    /* Not marked (status or database failure) → the same rows come back on the next pump. */
    if (status == 0 && mark_published(r) == 0) {
        hook(r, "published", (int64_t)r->n);
        r->failures = 0;
    } else {
        failed(r);
    }
    free_batch(r);
    schedule(r, r->failures ? backoff_ms(r) : 0);
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
    if (r->inflight) return 0;
    int64_t now = sl_clock_mono_ms(r->o.clock);
    if (r->failures && now < r->retry_at_ms) {
        *next_ms = r->retry_at_ms - now;
        return 0;
    }
    if (sl_db_in_tx(r->db)) { /* the connection's owner is mid-transaction: come back */
        *next_ms = 1;
        return 0;
    }
    maybe_prune(r, now);
    int rc = load_batch(r);
    if (rc) {
        failed(r);
        *next_ms = backoff_ms(r);
        return rc;
    }
    if (r->n == 0) return 0;
    size_t n = r->n;
    r->inflight = 1;
    rc = r->pub.publish(r->pub.ctx, r->batch, n, on_done, r);
    if (rc != 0) { /* done will not be called */
        r->inflight = 0;
        free_batch(r);
        failed(r);
    }
    if (!r->inflight) *next_ms = r->failures ? backoff_ms(r) : 0;
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
