/*
 * The saga driver: ties the pure engine and the store to an abstract
 * executor (the HTTP client, plugged in by the service) and an abstract
 * timer. Every event goes through sl_saga_store_apply (load, apply, save in
 * one transaction) and only then are its commands executed, so what is sent
 * is always durable first. Replies are queued and applied one at a time from
 * a loop (never recursively, even when the executor answers inside send()).
 *
 * Bounded: at most max_active sagas are tracked; each has at most one call in
 * flight and one queued event per call, so the queue is bounded too. The
 * active table is a flat array scanned linearly (the earliest wake-up is
 * recomputed after each batch of events): fine for thousands of concurrent
 * sagas, to be replaced by a heap if one orchestrator ever runs far more.
 *
 * Several instances on one database: the driver claims a saga's lease
 * (sl_saga_store_claim) before it drives it, renews all its leases every
 * lease_ms / 3 with one statement, and feeds every event through
 * sl_saga_store_apply_leased, so once another instance took a saga over
 * (after the lease expired) this one's writes are refused and it lets the
 * saga go. Nothing is sent before its state was written under the lease.
 *
 * One loop thread: nothing here is thread-safe.
 */
#include "saga/saga_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ACTIVE_DEFAULT     10000
#define STORE_RETRY_MS_DEFAULT 1000
#define CONFLICT_RETRIES       3
#define RECOVER_PAGE           64
#define LEASE_MS_DEFAULT       15000
#define OWNER_MAX              SL_SAGA_OWNER_MAX

typedef struct entry {
    char id[SL_SAGA_ID_MAX + 1];
    int64_t wake_at_ms;
    bool needs_resume; /* a store call failed: re-drive it with RESUME at wake_at_ms */
    bool waiting;      /* its call failed and waits for a retry (WAKE can hurry it) */
    uint32_t step;     /* the step of its current call */
    int64_t lease;     /* the lease version claimed: every write is fenced by it */
} entry;

/* A call in flight, then (once replied) a queued event; also used for driver-made events. */
typedef struct pending {
    struct pending *next;                  /* queue link */
    struct pending *prev_live, *next_live; /* in-flight list (orphaned when the driver goes) */
    sl_saga_driver *drv;                   /* NULL once the driver is freed */
    char id[SL_SAGA_ID_MAX + 1];
    sl_saga_event ev;
    char data[SL_SAGA_DETAIL_MAX];
} pending;

struct sl_saga_driver {
    sl_saga_driver_options o;
    sl_rand rand;
    entry *active;
    size_t n_active;
    size_t n_waiting;         /* entries with `waiting` set: a wake with none is free */
    pending *live;            /* calls in flight */
    pending *q_head, *q_tail; /* events waiting to be applied */
    int busy;                 /* inside feed/pump: replies only enqueue */
    char owner[OWNER_MAX + 1];
    int64_t renew_at_ms; /* next lease renewal (wall), while sagas are tracked */
};

static int64_t now_ms(const sl_saga_driver *d)
{
    return sl_clock_wall_ns(d->o.clock) / 1000000;
}

static entry *find(sl_saga_driver *d, const char *id)
{
    for (size_t i = 0; i < d->n_active; i++)
        if (strcmp(d->active[i].id, id) == 0) return &d->active[i];
    return NULL;
}

static int track(sl_saga_driver *d, const char *id, entry **out)
{
    entry *e = find(d, id);
    if (e == NULL) {
        if (d->n_active >= d->o.max_active) return SL_ELIMIT;
        int64_t now = now_ms(d);
        if (d->o.registry != NULL) {
            int rc = sl__saga_registry_claim(d->o.registry, id, d, now);
            if (rc != 0) return rc; /* SL_EBUSY: another driver of the process drives it */
        }
        int64_t lease = 0;
        /* SL_EBUSY: another instance holds a live lease on it. */
        int rc = sl_saga_store_claim(d->o.db, id, d->owner, now, d->o.lease_ms, &lease);
        if (rc != 0) {
            if (d->o.registry != NULL) sl__saga_registry_release(d->o.registry, id, d);
            return rc;
        }
        if (d->n_active == 0) d->renew_at_ms = now + d->o.lease_ms / 3;
        e = &d->active[d->n_active++];
        memset(e, 0, sizeof *e);
        sl__saga_text_copy(e->id, sizeof e->id, id, strlen(id));
        e->lease = lease;
    }
    *out = e;
    return 0;
}

