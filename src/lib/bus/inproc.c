/*
 * The `inproc:` bus backend: a broker in memory, for unit tests and the
 * single-process mode. It mimics JetStream's semantics on the bus's loop:
 * topics keep their messages (bounded, oldest dropped), durable groups keep
 * a per-message state (new / pending / done) and a list of pending
 * deliveries with their deadlines (ack_wait with backoff, nack delays),
 * duplicate ids are dropped within the window, and an ordered group holds
 * back a subject's hash bucket while an earlier message of it is pending
 * (so equal subjects are handled in order across all the group's
 * subscriptions). Every bus sharing a broker must run on the same loop.
 * Nothing is delivered from inside a call: publishes, settles and
 * subscribes only mark work; a zero timer ("kick") and a 10 ms tick do it.
 *
 * A confirming broker (sl_bus_broker_new_opts with `confirm`, the hosted
 * shape) acknowledges a publish only when every group the topic had when
 * the message arrived has settled it (acked after its handler committed, or
 * dead-lettered): each message counts the groups still owing it
 * (`waiting`) and lists the publishes waiting for it. A duplicate publish
 * waits for the original. Messages no group owes any more are dropped (the
 * publisher's outbox is the durable log), dead-letter topics excepted, and
 * at most `max_queued` messages may be owed at once: beyond it a publish
 * fails with SL_ELIMIT (the relay backs off and sends again).
 */
#include "bus/bus_int.h"

#include <stdlib.h>
#include <string.h>

#define IP_BUCKETS   4096u
#define IP_DEDUP_TAB 65536u
#define IP_SCAN_MAX  20000u

enum { ST_NEW = 0, ST_PENDING = 1, ST_DONE = 2 };

/* A publish waiting for one message to be settled by every group (confirming broker). */
typedef struct ip_waiter {
    struct ip_bus *ib; /* NULL once its bus closed (the publish was failed then) */
    bus_pub *pub;
    struct ip_waiter *next_msg;            /* the message's list */
    struct ip_waiter *prev_bus, *next_bus; /* the bus's list */
} ip_waiter;

typedef struct ip_msg {
    char *id, *subject, *data;
    size_t len;
    int64_t ts_ms;
    uint32_t bucket;
    unsigned waiting;   /* confirming broker: groups that have not settled it yet */
    ip_waiter *waiters; /* publishes acknowledged when `waiting` reaches 0 */
} ip_msg;

typedef struct ip_pending {
    uint64_t seq;
    unsigned deliveries;
    bool inflight; /* else waiting for redelivery at `due_ms` */
    int64_t due_ms;
} ip_pending;

typedef struct ip_sub {
    sl_bus_sub *sub;
    struct ip_group *g;
    struct ip_sub *next;
    unsigned held; /* deliveries this backend handed out and not yet settled */
    bool stopped;
} ip_sub;

typedef struct ip_group {
    char name[SL_BUS_GROUP_MAX + 1];
    struct ip_topic *t;
    uint64_t base;  /* seq of state[0] */
    uint8_t *state; /* per message since base */
    size_t state_cap;
    uint64_t floor;   /* every seq below is done */
    ip_pending *pend; /* sorted by seq */
    size_t npend, pend_cap;
    uint64_t holder[IP_BUCKETS]; /* seq + 1 of the pending message holding a bucket */
    uint64_t join;               /* first seq published after the group was created */
    bool ordered;
    sl_bus_sub_options opt;
    ip_sub *subs, *rr;
    struct ip_group *next;
} ip_group;

typedef struct ip_topic {
    char name[SL_BUS_TOPIC_MAX + 8];
    ip_msg *msgs; /* msgs[i] has seq first + i */
    size_t n, cap;
    uint64_t first;
    ip_group *groups;
    unsigned ngroups;
    bool dlq;  /* a dead-letter topic: kept (bounded by max_msgs) for listing and redrive */
    bool trim; /* confirming broker: settled messages may be dropped from the front */
    struct ip_topic *next;
} ip_topic;

typedef struct ip_dedup {
    char *id;
    ip_topic *t; /* where the original went (NULL: nowhere yet) */
    uint64_t seq;
    int64_t exp_ms;
    struct ip_dedup *chain, *fifo;
} ip_dedup;

struct sl_bus_broker {
    size_t max_msgs;
    bool confirm;
    size_t max_queued, queued; /* confirming broker: messages some group still owes */
    ip_topic *topics;
    ip_dedup *tab[IP_DEDUP_TAB];
    ip_dedup *fifo_head, *fifo_tail;
    size_t ndedup;
};

typedef struct ip_done {
    bus_pub *pub;       /* `count` messages of a publish completed, or */
    void (*fn)(void *); /* an admin completion */
    void *arg;
    int status;
    size_t count;
} ip_done;

