/*
 * The bus core: public objects, validation, the publish bookkeeping, and the
 * consumer side's decisions. A backend (inproc.c, nats.c) hands deliveries
 * to sl__bus_deliver(); the core parses the CloudEvents envelope, dead-letters
 * what can never be handled (malformed, oversized, unknown type, too many
 * deliveries), runs the handler (or the runner's batch hook) and settles
 * each message: ack, nack with a delay, or publish a dead letter to
 * `<topic>.dlq` and terminate the original once that publish is acked.
 * Loop thread only.
 */
#include "bus/bus_int.h"
#include "bus/envelope_decode.h"

#include <shoal/clock.h>
#include <shoal/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ------------------------------------------------------------------------------ */

int sl_bus_topic_valid(const char *topic)
{
    if (topic == NULL) return 0;
    size_t len = strlen(topic);
    if (len == 0 || len > SL_BUS_TOPIC_MAX) return 0;
    int tokens = 0;
    size_t toklen = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = topic[i];
        if (c == '.' || c == '\0') {
            if (toklen == 0) return 0;
            tokens++;
            toklen = 0;
            continue;
        }
        if (c == '*' || c == '>' || c == ' ' || (unsigned char)c < 0x21 || c == 0x7f) return 0;
        toklen++;
    }
    return tokens >= 3 && strncmp(topic, "shop.", 5) == 0;
}

unsigned sl_bus_partition(const char *subject, unsigned partitions)
{
    if (partitions <= 1 || subject == NULL) return 0;
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)subject; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h % partitions;
}

int sl_bus_stream_name(const char *topic, char *out, size_t cap)
{
    if (!sl_bus_topic_valid(topic)) return SL_EINVAL;
    const char *ctx = topic + 5;
    const char *end = strchr(ctx, '.');
    size_t n = (size_t)(end - ctx);
    if (5 + n + 1 > cap) return SL_ELIMIT;
    memcpy(out, "SHOP_", 5);
    for (size_t i = 0; i < n; i++) {
        char c = ctx[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) c = '_';
        out[5 + i] = c;
    }
    out[5 + n] = '\0';
    return 0;
}

int sl__bus_wire_subject(const sl_bus *bus, const char *topic, const char *subject, char *out,
                         size_t cap)
{
    unsigned k = sl_bus_partition(subject, bus->opt.partitions);
    int n = snprintf(out, cap, "%s.p.%u", topic, k);
    return (n < 0 || (size_t)n >= cap) ? SL_ELIMIT : 0;
}

int sl__bus_durable_name(const char *group, const char *topic, int part, char *out, size_t cap)
{
    /* Durable names may not contain '.', '*', '>' or spaces: map the topic's dots. */
    int n = part < 0 ? snprintf(out, cap, "%s__%s", group, topic)
                     : snprintf(out, cap, "%s__%s__p%d", group, topic, part);
    if (n < 0 || (size_t)n >= cap) return SL_ELIMIT;
    for (char *p = out; *p; p++)
        if (*p == '.') *p = '_';
    return 0;
}