static void untrack(sl_saga_driver *d, const char *id)
{
    entry *e = find(d, id);
    if (e == NULL) return;
    if (d->o.registry != NULL) sl__saga_registry_release(d->o.registry, e->id, d);
    if (e->waiting) d->n_waiting--;
    *e = d->active[--d->n_active];
}

/* Copies what the timer and WAKE need from a saga's state into its entry. */
static void entry_set(sl_saga_driver *d, entry *e, const sl_saga_state *st)
{
    e->needs_resume = false;
    e->wake_at_ms = sl_saga_due_ms(d->o.def, st);
    bool waiting = st->phase == SL_SAGA_PHASE_WAITING;
    if (waiting != e->waiting) {
        if (waiting)
            d->n_waiting++;
        else
            d->n_waiting--;
    }
    e->waiting = waiting;
    e->step = st->step;
}

static void enqueue(sl_saga_driver *d, pending *p)
{
    p->next = NULL;
    if (d->q_tail)
        d->q_tail->next = p;
    else
        d->q_head = p;
    d->q_tail = p;
}

static void live_unlink(sl_saga_driver *d, pending *p)
{
    if (p->prev_live)
        p->prev_live->next_live = p->next_live;
    else if (d->live == p)
        d->live = p->next_live;
    if (p->next_live) p->next_live->prev_live = p->prev_live;
    p->prev_live = p->next_live = NULL;
}

static void pump(sl_saga_driver *d);
static void rearm(sl_saga_driver *d);

static void on_reply(void *data, const sl_saga_reply *r)
{
    pending *p = data;
    sl_saga_driver *d = p->drv;
    if (d == NULL) { /* the driver was freed while this call was in flight */
        free(p);
        return;
    }
    live_unlink(d, p);
    p->ev.kind = r->kind == SL_SAGA_REPLY_OK        ? SL_SAGA_EV_OK
                 : r->kind == SL_SAGA_REPLY_REFUSED ? SL_SAGA_EV_REFUSED
                                                    : SL_SAGA_EV_FAILED;
    size_t n = r->data == NULL ? 0 : (r->len < sizeof p->data ? r->len : sizeof p->data);
    if (n > 0) memcpy(p->data, r->data, n);
    p->ev.data = (sl_slice){p->data, n};
    p->ev.retry_after_ms = r->retry_after_ms;
    enqueue(d, p);
    if (!d->busy) pump(d);
}

/* Hands one SEND command to the executor; failures to start become a queued FAILED event. */
static void do_send(sl_saga_driver *d, const sl_saga_state *st, const sl_saga_command *c)
{
    pending *p = calloc(1, sizeof *p);
    if (p == NULL) return; /* the step's timeout (TIMER) will retry it */
    p->drv = d;
    memcpy(p->id, st->id, sizeof p->id);
    p->ev = (sl_saga_event){.step = c->step, .call = c->call, .attempt = c->attempt};
    char *input = NULL;
    int rc = sl_saga_store_input(d->o.db, st->id, &input);
    if (rc == 0) {
        sl_saga_call call = {
            .saga_id = st->id,
            .saga_type = d->o.def->type,
            .step = c->step,
            .step_name = d->o.def->steps[c->step].name,
            .call = c->call,
            .attempt = c->attempt,
            .idempotency_key = c->key,
            .input_json = input,
            .timeout_ms = c->timeout_ms,
        };
        p->next_live = d->live;
        if (d->live) d->live->prev_live = p;
        d->live = p;
        rc = d->o.executor.send(d->o.executor.ctx, &call, on_reply, p);
        if (rc != 0) live_unlink(d, p);
    }
    free(input);
    if (rc != 0) {
        static const char msg[] = "executor refused to start the call";
        p->ev.kind = SL_SAGA_EV_FAILED;
        memcpy(p->data, msg, sizeof msg - 1);
        p->ev.data = (sl_slice){p->data, sizeof msg - 1};
        enqueue(d, p);
    }
}

