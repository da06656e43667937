/*
 * shoal-order's sagas and their executor (docs/services/order.md, "Sagas").
 *
 * checkout: open (local; compensation: cancel the order with the refusal's
 *           reason and emit order.cancelled) → reserve (inventory; compensation:
 *           release) → charge (payment; the pivot; compensation: a refund naming
 *           the wallet, sent only when the saga aborts while a charge attempt is
 *           unanswered: payment records a refund tombstone for an order it never
 *           charged, and refuses a charge arriving after it) → confirm (local:
 *           the order becomes confirmed and order.confirmed is emitted in one
 *           transaction). The order row itself is the first step: that is how a
 *           refused or timed-out checkout ends with a cancelled order after every
 *           other compensation, with no hook outside the engine. The checkout
 *           has a deadline (order.saga.deadline_ms) before the pivot.
 * cancel:   cancelled (local pivot: checks the customer's cancel was recorded)
 *           → refund (payment) → release (inventory). Both calls come after the
 *           pivot, so they are retried until they succeed; a refusal parks the
 *           saga as stuck for an operator.
 *
 * The executor sends participant calls through the worker's HTTP client
 * (one upstream per participant, no client-side retries: the engine retries,
 * so each attempt is one history entry), each signed with the service
 * identity (role `service`, user `svc:order`, per method and path) and
 * carrying the engine's idempotency key. Local steps run their transaction
 * inside send() and answer at once. Everything here runs on one worker's
 * loop thread.
 */
#include "order.h"

#include <shoal/clock.h>
#include <shoal/http_client.h>
#include <shoal/identity.h>
#include <shoal/log.h>
#include <shoal/metrics.h>
#include <shoal/retry.h>

#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SAGA_CHECKOUT = 0, SAGA_CANCEL = 1, SAGA_TYPES = 2 };

/* A re-armable libuv timer for one driver (closed with a callback, unlike sl_saga_uv_timer, so
 * the worker knows when its memory may go). */
typedef struct ow_timer {
    uv_timer_t t;
    sl_saga_timer_cb cb;
    void *data;
    order_worker *ow;
} ow_timer;

struct order_worker {
    sl_svc_worker *w;
    const order_config *cfg;
    sl_upstream *inv, *pay;
    ow_timer timers[SAGA_TYPES];
    sl_saga_driver *drv[SAGA_TYPES];
    sl_saga_metrics metrics;
    sl_series *shed;    /* order_orders_shed_total */
    sl_series *backlog; /* order_saga_backlog (worker 0 sets its callback) */
    uv_timer_t sweep;   /* worker 0 only */
    int sweep_init;
    int closes;                     /* handles and upstreams still closing */
    const sl_trace_ctx *step_trace; /* the step span being started (inside exec_send only) */
    sl_slice step_tracestate;       /* the saga input's tracestate (inside exec_send only) */
};

/* Wakes this worker's sagas waiting on inventory (`inventory` 1) or payment (0). */
static void order_worker_wake(order_worker *ow, int inventory)
{
    if (ow->drv[SAGA_CHECKOUT])
        sl_saga_driver_wake(
            ow->drv[SAGA_CHECKOUT],
            inventory ? ORDER_CHECKOUT_INVENTORY_STEPS : ORDER_CHECKOUT_PAYMENT_STEPS, NULL);
    if (ow->drv[SAGA_CANCEL])
        sl_saga_driver_wake(ow->drv[SAGA_CANCEL],
                            inventory ? ORDER_CANCEL_INVENTORY_STEPS : ORDER_CANCEL_PAYMENT_STEPS,
                            NULL);
}

/* ---- definitions ---------------------------------------------------------------------------- */

static sl_saga_step_def step(const char *name, const order_saga_config *c)
{
    sl_saga_step_def s = {.name = name};
    sl_retry_config_default(&s.retry);
    s.retry.base_ms = c->backoff_base_ms;
    s.retry.cap_ms = c->backoff_cap_ms;
    s.retry.jitter = SL_RETRY_JITTER_FULL;
    /* A participant's (or the breaker's) Retry-After is honoured up to the cap, no further:
     * waits stay capped, and a participant that is back wakes the waiting sagas anyway. */
    s.retry.retry_after_max_ms = c->backoff_cap_ms;
    s.timeout_ms = c->step_timeout_ms;
    s.max_attempts = c->max_attempts;
    s.stuck_after_ms = c->stuck_after_ms;
    return s;
}

/* What the executor does for a step, forward or as its compensation. */
typedef enum step_action {
    ACT_NONE = 0,     /* the engine never asks for it with these definitions */
    ACT_OPEN,         /* local: the order exists */
    ACT_CANCEL_ORDER, /* local: cancel the order with the refusal's reason */
    ACT_CONFIRM,      /* local: the order becomes confirmed */
    ACT_CANCELLED,    /* local: the customer's cancel is recorded */
    ACT_RESERVE,      /* inventory */
    ACT_RELEASE,      /* inventory */
    ACT_CHARGE,       /* payment */
    ACT_REFUND,       /* payment */
    ACT_VOID,         /* payment: refund naming the wallet (tombstone when never charged) */
} step_action;

typedef struct step_entry {
    const char *name;
    step_action forward;
    step_action compensate;
} step_entry;

