/*
 * Upstreams and calls of the HTTP client: the composition of the resilience
 * policies around each attempt (docs/http-client.md):
 *
 *   deadline → bulkhead → circuit breaker → retry → attempt
 *
 * A call computes its deadline once, takes one bulkhead permit for its whole
 * life (queueing if allowed), then loops: ask the breaker, run an attempt
 * bounded by sl_retry_try_timeout_ms (per-try timeout and deadline), report
 * the verdict to the breaker, and let the retry policy decide whether and
 * when to try again. The final result is delivered from the upstream's
 * check handle, after the loop's I/O callbacks of the same turn, so the
 * callback never runs inside sl_http_call or inside another call's
 * bookkeeping, and a response costs no loop turn of its own.
 *
 * One uv_timer per call serves, in turn, the bulkhead wait, the per-try
 * timeout, the pool queue wake-up and the backoff delay; the call's state
 * says which (call_on_timer).
 */
#include "client_int.h"

#include <shoal/trace.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BULKHEAD_RETRY_AFTER_MS 1000 /* Retry-After has whole seconds: suggest the least */

void sl_upstream_config_default(sl_upstream_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_connections = 64;
    cfg->max_idle = 16;
    cfg->idle_timeout_ms = 30000;
    cfg->connect_timeout_ms = 1000;
    cfg->dns_ttl_ms = 30000;
    cfg->max_pending = 1024;
    cfg->timeout_ms = 5000;
    cfg->header_max_bytes = 16 * 1024;
    cfg->response_max_bytes = 1024 * 1024;
    cfg->request_body_max_bytes = 8 * 1024 * 1024;
    cfg->policies = true;
    sl_breaker_config_default(&cfg->breaker);
    sl_retry_config_default(&cfg->retry);
    sl_retry_budget_config_default(&cfg->budget);
    sl_bulkhead_config_default(&cfg->bulkhead);
}

static int64_t now_ns(const sl_upstream *up)
{
    return sl_clock_mono_ns(up->clock);
}

/* Milliseconds until `at_ns`, rounded up so a timer never fires before it. */
static uint64_t ms_until(const sl_upstream *up, int64_t at_ns)
{
    int64_t d = at_ns - now_ns(up);
    if (d <= 0) return 0;
    return (uint64_t)((d + 999999) / 1000000);
}

/* ---- what the pool calls back (client_int.h) ---------------------------- */

static void call_send(sl_http_handle *call, conn *c);
static void call_attempt_end(sl_http_handle *call, sl_outcome outcome, sl_http_result_kind kind,
                             int code);
static void call_on_response(sl_http_handle *call, bool reusable);
static void call_on_timer(uv_timer_t *t);
static void call_wake(sl_http_handle *call);
static void last_ref(sl_upstream *up);

static const sl__http_pool_hooks pool_hooks = {.send = call_send,
                                               .attempt_end = call_attempt_end,
                                               .response = call_on_response,
                                               .wake = call_wake,
                                               .last_ref = last_ref};

/* ---- upstream lifecycle ------------------------------------------------ */

static void upstream_free(sl_upstream *up)
{
    sl_breaker_free(up->breaker);
    sl_retry_budget_free(up->budget);
    sl_bulkhead_free(up->bulkhead);
    free(up->eps);
    free(up->rbuf);
    free(up->host_header);
    sl_tls_ctx_unref(up->cfg.tls);
    free(up);
}

/* The pool's last_ref hook: the last reference of a closing upstream went away. */
static void last_ref(sl_upstream *up)
{
    SL_ASSERT(up->closing && up->refs == 0);
    void (*done)(void *) = up->done;
    void *data = up->done_data;
    upstream_free(up);
    if (done) done(data);
}

static int header_value_ok(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n' || (unsigned char)*s < 0x20) return 0;
    return 1;
}