/* After an ignored event, the tracked wake-up may be stale: take it from the stored state. */
static void sync_entry(sl_saga_driver *d, const char *id)
{
    entry *e = find(d, id);
    if (e == NULL) return;
    sl_saga_state st;
    int rc = sl_saga_store_load(d->o.db, d->o.def, id, &st);
    if (rc == 0 && (st.status == SL_SAGA_RUNNING || st.status == SL_SAGA_COMPENSATING)) {
        entry_set(d, e, &st);
    } else if (rc == 0 || rc == SL_ENOTFOUND || rc == SL_EPARSE) {
        untrack(d, id);
    } else {
        e->needs_resume = true;
        e->wake_at_ms = now_ms(d) + d->o.store_retry_ms;
    }
}

/* Applies one event to saga `id` through the store and executes its commands. */
static int feed(sl_saga_driver *d, const char *id, const sl_saga_event *ev)
{
    sl_saga_state st;
    sl_saga_output out;
    int rc;
    int64_t now = now_ms(d);
    entry *held = find(d, id);
    for (int i = 0;; i++) {
        /* Not tracked here (an admin abort of a saga another driver holds): the version check
         * alone orders the write against the holder's. */
        rc = held != NULL
                 ? sl_saga_store_apply_leased(d->o.db, d->o.def, id, held->lease, ev, now, &d->rand,
                                              &st, &out)
                 : sl_saga_store_apply(d->o.db, d->o.def, id, ev, now, &d->rand, &st, &out);
        if (rc != SL_ECONFLICT || i + 1 >= CONFLICT_RETRIES) break;
    }
    if (rc == SL_EBUSY && held != NULL) {
        untrack(d, id); /* fenced: another instance took it over; nothing was written or sent */
        return rc;
    }
    if (rc == SL_SAGA_IGNORED) {
        sync_entry(d, id);
        return rc;
    }
    if (rc == SL_ESTATE) return rc; /* an ABORT the saga cannot take: nothing changed */
    if (rc == SL_ENOTFOUND || rc == SL_EPARSE) {
        untrack(d, id); /* nothing to drive: gone, or unreadable (an operator must look) */
        return rc;
    }
    entry *e = find(d, id);
    if (rc != 0) {
        /* The event is lost with the failed transaction; the saga is still at its last durable
         * state. Re-drive it later as after a crash: RESUME re-sends what is in flight. */
        if (e != NULL) {
            e->needs_resume = true;
            e->wake_at_ms = now + d->o.store_retry_ms;
        }
        return rc;
    }
    if (d->o.metrics_cb != NULL) {
        if (ev->kind == SL_SAGA_EV_START)
            d->o.metrics_cb(d->o.metrics_data, d->o.def->type, SL_SAGA_STATUS_COUNT, out.from);
        if (out.from != st.status)
            d->o.metrics_cb(d->o.metrics_data, d->o.def->type, out.from, st.status);
    }
    if (st.status != SL_SAGA_RUNNING && st.status != SL_SAGA_COMPENSATING) {
        untrack(d, id);
        e = NULL;
    } else if (e != NULL) {
        entry_set(d, e, &st);
    }
    for (size_t i = 0; i < out.n_cmds; i++)
        if (out.cmds[i].kind == SL_SAGA_CMD_SEND) do_send(d, &st, &out.cmds[i]);
    return 0;
}