typedef struct ip_bus {
    sl_bus *bus;
    sl_bus_broker *broker;
    bool own_broker;
    uv_timer_t tick, kick;
    int open_handles;
    ip_done *done;
    size_t ndone, done_cap;
    ip_sub *released;   /* stopped subs to release on the next kick */
    ip_waiter *waiters; /* confirming broker: this bus's publishes waiting for groups */
    unsigned ticks;
} ip_bus;

typedef struct ip_handle {
    ip_group *g;
    ip_sub *is;
    uint64_t seq;
    unsigned deliveries;
} ip_handle;

/* ---- broker ---------------------------------------------------------------------------------- */

int sl_bus_broker_new_opts(const sl_bus_broker_options *opt, sl_bus_broker **out)
{
    *out = NULL;
    if (opt == NULL) return SL_EINVAL;
    sl_bus_broker *b = calloc(1, sizeof *b);
    if (b == NULL) return SL_ENOMEM;
    b->max_msgs = opt->max_msgs ? opt->max_msgs : 1000000;
    b->confirm = opt->confirm != 0;
    b->max_queued = opt->max_queued ? opt->max_queued : 65536;
    *out = b;
    return 0;
}

int sl_bus_broker_new(size_t max_msgs, sl_bus_broker **out)
{
    sl_bus_broker_options o = {.max_msgs = max_msgs};
    return sl_bus_broker_new_opts(&o, out);
}

size_t sl_bus_broker_queued(const sl_bus_broker *b)
{
    return b->queued;
}

static void free_group(ip_group *g)
{
    free(g->state);
    free(g->pend);
    free(g);
}