static int config_check(const sl_upstream_config *cfg)
{
    if (!cfg->name || !cfg->name[0] || strlen(cfg->name) > SL_UPSTREAM_NAME_MAX) return SL_ECONFIG;
    if (!cfg->endpoints || cfg->nendpoints == 0 || cfg->nendpoints > SL_UPSTREAM_ENDPOINTS_MAX)
        return SL_ECONFIG;
    if (cfg->max_connections == 0 || cfg->max_connections > SL_HTTP_CLIENT_CONNECTIONS_MAX ||
        cfg->max_idle > cfg->max_connections || cfg->idle_timeout_ms == 0 ||
        cfg->connect_timeout_ms == 0 || cfg->timeout_ms <= 0 || cfg->header_max_bytes < 64 ||
        cfg->header_max_bytes > 1024 * 1024 || cfg->response_max_bytes > ((size_t)1 << 30) ||
        cfg->request_body_max_bytes > ((size_t)1 << 30))
        return SL_ECONFIG;
    if (cfg->host_header &&
        (!cfg->host_header[0] || strlen(cfg->host_header) > SL_UPSTREAM_HOST_MAX + 8 ||
         !header_value_ok(cfg->host_header)))
        return SL_ECONFIG;
    if (sl_retry_config_valid(&cfg->retry) != 0) return SL_ECONFIG;
    return 0;
}

int sl_upstream_new(const sl_upstream_config *cfg, const sl_upstream_env *env, sl_upstream **out)
{
    if (!cfg || !env || !env->loop || !out) return SL_EINVAL;
    int rc = config_check(cfg);
    if (rc != 0) return rc;
    sl_upstream *up = calloc(1, sizeof *up);
    if (!up) return SL_ENOMEM;
    up->hooks = &pool_hooks;
    up->loop = env->loop;
    up->clock = env->clock ? env->clock : sl_clock_system();
    up->tracer = env->tracer;
    up->log = env->log;
    up->cfg = *cfg;
    up->cfg.name = NULL;
    up->cfg.endpoints = NULL;
    up->cfg.host_header = NULL;
    up->cfg.tls = sl_tls_ctx_ref(cfg->tls);
    snprintf(up->name, sizeof up->name, "%s", cfg->name);
    sl_retry_config_default(&up->no_retry);
    up->no_retry.max_retries = 0;
    up->no_retry.per_try_timeout_ms = 0;
    if (env->rand) {
        up->rand = env->rand;
    } else {
        if ((rc = sl_rand_seed_os(&up->own_rand)) != 0) goto fail;
        up->rand = &up->own_rand;
    }
    rc = SL_ENOMEM;
    up->eps = calloc(cfg->nendpoints, sizeof *up->eps);
    up->rbuf = malloc(READ_BUF_SIZE);
    if (cfg->host_header) up->host_header = strdup(cfg->host_header);
    if (!up->eps || !up->rbuf || (cfg->host_header && !up->host_header)) goto fail;
    up->neps = cfg->nendpoints;
    for (size_t i = 0; i < up->neps; i++) {
        up->eps[i].up = up;
        if (!cfg->endpoints[i] ||
            (rc = sl__http_pool_parse_endpoint(cfg->endpoints[i], &up->eps[i])) != 0) {
            rc = SL_ECONFIG;
            goto fail;
        }
    }
    if ((rc = sl_breaker_new(&cfg->breaker, up->clock, sl__http_breaker_transition, up,
                             &up->breaker)) ||
        (rc = sl_retry_budget_new(&cfg->budget, up->clock, &up->budget)) ||
        (rc = sl_bulkhead_new(&cfg->bulkhead, up->clock, &up->bulkhead)))
        goto fail;
    if (env->metrics && (rc = sl__http_metrics_setup(up, env->metrics, env->shard)) != 0) goto fail;
    uv_timer_init(up->loop, &up->close_timer);
    up->close_timer.data = up;
    uv_check_init(up->loop, &up->deliver_check);
    up->deliver_check.data = up;
    uv_idle_init(up->loop, &up->deliver_idle);
    up->deliver_idle.data = up;
    up->dq_tail = &up->dq_head;
    up->refs = 3;
    *out = up;
    return 0;
fail:
    upstream_free(up);
    return rc;
}

void sl_upstream_stats_get(const sl_upstream *up, sl_upstream_stats *out)
{
    *out = up->stats;
    out->connections_open = up->nconns;
    out->connections_idle = up->nidle;
}

sl_breaker *sl_upstream_breaker(sl_upstream *up)
{
    return up->breaker;
}

/* ---- calls: bookkeeping ------------------------------------------------ */