static void pump(sl_saga_driver *d)
{
    d->busy++;
    while (d->q_head != NULL) {
        pending *p = d->q_head;
        d->q_head = p->next;
        if (d->q_head == NULL) d->q_tail = NULL;
        (void)feed(d, p->id, &p->ev);
        free(p);
    }
    d->busy--;
    rearm(d);
}

/* Runs one driver-made event now (start, resume), then whatever replies it queued. */
static int run_event(sl_saga_driver *d, const char *id, sl_saga_event_kind kind)
{
    entry *e;
    int rc = track(d, id, &e);
    if (rc != 0) return rc;
    sl_saga_event ev = {.kind = kind};
    d->busy++;
    rc = feed(d, id, &ev);
    d->busy--;
    pump(d);
    return rc;
}

/* Extends every lease this driver holds (one statement). A failure is retried at the next
 * renewal; a lease that expired meanwhile and was taken over fences this driver's next write. */
static void renew(sl_saga_driver *d, int64_t now)
{
    if (d->n_active == 0 || d->renew_at_ms > now) return;
    if (sl_saga_store_renew(d->o.db, d->o.def->type, d->owner, now, d->o.lease_ms, NULL) != 0) {
        /* Nothing better to do: try again soon. */
    }
    d->renew_at_ms = now + d->o.lease_ms / 3;
}

static void on_timer(void *data)
{
    sl_saga_driver *d = data;
    int64_t now = now_ms(d);
    renew(d, now);
    for (size_t i = 0; i < d->n_active; i++) {
        entry *e = &d->active[i];
        if (e->wake_at_ms <= 0 || e->wake_at_ms > now) continue;
        pending *p = calloc(1, sizeof *p);
        if (p == NULL) break; /* rearm() below fires again at once */
        memcpy(p->id, e->id, sizeof p->id);
        p->ev.kind = e->needs_resume ? SL_SAGA_EV_RESUME : SL_SAGA_EV_TIMER;
        enqueue(d, p);
    }
    pump(d);
}

static void rearm(sl_saga_driver *d)
{
    int64_t next = 0;
    for (size_t i = 0; i < d->n_active; i++) {
        int64_t w = d->active[i].wake_at_ms;
        if (w > 0 && (next == 0 || w < next)) next = w;
    }
    if (d->n_active > 0 && (next == 0 || d->renew_at_ms < next)) next = d->renew_at_ms;
    if (next == 0) {
        d->o.timer.disarm(d->o.timer.ctx);
        return;
    }
    int64_t delay = next - now_ms(d);
    if (delay < 0) delay = 0;
    if (d->o.timer.arm(d->o.timer.ctx, delay, on_timer, d) != 0) {
        /* Nothing better to do: the next event rearms. */
    }
}

