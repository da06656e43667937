/*
 * Structures of the HTTP client shared by client.c (calls and policies),
 * pool.c (endpoints, resolution, connections) and metrics.c. Everything
 * here belongs to one loop thread.
 */
#ifndef SHOAL_HTTP_CLIENT_CLIENT_INT_H
#define SHOAL_HTTP_CLIENT_CLIENT_INT_H

#include "http_client_int.h"

#include <shoal/log.h>
#include <shoal/metrics.h>
#include <shoal/tls.h>

#include <netinet/in.h>
#include <sys/socket.h>

#define READ_BUF_SIZE (64 * 1024)

typedef struct endpoint endpoint;
typedef struct conn conn;

/*
 * What the pool tells the client about an attempt (client.c installs one
 * table in every upstream). pool.c calls these and never a client function
 * by name, so calls go one way: client.c -> pool.c.
 */
typedef struct sl__http_pool_hooks {
    /* `c` is connected (or reused) for `call`: write the request. */
    void (*send)(sl_http_handle *call, conn *c);
    /* The attempt failed before a response (closes its connection through the pool). */
    void (*attempt_end)(sl_http_handle *call, sl_outcome outcome, sl_http_result_kind kind,
                        int code);
    /* A final response was parsed into call->resp; `reusable`: the connection may be kept. */
    void (*response)(sl_http_handle *call, bool reusable);
    /* `call`, taken off the pool's queue, may now try for a connection again. */
    void (*wake)(sl_http_handle *call);
    /* The last reference of a closing upstream went away: free it. */
    void (*last_ref)(sl_upstream *up);
} sl__http_pool_hooks;

struct endpoint {
    sl_upstream *up;
    char host[SL_UPSTREAM_HOST_MAX + 1]; /* without brackets, NUL-terminated */
    char hostport[SL_UPSTREAM_HOST_MAX + 10];
    int port;
    struct sockaddr_storage addr;
    bool literal;   /* an IP address: never resolved */
    bool have_addr; /* addr is usable until addr_expiry_ms (loop time) */
    uint64_t addr_expiry_ms;
    bool resolving;
    uv_getaddrinfo_t gai;
    conn *waiters; /* connections waiting for the resolution (linked by next) */
    conn *idle;    /* idle keep-alive connections, most recent first */
};

enum conn_state { C_RESOLVING, C_CONNECTING, C_ACTIVE, C_IDLE, C_CLOSING };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout, then idle timeout */
    uv_connect_t creq;
    uv_write_t wreq;
    sl_upstream *up;
    endpoint *ep;
    sl_http_handle *call; /* the attempt this connection serves, if any */
    conn *prev, *next;    /* idle list or resolve waiters */
    enum conn_state state;
    int open_handles;
    bool writing;
    bool reused;        /* the current request is not the connection's first */
    bool used;          /* has carried a request */
    sl_tls_stream *tls; /* NULL: plain */
};

enum call_state {
    K_BULKHEAD,   /* queued for a bulkhead permit */
    K_ATTEMPT,    /* an attempt is running (resolve, connect, write, read) */
    K_POOL_WAIT,  /* an attempt waits for a connection slot */
    K_POOL_READY, /* woken from the pool queue; acquires on the next timer tick */
    K_BACKOFF,    /* waiting before the next attempt */
    K_DONE,       /* result ready; queued for the upstream's delivery check */
    K_DELIVERING, /* inside the callback */
};

struct sl_http_call {
    sl_upstream *up;
    sl_http_handle *prev, *next;   /* up->calls */
    sl_http_handle *pprev, *pnext; /* up's pool queue */
    uv_timer_t timer;              /* bulkhead wait, per-try timeout, backoff */
    sl_http_handle *dnext;         /* up's delivery queue */
    bool queued;                   /* in up's delivery queue */
    enum call_state state;
    sl_http_call_cb cb;
    void *data;
    sl_http_method method;
    bool safe;
    bool holds_permit; /* a bulkhead permit */
    bool redispatched; /* a stale pooled connection was already retried once */
    bool in_pool_queue;
    sl_deadline deadline;
    int64_t start_ns;
    int64_t try_start_ns;
    int64_t try_deadline_ns; /* INT64_MAX: no per-try timer */
    bool has_parent;
    sl_trace_ctx parent;
    const char *tracestate; /* the caller's validated tracestate, in the call's block; or NULL */
    sl_retry_state rs;
    sl_bulkhead_waiter waiter;
    sl_breaker_permit permit;
    sl_span *span;
    uint32_t attempts;
    endpoint *ep;
    bool lb_active;       /* the balancer picked ep and awaits its report */
    sl_http_local *local; /* the in-process attempt in flight, if any */
    conn *conn;
    char *head; /* in the call's block (head_inline), else on the heap */
    size_t head_cap;
    bool head_inline;
    sl__http_prep prep;
    const char *body;
    size_t body_len;
    sl_http_result result;
    sl__http_resp
        resp; /* last: sl_http_call clears what comes before, sl__http_resp_init the rest */
    /* followed, in the same block, by the prepared head and the body copy */
};