/* The steps of both sagas, in order: the one place their names are written. */
static const step_entry checkout_table[] = {
    {"open", ACT_OPEN, ACT_CANCEL_ORDER},
    {"reserve", ACT_RESERVE, ACT_RELEASE},
    {"charge", ACT_CHARGE, ACT_VOID}, /* the pivot; compensated only by an abort */
    {"confirm", ACT_CONFIRM, ACT_NONE},
};
static const step_entry cancel_table[] = {
    {"cancelled", ACT_CANCELLED, ACT_NONE}, /* the pivot */
    {"refund", ACT_REFUND, ACT_NONE},
    {"release", ACT_RELEASE, ACT_NONE},
};

_Static_assert(SL_ARRAY_LEN(checkout_table) == SL_ARRAY_LEN(((order_sagas *)0)->checkout_steps),
               "one entry per checkout step");
_Static_assert(SL_ARRAY_LEN(cancel_table) == SL_ARRAY_LEN(((order_sagas *)0)->cancel_steps),
               "one entry per cancel step");

int order_sagas_init(order_sagas *s, const order_saga_config *c)
{
    SL_ASSERT(s && c);
    for (size_t i = 0; i < SL_ARRAY_LEN(checkout_table); i++)
        s->checkout_steps[i] = step(checkout_table[i].name, c);
    for (size_t i = 0; i < SL_ARRAY_LEN(cancel_table); i++)
        s->cancel_steps[i] = step(cancel_table[i].name, c);
    s->checkout = (sl_saga_def){.type = "checkout",
                                .steps = s->checkout_steps,
                                .n_steps = SL_ARRAY_LEN(checkout_table),
                                .pivot = 2,
                                .deadline_ms = c->deadline_ms,
                                .pivot_compensable = true};
    s->cancel = (sl_saga_def){.type = "cancel",
                              .steps = s->cancel_steps,
                              .n_steps = SL_ARRAY_LEN(cancel_table),
                              .pivot = 0};
    if (sl_saga_def_valid(&s->checkout) != 0 || sl_saga_def_valid(&s->cancel) != 0)
        return SL_ECONFIG;
    return 0;
}

int order_saga_id(char out[SL_SAGA_ID_MAX + 1], const char *prefix, const char *order_id)
{
    SL_ASSERT(out && prefix && order_id);
    size_t a = strlen(prefix), b = strlen(order_id);
    if (a + b > SL_SAGA_ID_MAX) return SL_ELIMIT;
    memcpy(out, prefix, a);
    memcpy(out + a, order_id, b + 1);
    return 0;
}

const sl_saga_def *order_saga_def_of(const order_sagas *s, const char *saga_id)
{
    if (strncmp(saga_id, ORDER_SAGA_CHECKOUT, strlen(ORDER_SAGA_CHECKOUT)) == 0)
        return &s->checkout;
    if (strncmp(saga_id, ORDER_SAGA_CANCEL, strlen(ORDER_SAGA_CANCEL)) == 0) return &s->cancel;
    return NULL;
}

char *order_saga_input(const order_row *o, const sl_trace_ctx *trace, const sl_http_req *req)
{
    json_t *items = json_array();
    for (size_t i = 0; items && i < o->n; i++)
        json_array_append_new(items, json_pack("{s:s, s:I}", "product_id", o->items[i].product_id,
                                               "qty", (json_int_t)o->items[i].qty));
    if (!items) return NULL;
    json_t *v = json_pack("{s:s, s:s, s:o, s:{s:I, s:s}}", "order_id", o->order_id, "user_id",
                          o->user_id, "items", items, "amount", "amount", (json_int_t)o->total,
                          "currency", o->currency);
    /* The request's trace: every step's span joins it, so the checkout is one trace. */
    char tp[SL_TRACEPARENT_MAX];
    if (v && trace && sl_trace_ctx_is_valid(trace) && sl_traceparent_format(trace, tp) > 0) {
        json_object_set_new(v, "traceparent", json_string(tp));
        /* tracestate belongs to the caller's trace: kept only when the request continued one
         * (a valid traceparent came with it) and it is itself valid; otherwise dropped whole. */
        sl_slice in_tp, ts;
        sl_trace_ctx caller;
        if (req && sl_http_req_header(req, "traceparent", &in_tp) == 1 &&
            sl_traceparent_parse(in_tp.ptr, in_tp.len, &caller) == 0 &&
            sl_http_req_header(req, "tracestate", &ts) == 1 && ts.len > 0 &&
            sl_tracestate_validate(ts.ptr, ts.len) == 0)
            json_object_set_new(v, "tracestate", json_stringn(ts.ptr, ts.len));
    }
    char *text = v ? sl_json_dump(v, NULL) : NULL;
    json_decref(v);
    return text;
}

/* ---- local steps ---------------------------------------------------------------------------- */

static void reply(sl_saga_reply_cb done, void *done_data, sl_saga_reply_kind kind, const char *msg)
{
    sl_saga_reply r = {.kind = kind, .data = msg, .len = strlen(msg)};
    done(done_data, &r);
}

static int64_t now_ms(void)
{
    return sl_clock_wall_ms(sl_clock_system());
}

/* ---- admission ------------------------------------------------------------------------------ */

/* The process's adaptive limit: every worker admits and samples through it (admission.h). */
struct order_admission {
    pthread_mutex_t mu;
    order_limit limit;
};