void sl_bus_broker_free(sl_bus_broker *b)
{
    if (b == NULL) return;
    for (ip_topic *t = b->topics, *tn; t; t = tn) {
        tn = t->next;
        for (size_t i = 0; i < t->n; i++) {
            free(t->msgs[i].id);
            free(t->msgs[i].data);
            for (ip_waiter *w = t->msgs[i].waiters, *wn; w; w = wn) {
                wn = w->next_msg;
                free(w); /* every bus closed before: w->ib is NULL */
            }
        }
        free(t->msgs);
        for (ip_group *g = t->groups, *gn; g; g = gn) {
            gn = g->next;
            free_group(g);
        }
        free(t);
    }
    for (ip_dedup *d = b->fifo_head, *dn; d; d = dn) {
        dn = d->fifo;
        free(d->id);
        free(d);
    }
    free(b);
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static void dedup_expire(sl_bus_broker *b, int64_t now)
{
    while (b->fifo_head && (b->fifo_head->exp_ms <= now || b->ndedup > 2000000)) {
        ip_dedup *d = b->fifo_head;
        b->fifo_head = d->fifo;
        if (b->fifo_head == NULL) b->fifo_tail = NULL;
        for (ip_dedup **pp = &b->tab[hash(d->id) % IP_DEDUP_TAB]; *pp; pp = &(*pp)->chain)
            if (*pp == d) {
                *pp = d->chain;
                break;
            }
        free(d->id);
        free(d);
        b->ndedup--;
    }
}

/* Returns 1 when `id` was seen within the window (*seen: its entry), 0 after recording it
 * (*seen: the new entry), <0 on error. */
static int dedup_check(sl_bus_broker *b, const char *id, int64_t now, int64_t window,
                       ip_dedup **seen)
{
    dedup_expire(b, now);
    uint32_t h = hash(id) % IP_DEDUP_TAB;
    for (ip_dedup *d = b->tab[h]; d; d = d->chain)
        if (strcmp(d->id, id) == 0) {
            *seen = d;
            return 1;
        }
    ip_dedup *d = calloc(1, sizeof *d);
    if (d == NULL || (d->id = strdup(id)) == NULL) {
        free(d);
        return SL_ENOMEM;
    }
    d->exp_ms = now + window;
    d->chain = b->tab[h];
    b->tab[h] = d;
    if (b->fifo_tail)
        b->fifo_tail->fifo = d;
    else
        b->fifo_head = d;
    b->fifo_tail = d;
    b->ndedup++;
    *seen = d;
    return 0;
}

static ip_topic *topic_get(sl_bus_broker *b, const char *name, bool create)
{
    for (ip_topic *t = b->topics; t; t = t->next)
        if (strcmp(t->name, name) == 0) return t;
    if (!create || strlen(name) >= sizeof(((ip_topic *)0)->name)) return NULL;
    ip_topic *t = calloc(1, sizeof *t);
    if (t == NULL) return NULL;
    strcpy(t->name, name);
    t->first = 1;
    size_t nl = strlen(name);
    t->dlq = nl > 4 && strcmp(name + nl - 4, ".dlq") == 0;
    t->next = b->topics;
    b->topics = t;
    return t;
}

static ip_msg *msg_at(ip_topic *t, uint64_t seq)
{
    if (seq < t->first || seq >= t->first + t->n) return NULL;
    return &t->msgs[seq - t->first];
}

static uint8_t *state_at(ip_group *g, uint64_t seq)
{
    if (seq < g->base) return NULL;
    size_t i = (size_t)(seq - g->base);
    if (i >= g->state_cap) {
        size_t cap = g->state_cap ? g->state_cap : 1024;
        while (cap <= i)
            cap *= 2;
        uint8_t *ns = realloc(g->state, cap);
        if (ns == NULL) return NULL;
        memset(ns + g->state_cap, ST_NEW, cap - g->state_cap);
        g->state = ns;
        g->state_cap = cap;
    }
    return &g->state[i];
}

static int topic_append(sl_bus_broker *b, ip_topic *t, const bus_wire *w, int64_t now)
{
    if (t->n == b->max_msgs && t->msgs[0].waiting == 0) {
        /* Retention: drop the oldest message (a confirming broker keeps the owed ones: its
         * queue bound keeps them few). */
        free(t->msgs[0].id);
        free(t->msgs[0].data);
        memmove(t->msgs, t->msgs + 1, (t->n - 1) * sizeof *t->msgs);
        t->n--;
        t->first++;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        ip_msg *nm = realloc(t->msgs, cap * sizeof *nm);
        if (nm == NULL) return SL_ENOMEM;
        t->msgs = nm;
        t->cap = cap;
    }
    size_t il = strlen(w->id), sl = strlen(w->subject);
    ip_msg *m = &t->msgs[t->n];
    m->id = malloc(il + sl + 2);
    m->data = malloc(w->len + 1);
    if (m->id == NULL || m->data == NULL) {
        free(m->id);
        free(m->data);
        return SL_ENOMEM;
    }
    memcpy(m->id, w->id, il + 1);
    m->subject = m->id + il + 1;
    memcpy(m->subject, w->subject, sl + 1);
    memcpy(m->data, w->data, w->len);
    m->data[w->len] = '\0';
    m->len = w->len;
    m->ts_ms = now;
    m->bucket = hash(w->subject) % IP_BUCKETS;
    m->waiting = b->confirm ? t->ngroups : 0;
    m->waiters = NULL;
    if (m->waiting) b->queued++;
    if (b->confirm) t->trim = true;
    t->n++;
    return 0;
}

/* ---- groups ---------------------------------------------------------------------------------- */

static ip_pending *pend_find(ip_group *g, uint64_t seq)
{
    size_t lo = 0, hi = g->npend;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->pend[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < g->npend && g->pend[lo].seq == seq) ? &g->pend[lo] : NULL;
}

static ip_pending *pend_add(ip_group *g, uint64_t seq)
{
    if (g->npend == g->pend_cap) {
        size_t cap = g->pend_cap ? g->pend_cap * 2 : 64;
        ip_pending *np = realloc(g->pend, cap * sizeof *np);
        if (np == NULL) return NULL;
        g->pend = np;
        g->pend_cap = cap;
    }
    size_t i = g->npend;
    while (i > 0 && g->pend[i - 1].seq > seq)
        i--;
    memmove(&g->pend[i + 1], &g->pend[i], (g->npend - i) * sizeof *g->pend);
    g->npend++;
    g->pend[i] = (ip_pending){.seq = seq};
    return &g->pend[i];
}

static void pend_remove(ip_group *g, ip_pending *p)
{
    size_t i = (size_t)(p - g->pend);
    memmove(&g->pend[i], &g->pend[i + 1], (g->npend - i - 1) * sizeof *g->pend);
    g->npend--;
}

static ip_group *group_get(ip_topic *t, const char *name, const sl_bus_sub_options *o)
{
    for (ip_group *g = t->groups; g; g = g->next)
        if (strcmp(g->name, name) == 0) return g;
    ip_group *g = calloc(1, sizeof *g);
    if (g == NULL) return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    g->t = t;
    /* A new group starts with the oldest retained message (DeliverAll, like the NATS
     * backend's consumers). */
    g->base = g->floor = t->first;
    g->join = t->first + t->n;
    g->ordered = !o->unordered;
    g->opt = *o;
    g->next = t->groups;
    t->groups = g;
    t->ngroups++;
    return g;
}

static int64_t ack_deadline(const ip_group *g, unsigned deliveries)
{
    /* ack_wait for the first delivery, then doubling, capped like the nack backoff. */
    int64_t d = g->opt.ack_wait_ms;
    int64_t cap = g->opt.backoff_max_ms > d ? g->opt.backoff_max_ms : d;
    for (unsigned i = 1; i < deliveries && d < cap; i++)
        d *= 2;
    return d > cap ? cap : d;
}

typedef struct ip_batch {
    ip_sub *is;
    bus_delivery *d;
    size_t n, cap;
} ip_batch;

static ip_sub *pick_sub(ip_group *g)
{
    ip_sub *start = g->rr ? g->rr : g->subs;
    ip_sub *s = start;
    if (s == NULL) return NULL;
    do {
        ip_sub *next = s->next ? s->next : g->subs;
        if (!s->stopped && s->held < s->sub->opt.max_inflight) {
            g->rr = next;
            return s;
        }
        s = next;
    } while (s != start);
    return NULL;
}

static int emit(ip_batch *bs, size_t nb, ip_group *g, ip_sub *is, ip_pending *p, ip_msg *m)
{
    ip_batch *b = NULL;
    for (size_t i = 0; i < nb; i++)
        if (bs[i].is == is) b = &bs[i];
    SL_ASSERT(b != NULL);
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        bus_delivery *nd = realloc(b->d, cap * sizeof *nd);
        if (nd == NULL) return SL_ENOMEM;
        b->d = nd;
        b->cap = cap;
    }
    ip_handle *h = malloc(sizeof *h);
    if (h == NULL) return SL_ENOMEM;
    p->deliveries++;
    p->inflight = true;
    p->due_ms = INT64_MAX; /* set when the sub releases it without settling */
    *h = (ip_handle){g, is, p->seq, p->deliveries};
    b->d[b->n++] = (bus_delivery){m->data, m->len, p->seq, p->deliveries, m->ts_ms, h, NULL};
    is->held++;
    return 0;
}