int sl_saga_driver_new(const sl_saga_driver_options *opt, sl_saga_driver **out)
{
    *out = NULL;
    if (opt == NULL || opt->db == NULL || opt->clock == NULL || opt->executor.send == NULL ||
        opt->timer.arm == NULL || opt->timer.disarm == NULL)
        return SL_EINVAL;
    if (sl_saga_def_valid(opt->def) != 0) return SL_ECONFIG;
    sl_saga_driver *d = calloc(1, sizeof *d);
    if (d == NULL) return SL_ENOMEM;
    d->o = *opt;
    if (d->o.max_active == 0) d->o.max_active = MAX_ACTIVE_DEFAULT;
    if (d->o.store_retry_ms <= 0) d->o.store_retry_ms = STORE_RETRY_MS_DEFAULT;
    if (d->o.max_active > 10 * 1000 * 1000) d->o.max_active = 10 * 1000 * 1000;
    if (d->o.lease_ms <= 0) d->o.lease_ms = LEASE_MS_DEFAULT;
    if (d->o.lease_ms < 3) d->o.lease_ms = 3;
    d->active = calloc(d->o.max_active, sizeof *d->active);
    if (d->active == NULL) {
        free(d);
        return SL_ENOMEM;
    }
    if (opt->seed != 0) {
        sl_rand_seed(&d->rand, opt->seed);
    } else if (sl_rand_seed_os(&d->rand) != 0) {
        sl_rand_seed(&d->rand, (uint64_t)sl_clock_mono_ns(opt->clock));
    }
    if (opt->owner != NULL && opt->owner[0] != '\0') {
        sl__saga_text_copy(d->owner, sizeof d->owner, opt->owner, strlen(opt->owner));
    } else {
        /* Random: a restarted process is a new owner (its old leases expire or were given
         * back). Its own seeded generator, so a fixed jitter seed does not repeat owners. */
        sl_rand r;
        if (sl_rand_seed_os(&r) != 0) sl_rand_seed(&r, (uint64_t)sl_clock_mono_ns(opt->clock));
        snprintf(d->owner, sizeof d->owner, "%016llx%016llx", (unsigned long long)sl_rand_next(&r),
                 (unsigned long long)sl_rand_next(&r));
    }
    d->o.owner = d->owner;
    int rc = sl_saga_store_owner_up(d->o.db, d->owner);
    if (rc != 0) {
        sl_saga_store_owner_down(d->o.db, d->owner);
        free(d->active);
        free(d);
        return rc == SL_EBUSY ? SL_EEXIST : rc;
    }
    *out = d;
    return 0;
}

void sl_saga_driver_free(sl_saga_driver *d)
{
    if (d == NULL) return;
    d->o.timer.disarm(d->o.timer.ctx);
    for (pending *p = d->live; p != NULL; p = p->next_live)
        p->drv = NULL;
    while (d->q_head != NULL) {
        pending *p = d->q_head;
        d->q_head = p->next;
        free(p);
    }
    if (d->o.registry != NULL)
        for (size_t i = 0; i < d->n_active; i++)
            sl__saga_registry_release(d->o.registry, d->active[i].id, d);
    /* A clean stop hands the sagas over at once instead of after lease_ms. */
    if (d->n_active > 0 && !sl_db_in_tx(d->o.db) &&
        sl_saga_store_release(d->o.db, d->o.def->type, d->owner) != 0) {
        /* They are taken over when the leases expire. */
    }
    sl_saga_store_owner_down(d->o.db, d->owner);
    free(d->active);
    free(d);
}

int sl_saga_driver_recover(sl_saga_driver *d, size_t *resumed)
{
    size_t count = 0;
    char after[SL_SAGA_ID_MAX + 1] = "";
    sl_saga_summary page[RECOVER_PAGE];
    int rc = 0;
    for (;;) {
        size_t n;
        rc = sl_saga_store_list(d->o.db, d->o.def->type, SL_SAGA_LIST_UNFINISHED, after, page,
                                RECOVER_PAGE, &n);
        if (rc != 0 || n == 0) break;
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = run_event(d, page[i].id, SL_SAGA_EV_RESUME);
            if (rc == 0 || rc == SL_SAGA_IGNORED) {
                count++;
                rc = 0;
            } else if (rc != SL_ELIMIT) { /* SL_EBUSY: another driver of the process has it */
                rc = 0; /* that saga is re-driven by its entry (or dropped); go on */
            }
        }
        if (rc != 0 || n < RECOVER_PAGE) break;
        memcpy(after, page[n - 1].id, sizeof after);
    }
    if (resumed) *resumed = count;
    return rc;
}

int sl_saga_driver_start(sl_saga_driver *d, const char *id)
{
    int rc = run_event(d, id, SL_SAGA_EV_START);
    return rc == SL_SAGA_IGNORED ? 0 : rc;
}