int order_admission_new(order_config *c)
{
    struct order_admission *a = calloc(1, sizeof *a);
    if (!a) return SL_ENOMEM;
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        free(a);
        return SL_ENOMEM;
    }
    order_limit_init(&a->limit, &c->limit, sl_clock_mono_ms(sl_clock_system()));
    c->admission = a;
    return 0;
}

void order_admission_free(order_config *c)
{
    if (!c->admission) return;
    pthread_mutex_destroy(&c->admission->mu);
    free(c->admission);
    c->admission = NULL;
}

/* A checkout reached its end `latency_ms` after its order was created. */
static void admission_sample(const order_config *c, int64_t latency_ms)
{
    if (!c->adaptive || !c->admission) return;
    int64_t now = sl_clock_mono_ms(sl_clock_system());
    pthread_mutex_lock(&c->admission->mu);
    order_limit_sample(&c->admission->limit, latency_ms, now);
    pthread_mutex_unlock(&c->admission->mu);
}

static int64_t admission_limit(const order_config *c)
{
    if (!c->adaptive || !c->admission) return c->max_backlog;
    pthread_mutex_lock(&c->admission->mu);
    int64_t v = order_limit_current(&c->admission->limit);
    pthread_mutex_unlock(&c->admission->mu);
    return v;
}

/*
 * Moves the order `oid` from pending to `to` (with `reason` for a cancel) and emits `event`
 * in one transaction. Idempotent: an order already in `to` is done. Writes the reply.
 */
static void local_settle(order_worker *ow, const char *oid, order_status to, const char *reason,
                         const char *event, sl_saga_reply_cb done, void *done_data)
{
    sl_db *db = sl_svc_worker_db(ow->w);
    order_row *o = malloc(sizeof *o);
    char msg[160];
    int changed = 0;
    int rc = o ? sl_db_begin(db) : SL_ENOMEM;
    if (rc == 0) rc = order_store_get(db, oid, o);
    if (rc == 0) {
        int64_t now = now_ms();
        rc = order_store_set_status(db, oid, ORDER_PENDING, to, reason, NULL, now, &changed);
        if (rc == 0 && changed) {
            o->status = to;
            o->updated_ms = now;
            if (reason) snprintf(o->cancel_reason, sizeof o->cancel_reason, "%s", reason);
            rc = order_emit_trace(ow->w, ow->step_trace, db, event, o);
        }
    }
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) sl_db_rollback(db);
    if (rc == 0 && changed) admission_sample(ow->cfg, o->updated_ms - o->created_ms);
    if (rc == SL_ENOTFOUND) {
        reply(done, done_data, SL_SAGA_REPLY_REFUSED, "order_missing: no such order");
    } else if (rc != 0) {
        snprintf(msg, sizeof msg, "database: %s", sl_errname(rc));
        reply(done, done_data, SL_SAGA_REPLY_FAILED, msg);
    } else if (changed || o->status == to) {
        snprintf(msg, sizeof msg, "order %s", order_status_name(to));
        reply(done, done_data, SL_SAGA_REPLY_OK, msg);
    } else {
        /* The order moved elsewhere (an operator's doing): this saga cannot settle it. */
        snprintf(msg, sizeof msg, "order_state: the order is %s", order_status_name(o->status));
        reply(done, done_data, SL_SAGA_REPLY_REFUSED, msg);
    }
    free(o);
}

/* The checkout's first step: the order exists (it was stored with the saga). */
static void local_open(order_worker *ow, const char *oid, sl_saga_reply_cb done, void *done_data)
{
    order_row *o = malloc(sizeof *o);
    int rc = o ? order_store_get(sl_svc_worker_db(ow->w), oid, o) : SL_ENOMEM;
    char msg[96];
    if (rc == 0) {
        snprintf(msg, sizeof msg, "order %s", order_status_name(o->status));
        reply(done, done_data, SL_SAGA_REPLY_OK, msg);
    } else if (rc == SL_ENOTFOUND) {
        reply(done, done_data, SL_SAGA_REPLY_REFUSED, "order_missing: no such order");
    } else {
        snprintf(msg, sizeof msg, "database: %s", sl_errname(rc));
        reply(done, done_data, SL_SAGA_REPLY_FAILED, msg);
    }
    free(o);
}

/* The checkout's last compensation: cancel the order with the reason of the refusal. */
static void local_cancel(order_worker *ow, const char *saga_id, const char *oid,
                         sl_saga_reply_cb done, void *done_data)
{
    sl_saga_state st;
    int rc = sl_saga_store_load(sl_svc_worker_db(ow->w), &ow->cfg->sagas.checkout, saga_id, &st);
    if (rc != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "saga state: %s", sl_errname(rc));
        reply(done, done_data, SL_SAGA_REPLY_FAILED, msg);
        return;
    }
    char why[ORDER_REASON_MAX];
    order_cancel_reason(st.reason, why);
    local_settle(ow, oid, ORDER_CANCELLED, why, ORDER_EV_CANCELLED, done, done_data);
}