/* Hands due and new messages of `g` to its subscriptions. */
static void dispatch(ip_group *g, int64_t now)
{
    size_t nsubs = 0;
    for (ip_sub *s = g->subs; s; s = s->next)
        nsubs++;
    if (nsubs == 0) return;
    ip_batch *bs = calloc(nsubs, sizeof *bs);
    if (bs == NULL) return;
    size_t i = 0;
    for (ip_sub *s = g->subs; s; s = s->next)
        bs[i++].is = s;
    ip_topic *t = g->t;
    /* Redeliveries first: they are older than anything new. */
    for (size_t k = 0; k < g->npend; k++) {
        ip_pending *p = &g->pend[k];
        if (p->inflight || p->due_ms > now) continue;
        ip_msg *m = msg_at(t, p->seq);
        if (m == NULL || m->data == NULL) continue;
        ip_sub *is = pick_sub(g);
        if (is == NULL) break;
        if (emit(bs, nsubs, g, is, p, m) != 0) break;
    }
    if (g->floor < t->first) g->floor = t->first;
    for (uint8_t *st; g->floor < t->first + t->n && (st = state_at(g, g->floor)) && *st == ST_DONE;)
        g->floor++;
    unsigned scanned = 0;
    for (uint64_t seq = g->floor; seq < t->first + t->n && scanned < IP_SCAN_MAX;
         seq++, scanned++) {
        uint8_t *st = state_at(g, seq);
        if (st == NULL || *st != ST_NEW) continue;
        ip_msg *m = msg_at(t, seq);
        if (m->data == NULL) {
            *st = ST_DONE; /* deleted */
            continue;
        }
        if (g->ordered && g->holder[m->bucket] != 0) continue;
        ip_sub *is = pick_sub(g);
        if (is == NULL) break;
        ip_pending *p = pend_add(g, seq);
        if (p == NULL) break;
        *st = ST_PENDING;
        if (g->ordered) g->holder[m->bucket] = seq + 1;
        if (emit(bs, nsubs, g, is, p, m) != 0) break;
    }
    for (i = 0; i < nsubs; i++) {
        if (bs[i].n) sl__bus_deliver(bs[i].is->sub, bs[i].d, bs[i].n);
        free(bs[i].d);
    }
    free(bs);
}

/* 1 when every group of `t` is done with `seq`. */
static bool all_done(ip_topic *t, uint64_t seq)
{
    for (ip_group *g = t->groups; g; g = g->next) {
        if (seq < g->floor) continue;
        uint8_t *st = state_at(g, seq);
        if (st == NULL || *st != ST_DONE) return false;
    }
    return true;
}

/* Confirming broker: drops the messages at the front of `t` that nobody owes or will be handed
 * any more, and the groups' state below their floor. */
