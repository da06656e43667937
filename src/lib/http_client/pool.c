/*
 * Endpoints, name resolution and the keep-alive connection pool of an
 * upstream (one loop thread).
 *
 * An attempt asks for a connection to its endpoint: an idle keep-alive one
 * if there is one (most recently used first, so the oldest idle ones age
 * out), else a new one while the upstream has fewer than max_connections
 * (closing an idle connection to another endpoint to make room if needed),
 * else the call waits in a FIFO queue of at most max_pending calls, bounded
 * in time by its per-try timer. A queued call is woken through its own timer
 * (never by recursion) each time a connection goes idle or closes.
 *
 * Resolution uses uv_getaddrinfo, one lookup per endpoint at a time, the
 * first address cached for dns_ttl_ms; IP literals are never resolved.
 * Connections read continuously: bytes or EOF on an idle connection close it
 * (the server gave up on it), so a pooled connection is usually known dead
 * before it is reused. When one was not, client.c re-sends once.
 */
#include "client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- endpoints -------------------------------------------------------- */

static int host_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':' || c == '%';
}

/* Parses "host:port" or "[v6]:port". Returns 0 or SL_ECONFIG. */
int sl__http_pool_parse_endpoint(const char *spec, endpoint *ep)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec) return SL_ECONFIG;
    const char *h = spec;
    size_t hlen = (size_t)(colon - spec);
    if (spec[0] == '[') {
        if (hlen < 3 || spec[hlen - 1] != ']') return SL_ECONFIG;
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen > SL_UPSTREAM_HOST_MAX) return SL_ECONFIG;
    for (size_t i = 0; i < hlen; i++)
        if (!host_char_ok((unsigned char)h[i])) return SL_ECONFIG;
    const char *p = colon + 1;
    long port = 0;
    if (*p == '\0' || strlen(p) > 5) return SL_ECONFIG;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return SL_ECONFIG;
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) return SL_ECONFIG;
    memcpy(ep->host, h, hlen);
    ep->host[hlen] = '\0';
    ep->port = (int)port;
    snprintf(ep->hostport, sizeof ep->hostport, "%s", spec);
    memset(&ep->addr, 0, sizeof ep->addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ep->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ep->addr;
    if (uv_ip4_addr(ep->host, ep->port, a4) == 0 || uv_ip6_addr(ep->host, ep->port, a6) == 0) {
        ep->literal = ep->have_addr = true;
    } else if (spec[0] == '[') {
        return SL_ECONFIG; /* brackets hold an IPv6 literal only */
    }
    return 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* ---- references ------------------------------------------------------ */

void sl__http_upstream_unref(sl_upstream *up)
{
    SL_ASSERT(up->refs > 0);
    if (--up->refs > 0 || !up->closing) return;
    up->hooks->last_ref(up);
}

/* ---- connections ------------------------------------------------------ */

static void conn_freed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->open_handles > 0) return;
    sl_upstream *up = c->up;
    free(c);
    sl__http_upstream_unref(up);
}

/* Tells its call (if any) that the attempt failed, then closes. */
static void conn_fail(conn *c, sl_outcome outcome, sl_http_result_kind kind, int code)
{
    sl_http_handle *call = c->call;
    if (call) {
        call->up->hooks->attempt_end(call, outcome, kind,
                                     code); /* closes c through sl__http_pool_release */
    } else {
        sl__http_conn_close(c);
    }
}

static void wake_one(sl_upstream *up)
{
    sl_http_handle *call = up->pool_head;
    if (!call) return;
    sl__http_pool_unqueue(call);
    up->hooks->wake(call);
}

void sl__http_conn_close(conn *c)
{
    if (c->state == C_CLOSING) return;
    sl_upstream *up = c->up;
    endpoint *ep = c->ep;
    if (c->state == C_IDLE) {
        if (c->prev)
            c->prev->next = c->next;
        else
            ep->idle = c->next;
        if (c->next) c->next->prev = c->prev;
        up->nidle--;
    } else if (c->state == C_RESOLVING) {
        conn **pp = &ep->waiters;
        while (*pp && *pp != c)
            pp = &(*pp)->next;
        if (*pp) *pp = c->next;
    }
    c->prev = c->next = NULL;
    c->state = C_CLOSING;
    if (c->call) c->call->conn = NULL;
    c->call = NULL;
    up->nconns--;
    if (c->tls)
        sl_tls_stream_close(c->tls, conn_freed); /* frees the wrapper */
    else
        uv_close((uv_handle_t *)&c->tcp, conn_freed);
    c->tls = NULL;
    uv_close((uv_handle_t *)&c->timer, conn_freed);
    wake_one(up);
}