/* The cancel saga's pivot: the customer's cancel is recorded (it was, with the saga). */
static void local_cancelled(order_worker *ow, const char *oid, sl_saga_reply_cb done,
                            void *done_data)
{
    order_row *o = malloc(sizeof *o);
    int rc = o ? order_store_get(sl_svc_worker_db(ow->w), oid, o) : SL_ENOMEM;
    char msg[96];
    if (rc == 0 && o->status == ORDER_CANCELLED) {
        reply(done, done_data, SL_SAGA_REPLY_OK, "order cancelled");
    } else if (rc == 0 || rc == SL_ENOTFOUND) {
        snprintf(msg, sizeof msg, "order_state: the order is %s",
                 rc == 0 ? order_status_name(o->status) : "missing");
        reply(done, done_data, SL_SAGA_REPLY_REFUSED, msg);
    } else {
        snprintf(msg, sizeof msg, "database: %s", sl_errname(rc));
        reply(done, done_data, SL_SAGA_REPLY_FAILED, msg);
    }
    free(o);
}

/* ---- participant calls ---------------------------------------------------------------------- */

typedef struct hcall {
    order_worker *ow;
    order_call kind;
    sl_saga_reply_cb done;
    void *done_data;
    char saga_id[SL_SAGA_ID_MAX + 1];
} hcall;

/* The problem's `reason` and a reservation's `status`, from a JSON body (either may be NULL). */
static void body_fields(sl_slice body, char *reason, size_t rcap, char *status, size_t scap)
{
    reason[0] = status[0] = '\0';
    json_t *v = body.len ? json_loadb(body.ptr, body.len, 0, NULL) : NULL;
    const char *r = json_string_value(json_object_get(v, "reason"));
    const char *s = json_string_value(json_object_get(v, "status"));
    if (r) snprintf(reason, rcap, "%s", r);
    if (s) snprintf(status, scap, "%s", s);
    json_decref(v);
}

/* The participant's Retry-After in ms, 0 when absent or malformed. */
static int64_t retry_after_ms(const sl_http_response *res)
{
    sl_slice v;
    int64_t ms = 0;
    if (!sl_http_response_header(res, "retry-after", &v) ||
        sl_retry_after_parse(v.ptr, v.len, sl_clock_wall_ns(sl_clock_system()), &ms) != 0)
        return 0;
    return ms;
}

static void on_http(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    hcall *hc = data;
    char msg[600];
    sl_saga_reply r = {.kind = SL_SAGA_REPLY_FAILED, .data = msg};
    if (res->error != 0 || res->response == NULL) {
        snprintf(msg, sizeof msg, "transport: %s", sl_http_result_kind_name(res->kind));
        r.retry_after_ms = res->retry_after_ms;
    } else {
        const sl_http_response *resp = res->response;
        char reason[64], status[32], cancel[ORDER_REASON_MAX];
        body_fields(resp->body, reason, sizeof reason, status, sizeof status);
        r.kind = order_classify(hc->kind, resp->status, reason[0] ? reason : NULL,
                                status[0] ? status : NULL, cancel);
        int snip = resp->body.len > 400 ? 400 : (int)resp->body.len;
        if (r.kind == SL_SAGA_REPLY_REFUSED)
            snprintf(msg, sizeof msg, "%s: HTTP %d %.*s", cancel, resp->status, snip,
                     resp->body.ptr ? resp->body.ptr : "");
        else
            snprintf(msg, sizeof msg, "HTTP %d %.*s", resp->status, snip,
                     resp->body.ptr ? resp->body.ptr : "");
        if (r.kind == SL_SAGA_REPLY_FAILED) r.retry_after_ms = retry_after_ms(resp);
        if (r.kind == SL_SAGA_REPLY_OK && strcmp(cancel, "already_committed") == 0)
            SL_LOG_WARN(sl_svc_worker_log(hc->ow->w), NULL,
                        "release found the reservation committed; its units stay taken",
                        SL_LOG_STR("saga_id", hc->saga_id));
    }
    r.len = strlen(msg);
    order_worker *ow = hc->ow;
    int inventory = hc->kind == ORDER_CALL_RESERVE || hc->kind == ORDER_CALL_RELEASE;
    hc->done(hc->done_data, &r);
    free(hc);
    /* The participant answered (not a transient failure): it is back, so sagas of this worker
     * waiting out a backoff on it retry now rather than at the end of their backoff. */
    if (r.kind != SL_SAGA_REPLY_FAILED) order_worker_wake(ow, inventory);
}

static int send_http(order_worker *ow, sl_upstream *up, order_call kind, const char *path,
                     const char *body, const sl_saga_call *call, sl_saga_reply_cb done,
                     void *done_data)
{
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_http_header h[1 + SL_IDENTITY_NHEADERS] = {
        {SL_SLICE_LIT("content-type"), SL_SLICE_LIT("application/json")}};
    size_t nh = 1;
    /* The proof names the participant and binds the path, the body and the Idempotency-Key. */
    const char *callee =
        kind == ORDER_CALL_RESERVE || kind == ORDER_CALL_RELEASE ? "inventory" : "payment";
    const sl_identity_edge *edge =
        ow->cfg->have_key ? sl_identity_keyring_find(&ow->cfg->keys, "order", 5, callee) : NULL;
    const char *ik = call->idempotency_key;
    sl_identity_msg m = {.callee = callee,
                         .method = SL_HTTP_POST,
                         .target = {path, strlen(path)},
                         .idempotency_key = {ik, ik ? strlen(ik) : 0},
                         .body = body,
                         .body_len = body ? strlen(body) : 0};
    if (edge && sl_identity_headers(edge, "svc:order", "service", &m, now_ms(), proof, &h[1]) == 0)
        nh += SL_IDENTITY_NHEADERS;
    hcall *hc = calloc(1, sizeof *hc);
    if (!hc) return SL_ENOMEM;
    *hc = (hcall){.ow = ow, .kind = kind, .done = done, .done_data = done_data};
    snprintf(hc->saga_id, sizeof hc->saga_id, "%s", call->saga_id);
    sl_http_request req = {.method = SL_HTTP_POST,
                           .target = {path, strlen(path)},
                           .headers = h,
                           .nheaders = nh,
                           .body = body,
                           .body_len = body ? strlen(body) : 0};
    sl_http_call_opts opts = {.timeout_ms = call->timeout_ms,
                              .trace = ow->step_trace,
                              .tracestate = ow->step_tracestate,
                              .idempotency_key = call->idempotency_key};
    int rc = sl_http_call(up, &req, &opts, on_http, hc, NULL);
    if (rc != 0) free(hc);
    return rc;
}