static void trim_topic(ip_topic *t)
{
    t->trim = false;
    if (t->dlq) return;
    size_t k = 0;
    while (k < t->n && t->msgs[k].waiting == 0 && all_done(t, t->first + k))
        k++;
    if (k > 0) {
        for (size_t i = 0; i < k; i++) {
            free(t->msgs[i].id);
            free(t->msgs[i].data);
        }
        memmove(t->msgs, t->msgs + k, (t->n - k) * sizeof *t->msgs);
        t->n -= k;
        t->first += k;
    }
    if (t->n == 0 && t->cap > 1024) {
        free(t->msgs);
        t->msgs = NULL;
        t->cap = 0;
    }
    for (ip_group *g = t->groups; g; g = g->next) {
        if (g->floor < t->first) g->floor = t->first;
        uint64_t shift = g->floor - g->base;
        if (shift < 4096) continue;
        if (shift >= g->state_cap) { /* nothing from the floor on is recorded yet */
            memset(g->state, ST_NEW, g->state_cap);
        } else {
            memmove(g->state, g->state + shift, g->state_cap - (size_t)shift);
            memset(g->state + g->state_cap - shift, ST_NEW, (size_t)shift);
        }
        g->base = g->floor;
    }
}

static void broker_run(sl_bus_broker *b, uv_loop_t *loop)
{
    int64_t now = (int64_t)uv_now(loop);
    for (ip_topic *t = b->topics; t; t = t->next) {
        if (t->trim) trim_topic(t);
        for (ip_group *g = t->groups; g; g = g->next) {
            dispatch(g, now);
        }
    }
}

/* ---- the bus side ------------------------------------------------------------------------------
 */

static void on_kick(uv_timer_t *t);

static void kick(ip_bus *ib)
{
    /* A timer started with no callback does not start: the kick names on_kick. */
    if (!uv_is_active((uv_handle_t *)&ib->kick)) uv_timer_start(&ib->kick, on_kick, 0, 0);
}

/* Makes room for `k` more completions. */
static int done_reserve(ip_bus *ib, size_t k)
{
    if (ib->ndone + k > ib->done_cap) {
        size_t cap = ib->done_cap ? ib->done_cap * 2 : 64;
        ip_done *nd = realloc(ib->done, cap * sizeof *nd);
        if (nd == NULL) return SL_ENOMEM;
        ib->done = nd;
        ib->done_cap = cap;
    }
    return 0;
}

static int push_done(ip_bus *ib, ip_done d)
{
    if (ib->ndone == ib->done_cap) {
        size_t cap = ib->done_cap ? ib->done_cap * 2 : 64;
        ip_done *nd = realloc(ib->done, cap * sizeof *nd);
        if (nd == NULL) return SL_ENOMEM;
        ib->done = nd;
        ib->done_cap = cap;
    }
    ib->done[ib->ndone++] = d;
    kick(ib);
    return 0;
}

static void run_done(ip_bus *ib, int status_override)
{
    while (ib->ndone) {
        /* Take the list: callbacks may publish again. */
        ip_done *list = ib->done;
        size_t n = ib->ndone;
        ib->done = NULL;
        ib->ndone = ib->done_cap = 0;
        for (size_t i = 0; i < n; i++) {
            if (list[i].pub) {
                bus_pub *p = list[i].pub;
                for (size_t k = 0; k < list[i].count; k++)
                    sl__bus_pub_msg_done(p, status_override ? status_override : list[i].status);
            } else {
                list[i].fn(list[i].arg);
            }
        }
        free(list);
    }
}

static void release_subs(ip_bus *ib)
{
    /* A stopped sub goes once every delivery it was handed is settled (handles point to it). */
    for (ip_sub **pp = &ib->released; *pp;) {
        ip_sub *is = *pp;
        if (is->held > 0) {
            pp = &is->next;
            continue;
        }
        *pp = is->next;
        sl_bus_sub *s = is->sub;
        free(is);
        sl__bus_sub_released(s);
    }
}

/* Confirming broker: `pub` (one message of it) is acknowledged once every group settled `m`. */
static int wait_for(ip_bus *ib, ip_msg *m, bus_pub *pub)
{
    ip_waiter *w = calloc(1, sizeof *w);
    if (w == NULL) return SL_ENOMEM;
    w->ib = ib;
    w->pub = pub;
    w->next_msg = m->waiters;
    m->waiters = w;
    w->next_bus = ib->waiters;
    if (ib->waiters) ib->waiters->prev_bus = w;
    ib->waiters = w;
    return 0;
}

static void unlink_waiter(ip_waiter *w)
{
    if (w->prev_bus)
        w->prev_bus->next_bus = w->next_bus;
    else
        w->ib->waiters = w->next_bus;
    if (w->next_bus) w->next_bus->prev_bus = w->prev_bus;
    w->ib = NULL;
}