static void call_closed(uv_handle_t *h)
{
    sl_http_handle *call = h->data;
    sl_upstream *up = call->up;
    free(call);
    sl__http_upstream_unref(up);
}

static void call_free(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    if (call->prev)
        call->prev->next = call->next;
    else
        up->calls = call->next;
    if (call->next) call->next->prev = call->prev;
    sl__http_resp_free(&call->resp);
    if (!call->head_inline) free(call->head);
    uv_close((uv_handle_t *)&call->timer, call_closed);
}

static void span_finish(sl_http_handle *call, sl_outcome outcome, sl_http_result_kind kind)
{
    if (!call->span) return;
    if (sl_span_is_recording(call->span)) {
        if (outcome.kind == SL_OUTCOME_RESPONSE)
            sl_span_set_attr_int(call->span, "http.response.status_code", outcome.status);
        if (kind != SL_HTTP_RESULT_OK || outcome.status >= 500) {
            /* error.type (semantic conventions): the status code for a 5xx answer, else the
             * kind of failure ("timeout", "connect_error", ...). */
            char code[16];
            if (kind == SL_HTTP_RESULT_OK) snprintf(code, sizeof code, "%d", outcome.status);
            sl_span_set_attr_str(call->span, "error.type",
                                 kind != SL_HTTP_RESULT_OK ? sl_http_result_kind_name(kind) : code);
            sl_span_set_status(call->span, SL_SPAN_STATUS_ERROR,
                               kind != SL_HTTP_RESULT_OK ? sl_http_result_kind_name(kind)
                                                         : sl_http_reason(outcome.status));
        }
    }
    sl_span_end(call->span);
    call->span = NULL;
}

/* Tells the balancer how the attempt it chose ended (NULL: no verdict); once per attempt. */
static void lb_report(sl_http_handle *call, const sl_outcome *outcome)
{
    if (!call->lb_active) return;
    call->lb_active = false;
    sl_upstream *up = call->up;
    if (up->lb.report) up->lb.report(up->lb.data, (size_t)(call->ep - up->eps), outcome);
}

/* Stops whatever the call is doing, without a verdict and without its bulkhead permit. */
static void abandon(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    lb_report(call, NULL);
    if (call->state == K_BULKHEAD) (void)sl_bulkhead_cancel(up->bulkhead, &call->waiter);
    sl__http_pool_unqueue(call);
    uv_timer_stop(&call->timer);
    if (call->conn) sl__http_pool_release(call->conn, false);
    sl_http_local_detach(call->local);
    call->local = NULL;
    (void)sl_breaker_release(up->breaker, &call->permit);
    span_finish(call, sl_outcome_of(SL_OUTCOME_IO_ERROR), SL_HTTP_RESULT_CANCELED);
}

static void permit_return(sl_http_handle *call)
{
    if (!call->holds_permit) return;
    call->holds_permit = false;
    int rc = sl_bulkhead_release(call->up->bulkhead);
    (void)rc; /* SL_ESTATE cannot happen: holds_permit guards a single release */
    if (call->up->m.in_flight) sl_gauge_add(call->up->m.in_flight, -1);
}

static void check_closed(uv_handle_t *h)
{
    sl__http_upstream_unref(h->data); /* the check's, then the idle's reference */
}

static void deliver(sl_http_handle *call);

/* The check phase: runs the callbacks of the calls finished during this loop turn (those
 * queued while it runs wait for the next turn). Once the upstream is closing and nothing is
 * left, the handle closes. */
static void on_deliver_check(uv_check_t *h)
{
    sl_upstream *up = h->data;
    for (size_t n = up->dq_len; n > 0 && up->dq_head; n--) {
        sl_http_handle *call = up->dq_head;
        up->dq_head = call->dnext;
        if (up->dq_head == NULL) up->dq_tail = &up->dq_head;
        up->dq_len--;
        call->queued = false;
        deliver(call);
    }
    if (up->dq_head) return;
    uv_check_stop(h);
    uv_idle_stop(&up->deliver_idle);
    if (up->closing && !up->check_closed) {
        up->check_closed = true;
        uv_close((uv_handle_t *)h, check_closed);
        uv_close((uv_handle_t *)&up->deliver_idle, check_closed);
    }
}