/* Builds the body of a reserve or charge from the saga input (returns owned text). */
static char *call_body(const json_t *in, order_call kind)
{
    json_t *v =
        kind == ORDER_CALL_RESERVE
            ? json_pack("{s:O, s:O}", "order_id", json_object_get(in, "order_id"), "items",
                        json_object_get(in, "items"))
            : json_pack("{s:O, s:O, s:O}", "order_id", json_object_get(in, "order_id"), "user_id",
                        json_object_get(in, "user_id"), "amount", json_object_get(in, "amount"));
    char *text = v ? sl_json_dump(v, NULL) : NULL;
    json_decref(v);
    return text;
}

static int send_participant(order_worker *ow, order_call kind, const json_t *in, const char *oid,
                            int name_wallet, const sl_saga_call *call, sl_saga_reply_cb done,
                            void *done_data)
{
    char path[160];
    char *body = NULL;
    sl_upstream *up = kind == ORDER_CALL_RESERVE || kind == ORDER_CALL_RELEASE ? ow->inv : ow->pay;
    switch (kind) {
    case ORDER_CALL_RESERVE:
        snprintf(path, sizeof path, "/reservations");
        break;
    case ORDER_CALL_RELEASE:
        snprintf(path, sizeof path, "/reservations/%s/release", oid);
        break;
    case ORDER_CALL_CHARGE:
        snprintf(path, sizeof path, "/charges");
        break;
    case ORDER_CALL_REFUND:
        snprintf(path, sizeof path, "/charges/%s/refund", oid);
        break;
    }
    if (kind == ORDER_CALL_RESERVE || kind == ORDER_CALL_CHARGE) {
        body = call_body(in, kind);
        if (!body) return SL_ENOMEM;
    } else if (name_wallet) {
        /* Naming the wallet lets payment record the refund even for an order it never charged,
         * so that a charge attempt still on the wire is refused when it lands. */
        json_t *v = json_pack("{s:O}", "user_id", json_object_get(in, "user_id"));
        body = v ? sl_json_dump(v, NULL) : NULL;
        json_decref(v);
        if (!body) return SL_ENOMEM;
    }
    int rc = send_http(ow, up, kind, path, body, call, done, done_data);
    free(body);
    return rc;
}

/* The action of a call: its saga's table, the step by name, forward or compensation. */
static step_action step_action_of(const sl_saga_call *call)
{
    int checkout = strcmp(call->saga_type, "checkout") == 0;
    const step_entry *t = checkout ? checkout_table : cancel_table;
    size_t n = checkout ? SL_ARRAY_LEN(checkout_table) : SL_ARRAY_LEN(cancel_table);
    if (!checkout && strcmp(call->saga_type, "cancel") != 0) return ACT_NONE;
    for (size_t i = 0; i < n; i++)
        if (strcmp(call->step_name, t[i].name) == 0)
            return call->call == SL_SAGA_COMPENSATION ? t[i].compensate : t[i].forward;
    return ACT_NONE;
}

static int exec_step(order_worker *ow, const sl_saga_call *call, const json_t *in, const char *oid,
                     sl_saga_reply_cb done, void *done_data);

/* ---- step spans ----------------------------------------------------------------------------- */

/* One step attempt's span (kind internal), a child of the checkout request's trace; the
 * participant call is its child. Ends when the step's reply reaches the driver. */
typedef struct step_span {
    sl_span *span;
    sl_saga_reply_cb done;
    void *done_data;
} step_span;

static void step_done(void *data, const sl_saga_reply *r)
{
    step_span *ss = data;
    static const char *const outcome[] = {"ok", "refused", "failed"};
    if (sl_span_is_recording(ss->span)) {
        sl_span_set_attr_str(ss->span, "shoal.saga.outcome",
                             (unsigned)r->kind < 3 ? outcome[r->kind] : "unknown");
        if (r->kind != SL_SAGA_REPLY_OK) {
            char msg[SL_SPAN_STATUS_MAX + 1];
            snprintf(msg, sizeof msg, "%.*s", (int)(r->len < sizeof msg ? r->len : sizeof msg - 1),
                     r->data ? r->data : "");
            sl_span_set_status(ss->span, SL_SPAN_STATUS_ERROR, msg);
        }
    }
    sl_span_end(ss->span);
    sl_saga_reply_cb done = ss->done;
    void *dd = ss->done_data;
    free(ss);
    done(dd, r);
}