/* Every group owed settled `m`: its publishes are acknowledged (on their buses' next kick). */
static void msg_settled(sl_bus_broker *b, ip_topic *t, ip_msg *m)
{
    b->queued--;
    t->trim = true;
    for (ip_waiter *w = m->waiters, *wn; w; w = wn) {
        wn = w->next_msg;
        if (w->ib) {
            ip_bus *ib = w->ib;
            bus_pub *p = w->pub;
            unlink_waiter(w);
            if (push_done(ib, (ip_done){.pub = p, .count = 1}) != 0) sl__bus_pub_msg_done(p, 0);
        }
        free(w);
    }
    m->waiters = NULL;
}

/* The unsettled messages of each of this bus's subscriptions' groups into its lag gauge. */
static void refresh_lag(ip_bus *ib)
{
    for (sl_bus_sub *s = ib->bus->subs; s; s = s->next) {
        ip_sub *is = s->be;
        if (s->stopped || is == NULL || s->s_lag == NULL) continue;
        ip_group *g = is->g;
        ip_topic *t = g->t;
        int64_t n = 0;
        for (uint64_t q = g->floor; q < t->first + t->n; q++) {
            uint8_t *st = state_at(g, q);
            if (st && *st != ST_DONE) n++;
        }
        sl_gauge_set(s->s_lag, (double)n);
    }
}

static void on_kick(uv_timer_t *t)
{
    ip_bus *ib = t->data;
    run_done(ib, 0);
    broker_run(ib->broker, ib->bus->loop);
    release_subs(ib);
    run_done(ib, 0);
}

static void on_tick(uv_timer_t *t)
{
    ip_bus *ib = t->data;
    on_kick(t);
    if (ib->broker->confirm && ++ib->ticks % 100 == 0) refresh_lag(ib);
}

static void handle_closed(uv_handle_t *h)
{
    ip_bus *ib = h->data;
    if (--ib->open_handles > 0) return;
    sl_bus *bus = ib->bus;
    if (ib->own_broker) sl_bus_broker_free(ib->broker);
    free(ib->done);
    free(ib);
    bus->be = NULL;
    sl__bus_backend_closed(bus);
}

static int ip_open(sl_bus *bus, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    ip_bus *ib = calloc(1, sizeof *ib);
    if (ib == NULL) return SL_ENOMEM;
    ib->bus = bus;
    ib->broker = bus->opt.broker;
    if (ib->broker == NULL) {
        if (sl_bus_broker_new(0, &ib->broker) != 0) {
            free(ib);
            return SL_ENOMEM;
        }
        ib->own_broker = true;
    }
    uv_timer_init(bus->loop, &ib->tick);
    uv_timer_init(bus->loop, &ib->kick);
    ib->tick.data = ib->kick.data = ib;
    ib->open_handles = 2;
    uv_timer_start(&ib->tick, on_tick, 10, 10);
    uv_unref((uv_handle_t *)&ib->tick);
    uv_timer_start(&ib->kick, on_kick, 0, 0);
    bus->be = ib;
    return 0;
}

static void ip_close(sl_bus *bus)
{
    ip_bus *ib = bus->be;
    run_done(ib, SL_ECANCELED);
    /* Publishes still waiting for groups fail; the messages stay owed to the groups. */
    while (ib->waiters) {
        ip_waiter *w = ib->waiters;
        bus_pub *p = w->pub;
        unlink_waiter(w);
        w->pub = NULL;
        sl__bus_pub_msg_done(p, SL_ECANCELED);
    }
    release_subs(ib);
    uv_timer_stop(&ib->tick);
    uv_timer_stop(&ib->kick);
    uv_close((uv_handle_t *)&ib->tick, handle_closed);
    uv_close((uv_handle_t *)&ib->kick, handle_closed);
}

static int ip_ready(const sl_bus *bus)
{
    return bus->be != NULL;
}