static void on_deliver_idle(uv_idle_t *h)
{
    (void)h; /* only there so that the poll does not block while calls wait */
}

static void delivery_wanted(sl_upstream *up)
{
    uv_check_start(&up->deliver_check, on_deliver_check);
    uv_idle_start(&up->deliver_idle, on_deliver_idle);
}

static void enqueue_delivery(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    call->dnext = NULL;
    call->queued = true;
    *up->dq_tail = call;
    up->dq_tail = &call->dnext;
    up->dq_len++;
    delivery_wanted(up);
}

static void dequeue_delivery(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    if (!call->queued) return;
    for (sl_http_handle **pp = &up->dq_head; *pp; pp = &(*pp)->dnext) {
        if (*pp != call) continue;
        *pp = call->dnext;
        if (up->dq_tail == &call->dnext) up->dq_tail = pp;
        up->dq_len--;
        call->queued = false;
        return;
    }
}

/* Records the result and queues the callback for the check phase of this loop turn. */
static void finish(sl_http_handle *call, sl_http_result_kind kind, int code, int64_t retry_after_ms)
{
    sl_upstream *up = call->up;
    abandon(call);
    call->result.error = code;
    call->result.kind = kind;
    call->result.retry_after_ms = retry_after_ms;
    call->result.attempts = call->attempts;
    up->stats.results[kind]++;
    up->stats.in_flight--;
    sl__http_metrics_inc(up->m.requests[kind], &up->m);
    if (up->m.duration)
        sl_histogram_observe(up->m.duration, up->m.shard,
                             (double)(now_ns(up) - call->start_ns) / 1e9);
    call->state = K_DONE;
    enqueue_delivery(call);
    permit_return(call); /* last: it may start queued calls */
}

static void deliver(sl_http_handle *call)
{
    call->state = K_DELIVERING;
    if (call->result.kind == SL_HTTP_RESULT_OK)
        call->result.response = sl__http_resp_get(&call->resp);
    call->cb(call, &call->result, call->data);
    call_free(call);
}

/* ---- calls: attempts --------------------------------------------------- */

static void next_attempt(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    if (up->closing) {
        finish(call, SL_HTTP_RESULT_CANCELED, SL_ECANCELED, 0);
        return;
    }
    if (up->cfg.policies && sl_breaker_allow(up->breaker, &call->permit) != 0) {
        up->stats.breaker_rejections++;
        sl__http_metrics_inc(up->m.breaker_rejections, &up->m);
        int64_t ra = sl_breaker_retry_after_ms(up->breaker);
        finish(call, SL_HTTP_RESULT_BREAKER_OPEN, SL_EUNAVAIL, ra > 0 ? ra : 1);
        return;
    }
    int64_t t = sl_retry_try_timeout_ms(&call->rs);
    if (t == 0) {
        finish(call, SL_HTTP_RESULT_TIMEOUT, SL_ETIMEDOUT, 0);
        return;
    }
    call->attempts++;
    up->stats.attempts++;
    call->try_start_ns = now_ns(up);
    call->try_deadline_ns = INT64_MAX;
    if (t != INT64_MAX) {
        call->try_deadline_ns = call->try_start_ns + t * 1000000;
        uv_timer_start(&call->timer, call_on_timer, (uint64_t)t, 0);
    }
    int pick = up->lb.pick ? up->lb.pick(up->lb.data, call->attempts) : -1;
    call->ep =
        pick >= 0 && (size_t)pick < up->neps ? &up->eps[pick] : &up->eps[up->rr++ % up->neps];
    call->lb_active = up->lb.pick != NULL;
    if (up->tracer) {
        static const char *const span_names[] = {
#define SL_SPAN_NAME_(name, text) "HTTP " text,
            SL_HTTP_METHOD_MAP(SL_SPAN_NAME_)
#undef SL_SPAN_NAME_
                "HTTP OTHER"};
        unsigned m = (unsigned)call->method;
        const char *name = span_names[m < SL_ARRAY_LEN(span_names) ? m : SL_HTTP_OTHER];
        /* A call made on no request's behalf (a poll, a key refresh) starts a quiet trace:
         * exported only when it fails or is slow, so polls do not crowd out requests. */
        if (call->has_parent)
            sl_span_start(up->tracer, name, SL_SPAN_CLIENT, &call->parent, &call->span);
        else
            sl_span_start_quiet(up->tracer, name, SL_SPAN_CLIENT, NULL, &call->span);
        if (sl_span_is_recording(call->span)) {
            sl_span_set_attr_str(call->span, "http.request.method",
                                 sl_http_method_name(call->method));
            sl_span_set_attr_str(call->span, "server.address", call->ep->host);
            sl_span_set_attr_int(call->span, "server.port", call->ep->port);
            /* url.path: the request target up to its query, from the prepared request line
             * "METHOD /path?query HTTP/1.1\r\n". */
            const char *line = call->prep.buf;
            const char *sp = memchr(line, ' ', call->prep.line_len);
            const char *end = line + call->prep.line_len - (sizeof " HTTP/1.1\r\n" - 1);
            if (sp && sp + 1 < end) {
                const char *q = memchr(sp + 1, '?', (size_t)(end - sp - 1));
                sl_span_set_attr_strn(call->span, "url.path", sp + 1,
                                      (size_t)((q ? q : end) - sp - 1));
            }
            sl_span_set_attr_str(call->span, "peer.service", up->name);
            if (call->attempts > 1)
                sl_span_set_attr_int(call->span, "http.request.resend_count", call->attempts - 1);
        }
    }
    call->state = K_ATTEMPT;
    if (sl__http_local_attempt(call)) return;
    sl__http_pool_acquire(call);
}