/* Metric series of one upstream on one worker (NULL when there is no registry). */
typedef struct up_metrics {
    unsigned shard;
    sl_series *requests[SL_HTTP_RESULT_COUNT];
    sl_series *attempts[SL_OUTCOME_KIND_COUNT];
    sl_series *retries, *budget_exhausted, *breaker_rejections, *bulkhead_rejections;
    sl_series *local_attempts;
    sl_series *in_flight, *duration, *breaker_state;
    sl_series *transitions[SL_BREAKER_STATE_COUNT][SL_BREAKER_STATE_COUNT];
} up_metrics;

struct sl_upstream {
    uv_loop_t *loop;
    const sl_clock *clock;
    sl_rand *rand;
    sl_rand own_rand;
    sl_tracer *tracer;
    sl_logger *log;
    char name[SL_UPSTREAM_NAME_MAX + 1];
    char *host_header;      /* owned; NULL = the endpoint's host:port */
    sl_upstream_config cfg; /* copy; its pointers are cleared */
    sl_retry_config no_retry;
    endpoint *eps;
    size_t neps, rr;
    sl_breaker *breaker;
    sl_retry_budget *budget;
    sl_bulkhead *bulkhead;
    char *rbuf;
    uint32_t nconns; /* connections not closing */
    uint32_t nidle;
    sl_http_handle *calls; /* every live call */
    sl_http_handle *pool_head, *pool_tail;
    uint32_t npool;
    uv_timer_t close_timer; /* a handle whose close callback finishes sl_upstream_close */
    /* Finished calls wait here for their callback, which runs in the check phase of the same
     * loop turn: never inside the call that finished them, and without a turn of its own. The
     * idle handle, active while calls wait, keeps the poll from blocking when they were
     * queued after this turn's poll (in a timer, or in a check that already ran). */
    uv_check_t deliver_check;
    uv_idle_t deliver_idle;
    sl_http_handle *dq_head, **dq_tail;
    size_t dq_len;
    bool check_closed;
    size_t refs; /* live calls, connections, lookups, close_timer, deliver_check, deliver_idle */
    bool closing;
    void (*done)(void *data);
    void *done_data;
    sl_upstream_stats stats;
    sl_metrics *metrics;
    up_metrics m;
    sl_upstream_balancer lb; /* pick == NULL: round robin */
    const sl__http_pool_hooks *hooks;
};

/* pool.c: endpoints, resolution, connections, the queue for a connection slot */
int sl__http_pool_parse_endpoint(const char *spec, endpoint *ep);
void sl__http_pool_acquire(sl_http_handle *call);
void sl__http_pool_release(conn *c, bool reusable);
void sl__http_conn_close(conn *c);
void sl__http_pool_close_idle(sl_upstream *up);
void sl__http_pool_unqueue(sl_http_handle *call);
/* Drops one of up->refs; the last of a closing upstream calls up->hooks->last_ref. */
void sl__http_upstream_unref(sl_upstream *up);

/* local.c: the attempt's head (prepared request, Host, traceparent, tracestate, deadline) into
 * call->head; its length, or SL_ENOMEM / SL_EIO. */
int sl__http_head_build(sl_http_handle *call);

/* local.c: dispatches the attempt in process when its endpoint is a server registered on this
 * thread (sl_http_local_register) and returns true (the attempt then ends through up->hooks as
 * a network one would); false: go through the pool. */
bool sl__http_local_attempt(sl_http_handle *call);

/* metrics.c */
int sl__http_metrics_setup(sl_upstream *up, sl_metrics *reg, unsigned shard);
void sl__http_metrics_inc(sl_series *s, const up_metrics *m);
void sl__http_breaker_transition(sl_breaker_state from, sl_breaker_state to,
                                 sl_breaker_reason reason, void *data);

#endif