static void on_idle_timeout(uv_timer_t *t)
{
    sl__http_conn_close(t->data);
}

/*
 * Takes a connection back after an attempt. A reusable one goes to the idle
 * list (while fewer than max_idle are idle), anything else is closed.
 */
void sl__http_pool_release(conn *c, bool reusable)
{
    sl_upstream *up = c->up;
    if (c->call) c->call->conn = NULL;
    c->call = NULL;
    if (!reusable || c->writing || up->closing || up->nidle >= up->cfg.max_idle) {
        sl__http_conn_close(c);
        return;
    }
    c->state = C_IDLE;
    c->prev = NULL;
    c->next = c->ep->idle;
    if (c->next) c->next->prev = c;
    c->ep->idle = c;
    up->nidle++;
    uv_timer_start(&c->timer, on_idle_timeout, up->cfg.idle_timeout_ms, 0);
    wake_one(up);
}

void sl__http_pool_close_idle(sl_upstream *up)
{
    for (size_t i = 0; i < up->neps; i++)
        while (up->eps[i].idle)
            sl__http_conn_close(up->eps[i].idle);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    conn *c = h->data;
    *buf = uv_buf_init(c->up->rbuf, READ_BUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (c->state == C_CLOSING || nread == 0) return;
    sl_http_handle *call = c->state == C_ACTIVE ? c->call : NULL;
    if (!call) {
        sl__http_conn_close(c); /* bytes, EOF or an error on an idle connection: it is finished */
        return;
    }
    int rc;
    size_t consumed = 0;
    if (nread > 0) {
        rc = sl__http_resp_feed(&call->resp, buf->base, (size_t)nread, &consumed);
    } else if (nread == UV_EOF) {
        rc = sl__http_resp_eof(&call->resp);
        consumed = 0;
        nread = 0;
    } else {
        conn_fail(c, sl_outcome_of(SL_OUTCOME_IO_ERROR), SL_HTTP_RESULT_IO, SL_EIO);
        return;
    }
    if (rc == 1) {
        call->up->hooks->response(call, call->resp.keep_alive && consumed == (size_t)nread);
    } else if (rc == SL_EIO) {
        conn_fail(c, sl_outcome_of(SL_OUTCOME_IO_ERROR), SL_HTTP_RESULT_IO, SL_EIO);
    } else if (rc < 0) {
        /* A malformed or oversized response: the upstream is at fault, not the path to it. */
        sl_http_result_kind kind =
            rc == SL_ELIMIT ? SL_HTTP_RESULT_TOO_LARGE : SL_HTTP_RESULT_PROTOCOL;
        sl_outcome o = call->resp.in_headers ? sl_outcome_of(SL_OUTCOME_IO_ERROR)
                                             : sl_outcome_response(call->resp.parser.status_code);
        conn_fail(c, o, kind, rc);
    }
}

static void on_connect_timeout(uv_timer_t *t)
{
    conn_fail(t->data, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR), SL_HTTP_RESULT_CONNECT,
              UV_ETIMEDOUT);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn *c = req->data;
    if (status == UV_ECANCELED || c->state == C_CLOSING) return;
    uv_timer_stop(&c->timer);
    if (status < 0) {
        conn_fail(c, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR), SL_HTTP_RESULT_CONNECT, status);
        return;
    }
    c->up->stats.connections_opened++;
    uv_tcp_nodelay(&c->tcp, 1);
    int rc =
        c->up->cfg.tls ? sl_tls_stream_new(c->up->cfg.tls, (uv_stream_t *)&c->tcp, &c->tls) : 0;
    if (rc == 0)
        rc = c->tls ? sl_tls_stream_read_start(c->tls, on_alloc, on_read)
                    : uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        conn_fail(c, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR), SL_HTTP_RESULT_CONNECT, rc);
        return;
    }
    c->state = C_ACTIVE;
    c->up->hooks->send(c->call, c);
}