static void on_write(uv_write_t *req, int status)
{
    conn *c = req->data;
    c->writing = false;
    if (status == UV_ECANCELED || c->state == C_CLOSING) return;
    if (status < 0 && c->call)
        call_attempt_end(c->call, sl_outcome_of(SL_OUTCOME_IO_ERROR), SL_HTTP_RESULT_IO, SL_EIO);
}

static void call_send(sl_http_handle *call, conn *c)
{
    int n = sl__http_head_build(call);
    if (n == SL_ENOMEM) {
        call_attempt_end(call, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR), SL_HTTP_RESULT_CONNECT,
                         SL_ENOMEM);
        return;
    }
    sl__http_resp_reset(&call->resp, call->method == SL_HTTP_HEAD);
    c->reused = c->used;
    c->used = true;
    uv_buf_t bufs[2] = {uv_buf_init(call->head, n > 0 ? (unsigned)n : 0),
                        uv_buf_init((char *)call->body, (unsigned)call->body_len)};
    c->wreq.data = c;
    unsigned nbufs = call->body_len ? 2 : 1;
    if (n < 0) {
        call_attempt_end(call, sl_outcome_of(SL_OUTCOME_IO_ERROR), SL_HTTP_RESULT_IO, SL_EIO);
        return;
    }
    /* Write now what the socket takes: a uv_write request, even one that completes at once,
     * costs an epoll_ctl when it finishes (libuv drops POLLOUT), i.e. one per proxied request. */
    int rc = c->tls ? sl_tls_stream_try_write(c->tls, bufs, nbufs)
                    : uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    if (rc == UV_EAGAIN) rc = 0;
    if (rc >= 0) {
        size_t done = (size_t)rc;
        uv_buf_t *b = bufs;
        while (nbufs > 0 && done >= b->len) {
            done -= b->len;
            b++;
            nbufs--;
        }
        if (nbufs == 0) return; /* all written */
        b->base += done;
        b->len -= done;
        rc = c->tls ? sl_tls_stream_write(c->tls, &c->wreq, b, nbufs, on_write)
                    : uv_write(&c->wreq, (uv_stream_t *)&c->tcp, b, nbufs, on_write);
    }
    if (rc < 0) {
        call_attempt_end(call, sl_outcome_of(SL_OUTCOME_IO_ERROR), SL_HTTP_RESULT_IO, SL_EIO);
        return;
    }
    c->writing = true;
}

