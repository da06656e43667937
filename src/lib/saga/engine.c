/*
 * The saga engine: definition checks, instance initialisation and the pure
 * transition function sl_saga_apply (events in, commands and history out).
 * No I/O, no clock, no allocation; the only side input is the sl_rand that
 * draws backoff jitter. docs/sagas.md has the state diagram this implements;
 * tests/unit/saga_test.c covers every transition and runs the randomised
 * simulated-world check.
 */
#include "saga/saga_int.h"

#include <stdio.h>
#include <string.h>

int sl_saga_def_valid(const sl_saga_def *def)
{
    if (def == NULL || !sl__saga_name_valid(def->type) || def->steps == NULL) return SL_ECONFIG;
    if (def->n_steps == 0 || def->n_steps > SL_SAGA_STEPS_MAX) return SL_ECONFIG;
    if (def->pivot >= def->n_steps) return SL_ECONFIG;
    for (size_t i = 0; i < def->n_steps; i++) {
        const sl_saga_step_def *s = &def->steps[i];
        if (!sl__saga_name_valid(s->name)) return SL_ECONFIG;
        for (size_t j = 0; j < i; j++)
            if (strcmp(def->steps[j].name, s->name) == 0) return SL_ECONFIG;
        if (s->timeout_ms <= 0 || s->stuck_after_ms < 0) return SL_ECONFIG;
        if (sl_retry_config_valid(&s->retry) != 0) return SL_ECONFIG;
    }
    if (def->deadline_ms < 0) return SL_ECONFIG;
    return 0;
}

int sl_saga_state_init(sl_saga_state *st, const sl_saga_def *def, const char *id)
{
    SL_ASSERT(def != NULL && def->n_steps <= SL_SAGA_STEPS_MAX);
    if (!sl__saga_id_valid(id)) return SL_EINVAL;
    memset(st, 0, sizeof *st);
    snprintf(st->id, sizeof st->id, "%s", id);
    st->status = SL_SAGA_RUNNING;
    st->stuck_from = SL_SAGA_RUNNING;
    st->call = SL_SAGA_ACTION;
    st->phase = SL_SAGA_PHASE_IDLE;
    st->n_steps = (uint32_t)def->n_steps;
    for (size_t i = 0; i < def->n_steps; i++)
        st->step_status[i] = SL_SAGA_STEP_PENDING;
    return 0;
}

bool sl_saga_abortable(const sl_saga_def *def, const sl_saga_state *st)
{
    if (st->status != SL_SAGA_RUNNING || def->pivot >= st->n_steps) return false;
    if (st->step_status[def->pivot] == SL_SAGA_STEP_DONE) return false; /* past the pivot */
    if (st->step > def->pivot) return false;
    /* The pivot's outcome is unknown once sent: it can be undone only with its compensation. */
    return st->step < def->pivot || def->pivot_compensable;
}

/* The deadline applies while the saga can still abort on its own. */
static bool deadline_applies(const sl_saga_def *def, const sl_saga_state *st)
{
    return st->deadline_at_ms > 0 && sl_saga_abortable(def, st);
}

int64_t sl_saga_due_ms(const sl_saga_def *def, const sl_saga_state *st)
{
    if (st->status != SL_SAGA_RUNNING && st->status != SL_SAGA_COMPENSATING) return 0;
    int64_t due = st->phase == SL_SAGA_PHASE_INFLIGHT || st->phase == SL_SAGA_PHASE_WAITING
                      ? st->wake_at_ms
                      : 0;
    if (deadline_applies(def, st) && (due == 0 || st->deadline_at_ms < due))
        due = st->deadline_at_ms;
    return due;
}

/* ---- output helpers ---- */

static sl_saga_history_entry *hist(sl_saga_state *st, sl_saga_output *out, int64_t now,
                                   sl_saga_hist_kind kind, bool step_level)
{
    SL_ASSERT(out->n_hist < SL_SAGA_HISTORY_MAX);
    sl_saga_history_entry *h = &out->hist[out->n_hist++];
    h->seq = ++st->history_seq;
    h->at_ms = now;
    h->kind = kind;
    h->step = step_level ? (int32_t)st->step : -1;
    h->call = st->call;
    h->attempt = step_level ? st->attempt : 0;
    h->detail = (sl_slice){"", 0};
    return h;
}