static void conn_connect(conn *c)
{
    c->state = C_CONNECTING;
    struct sockaddr_storage addr = c->ep->addr;
    set_port(&addr, c->ep->port);
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&addr, on_connect);
    if (rc < 0) {
        conn_fail(c, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR), SL_HTTP_RESULT_CONNECT, rc);
        return;
    }
    uv_timer_start(&c->timer, on_connect_timeout, c->up->cfg.connect_timeout_ms, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    endpoint *ep = req->data;
    sl_upstream *up = ep->up;
    ep->resolving = false;
    if (status == 0 && res) {
        memset(&ep->addr, 0, sizeof ep->addr);
        memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
        ep->have_addr = true;
        ep->addr_expiry_ms = uv_now(up->loop) + up->cfg.dns_ttl_ms;
    } else if (status == 0) {
        status = UV_EAI_NONAME;
    }
    uv_freeaddrinfo(res);
    /* Each waiter either connects or fails; conn_fail unlinks it, so take the list first. */
    conn *list = ep->waiters;
    ep->waiters = NULL;
    while (list) {
        conn *c = list;
        list = c->next;
        c->next = NULL;
        if (c->state != C_RESOLVING) continue;
        if (status == 0) {
            conn_connect(c);
        } else {
            c->state = C_CONNECTING; /* no longer on the waiters list */
            conn_fail(c, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR), SL_HTTP_RESULT_CONNECT, status);
        }
    }
    sl__http_upstream_unref(up);
}

/* Starts a new connection for `call` to its endpoint. */
static void conn_open(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    endpoint *ep = call->ep;
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        call->up->hooks->attempt_end(call, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR),
                                     SL_HTTP_RESULT_CONNECT, SL_ENOMEM);
        return;
    }
    c->up = up;
    c->ep = ep;
    uv_tcp_init(up->loop, &c->tcp);
    uv_timer_init(up->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    up->refs++;
    up->nconns++;
    c->call = call;
    call->conn = c;
    if (ep->have_addr && (ep->literal || uv_now(up->loop) < ep->addr_expiry_ms)) {
        conn_connect(c);
        return;
    }
    c->state = C_RESOLVING;
    c->next = ep->waiters;
    ep->waiters = c;
    if (ep->resolving) return;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ep->gai.data = ep;
    int rc = uv_getaddrinfo(up->loop, &ep->gai, on_resolved, ep->host, NULL, &hints);
    if (rc < 0) {
        ep->waiters = c->next;
        c->next = NULL;
        c->state = C_CONNECTING;
        conn_fail(c, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR), SL_HTTP_RESULT_CONNECT, rc);
        return;
    }
    ep->resolving = true;
    up->refs++;
}

/* ---- the pool queue --------------------------------------------------- */

void sl__http_pool_unqueue(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    if (!call->in_pool_queue) return;
    if (call->pprev)
        call->pprev->pnext = call->pnext;
    else
        up->pool_head = call->pnext;
    if (call->pnext)
        call->pnext->pprev = call->pprev;
    else
        up->pool_tail = call->pprev;
    call->pprev = call->pnext = NULL;
    call->in_pool_queue = false;
    up->npool--;
}

static void enqueue(sl_http_handle *call, bool front)
{
    sl_upstream *up = call->up;
    if (front) {
        call->pnext = up->pool_head;
        if (up->pool_head)
            up->pool_head->pprev = call;
        else
            up->pool_tail = call;
        up->pool_head = call;
    } else {
        call->pprev = up->pool_tail;
        if (up->pool_tail)
            up->pool_tail->pnext = call;
        else
            up->pool_head = call;
        up->pool_tail = call;
    }
    call->in_pool_queue = true;
    up->npool++;
    call->state = K_POOL_WAIT;
}

/*
 * Finds a connection for `call` (state K_ATTEMPT or K_POOL_READY, endpoint
 * chosen): reuse, open, or queue. A woken call that still finds no room goes
 * back to the head of the queue, keeping its place.
 */
void sl__http_pool_acquire(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    endpoint *ep = call->ep;
    bool woken = call->state == K_POOL_READY;
    call->state = K_ATTEMPT;
    if (ep->idle) {
        conn *c = ep->idle;
        ep->idle = c->next;
        if (ep->idle) ep->idle->prev = NULL;
        c->next = c->prev = NULL;
        up->nidle--;
        uv_timer_stop(&c->timer);
        c->state = C_ACTIVE;
        c->call = call;
        call->conn = c;
        up->stats.connections_reused++;
        up->hooks->send(call, c);
        return;
    }
    if (up->nconns >= up->cfg.max_connections) {
        /* Make room by closing an idle connection to another endpoint. */
        for (size_t i = 0; i < up->neps; i++) {
            if (up->eps[i].idle) {
                conn *victim = up->eps[i].idle;
                sl__http_conn_close(victim); /* may wake a queued call, which re-queues if we win */
                break;
            }
        }
    }
    if (up->nconns < up->cfg.max_connections) {
        conn_open(call);
        return;
    }
    if (!woken && up->npool >= up->cfg.max_pending) {
        call->up->hooks->attempt_end(call, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR),
                                     SL_HTTP_RESULT_POOL_FULL, SL_ELIMIT);
        return;
    }
    enqueue(call, woken);
}