static void attempt_done(sl_http_handle *call, sl_outcome outcome, sl_http_result_kind kind,
                         int code, bool reusable)
{
    sl_upstream *up = call->up;
    conn *c = call->conn;
    /* A pooled connection the server had already closed: nothing reached it. */
    bool stale = c && c->reused && !call->resp.got_bytes && kind == SL_HTTP_RESULT_IO;
    if (c) sl__http_pool_release(c, reusable);
    sl_http_local_detach(call->local);
    call->local = NULL;
    sl__http_pool_unqueue(call);
    uv_timer_stop(&call->timer);
    int64_t dur_ms = (now_ns(up) - call->try_start_ns) / 1000000;
    span_finish(call, outcome, kind);
    bool no_verdict =
        (stale && call->safe && !call->redispatched) || kind == SL_HTTP_RESULT_POOL_FULL;
    lb_report(call, no_verdict ? NULL : &outcome);
    if (stale && call->safe && !call->redispatched) {
        call->redispatched = true; /* re-sent once on a fresh connection, no verdict */
        (void)sl_breaker_release(up->breaker, &call->permit);
        call->state = K_BACKOFF;
        uv_timer_start(&call->timer, call_on_timer, 0, 0);
        return;
    }
    sl__http_metrics_inc(up->m.attempts[outcome.kind], &up->m);
    if (kind == SL_HTTP_RESULT_POOL_FULL) /* local congestion says nothing about the upstream */
        (void)sl_breaker_release(up->breaker, &call->permit);
    else
        (void)sl_breaker_on_result(up->breaker, &call->permit,
                                   sl_breaker_classify(outcome, up->cfg.breaker.failure_set),
                                   dur_ms);
    bool retryable_kind = kind == SL_HTTP_RESULT_OK || kind == SL_HTTP_RESULT_IO ||
                          kind == SL_HTTP_RESULT_CONNECT || kind == SL_HTTP_RESULT_TIMEOUT;
    if (!up->cfg.policies || !retryable_kind ||
        (kind == SL_HTTP_RESULT_OK && !sl_retry_outcome_retryable(outcome))) {
        finish(call, kind, code, 0);
        return;
    }
    sl_slice ra = {NULL, 0};
    if (kind == SL_HTTP_RESULT_OK)
        (void)sl_http_response_header(sl__http_resp_get(&call->resp), "retry-after", &ra);
    int64_t delay = -1;
    sl_retry_decision d =
        sl_retry_next(&call->rs, outcome, ra.ptr, ra.len, up->rand, up->budget, &delay);
    if (d == SL_RETRY_RETRY) {
        up->stats.retries++;
        sl__http_metrics_inc(up->m.retries, &up->m);
        call->state = K_BACKOFF;
        uv_timer_start(&call->timer, call_on_timer, (uint64_t)delay, 0);
        return;
    }
    if (d == SL_RETRY_BUDGET) {
        up->stats.budget_exhausted++;
        sl__http_metrics_inc(up->m.budget_exhausted, &up->m);
    }
    finish(call, kind, code, 0);
}

static void call_attempt_end(sl_http_handle *call, sl_outcome outcome, sl_http_result_kind kind,
                             int code)
{
    attempt_done(call, outcome, kind, code, false);
}

static void call_on_response(sl_http_handle *call, bool reusable)
{
    attempt_done(call, sl_outcome_response(call->resp.parser.status_code), SL_HTTP_RESULT_OK, 0,
                 reusable);
}

/* ---- calls: the bulkhead ----------------------------------------------- */

static void got_permit(sl_http_handle *call)
{
    call->holds_permit = true;
    if (call->up->m.in_flight) sl_gauge_add(call->up->m.in_flight, 1);
}

static void bulkhead_refused(sl_http_handle *call)
{
    call->up->stats.bulkhead_rejections++;
    sl__http_metrics_inc(call->up->m.bulkhead_rejections, &call->up->m);
    finish(call, SL_HTTP_RESULT_BULKHEAD_FULL, SL_EUNAVAIL, BULKHEAD_RETRY_AFTER_MS);
}

static void on_bulkhead(sl_bulkhead_waiter *w, int status, void *data)
{
    (void)w;
    sl_http_handle *call = data;
    uv_timer_stop(&call->timer);
    call->state = K_ATTEMPT; /* no longer queued */
    if (status == 0) {
        got_permit(call);
        next_attempt(call);
    } else {
        bulkhead_refused(call);
    }
}