int sl_saga_driver_resume_stuck(sl_saga_driver *d, const char *id)
{
    sl_saga_state st;
    int rc = sl_saga_store_load(d->o.db, d->o.def, id, &st);
    if (rc != 0) return rc;
    if (st.status != SL_SAGA_STUCK) return SL_ESTATE;
    rc = run_event(d, id, SL_SAGA_EV_ADMIN_RESUME);
    if (rc == SL_SAGA_IGNORED) {
        untrack(d, id);
        return SL_ESTATE;
    }
    return rc;
}

int sl_saga_driver_abort(sl_saga_driver *d, const char *id)
{
    sl_saga_state st;
    int rc = sl_saga_store_load(d->o.db, d->o.def, id, &st);
    if (rc != 0) return rc;
    if (st.status == SL_SAGA_COMPENSATING || st.status == SL_SAGA_COMPENSATED) return 0;
    sl_saga_event ev = {.kind = SL_SAGA_EV_ABORT};
    entry *e;
    rc = track(d, id, &e);
    if (rc == SL_EBUSY || rc == SL_ELIMIT) {
        /* Another driver tracks it (or this one is full): apply the abort and send the first
         * compensation from here; the tracking driver's next timer finds the new state. */
        d->busy++;
        rc = feed(d, id, &ev);
        d->busy--;
        pump(d);
    } else if (rc == 0) {
        d->busy++;
        rc = feed(d, id, &ev);
        d->busy--;
        if (rc == SL_ESTATE) untrack(d, id);
        pump(d);
    }
    return rc == SL_SAGA_IGNORED ? 0 : rc;
}

void sl_saga_driver_wake(sl_saga_driver *d, uint32_t step_mask, size_t *woken)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_active && d->n_waiting > 0; i++) {
        entry *e = &d->active[i];
        if (!e->waiting || e->needs_resume || e->step >= 32 || !(step_mask & (1u << e->step)))
            continue;
        pending *p = calloc(1, sizeof *p);
        if (p == NULL) break; /* the rest retry at their backoff */
        memcpy(p->id, e->id, sizeof p->id);
        p->ev.kind = SL_SAGA_EV_WAKE;
        e->waiting = false; /* one WAKE per wait */
        d->n_waiting--;
        enqueue(d, p);
        n++;
    }
    if (woken) *woken = n;
    if (n > 0 && !d->busy) pump(d);
}

int sl_saga_driver_sweep(sl_saga_driver *d, int64_t grace_ms, size_t *picked)
{
    size_t count = 0;
    sl_saga_summary page[RECOVER_PAGE];
    int64_t now = now_ms(d);
    int64_t before = now - (grace_ms > 0 ? grace_ms : 0);
    int rc = 0;
    /* Pass 0: overdue sagas (never started, or their timer long past); pass 1: sagas whose
     * owner stopped renewing its lease (taken over as soon as it expired). Both through the
     * same claim. */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        char after[SL_SAGA_ID_MAX + 1] = "";
        for (;;) {
            size_t n;
            rc = pass == 0 ? sl_saga_store_list_due(d->o.db, d->o.def->type, before, after, page,
                                                    RECOVER_PAGE, &n)
                           : sl_saga_store_list_orphaned(d->o.db, d->o.def->type, now, after, page,
                                                         RECOVER_PAGE, &n);
            if (rc != 0 || n == 0) break;
            for (size_t i = 0; i < n && rc == 0; i++) {
                if (find(d, page[i].id) != NULL) continue; /* this driver has it: its timer runs */
                rc = run_event(d, page[i].id, SL_SAGA_EV_RESUME);
                if (rc == 0 || rc == SL_SAGA_IGNORED) {
                    count++;
                    rc = 0;
                } else if (rc != SL_ELIMIT) {
                    rc = 0; /* SL_EBUSY: another driver holds it; store errors: re-driven later */
                }
            }
            if (rc != 0 || n < RECOVER_PAGE) break;
            memcpy(after, page[n - 1].id, sizeof after);
        }
    }
    if (picked) *picked = count;
    return rc;
}

size_t sl_saga_driver_active(const sl_saga_driver *d)
{
    return d->n_active;
}