static int group_valid(const char *g)
{
    size_t len = g ? strlen(g) : 0;
    if (len == 0 || len > SL_BUS_GROUP_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = g[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int64_t sl__bus_backoff_ms(const sl_bus_sub_options *o, unsigned deliveries)
{
    int64_t d = o->backoff_base_ms;
    for (unsigned i = 1; i < deliveries && d < o->backoff_max_ms; i++)
        d *= 2;
    return d > o->backoff_max_ms ? o->backoff_max_ms : d;
}

int64_t sl__bus_now_wall_ms(const sl_bus *bus)
{
    return sl_clock_wall_ms(bus->opt.clock);
}

/* ---- open / close ------------------------------------------------------------------------ */

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void register_metrics(sl_bus *bus)
{
    sl_metrics *m = bus->opt.metrics;
    if (m == NULL) return;
    static const char *const t[] = {"topic"};
    static const char *const tg[] = {"topic", "group"};
    int rc = sl_metrics_counter(m, "bus_published_total", "Messages handed to the bus.", t, 1,
                                &bus->m.published);
    rc = rc ? rc
            : sl_metrics_counter(m, "bus_acked_total", "Publishes acknowledged by the broker.", t,
                                 1, &bus->m.acked);
    rc = rc ? rc
            : sl_metrics_counter(m, "bus_delivered_total", "Messages delivered to a group.", tg, 2,
                                 &bus->m.delivered);
    rc = rc ? rc
            : sl_metrics_counter(m, "bus_redelivered_total", "Deliveries after the first.", tg, 2,
                                 &bus->m.redelivered);
    rc = rc ? rc
            : sl_metrics_counter(m, "bus_dead_lettered_total", "Messages moved to <topic>.dlq.", tg,
                                 2, &bus->m.dead);
    rc = rc ? rc
            : sl_metrics_gauge(m, "bus_consumer_lag", "Messages not yet acked by the group.", tg, 2,
                               &bus->m.lag);
    rc = rc ? rc
            : sl_metrics_histogram(m, "bus_handler_duration_seconds", "Handler latency.", tg, 2,
                                   NULL, 0, &bus->m.latency);
    /* A second bus on the same registry finds the names taken: it keeps only its own stats. */
    bus->has_metrics = rc == 0;
}

static void free_bus(sl_bus *bus)
{
    for (size_t i = 0; i < bus->opt.n_contexts; i++)
        free(bus->contexts[i]);
    free(bus->contexts);
    free(bus->url);
    free(bus->name);
    free(bus);
}

int sl_bus_open(uv_loop_t *loop, const sl_bus_options *opt, sl_bus **out, char *errbuf,
                size_t errlen)
{
    char dummy[8];
    if (errbuf == NULL) {
        errbuf = dummy;
        errlen = sizeof dummy;
    }
    errbuf[0] = '\0';
    *out = NULL;
    if (loop == NULL || opt == NULL || opt->url == NULL) return SL_EINVAL;
    const bus_backend_vt *vt = NULL;
    if (strncmp(opt->url, "inproc:", 7) == 0)
        vt = &sl__bus_inproc_vt;
    else if (strncmp(opt->url, "nats://", 7) == 0)
        vt = &sl__bus_nats_vt;
    else {
        snprintf(errbuf, errlen, "bus: unknown URL scheme in '%s' (nats:// or inproc:)", opt->url);
        return SL_ECONFIG;
    }
    if (opt->partitions > SL_BUS_PARTITIONS_MAX || opt->replicas < 0 || opt->replicas > 5) {
        snprintf(errbuf, errlen, "bus: partitions must be <= %d, replicas 1..5",
                 SL_BUS_PARTITIONS_MAX);
        return SL_ECONFIG;
    }
    sl_bus *bus = calloc(1, sizeof *bus);
    if (bus == NULL) return SL_ENOMEM;
    bus->loop = loop;
    bus->opt = *opt;
    bus->vt = vt;
    bus->url = dupstr(opt->url);
    bus->name = dupstr(opt->name ? opt->name : "shoal");
    bus->contexts = opt->n_contexts ? calloc(opt->n_contexts, sizeof(char *)) : NULL;
    if (bus->url == NULL || bus->name == NULL || (opt->n_contexts && bus->contexts == NULL)) {
        free_bus(bus);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < opt->n_contexts; i++) {
        bus->contexts[i] = dupstr(opt->contexts[i]);
        if (bus->contexts[i] == NULL) {
            bus->opt.n_contexts = i;
            free_bus(bus);
            return SL_ENOMEM;
        }
    }
    bus->opt.url = bus->url;
    bus->opt.name = bus->name;
    bus->opt.contexts = (const char *const *)bus->contexts;
    sl_bus_options *o = &bus->opt;
    if (o->replicas == 0) o->replicas = 1;
    if (o->max_age_ms <= 0) o->max_age_ms = 7LL * 24 * 3600 * 1000;
    if (o->max_bytes <= 0) o->max_bytes = 1LL << 30;
    if (o->duplicate_window_ms <= 0) o->duplicate_window_ms = 120000;
    if (o->max_msg_bytes == 0) o->max_msg_bytes = 1u << 20;
    if (o->partitions == 0) o->partitions = 8;
    if (o->publish_max_pending == 0) o->publish_max_pending = 65536;
    if (o->publish_timeout_ms <= 0) o->publish_timeout_ms = 10000;
    if (o->reconnect_wait_ms <= 0) o->reconnect_wait_ms = 100;
    if (o->lag_poll_ms == 0) o->lag_poll_ms = 5000;
    if (o->clock == NULL) o->clock = sl_clock_system();
    register_metrics(bus);
    int rc = vt->open(bus, errbuf, errlen);
    if (rc != 0) {
        free_bus(bus);
        return rc;
    }
    *out = bus;
    return 0;
}

static void reap_close_cb(uv_handle_t *h)
{
    sl_bus *bus = h->data;
    if (bus->close_cb) bus->close_cb(bus, bus->close_data);
    free_bus(bus);
}

static void maybe_finish_close(sl_bus *bus)
{
    if (!bus->closing) return;
    if (bus->subs == NULL && !bus->backend_closing) {
        bus->backend_closing = true; /* close once */
        bus->vt->close(bus);
        return;
    }
    if (bus->backend_closed && bus->subs == NULL && bus->pubs == NULL &&
        !uv_is_closing((uv_handle_t *)&bus->reap)) {
        /* Free from a fresh stack: the backend may still be inside its own callback. */
        uv_idle_init(bus->loop, &bus->reap);
        bus->reap.data = bus;
        uv_close((uv_handle_t *)&bus->reap, reap_close_cb);
    }
}

void sl__bus_backend_closed(sl_bus *bus)
{
    SL_ASSERT(!bus->backend_closed); /* once, as the vtable's close promises */
    bus->backend_closed = true;
    maybe_finish_close(bus);
}

void sl_bus_close(sl_bus *bus, sl_bus_close_cb cb, void *data)
{
    if (bus == NULL || bus->closing) return;
    bus->closing = true;
    bus->close_cb = cb;
    bus->close_data = data;
    /* Fail pending publishes now; their memory goes when the backend reports each message. */
    for (bus_pub *p = bus->pubs; p; p = p->next) {
        if (p->canceled) continue;
        p->canceled = true;
        sl_bus_publish_cb pcb = p->cb;
        p->cb = NULL;
        if (pcb) pcb(p->cb_data, SL_ECANCELED);
    }
    for (sl_bus_sub *s = bus->subs; s; s = s->next) {
        if (s->stopped) continue;
        s->stopped = true;
        bus->vt->sub_stop(s);
    }
    maybe_finish_close(bus);
}

int sl_bus_ready(const sl_bus *bus)
{
    return !bus->closing && bus->vt->ready(bus);
}

void sl_bus_get_stats(const sl_bus *bus, sl_bus_stats *out)
{
    *out = bus->stats;
}

/* ---- publishing --------------------------------------------------------------------------- */

static sl_series *series1(sl_bus *bus, sl_metric_family *f, const char *a)
{
    if (!bus->has_metrics) return NULL;
    const char *v[] = {a};
    return sl_metric_series(f, v);
}

static sl_series *series2(sl_bus *bus, sl_metric_family *f, const char *a, const char *b)
{
    if (!bus->has_metrics) return NULL;
    const char *v[] = {a, b};
    return sl_metric_series(f, v);
}

static void count(sl_bus *bus, sl_series *s, uint64_t v)
{
    if (s) sl_counter_add(s, bus->opt.metrics_shard, v);
}

/* Allocates a batch whose strings live in the same block. */
static bus_pub *pub_alloc(size_t n, size_t bytes)
{
    bus_pub *p = calloc(1, sizeof *p + n * sizeof(bus_wire) + bytes);
    if (p) p->n = p->remaining = n;
    return p;
}

static char *put(char **cursor, const char *s, size_t len)
{
    char *d = *cursor;
    memcpy(d, s, len);
    d[len] = '\0';
    *cursor += len + 1;
    return d;
}

/* Publishes already-built wire messages (used by sl_bus_publish and dead-lettering). */
static int pub_submit(sl_bus *bus, bus_pub *p)
{
    if (bus->pending_msgs + p->n > bus->opt.publish_max_pending) return SL_ELIMIT;
    int rc = bus->vt->publish(bus, p);
    if (rc != 0) return rc;
    p->next = bus->pubs;
    if (bus->pubs) bus->pubs->prev = p;
    bus->pubs = p;
    bus->pending_msgs += p->n;
    return 0;
}

int sl_bus_publish(sl_bus *bus, const sl_bus_out *msgs, size_t n, sl_bus_publish_cb cb, void *data)
{
    if (bus == NULL || msgs == NULL || n == 0 || n > SL_BUS_BATCH_MAX || cb == NULL)
        return SL_EINVAL;
    if (bus->closing) return SL_ECLOSED;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_bus_out *m = &msgs[i];
        if (!sl_bus_topic_valid(m->topic) || m->id == NULL || m->id[0] == '\0' ||
            strlen(m->id) > SL_BUS_ID_MAX || m->subject == NULL || m->envelope == NULL)
            return SL_EINVAL;
        if (m->envelope_len > bus->opt.max_msg_bytes) return SL_ELIMIT;
        bytes +=
            2 * strlen(m->topic) + 16 + strlen(m->id) + strlen(m->subject) + m->envelope_len + 4;
    }
    if (!bus->vt->ready(bus)) return SL_EUNAVAIL;
    bus_pub *p = pub_alloc(n, bytes);
    if (p == NULL) return SL_ENOMEM;
    p->bus = bus;
    p->cb = cb;
    p->cb_data = data;
    char *cur = (char *)&p->msgs[n];
    for (size_t i = 0; i < n; i++) {
        const sl_bus_out *m = &msgs[i];
        bus_wire *w = &p->msgs[i];
        size_t tl = strlen(m->topic);
        w->topic = put(&cur, m->topic, tl);
        w->wire = cur;
        int rc = sl__bus_wire_subject(bus, m->topic, m->subject, cur, tl + 16);
        SL_ASSERT(rc == 0);
        (void)rc;
        cur += tl + 16;
        w->id = put(&cur, m->id, strlen(m->id));
        w->subject = put(&cur, m->subject, strlen(m->subject));
        w->data = put(&cur, m->envelope, m->envelope_len);
        w->len = m->envelope_len;
    }
    int rc = pub_submit(bus, p);
    if (rc != 0) {
        free(p);
        return rc;
    }
    bus->stats.published += n;
    for (size_t i = 0; i < n; i++)
        count(bus, series1(bus, bus->m.published, p->msgs[i].topic), 1);
    return 0;
}

void sl__bus_pub_msg_done(bus_pub *p, int status)
{
    sl_bus *bus = p->bus;
    SL_ASSERT(p->remaining > 0);
    if (status == 0) {
        bus->stats.acked++;
        if (bus->has_metrics) {
            /* Look the series up once per batch, at its first message. */
            size_t i = p->n - p->remaining;
            count(bus, series1(bus, bus->m.acked, p->msgs[i].topic), 1);
        }
    } else if (p->status == 0) {
        p->status = status;
    }
    p->remaining--;
    bus->pending_msgs--;
    if (p->remaining > 0) return;
    if (p->prev)
        p->prev->next = p->next;
    else
        bus->pubs = p->next;
    if (p->next) p->next->prev = p->prev;
    if (!p->canceled && p->cb) p->cb(p->cb_data, p->status);
    free(p);
    maybe_finish_close(bus);
}

static int outbox_publish(void *ctx, const sl_outbox_msg *msgs, size_t n, sl_outbox_done_cb done,
                          void *done_data)
{
    sl_bus *bus = ctx;
    sl_bus_out out[64];

    if (n > SL_ARRAY_LEN(out)) {
        /* Large relay batches go in one publish call built on the heap. */
        sl_bus_out *big = calloc(n, sizeof *big);
        if (big == NULL) return SL_ENOMEM;
        for (size_t i = 0; i < n; i++)
            big[i] = (sl_bus_out){msgs[i].type, msgs[i].id, msgs[i].subject, msgs[i].envelope,
                                  msgs[i].envelope_len};
        int rc = sl_bus_publish(bus, big, n, done, done_data);
        free(big);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (sl_bus_out){msgs[i].type, msgs[i].id, msgs[i].subject, msgs[i].envelope,
                              msgs[i].envelope_len};
    return sl_bus_publish(bus, out, n, done, done_data);
}

sl_outbox_publisher sl_bus_outbox_publisher(sl_bus *bus)
{
    return (sl_outbox_publisher){.publish = outbox_publish, .ctx = bus};
}

/* ---- subscriptions ------------------------------------------------------------------------ */

/* Messages handed to a handler (or a runner transaction) at once. */
#define BUS_DELIVER_CHUNK 256

typedef struct bus_scratch {
    sl_bus_msg msgs[BUS_DELIVER_CHUNK];
    const sl_bus_msg *ptrs[BUS_DELIVER_CHUNK];
    sl__bus_envelope envs[BUS_DELIVER_CHUNK];
    const bus_delivery *ds[BUS_DELIVER_CHUNK];
    sl_bus_reply replies[BUS_DELIVER_CHUNK];
} bus_scratch;

static void free_sub(sl_bus_sub *s)
{
    free(s->scratch);
    if (s->types)
        for (char **t = s->types; *t; t++)
            free(*t);
    free(s->types);
    free(s);
}

static int bus_subscribe(sl_bus *bus, const char *topic, const char *group,
                         const sl_bus_sub_options *opt, sl_bus_handler_cb handler,
                         bus_batch_cb batch, void *data, sl_bus_sub **out)
{
    *out = NULL;
    if (!sl_bus_topic_valid(topic) || strlen(topic) + 8 > SL_BUS_TOPIC_MAX || !group_valid(group) ||
        (handler == NULL && batch == NULL))
        return SL_EINVAL;
    if (bus->closing) return SL_ECLOSED;
    sl_bus_sub *s = calloc(1, sizeof *s);
    if (s == NULL) return SL_ENOMEM;
    s->bus = bus;
    snprintf(s->topic, sizeof s->topic, "%s", topic);
    snprintf(s->group, sizeof s->group, "%s", group);
    snprintf(s->dlq, sizeof s->dlq, "%s.dlq", topic);
    if (opt) s->opt = *opt;
    sl_bus_sub_options *o = &s->opt;
    if (o->ack_wait_ms <= 0) o->ack_wait_ms = 30000;
    if (o->max_deliver == 0) o->max_deliver = 5;
    if (o->backoff_base_ms <= 0) o->backoff_base_ms = 1000;
    if (o->backoff_max_ms <= 0) o->backoff_max_ms = 60000;
    if (o->backoff_max_ms < o->backoff_base_ms) o->backoff_max_ms = o->backoff_base_ms;
    if (o->max_inflight == 0) o->max_inflight = 2048;
    if (o->fetch_batch == 0) o->fetch_batch = 512;
    if (o->fetch_batch > o->max_inflight) o->fetch_batch = o->max_inflight;
    if (o->types) {
        size_t nt = 0;
        while (o->types[nt] && nt < 1024)
            nt++;
        s->types = calloc(nt + 1, sizeof(char *));
        if (s->types == NULL) {
            free(s);
            return SL_ENOMEM;
        }
        for (size_t i = 0; i < nt; i++)
            if ((s->types[i] = strdup(o->types[i])) == NULL) {
                free_sub(s);
                return SL_ENOMEM;
            }
        o->types = (const char *const *)s->types;
    }
    s->handler = handler;
    s->batch = batch;
    s->data = data;
    if ((s->scratch = malloc(sizeof *s->scratch)) == NULL) {
        free_sub(s);
        return SL_ENOMEM;
    }
    s->s_delivered = series2(bus, bus->m.delivered, topic, group);
    s->s_redelivered = series2(bus, bus->m.redelivered, topic, group);
    s->s_dead = series2(bus, bus->m.dead, topic, group);
    s->s_latency = series2(bus, bus->m.latency, topic, group);
    s->s_lag = series2(bus, bus->m.lag, topic, group);
    int rc = bus->vt->sub_start(s);
    if (rc != 0) {
        free_sub(s);
        return rc;
    }
    s->next = bus->subs;
    bus->subs = s;
    *out = s;
    return 0;
}

int sl_bus_subscribe(sl_bus *bus, const char *topic, const char *group,
                     const sl_bus_sub_options *opt, sl_bus_handler_cb handler, void *data,
                     sl_bus_sub **out)
{
    if (handler == NULL) return SL_EINVAL;
    return bus_subscribe(bus, topic, group, opt, handler, NULL, data, out);
}

int sl__bus_subscribe_batch(sl_bus *bus, const char *topic, const char *group,
                            const sl_bus_sub_options *opt, bus_batch_cb batch, void *data,
                            sl_bus_sub **out)
{
    return bus_subscribe(bus, topic, group, opt, NULL, batch, data, out);
}

static void sub_maybe_free(sl_bus_sub *s)
{
    /* Freed once the backend released it and no dead-letter publish still holds a message. */
    if (s->be != NULL || s->inflight > 0 || !s->stopped) return;
    sl_bus *bus = s->bus;
    for (sl_bus_sub **pp = &bus->subs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    free_sub(s);
    maybe_finish_close(bus);
}

void sl__bus_sub_released(sl_bus_sub *s)
{
    SL_ASSERT(s->stopped); /* only after sub_stop */
    s->be = NULL;
    sub_maybe_free(s);
}

void sl_bus_unsubscribe(sl_bus_sub *s)
{
    if (s == NULL || s->stopped) return;
    s->stopped = true;
    s->bus->vt->sub_stop(s);
}

/* ---- delivery ------------------------------------------------------------------------------ */

static void settle(sl_bus_sub *s, void *handle, enum bus_settle kind, int64_t delay_ms)
{
    s->bus->vt->settle(s, handle, kind, delay_ms);
    SL_ASSERT(s->inflight > 0);
    s->inflight--;
    if (s->stopped) sub_maybe_free(s);
}

typedef struct dead_ctx {
    sl_bus_sub *sub;
    void *handle;
    unsigned deliveries;
} dead_ctx;

static void dead_done(void *data, int status)
{
    dead_ctx *c = data;
    sl_bus_sub *s = c->sub;
    if (s->stopped)
        settle(s, c->handle, BUS_SETTLE_NONE, 0);
    else if (status == 0) {
        s->bus->stats.dead_lettered++;
        count(s->bus, s->s_dead, 1);
        settle(s, c->handle, BUS_SETTLE_TERM, 0);
    } else {
        /* The dead letter did not make it: try again on a later delivery. */
        settle(s, c->handle, BUS_SETTLE_NAK, sl__bus_backoff_ms(&s->opt, c->deliveries));
    }
    free(c);
}

/* The dead-letter payload: who, why, how often, and the original bytes. */
static char *dead_letter_json(const sl_bus_sub *s, const bus_delivery *d, const char *id,
                              const char *reason, size_t *len)
{
    json_t *o = json_object();
    if (o == NULL) return NULL;
    json_object_set_new(o, "topic", json_string(s->topic));
    json_object_set_new(o, "group", json_string(s->group));
    if (id) json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "deliveries", json_integer(d->deliveries));
    json_object_set_new(o, "stream_seq", json_integer((json_int_t)d->stream_seq));
    json_object_set_new(o, "reason", json_string(reason));
    char at[SL_RFC3339_MAX];
    const sl_clock *clk = s->bus->opt.clock ? s->bus->opt.clock : sl_clock_system();
    if (sl_rfc3339_format(sl_clock_wall_ns(clk), at, sizeof at) > 0)
        json_object_set_new(o, "at", json_string(at));
    if (d->len <= s->bus->opt.max_msg_bytes / 2 && sl_utf8_valid(d->data, d->len))
        json_object_set_new(o, "envelope", json_stringn(d->data, d->len));
    else
        json_object_set_new(o, "envelope_bytes", json_integer((json_int_t)d->len));
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (txt) *len = strlen(txt);
    return txt;
}

static void dead_letter(sl_bus_sub *s, const bus_delivery *d, const char *id, const char *reason)
{
    sl_bus *bus = s->bus;
    size_t len = 0;
    char *txt = dead_letter_json(s, d, id, reason, &len);
    if (s->dead_keep) {
        /* Kept by the consumer (its database): settled once it is written. */
        char key[SL_BUS_ID_MAX + 32];
        if (id)
            snprintf(key, sizeof key, "%s", id);
        else
            snprintf(key, sizeof key, "seq:%llu", (unsigned long long)d->stream_seq);
        int rc =
            txt ? s->dead_keep(s->dead_keep_data, s->topic, s->group, key, txt, len) : SL_ENOMEM;
        free(txt);
        if (rc == 0) {
            bus->stats.dead_lettered++;
            count(bus, s->s_dead, 1);
            settle(s, d->handle, BUS_SETTLE_TERM, 0);
        } else {
            settle(s, d->handle, BUS_SETTLE_NAK, sl__bus_backoff_ms(&s->opt, d->deliveries));
        }
        return;
    }
    /* Stable across redeliveries of this message, distinct for every topic and group. */
    char dedup[SL_BUS_TOPIC_MAX + SL_BUS_GROUP_MAX + 48];
    snprintf(dedup, sizeof dedup, "dlq:%s:%s:%llu", s->topic, s->group,
             (unsigned long long)d->stream_seq);
    dead_ctx *c = malloc(sizeof *c);
    bus_pub *p = txt ? pub_alloc(1, strlen(s->dlq) * 2 + strlen(dedup) + len + 8) : NULL;
    if (txt == NULL || c == NULL || p == NULL) goto fail;
    *c = (dead_ctx){s, d->handle, d->deliveries};
    p->bus = bus;
    p->cb = dead_done;
    p->cb_data = c;
    char *cur = (char *)&p->msgs[1];
    p->msgs[0].topic = put(&cur, s->dlq, strlen(s->dlq));
    p->msgs[0].wire = put(&cur, s->dlq, strlen(s->dlq));
    p->msgs[0].id = put(&cur, dedup, strlen(dedup));
    p->msgs[0].subject = p->msgs[0].id;
    p->msgs[0].data = put(&cur, txt, len);
    p->msgs[0].len = len;
    free(txt);
    txt = NULL;
    if (pub_submit(bus, p) != 0) goto fail;
    return;
fail:
    free(txt);
    free(p);
    free(c);
    settle(s, d->handle, BUS_SETTLE_NAK, sl__bus_backoff_ms(&s->opt, d->deliveries));
}

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Parses and screens one delivery. Returns 0 with *msg filled (its strings in *env), or 1
 * when the message was dead-lettered. */
static int screen(sl_bus_sub *s, const bus_delivery *d, sl_bus_msg *msg, sl__bus_envelope *env)
{
    char reason[SL_BUS_REASON_MAX];
    const char *id = NULL;
    int have = d->env != NULL;
    if (have) {
        *env = *d->env; /* taken: freed with the others, or below */
        memset(d->env, 0, sizeof *d->env);
    } else {
        memset(env, 0, sizeof *env);
    }
    if (d->len > s->bus->opt.max_msg_bytes) {
        snprintf(reason, sizeof reason, "oversized message: %zu bytes > %zu", d->len,
                 s->bus->opt.max_msg_bytes);
        goto dead;
    }
    char why[200];
    if (!have && sl__bus_envelope_decode(d->data, d->len, 0, env, why, sizeof why) != 0) {
        snprintf(reason, sizeof reason, "malformed envelope: %s", why);
        goto dead;
    }
    memset(msg, 0, sizeof *msg);
    id = msg->id = env->id;
    msg->type = env->type;
    msg->source = env->source;
    msg->subject = env->subject;
    const char *missing = !msg->id        ? "id"
                          : !msg->type    ? "type"
                          : !msg->source  ? "source"
                          : !msg->subject ? "subject"
                                          : NULL;
    if (missing || strlen(msg->id) > SL_BUS_ID_MAX) {
        snprintf(reason, sizeof reason, "malformed envelope: missing or invalid '%s'",
                 missing ? missing : "id");
        goto dead;
    }
    if (s->types) {
        char **t = s->types;
        while (*t && strcmp(*t, msg->type) != 0)
            t++;
        if (*t == NULL) {
            snprintf(reason, sizeof reason, "unknown event type '%.150s'", msg->type);
            goto dead;
        }
    }
    if (d->deliveries > s->opt.max_deliver) {
        snprintf(reason, sizeof reason,
                 "not acknowledged after %u deliveries (ack_wait expired each time)",
                 d->deliveries - 1);
        goto dead;
    }
    msg->topic = s->topic;
    msg->group = s->group;
    msg->payload = (sl_slice){d->data, d->len};
    msg->time = env->time;
    msg->traceparent = env->traceparent;
    msg->data = env->data;
    msg->stream_seq = d->stream_seq;
    msg->deliveries = d->deliveries;
    msg->published_ms = d->published_ms;
    return 0;
dead:
    dead_letter(s, d, id, reason);
    sl__bus_envelope_free(env);
    return 1;
}

static void apply_reply(sl_bus_sub *s, const bus_delivery *d, const sl_bus_msg *m,
                        const sl_bus_reply *r)
{
    switch (r->verdict) {
    case SL_BUS_ACK:
        settle(s, d->handle, BUS_SETTLE_ACK, 0);
        break;
    case SL_BUS_DROP:
        settle(s, d->handle, BUS_SETTLE_NONE, 0);
        break;
    case SL_BUS_NACK:
        if (d->deliveries >= s->opt.max_deliver) {
            char reason[SL_BUS_REASON_MAX + 64];
            snprintf(reason, sizeof reason, "failed %u deliveries: %s", d->deliveries,
                     r->reason[0] ? r->reason : "handler error");
            reason[SL_BUS_REASON_MAX - 1] = '\0';
            dead_letter(s, d, m->id, reason);
        } else {
            settle(s, d->handle, BUS_SETTLE_NAK,
                   r->delay_ms > 0 ? r->delay_ms : sl__bus_backoff_ms(&s->opt, d->deliveries));
        }
        break;
    case SL_BUS_REJECT:
    default:
        dead_letter(s, d, m->id, r->reason[0] ? r->reason : "rejected by handler");
        break;
    }
}

void sl__bus_deliver(sl_bus_sub *s, const bus_delivery *d, size_t n)
{
    sl_bus *bus = s->bus;
    enum { CHUNK = BUS_DELIVER_CHUNK };
    /* Backends deliver from loop callbacks, never from inside a handler: one scratch per
     * subscription is enough. */
    sl_bus_msg *msgs = s->scratch->msgs;
    const sl_bus_msg **ptrs = s->scratch->ptrs;
    sl__bus_envelope *envs = s->scratch->envs;
    const bus_delivery **ds = s->scratch->ds;
    sl_bus_reply *replies = s->scratch->replies;
    s->inflight += (unsigned)n;
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        for (; i < n && k < CHUNK; i++) {
            const bus_delivery *di = &d[i];
            if (s->stopped) {
                if (di->env) sl__bus_envelope_free(di->env);
                settle(s, di->handle, BUS_SETTLE_NONE, 0);
                continue;
            }
            bus->stats.delivered++;
            count(bus, s->s_delivered, 1);
            if (di->deliveries > 1) {
                bus->stats.redelivered++;
                count(bus, s->s_redelivered, 1);
            }
            if (screen(s, di, &msgs[k], &envs[k]) != 0) continue;
            ds[k] = di;
            ptrs[k] = &msgs[k];
            memset(&replies[k], 0, sizeof replies[k]);
            k++;
        }
        if (k == 0) continue;
        uint64_t t0 = uv_hrtime();
        if (s->batch) {
            s->batch(s->data, ptrs, replies, k);
        } else {
            for (size_t j = 0; j < k && !s->stopped; j++)
                s->handler(s->data, &msgs[j], &replies[j]);
        }
        if (s->s_latency)
            sl_histogram_observe(s->s_latency, bus->opt.metrics_shard,
                                 (double)(uv_hrtime() - t0) / 1e9 / (double)k);
        for (size_t j = 0; j < k; j++) {
            if (s->stopped)
                settle(s, ds[j]->handle, BUS_SETTLE_NONE, 0);
            else
                apply_reply(s, ds[j], &msgs[j], &replies[j]);
            sl__bus_envelope_free(&envs[j]);
        }
    }
}

/* ---- admin ----------------------------------------------------------------------------------- */

int sl__bus_dead_parse(const char *data, size_t len, sl_bus_dead *out, char **env, size_t *env_len)
{
    memset(out, 0, sizeof *out);
    *env = NULL;
    *env_len = 0;
    json_t *o = NULL;
    if (sl_json_parse(data, len, NULL, &o, NULL) != 0) return SL_EPARSE;
    const char *t = jstr(o, "topic"), *g = jstr(o, "group"), *id = jstr(o, "id");
    const char *r = jstr(o, "reason"), *e = jstr(o, "envelope");
    json_t *dv = json_object_get(o, "deliveries");
    if (t == NULL || g == NULL) {
        json_decref(o);
        return SL_EPARSE;
    }
    snprintf(out->topic, sizeof out->topic, "%s", t);
    snprintf(out->group, sizeof out->group, "%s", g);
    snprintf(out->id, sizeof out->id, "%s", id ? id : "");
    snprintf(out->reason, sizeof out->reason, "%s", r ? r : "");
    out->deliveries = json_is_integer(dv) ? (unsigned)json_integer_value(dv) : 0;
    const char *at = jstr(o, "at");
    if (at) snprintf(out->at, sizeof out->at, "%s", at);
    if (e) { /* the envelope's subject, and its time when the dead letter has none */
        json_t *eo = json_loads(e, 0, NULL);
        const char *sj = eo ? json_string_value(json_object_get(eo, "subject")) : NULL;
        const char *tm = eo ? json_string_value(json_object_get(eo, "time")) : NULL;
        if (sj) snprintf(out->subject, sizeof out->subject, "%s", sj);
        if (tm && !at) snprintf(out->at, sizeof out->at, "%s", tm);
        json_decref(eo);
    }
    if (e) {
        *env_len = json_string_length(json_object_get(o, "envelope"));
        *env = malloc(*env_len + 1);
        if (*env) memcpy(*env, e, *env_len + 1);
    }
    json_decref(o);
    return 0;
}

static int admin_check(sl_bus *bus, const char *topic, const void *cb)
{
    if (bus == NULL || !sl_bus_topic_valid(topic) || cb == NULL) return SL_EINVAL;
    if (bus->closing) return SL_ECLOSED;
    return 0;
}

int sl_bus_dlq_list(sl_bus *bus, const char *topic, size_t max, sl_bus_dead_list_cb cb, void *data)
{
    int rc = admin_check(bus, topic, (const void *)cb);
    if (rc) return rc;
    if (max == 0 || max > 1000) return SL_EINVAL;
    return bus->vt->dlq_list(bus, topic, max, cb, data);
}

int sl_bus_dlq_redrive(sl_bus *bus, const char *topic, uint64_t dlq_seq, sl_bus_admin_cb cb,
                       void *data)
{
    int rc = admin_check(bus, topic, (const void *)cb);
    if (rc) return rc;
    return bus->vt->dlq_redrive(bus, topic, dlq_seq, cb, data);
}

int sl_bus_lag(sl_bus *bus, const char *topic, const char *group, sl_bus_admin_cb cb, void *data)
{
    int rc = admin_check(bus, topic, (const void *)cb);
    if (rc) return rc;
    if (!group_valid(group)) return SL_EINVAL;
    return bus->vt->lag(bus, topic, group, cb, data);
}