static step_span *step_span_start(order_worker *ow, const sl_saga_call *call, const json_t *in,
                                  const char *oid, sl_saga_reply_cb done, void *done_data)
{
    sl_tracer *tr = sl_svc_worker_tracer(ow->w);
    step_span *ss = tr ? calloc(1, sizeof *ss) : NULL;
    if (!ss) return NULL;
    const char *tp = json_string_value(json_object_get(in, "traceparent"));
    sl_trace_ctx parent;
    int has = tp && sl_traceparent_parse(tp, strlen(tp), &parent) == 0;
    const char *kind = call->call == SL_SAGA_COMPENSATION ? "compensation" : "action";
    char name[SL_SPAN_NAME_MAX + 1];
    snprintf(name, sizeof name, "saga %s %s %s", call->saga_type, call->step_name, kind);
    sl_span_start(tr, name, SL_SPAN_INTERNAL, has ? &parent : NULL, &ss->span);
    if (sl_span_is_recording(ss->span)) {
        sl_span_set_attr_str(ss->span, "shoal.saga.id", call->saga_id);
        sl_span_set_attr_str(ss->span, "shoal.saga.type", call->saga_type);
        sl_span_set_attr_str(ss->span, "shoal.saga.step", call->step_name);
        sl_span_set_attr_str(ss->span, "shoal.saga.call", kind);
        sl_span_set_attr_int(ss->span, "shoal.saga.attempt", call->attempt);
        sl_span_set_attr_str(ss->span, "shoal.order_id", oid);
    }
    ss->done = done;
    ss->done_data = done_data;
    return ss;
}

/* The executor: routes each (saga type, step, call kind) to a local step or a participant. */
static int exec_send(void *ctx, const sl_saga_call *call, sl_saga_reply_cb done, void *done_data)
{
    order_worker *ow = ctx;
    json_t *in = json_loads(call->input_json, 0, NULL);
    const char *oid = json_string_value(json_object_get(in, "order_id"));
    if (!oid || !order_id_valid(oid, strlen(oid))) {
        json_decref(in);
        return SL_EPARSE; /* the driver records a failed attempt; the history shows it */
    }
    step_span *ss = step_span_start(ow, call, in, oid, done, done_data);
    if (ss) {
        done = step_done;
        done_data = ss;
        ow->step_trace = sl_span_context(ss->span);
        const char *ts = json_string_value(json_object_get(in, "tracestate"));
        if (ts) ow->step_tracestate = (sl_slice){ts, strlen(ts)}; /* the client copies it */
    }
    int rc = exec_step(ow, call, in, oid, done, done_data);
    ow->step_trace = NULL;
    ow->step_tracestate = (sl_slice){NULL, 0};
    if (rc != 0 && ss) { /* never started: done will not run */
        sl_span_set_status(ss->span, SL_SPAN_STATUS_ERROR, sl_strerror(rc));
        sl_span_end(ss->span);
        free(ss);
    }
    json_decref(in);
    return rc;
}

static int exec_step(order_worker *ow, const sl_saga_call *call, const json_t *in, const char *oid,
                     sl_saga_reply_cb done, void *done_data)
{
    int rc = 0;
    switch (step_action_of(call)) {
    case ACT_OPEN:
        local_open(ow, oid, done, done_data);
        break;
    case ACT_CANCEL_ORDER:
        local_cancel(ow, call->saga_id, oid, done, done_data);
        break;
    case ACT_CONFIRM:
        local_settle(ow, oid, ORDER_CONFIRMED, NULL, ORDER_EV_CONFIRMED, done, done_data);
        break;
    case ACT_CANCELLED:
        local_cancelled(ow, oid, done, done_data);
        break;
    case ACT_RESERVE:
        rc = send_participant(ow, ORDER_CALL_RESERVE, in, oid, 0, call, done, done_data);
        break;
    case ACT_RELEASE:
        rc = send_participant(ow, ORDER_CALL_RELEASE, in, oid, 0, call, done, done_data);
        break;
    case ACT_CHARGE:
        rc = send_participant(ow, ORDER_CALL_CHARGE, in, oid, 0, call, done, done_data);
        break;
    case ACT_REFUND:
        rc = send_participant(ow, ORDER_CALL_REFUND, in, oid, 0, call, done, done_data);
        break;
    case ACT_VOID:
        rc = send_participant(ow, ORDER_CALL_REFUND, in, oid, 1, call, done, done_data);
        break;
    case ACT_NONE:
        rc = SL_EINVAL; /* a step the engine never asks for with these definitions */
        break;
    }
    return rc;
}

/* ---- timers --------------------------------------------------------------------------------- */

static void timer_fired(uv_timer_t *h)
{
    ow_timer *t = h->data;
    if (t->cb) t->cb(t->data);
}

static int timer_arm(void *ctx, int64_t delay_ms, sl_saga_timer_cb cb, void *data)
{
    ow_timer *t = ctx;
    t->cb = cb;
    t->data = data;
    uv_update_time(uv_handle_get_loop((uv_handle_t *)&t->t));
    return uv_timer_start(&t->t, timer_fired, delay_ms < 0 ? 0 : (uint64_t)delay_ms, 0) == 0
               ? 0
               : SL_EINVAL;
}

static void timer_disarm(void *ctx)
{
    ow_timer *t = ctx;
    uv_timer_stop(&t->t);
}

/* ---- worker --------------------------------------------------------------------------------- */

static void released(order_worker *ow)
{
    if (--ow->closes == 0) free(ow);
}