/* A history entry whose detail is `text` copied (sanitised) into the output's own storage. */
static void hist_text(sl_saga_state *st, sl_saga_output *out, int64_t now, sl_saga_hist_kind kind,
                      bool step_level, const char *text, size_t len)
{
    size_t slot = out->n_hist;
    sl_saga_history_entry *h = hist(st, out, now, kind, step_level);
    size_t n = sl__saga_text_copy(out->_text[slot], sizeof out->_text[slot], text, len);
    h->detail = (sl_slice){out->_text[slot], n};
}

static sl_saga_command *cmd(sl_saga_output *out, sl_saga_cmd_kind kind)
{
    SL_ASSERT(out->n_cmds < SL_SAGA_COMMANDS_MAX);
    sl_saga_command *c = &out->cmds[out->n_cmds++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    return c;
}

/* ---- transitions ---- */

/* Sends attempt `attempt` of the current call (step, call). */
static void send_attempt(const sl_saga_def *def, sl_saga_state *st, int64_t now, uint32_t attempt,
                         sl_saga_output *out)
{
    const sl_saga_step_def *sd = &def->steps[st->step];
    st->phase = SL_SAGA_PHASE_INFLIGHT;
    st->attempt = attempt;
    st->wake_at_ms = now + sd->timeout_ms;
    st->attempts_total++;
    sl_saga_command *c = cmd(out, SL_SAGA_CMD_SEND);
    c->step = st->step;
    c->call = st->call;
    c->attempt = attempt;
    c->timeout_ms = sd->timeout_ms;
    c->at_ms = now;
    /* The idempotency key names the saga and the step (docs/sagas.md, "Why re-sending is safe");
     * the call kind keeps an action and its compensation apart at participants that serve both on
     * one endpoint. */
    snprintf(c->key, sizeof c->key, "%s:%s:%s", st->id, sd->name, sl_saga_call_name(st->call));
    sl_saga_history_entry *h = hist(st, out, now, SL_SAGA_HIST_SENT, true);
    h->detail = (sl_slice){c->key, strlen(c->key)};
}

/* Starts a new call (a new step's action or a step's compensation) at attempt 1. */
static void start_call(const sl_saga_def *def, sl_saga_state *st, int64_t now, uint32_t step,
                       sl_saga_call_kind call, sl_saga_output *out)
{
    st->step = step;
    st->call = call;
    st->bound_base = 0;
    st->prev_delay_ms = 0;
    st->first_attempt_ms = now;
    st->step_status[step] =
        call == SL_SAGA_ACTION ? SL_SAGA_STEP_ACTING : SL_SAGA_STEP_COMPENSATING;
    send_attempt(def, st, now, 1, out);
}

static void finish(sl_saga_state *st, int64_t now, sl_saga_status outcome, sl_saga_output *out)
{
    st->status = outcome;
    st->phase = SL_SAGA_PHASE_NONE;
    st->wake_at_ms = 0;
    hist(st, out, now,
         outcome == SL_SAGA_COMPLETED ? SL_SAGA_HIST_COMPLETED : SL_SAGA_HIST_COMPENSATED, false);
    cmd(out, SL_SAGA_CMD_FINISHED)->outcome = outcome;
}

/* Parks the saga for an operator; `why` is copied (sanitised, truncated). */
static void park(sl_saga_state *st, int64_t now, const char *why, sl_saga_output *out)
{
    st->stuck_from = st->status;
    st->status = SL_SAGA_STUCK;
    st->phase = SL_SAGA_PHASE_NONE;
    st->wake_at_ms = 0;
    sl__saga_text_copy(st->stuck_reason, sizeof st->stuck_reason, why, strlen(why));
    hist_text(st, out, now, SL_SAGA_HIST_STUCK, true, st->stuck_reason, strlen(st->stuck_reason));
    cmd(out, SL_SAGA_CMD_FINISHED)->outcome = SL_SAGA_STUCK;
}

/* Compensates the highest DONE step below `below`, or ends compensated when there is none. */
static void compensate_next(const sl_saga_def *def, sl_saga_state *st, int64_t now, uint32_t below,
                            sl_saga_output *out)
{
    for (uint32_t j = below; j-- > 0;) {
        if (st->step_status[j] == SL_SAGA_STEP_DONE) {
            start_call(def, st, now, j, SL_SAGA_COMPENSATION, out);
            return;
        }
    }
    finish(st, now, SL_SAGA_COMPENSATED, out);
}

/*
 * Gives up before the pivot (the deadline passed, or an operator aborts): the current call is
 * compensated first (it may have taken effect even without a reply; compensations are safe
 * for an action that never happened), then every done step below it. `reason` becomes the
 * refusal reason; `why` the history detail. The caller checked sl_saga_abortable.
 */
static void abort_now(const sl_saga_def *def, sl_saga_state *st, int64_t now, const char *reason,
                      const char *why, sl_saga_output *out)
{
    SL_ASSERT(sl_saga_abortable(def, st));
    hist_text(st, out, now, SL_SAGA_HIST_ABORTED, false, why, strlen(why));
    snprintf(st->reason, sizeof st->reason, "%s", reason);
    st->status = SL_SAGA_COMPENSATING;
    start_call(def, st, now, st->step, SL_SAGA_COMPENSATION, out);
}

static void set_deadline(const sl_saga_def *def, sl_saga_state *st, int64_t now)
{
    if (def->deadline_ms > 0 && st->deadline_at_ms == 0)
        st->deadline_at_ms = now + def->deadline_ms;
}

static bool deadline_passed(const sl_saga_def *def, const sl_saga_state *st, int64_t now)
{
    return deadline_applies(def, st) && now >= st->deadline_at_ms;
}

static void on_ok(const sl_saga_def *def, sl_saga_state *st, int64_t now, sl_saga_output *out)
{
    if (st->status == SL_SAGA_COMPENSATING) {
        st->step_status[st->step] = SL_SAGA_STEP_COMPENSATED;
        compensate_next(def, st, now, st->step, out);
        return;
    }
    st->step_status[st->step] = SL_SAGA_STEP_DONE;
    if (st->step < def->pivot && deadline_passed(def, st, now)) {
        /* Done, but too late to go on: undo it and everything before (the pivot decides money
         * only within the deadline, whichever of the reply and the timer came first). */
        abort_now(def, st, now, "timeout", "deadline", out);
        return;
    }
    if (st->step + 1 == def->n_steps) {
        finish(st, now, SL_SAGA_COMPLETED, out);
        return;
    }
    start_call(def, st, now, st->step + 1, SL_SAGA_ACTION, out);
}

static void on_refused(const sl_saga_def *def, sl_saga_state *st, int64_t now, sl_slice reason,
                       sl_saga_output *out)
{
    const char *name = def->steps[st->step].name;
    char why[SL_SAGA_REASON_MAX];
    char r[SL_SAGA_REASON_MAX];
    sl__saga_text_copy(r, sizeof r, reason.ptr, reason.len);
    if (st->status == SL_SAGA_COMPENSATING) {
        /* Compensations must succeed; a refusal needs a human (docs/sagas.md, "stuck"). */
        snprintf(why, sizeof why, "compensation of %s refused: %.200s", name, r);
        park(st, now, why, out);
        return;
    }
    if (st->step > def->pivot) {
        /* After the pivot there is no way back: retrying a refusal would loop; park it. */
        snprintf(why, sizeof why, "step %s refused after the pivot: %.190s", name, r);
        park(st, now, why, out);
        return;
    }
    /* Up to and including the pivot, a refusal had no effect: undo what was done before. */
    st->step_status[st->step] = SL_SAGA_STEP_REFUSED;
    snprintf(st->reason, sizeof st->reason, "%s", r);
    st->status = SL_SAGA_COMPENSATING;
    compensate_next(def, st, now, st->step, out);
}

/* The current attempt failed transiently (or timed out): retry later, or park when a bound is
 * reached. */
static void on_failure(const sl_saga_def *def, sl_saga_state *st, int64_t now,
                       int64_t retry_after_ms, sl_rand *rand, sl_saga_output *out)
{
    const sl_saga_step_def *sd = &def->steps[st->step];
    uint32_t tried = st->attempt - st->bound_base;
    char why[SL_SAGA_REASON_MAX];
    if (deadline_passed(def, st, now)) {
        abort_now(def, st, now, "timeout", "deadline", out);
        return;
    }
    if (sd->max_attempts > 0 && tried >= sd->max_attempts) {
        snprintf(why, sizeof why, "%s of %s failed %u times", sl_saga_call_name(st->call), sd->name,
                 tried);
        park(st, now, why, out);
        return;
    }
    if (sd->stuck_after_ms > 0 && now - st->first_attempt_ms >= sd->stuck_after_ms) {
        snprintf(why, sizeof why, "%s of %s still failing after %lld ms",
                 sl_saga_call_name(st->call), sd->name, (long long)(now - st->first_attempt_ms));
        park(st, now, why, out);
        return;
    }
    int64_t delay = sl_retry_backoff_ms(&sd->retry, tried - 1, st->prev_delay_ms, rand);
    st->prev_delay_ms = delay;
    if (retry_after_ms > delay) {
        /* RFC 9110 §10.2.3: not sooner than the participant asked, within what we honour. */
        int64_t most = sd->retry.retry_after_max_ms > sd->retry.cap_ms
                           ? sd->retry.retry_after_max_ms
                           : sd->retry.cap_ms;
        delay = retry_after_ms < most ? retry_after_ms : most;
    }
    st->phase = SL_SAGA_PHASE_WAITING;
    st->wake_at_ms = now + delay;
    char d[64];
    int n = snprintf(d, sizeof d, "next attempt in %lld ms", (long long)delay);
    hist_text(st, out, now, SL_SAGA_HIST_RETRY, true, d, (size_t)n);
    cmd(out, SL_SAGA_CMD_SCHEDULE)->at_ms = sl_saga_due_ms(def, st);
}

/* A reply answers the current call only if it names its step, kind and attempt while the
 * attempt is in flight; anything else is stale (an older attempt, a pre-crash call). */
static bool reply_current(const sl_saga_state *st, const sl_saga_event *ev)
{
    return st->phase == SL_SAGA_PHASE_INFLIGHT && ev->step == st->step && ev->call == st->call &&
           ev->attempt == st->attempt;
}

static int apply_active(const sl_saga_def *def, sl_saga_state *st, const sl_saga_event *ev,
                        int64_t now, sl_rand *rand, sl_saga_output *out)
{
    switch (ev->kind) {
    case SL_SAGA_EV_START:
        if (st->phase != SL_SAGA_PHASE_IDLE) return SL_SAGA_IGNORED;
        set_deadline(def, st, now);
        if (deadline_passed(def, st, now)) {
            abort_now(def, st, now, "timeout", "deadline", out);
            return 0;
        }
        start_call(def, st, now, 0, SL_SAGA_ACTION, out);
        return 0;
    case SL_SAGA_EV_RESUME:
        hist(st, out, now, SL_SAGA_HIST_RESUMED, true);
        set_deadline(def, st, now);
        if (deadline_passed(def, st, now)) {
            abort_now(def, st, now, "timeout", "deadline", out);
        } else if (st->phase == SL_SAGA_PHASE_IDLE) {
            start_call(def, st, now, 0, SL_SAGA_ACTION, out);
        } else if (st->phase == SL_SAGA_PHASE_INFLIGHT) {
            /* The reply (or the send itself) was lost with the old process: send again under
             * the same idempotency key, as a new attempt so a late old reply is stale. */
            send_attempt(def, st, now, st->attempt + 1, out);
        } else {
            cmd(out, SL_SAGA_CMD_SCHEDULE)->at_ms = sl_saga_due_ms(def, st);
        }
        return 0;
    case SL_SAGA_EV_TIMER:
        if (deadline_passed(def, st, now)) {
            abort_now(def, st, now, "timeout", "deadline", out);
            return 0;
        }
        if (st->phase == SL_SAGA_PHASE_IDLE || now < st->wake_at_ms) return SL_SAGA_IGNORED;
        if (st->phase == SL_SAGA_PHASE_WAITING) {
            send_attempt(def, st, now, st->attempt + 1, out);
            return 0;
        }
        if (st->phase != SL_SAGA_PHASE_INFLIGHT) return SL_SAGA_IGNORED;
        hist(st, out, now, SL_SAGA_HIST_TIMEOUT, true);
        on_failure(def, st, now, 0, rand, out);
        return 0;
    case SL_SAGA_EV_OK:
        if (!reply_current(st, ev)) return SL_SAGA_IGNORED;
        hist(st, out, now, SL_SAGA_HIST_REPLIED, true)->detail = ev->data;
        on_ok(def, st, now, out);
        return 0;
    case SL_SAGA_EV_REFUSED:
        if (!reply_current(st, ev)) return SL_SAGA_IGNORED;
        hist(st, out, now, SL_SAGA_HIST_REFUSED, true)->detail = ev->data;
        on_refused(def, st, now, ev->data, out);
        return 0;
    case SL_SAGA_EV_FAILED:
        if (!reply_current(st, ev)) return SL_SAGA_IGNORED;
        hist(st, out, now, SL_SAGA_HIST_FAILED, true)->detail = ev->data;
        on_failure(def, st, now, ev->retry_after_ms, rand, out);
        return 0;
    case SL_SAGA_EV_WAKE:
        if (st->phase != SL_SAGA_PHASE_WAITING) return SL_SAGA_IGNORED;
        send_attempt(def, st, now, st->attempt + 1, out);
        return 0;
    case SL_SAGA_EV_ABORT:
        if (st->status == SL_SAGA_COMPENSATING) return SL_SAGA_IGNORED; /* already going back */
        if (!sl_saga_abortable(def, st)) return SL_ESTATE;
        abort_now(def, st, now, "aborted", "admin", out);
        return 0;
    case SL_SAGA_EV_ADMIN_RESUME:
        return SL_SAGA_IGNORED;
    }
    return SL_EINVAL;
}

/* An operator resumes a stuck saga: the call it was stuck on starts a fresh run (new bounds,
 * attempt numbers continuing so that replies to the old run stay stale). */
static int admin_resume(const sl_saga_def *def, sl_saga_state *st, int64_t now, sl_saga_output *out)
{
    st->status = st->stuck_from;
    st->bound_base = st->attempt;
    st->prev_delay_ms = 0;
    st->first_attempt_ms = now;
    hist_text(st, out, now, SL_SAGA_HIST_RESUMED, true, "admin", 5);
    send_attempt(def, st, now, st->attempt + 1, out);
    return 0;
}

int sl_saga_apply(const sl_saga_def *def, sl_saga_state *st, const sl_saga_event *ev,
                  int64_t now_ms, sl_rand *rand, sl_saga_output *out)
{
    SL_ASSERT(def != NULL && st != NULL && ev != NULL && out != NULL);
    out->n_cmds = 0;
    out->n_hist = 0;
    out->from = st->status;
    bool reply = ev->kind == SL_SAGA_EV_OK || ev->kind == SL_SAGA_EV_REFUSED ||
                 ev->kind == SL_SAGA_EV_FAILED;
    if (reply && (ev->step >= def->n_steps || (unsigned)ev->call > SL_SAGA_COMPENSATION))
        return SL_EINVAL;
    /* Work on a copy so that an ignored event leaves `st` untouched, history counter included. */
    sl_saga_state next = *st;
    int rc;
    switch (st->status) {
    case SL_SAGA_RUNNING:
    case SL_SAGA_COMPENSATING:
        rc = apply_active(def, &next, ev, now_ms, rand, out);
        break;
    case SL_SAGA_STUCK:
        if (ev->kind == SL_SAGA_EV_ADMIN_RESUME) {
            rc = admin_resume(def, &next, now_ms, out);
        } else if (ev->kind == SL_SAGA_EV_ABORT && next.stuck_from == SL_SAGA_COMPENSATING) {
            rc = admin_resume(def, &next, now_ms, out); /* compensating already: go on with it */
        } else if (ev->kind == SL_SAGA_EV_ABORT) {
            next.status = SL_SAGA_RUNNING; /* judge it as the running saga it was */
            if (sl_saga_abortable(def, &next)) {
                abort_now(def, &next, now_ms, "aborted", "admin", out);
                rc = 0;
            } else {
                rc = SL_ESTATE;
            }
        } else {
            rc = SL_SAGA_IGNORED;
        }
        break;
    case SL_SAGA_COMPLETED:
        rc = ev->kind == SL_SAGA_EV_ABORT ? SL_ESTATE : SL_SAGA_IGNORED;
        break;
    default:
        rc = SL_SAGA_IGNORED;
        break;
    }
    if (rc != 0) {
        out->n_cmds = 0;
        out->n_hist = 0;
        return rc;
    }
    *st = next;
    /* History details point into `out` or the event, never into `next` (a local). */
    SL_ASSERT(out->n_hist > 0);
    return 0;
}