static void bulkhead_enter(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    int rc = sl_bulkhead_try_acquire(up->bulkhead);
    if (rc == SL_EBUSY) {
        rc = sl_bulkhead_enqueue(up->bulkhead, &call->waiter, on_bulkhead, call);
        if (rc == 0) {
            call->state = K_BULKHEAD;
            int64_t until = now_ns(up) + up->cfg.bulkhead.max_wait_ms * 1000000;
            if (call->deadline.at_ns < until) until = call->deadline.at_ns;
            uv_timer_start(&call->timer, call_on_timer, ms_until(up, until), 0);
            return;
        }
        if (rc == SL_EAGAIN) rc = sl_bulkhead_try_acquire(up->bulkhead);
    }
    if (rc != 0) {
        bulkhead_refused(call);
        return;
    }
    got_permit(call);
    next_attempt(call);
}

static void call_on_timer(uv_timer_t *t)
{
    sl_http_handle *call = t->data;
    sl_upstream *up = call->up;
    switch (call->state) {
    case K_BULKHEAD:
        if (sl_deadline_expired(call->deadline, up->clock)) {
            finish(call, SL_HTTP_RESULT_TIMEOUT, SL_ETIMEDOUT, 0);
            return;
        }
        sl_bulkhead_expire(up->bulkhead); /* runs on_bulkhead for every overdue waiter */
        if (call->state == K_BULKHEAD) uv_timer_start(&call->timer, call_on_timer, 1, 0);
        return;
    case K_ATTEMPT:
    case K_POOL_WAIT:
        attempt_done(call, sl_outcome_of(SL_OUTCOME_TIMEOUT), SL_HTTP_RESULT_TIMEOUT, SL_ETIMEDOUT,
                     false);
        return;
    case K_POOL_READY:
        if (call->try_deadline_ns != INT64_MAX) {
            uint64_t left = ms_until(up, call->try_deadline_ns);
            if (left == 0) {
                attempt_done(call, sl_outcome_of(SL_OUTCOME_TIMEOUT), SL_HTTP_RESULT_TIMEOUT,
                             SL_ETIMEDOUT, false);
                return;
            }
            uv_timer_start(&call->timer, call_on_timer, left, 0);
        }
        sl__http_pool_acquire(call);
        return;
    case K_BACKOFF:
        next_attempt(call);
        return;
    case K_DONE: /* delivered by the check */
    case K_DELIVERING:
        return;
    }
}

/* The pool's wake hook: a queued call takes its turn on the next timer tick. */
static void call_wake(sl_http_handle *call)
{
    SL_ASSERT(!call->in_pool_queue);
    call->state = K_POOL_READY;
    uv_timer_start(&call->timer, call_on_timer, 0, 0);
}

/* ---- public call API --------------------------------------------------- */