static void timer_closed(uv_handle_t *h)
{
    ow_timer *t = h->data;
    released(t->ow);
}

static void upstream_closed(void *data)
{
    released(data);
}

static int make_upstream(order_worker *ow, const char *name, const char *endpoint,
                         sl_upstream **out)
{
    sl_upstream_config c;
    sl_upstream_config_default(&c);
    const char *eps[] = {endpoint};
    c.name = name;
    c.endpoints = eps;
    c.nendpoints = 1;
    c.retry.max_retries = 0; /* the saga engine retries: one history entry per attempt */
    c.retry.per_try_timeout_ms = 0;
    c.breaker.recovery_timeout_ms = ow->cfg->breaker_recovery_ms;
    sl_upstream_env env = {.loop = sl_svc_worker_loop(ow->w),
                           .metrics = sl_svc_worker_metrics(ow->w),
                           .shard = (unsigned)sl_svc_worker_index(ow->w),
                           .log = sl_svc_worker_log(ow->w),
                           .tracer = sl_svc_worker_tracer(ow->w)};
    return sl_upstream_new(&c, &env, out);
}

static double backlog_value(void *data)
{
    return (double)sl_saga_registry_count(data);
}

/* Seconds since this process picked up the saga it has been driving longest; 0 with none. */
static double oldest_value(void *data)
{
    int64_t oldest = sl_saga_registry_oldest_ms(data);
    int64_t now = sl_clock_wall_ms(sl_clock_system());
    return oldest > 0 && now > oldest ? (double)(now - oldest) / 1000.0 : 0;
}

static double limit_value(void *data)
{
    return (double)admission_limit(data);
}

/* Admission metrics: one family each per process (the first worker registers, others find). */
static void admission_metrics(order_worker *ow, sl_metrics *reg)
{
    sl_metric_family *f = NULL;
    int rc = sl_metrics_gauge(reg, "order_saga_backlog",
                              "Sagas the order process is driving (admission control's backlog)",
                              NULL, 0, &f);
    if (rc == SL_EEXIST) rc = sl_metrics_family_find(reg, "order_saga_backlog", &f);
    if (rc == 0) ow->backlog = sl_metric_series(f, NULL);
    rc = sl_metrics_counter(reg, "order_orders_shed_total",
                            "New orders refused with 503 because the saga backlog was full", NULL,
                            0, &f);
    if (rc == SL_EEXIST) rc = sl_metrics_family_find(reg, "order_orders_shed_total", &f);
    if (rc == 0) ow->shed = sl_metric_series(f, NULL);
    if (ow->backlog && sl_svc_worker_index(ow->w) == 0)
        sl_gauge_set_fn(ow->backlog, backlog_value, ow->cfg->registry);
    if (sl_svc_worker_index(ow->w) == 0 &&
        sl_metrics_gauge(reg, "order_saga_oldest_age_seconds",
                         "Seconds since this process picked up the saga it has driven longest "
                         "(0: none)",
                         NULL, 0, &f) == 0)
        sl_gauge_set_fn(sl_metric_series(f, NULL), oldest_value, ow->cfg->registry);
    rc = sl_metrics_gauge(reg, "order_admission_limit",
                          "Running sagas beyond which new orders are refused (adaptive, or "
                          "order.admission.max_backlog)",
                          NULL, 0, &f);
    if (rc == 0) sl_gauge_set_fn(sl_metric_series(f, NULL), limit_value, (void *)ow->cfg);
}

int order_overloaded(sl_svc_worker *w)
{
    order_worker *ow = sl_svc_worker_data(w);
    const order_config *c = order_config_of(w);
    int64_t running = (int64_t)sl_saga_registry_count(c->registry);
    if (c->adaptive && c->admission) {
        pthread_mutex_lock(&c->admission->mu);
        int ok = order_limit_admit(&c->admission->limit, running);
        pthread_mutex_unlock(&c->admission->mu);
        if (ok) return 0;
    } else if (running < c->max_backlog) {
        return 0;
    }
    if (ow && ow->shed) sl_counter_inc(ow->shed, (unsigned)sl_svc_worker_index(w));
    return 1;
}

static void metrics_setup(order_worker *ow)
{
    sl_metrics *reg = sl_svc_worker_metrics(ow->w);
    unsigned shard = (unsigned)sl_svc_worker_index(ow->w);
    admission_metrics(ow, reg);
    if (sl_saga_metrics_init(&ow->metrics, reg, shard) == SL_EEXIST) {
        /* Another worker registered the shared families first (one registry, a shard per
         * worker): look them up, as sl_metrics_family_find's contract suggests. */
        if (sl_metrics_family_find(reg, "saga_instances", &ow->metrics._instances) != 0 ||
            sl_metrics_family_find(reg, "saga_transitions_total", &ow->metrics._transitions) != 0)
            ow->metrics._instances = ow->metrics._transitions = NULL;
    }
}