static int ip_publish(sl_bus *bus, bus_pub *p)
{
    ip_bus *ib = bus->be;
    sl_bus_broker *b = ib->broker;
    int64_t now = sl__bus_now_wall_ms(bus);
    if (b->confirm && b->queued + p->n > b->max_queued) {
        /* A full queue pushes back, unless the batch is only dead letters (owed by nobody). */
        for (size_t i = 0; i < p->n; i++) {
            ip_topic *t = topic_get(b, p->msgs[i].topic, false);
            if (t == NULL || !t->dlq) return SL_ELIMIT;
        }
    }
    if (done_reserve(ib, 2) != 0) return SL_ENOMEM; /* the completions below cannot fail */
    int status = 0;
    size_t now_done = 0, i = 0; /* messages acknowledged at once */
    for (; i < p->n; i++) {
        const bus_wire *w = &p->msgs[i];
        ip_dedup *d = NULL;
        int dup = dedup_check(b, w->id, now, bus->opt.duplicate_window_ms, &d);
        if (dup < 0) {
            status = dup;
            break;
        }
        ip_topic *t = dup ? d->t : topic_get(b, w->topic, true);
        if (!dup) {
            status = t ? topic_append(b, t, w, now) : SL_ENOMEM;
            if (status != 0) break;
            d->t = t;
            d->seq = t->first + t->n - 1;
        }
        /* A duplicate whose original is still owed waits for it, like the original. */
        ip_msg *m = t ? msg_at(t, d->seq) : NULL;
        if (m && m->waiting > 0) {
            status = wait_for(ib, m, p);
            if (status != 0) break;
        } else {
            now_done++;
        }
    }
    if (status != 0) (void)push_done(ib, (ip_done){.pub = p, .count = p->n - i, .status = status});
    if (now_done) (void)push_done(ib, (ip_done){.pub = p, .count = now_done});
    return 0;
}

static int ip_sub_start(sl_bus_sub *s)
{
    ip_bus *ib = s->bus->be;
    ip_topic *t = topic_get(ib->broker, s->topic, true);
    ip_group *g = t ? group_get(t, s->group, &s->opt) : NULL;
    ip_sub *is = calloc(1, sizeof *is);
    if (g == NULL || is == NULL) {
        free(is);
        return SL_ENOMEM;
    }
    is->sub = s;
    is->g = g;
    is->next = g->subs;
    g->subs = is;
    s->be = is;
    kick(ib);
    return 0;
}

/* A message the sub will not settle goes back to the group at its ack deadline. */
static void unhold(ip_group *g, uint64_t seq, unsigned deliveries, int64_t now)
{
    ip_pending *p = pend_find(g, seq);
    if (p == NULL || p->deliveries != deliveries || !p->inflight) return;
    p->inflight = false;
    p->due_ms = now + ack_deadline(g, deliveries);
}

static void ip_sub_stop(sl_bus_sub *s)
{
    ip_bus *ib = s->bus->be;
    ip_sub *is = s->be;
    is->stopped = true;
    ip_group *g = is->g;
    for (ip_sub **pp = &g->subs; *pp; pp = &(*pp)->next)
        if (*pp == is) {
            *pp = is->next;
            break;
        }
    if (g->rr == is) g->rr = NULL;
    is->next = ib->released;
    ib->released = is;
    kick(ib);
}

static void ip_settle(sl_bus_sub *s, void *handle, enum bus_settle kind, int64_t delay_ms)
{
    ip_bus *ib = s->bus->be;
    ip_handle *h = handle;
    ip_group *g = h->g;
    int64_t now = (int64_t)uv_now(s->bus->loop);
    h->is->held--;
    ip_pending *p = pend_find(g, h->seq);
    if (p == NULL || p->deliveries != h->deliveries) {
        free(h); /* stale: it was redelivered meanwhile */
        return;
    }
    ip_msg *m = msg_at(g->t, h->seq);
    switch (kind) {
    case BUS_SETTLE_ACK:
    case BUS_SETTLE_TERM: {
        uint8_t *st = state_at(g, h->seq);
        if (st) *st = ST_DONE;
        if (m && g->holder[m->bucket] == h->seq + 1) g->holder[m->bucket] = 0;
        pend_remove(g, p);
        /* Acked after the handler committed, or dead-lettered: this group owes it no more. */
        if (m && h->seq >= g->join && m->waiting > 0 && --m->waiting == 0)
            msg_settled(ib->broker, g->t, m);
        break;
    }
    case BUS_SETTLE_NAK:
        p->inflight = false;
        p->due_ms = now + delay_ms;
        break;
    case BUS_SETTLE_NONE:
        unhold(g, h->seq, h->deliveries, now);
        break;
    }
    free(h);
    kick(ib);
}

/* ---- admin ------------------------------------------------------------------------------------
 */

typedef struct ip_list {
    sl_bus_dead_list_cb cb;
    sl_bus_admin_cb acb;
    void *data;
    int status;
    sl_bus_dead *items;
    size_t n;
} ip_list;

static void list_done(void *arg)
{
    ip_list *l = arg;
    if (l->cb)
        l->cb(l->data, l->status, l->items, l->n);
    else
        l->acb(l->data, l->status, l->n);
    free(l->items);
    free(l);
}