int sl_http_call(sl_upstream *up, const sl_http_request *req, const sl_http_call_opts *opts,
                 sl_http_call_cb cb, void *data, sl_http_handle **call_out)
{
    static const sl_http_call_opts no_opts;
    if (!up || !req || !cb) return SL_EINVAL;
    if (up->closing) return SL_ECLOSED;
    if (!opts) opts = &no_opts;
    if (req->body_len > up->cfg.request_body_max_bytes) return SL_ELIMIT;
    size_t psize = 0;
    int rc = sl__http_prep_size(req, opts->request_id, opts->idempotency_key, &psize);
    if (rc != 0) return rc;
    /* One block: the call, its prepared request, the body copy, then room for the head each
     * attempt writes (call_send: the prepared parts, the host and up to 256 bytes of trace and
     * deadline fields). Not calloc: the response parser's header arrays (most of the 5 KiB)
     * need no clearing. */
    /* The caller's tracestate goes along only when valid and beside a trace context; an
     * invalid one is discarded whole (W3C Trace Context §3.3.1.1). */
    size_t ts_len = 0;
    if (opts->tracestate.len > 0 && opts->tracestate.ptr && opts->trace &&
        sl_trace_ctx_is_valid(opts->trace) &&
        sl_tracestate_validate(opts->tracestate.ptr, opts->tracestate.len) == 0)
        ts_len = opts->tracestate.len;
    size_t ts_room = ts_len ? ts_len + 1 : 0;
    size_t head_room = psize +
                       (up->host_header ? strlen(up->host_header) : sizeof up->eps->hostport) +
                       256 + (ts_len ? ts_len + 16 : 0);
    sl_http_handle *call = malloc(sizeof *call + psize + req->body_len + ts_room + head_room);
    if (!call) return SL_ENOMEM;
    memset(call, 0, offsetof(sl_http_handle, resp));
    char *mem = (char *)(call + 1);
    if (ts_len) {
        char *ts = mem + psize + req->body_len;
        memcpy(ts, opts->tracestate.ptr, ts_len);
        ts[ts_len] = '\0';
        call->tracestate = ts;
    }
    call->head = mem + psize + req->body_len + ts_room;
    call->head_cap = head_room;
    call->head_inline = true;
    sl__http_prep_write(req, opts->request_id, opts->idempotency_key, mem, &call->prep);
    if (req->body_len) memcpy(mem + psize, req->body, req->body_len);
    call->body = mem + psize;
    call->body_len = req->body_len;
    call->up = up;
    call->cb = cb;
    call->data = data;
    call->method = req->method;
    const char *m = sl_http_method_name(req->method);
    call->safe = sl_retry_method_idempotent((sl_slice){m, strlen(m)}) || opts->idempotency_key;
    sl_deadline parent = opts->deadline ? *opts->deadline : sl_deadline_none();
    int64_t timeout = opts->timeout_ms > 0 ? opts->timeout_ms : up->cfg.timeout_ms;
    call->deadline = sl_deadline_child(parent, up->clock, timeout);
    if (opts->trace && sl_trace_ctx_is_valid(opts->trace)) {
        call->parent = *opts->trace;
        call->has_parent = true;
    }
    sl__http_resp_init(&call->resp, up->cfg.header_max_bytes, up->cfg.response_max_bytes);
    uv_timer_init(up->loop, &call->timer);
    call->timer.data = call;
    call->next = up->calls;
    if (up->calls) up->calls->prev = call;
    up->calls = call;
    up->refs++;
    up->stats.requests++;
    up->stats.in_flight++;
    call->start_ns = now_ns(up);
    if (call_out) *call_out = call;
    if (up->cfg.policies) {
        sl_retry_budget_on_request(up->budget);
        sl_retry_state_init(&call->rs, &up->cfg.retry, up->clock, call->deadline.at_ns, call->safe);
        bulkhead_enter(call);
    } else {
        sl_retry_state_init(&call->rs, &up->no_retry, up->clock, call->deadline.at_ns, false);
        next_attempt(call);
    }
    return 0;
}

void sl_http_call_cancel(sl_http_handle *call)
{
    if (!call || call->state == K_DELIVERING) return;
    if (call->state != K_DONE) {
        abandon(call);
        call->up->stats.results[SL_HTTP_RESULT_CANCELED]++;
        call->up->stats.in_flight--;
        permit_return(call);
    }
    dequeue_delivery(call);
    call->state = K_DELIVERING; /* never delivered */
    call_free(call);
}

static void close_timer_closed(uv_handle_t *h)
{
    sl__http_upstream_unref(h->data);
}

void sl_upstream_close(sl_upstream *up, void (*done)(void *data), void *data)
{
    if (up->closing) return;
    up->closing = true;
    up->done = done;
    up->done_data = data;
    for (sl_http_handle *call = up->calls; call; call = call->next)
        if (call->state != K_DONE && call->state != K_DELIVERING)
            finish(call, SL_HTTP_RESULT_CANCELED, SL_ECANCELED, 0);
    sl__http_pool_close_idle(up);
    /* The check runs at least once more: it delivers what close finished, then closes. */
    delivery_wanted(up);
    for (size_t i = 0; i < up->neps; i++)
        if (up->eps[i].resolving) uv_cancel((uv_req_t *)&up->eps[i].gai);
    uv_close((uv_handle_t *)&up->close_timer, close_timer_closed);
}

void sl_upstream_set_balancer(sl_upstream *up, const sl_upstream_balancer *b)
{
    if (b)
        up->lb = *b;
    else
        memset(&up->lb, 0, sizeof up->lb);
}

int sl_http_response_header(const sl_http_response *res, const char *name, sl_slice *value)
{
    return sl_http_header_find(res->headers, res->nheaders, name, value);
}