static int drivers_setup(order_worker *ow)
{
    const sl_saga_def *defs[SAGA_TYPES] = {&ow->cfg->sagas.checkout, &ow->cfg->sagas.cancel};
    for (int i = 0; i < SAGA_TYPES; i++) {
        ow_timer *t = &ow->timers[i];
        if (uv_timer_init(sl_svc_worker_loop(ow->w), &t->t) != 0) return SL_EINVAL;
        t->t.data = t;
        t->ow = ow;
        ow->closes++;
        sl_saga_driver_options o = {
            .db = sl_svc_worker_db(ow->w),
            .def = defs[i],
            .executor = {.ctx = ow, .send = exec_send},
            .timer = {.ctx = t, .arm = timer_arm, .disarm = timer_disarm},
            .clock = sl_clock_system(),
            .metrics_cb = sl_saga_metrics_hook,
            .metrics_data = &ow->metrics,
            .max_active = ow->cfg->max_active,
            .registry = ow->cfg->registry,
        };
        int rc = sl_saga_driver_new(&o, &ow->drv[i]);
        if (rc != 0) return rc;
    }
    return 0;
}

static void recover(order_worker *ow)
{
    sl_db *db = sl_svc_worker_db(ow->w);
    sl_logger *log = sl_svc_worker_log(ow->w);
    if (sl_saga_store_count(db, sl_saga_metrics_set, &ow->metrics) != 0)
        SL_LOG_WARN(log, NULL, "could not count sagas for the gauge");
    for (int i = 0; i < SAGA_TYPES; i++) {
        size_t n = 0;
        int rc = sl_saga_driver_recover(ow->drv[i], &n);
        if (rc != 0)
            SL_LOG_ERROR(log, NULL, "saga recovery incomplete", SL_LOG_STR("code", sl_errname(rc)));
        SL_LOG_INFO(log, NULL, "sagas resumed",
                    SL_LOG_STR("type", i == SAGA_CHECKOUT ? "checkout" : "cancel"),
                    SL_LOG_INT("count", (int64_t)n));
    }
}

/* The sweep (worker 0): every unfinished saga that no driver of the process tracks and that is
 * overdue by the grace is picked up here, so a saga that exists is always driven. */
static void sweep_fired(uv_timer_t *h)
{
    order_worker *ow = h->data;
    for (int i = 0; i < SAGA_TYPES; i++) {
        size_t n = 0;
        if (!ow->drv[i]) continue;
        int rc = sl_saga_driver_sweep(ow->drv[i], ow->cfg->sweep_grace_ms, &n);
        if (n > 0 || (rc != 0 && rc != SL_ELIMIT))
            SL_LOG_INFO(sl_svc_worker_log(ow->w), NULL, "sweep picked up sagas",
                        SL_LOG_STR("type", i == SAGA_CHECKOUT ? "checkout" : "cancel"),
                        SL_LOG_INT("count", (int64_t)n), SL_LOG_STR("code", sl_errname(rc)));
    }
}

static void sweep_closed(uv_handle_t *h)
{
    released(h->data);
}

int order_worker_new(sl_svc_worker *w, order_worker **out)
{
    SL_ASSERT(w && out);
    order_worker *ow = calloc(1, sizeof *ow);
    if (!ow) return SL_ENOMEM;
    ow->w = w;
    ow->cfg = sl_service_data(sl_svc_worker_service(w));
    metrics_setup(ow);
    int rc = make_upstream(ow, "inventory", ow->cfg->inventory_url, &ow->inv);
    if (rc == 0) {
        ow->closes++;
        rc = make_upstream(ow, "payment", ow->cfg->payment_url, &ow->pay);
    }
    if (rc == 0) {
        ow->closes++;
        rc = drivers_setup(ow);
    }
    *out = ow; /* even on failure: order_worker_close releases what was made */
    if (rc != 0) return rc;
    /* One resumer and sweeper per process: worker 0 (recovery before its loop serves anything;
     * the registry keeps it off sagas that other workers drive). */
    if (sl_svc_worker_index(w) == 0) {
        recover(ow);
        if (uv_timer_init(sl_svc_worker_loop(w), &ow->sweep) != 0) return SL_EINVAL;
        ow->sweep.data = ow;
        ow->sweep_init = 1;
        ow->closes++;
        uint64_t every = (uint64_t)ow->cfg->sweep_interval_ms;
        if (uv_timer_start(&ow->sweep, sweep_fired, every, every) != 0) return SL_EINVAL;
    }
    return 0;
}

void order_worker_close(order_worker *ow)
{
    if (!ow) return;
    if (ow->backlog && sl_svc_worker_index(ow->w) == 0) sl_gauge_set_fn(ow->backlog, NULL, NULL);
    for (int i = 0; i < SAGA_TYPES; i++) {
        sl_saga_driver_free(ow->drv[i]); /* late replies of its calls are dropped */
        ow->drv[i] = NULL;
    }
    ow->closes++; /* hold it while starting the closes below */
    for (int i = 0; i < SAGA_TYPES; i++)
        if (ow->timers[i].ow != NULL) uv_close((uv_handle_t *)&ow->timers[i].t, timer_closed);
    if (ow->sweep_init) uv_close((uv_handle_t *)&ow->sweep, sweep_closed);
    if (ow->inv) sl_upstream_close(ow->inv, upstream_closed, ow);
    if (ow->pay) sl_upstream_close(ow->pay, upstream_closed, ow);
    released(ow);
}

sl_saga_driver *order_worker_driver(order_worker *ow, const sl_saga_def *def)
{
    if (!ow) return NULL;
    if (def == &ow->cfg->sagas.checkout) return ow->drv[SAGA_CHECKOUT];
    if (def == &ow->cfg->sagas.cancel) return ow->drv[SAGA_CANCEL];
    return NULL;
}