static int ip_dlq_list(sl_bus *bus, const char *topic, size_t max, sl_bus_dead_list_cb cb,
                       void *data)
{
    ip_bus *ib = bus->be;
    ip_list *l = calloc(1, sizeof *l);
    if (l == NULL) return SL_ENOMEM;
    l->cb = cb;
    l->data = data;
    l->items = calloc(max, sizeof *l->items);
    char name[SL_BUS_TOPIC_MAX + 8];
    snprintf(name, sizeof name, "%s.dlq", topic);
    ip_topic *t = topic_get(ib->broker, name, false);
    for (size_t i = 0; t && l->items && i < t->n && l->n < max; i++) {
        ip_msg *m = &t->msgs[i];
        char *env = NULL;
        size_t el = 0;
        if (m->data == NULL || sl__bus_dead_parse(m->data, m->len, &l->items[l->n], &env, &el) != 0)
            continue;
        free(env);
        l->items[l->n++].dlq_seq = t->first + i;
    }
    if (l->items == NULL) l->status = SL_ENOMEM;
    int rc = push_done(ib, (ip_done){.fn = list_done, .arg = l});
    if (rc != 0) {
        free(l->items);
        free(l);
    }
    return rc;
}

static int ip_dlq_redrive(sl_bus *bus, const char *topic, uint64_t dlq_seq, sl_bus_admin_cb cb,
                          void *data)
{
    ip_bus *ib = bus->be;
    ip_list *l = calloc(1, sizeof *l);
    if (l == NULL) return SL_ENOMEM;
    l->acb = cb;
    l->data = data;
    char name[SL_BUS_TOPIC_MAX + 8];
    snprintf(name, sizeof name, "%s.dlq", topic);
    ip_topic *dt = topic_get(ib->broker, name, false);
    ip_topic *t = topic_get(ib->broker, topic, true);
    int64_t now = sl__bus_now_wall_ms(bus);
    for (size_t i = 0; dt && t && i < dt->n; i++) {
        ip_msg *m = &dt->msgs[i];
        if (m->data == NULL || (dlq_seq && dlq_seq != dt->first + i)) continue;
        sl_bus_dead d;
        char *env = NULL;
        size_t el = 0;
        if (sl__bus_dead_parse(m->data, m->len, &d, &env, &el) != 0 || env == NULL) {
            free(env);
            continue;
        }
        char rid[SL_BUS_ID_MAX + 48];
        snprintf(rid, sizeof rid, "%s:redrive:%llu", d.id, (unsigned long long)(dt->first + i));
        bus_wire w = {.topic = (char *)topic, .id = rid, .subject = d.id, .data = env, .len = el};
        /* Keep the original ordering key: the envelope's subject is what handlers order by. */
        json_t *o = json_loadb(env, el, 0, NULL);
        const char *subj = o ? json_string_value(json_object_get(o, "subject")) : NULL;
        if (subj) w.subject = (char *)subj;
        int rc = topic_append(ib->broker, t, &w, now);
        json_decref(o);
        free(env);
        if (rc != 0) {
            l->status = rc;
            break;
        }
        free(m->data);
        m->data = NULL;
        l->n++;
    }
    int rc = push_done(ib, (ip_done){.fn = list_done, .arg = l});
    if (rc != 0) free(l);
    return rc;
}

static int ip_lag(sl_bus *bus, const char *topic, const char *group, sl_bus_admin_cb cb, void *data)
{
    ip_bus *ib = bus->be;
    ip_list *l = calloc(1, sizeof *l);
    if (l == NULL) return SL_ENOMEM;
    l->acb = cb;
    l->data = data;
    ip_topic *t = topic_get(ib->broker, topic, false);
    ip_group *g = NULL;
    for (ip_group *x = t ? t->groups : NULL; x; x = x->next)
        if (strcmp(x->name, group) == 0) g = x;
    if (g == NULL)
        l->status = SL_ENOTFOUND;
    else
        for (uint64_t s = g->floor; s < t->first + t->n; s++) {
            uint8_t *st = state_at(g, s);
            ip_msg *m = msg_at(t, s);
            if (st && *st != ST_DONE && m && m->data) l->n++;
        }
    int rc = push_done(ib, (ip_done){.fn = list_done, .arg = l});
    if (rc != 0) free(l);
    return rc;
}

const bus_backend_vt sl__bus_inproc_vt = {
    .name = "inproc",
    .open = ip_open,
    .close = ip_close,
    .ready = ip_ready,
    .publish = ip_publish,
    .sub_start = ip_sub_start,
    .sub_stop = ip_sub_stop,
    .settle = ip_settle,
    .dlq_list = ip_dlq_list,
    .dlq_redrive = ip_dlq_redrive,
    .lag = ip_lag,
};
