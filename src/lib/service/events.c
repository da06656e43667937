/*
 * Event plumbing of the service host (service_int.h): publishing through the
 * transactional outbox and consuming through the bus's transactional runner.
 *
 * Worker 0 owns it all: the bus connection, the outbox relay (with its own
 * database connection) and one runner per subscription (sharing a consumer
 * connection). Commits on every worker's connection wake the relay through
 * its commit hook. With no `bus.url`, nothing is published: events wait in
 * the outbox (their backlog shows on /metrics) until a bus is configured.
 */
#include "service_int.h"

#include "bus/dead_store.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/config.h>
#include <shoal/db.h>
#include <shoal/log.h>
#include <shoal/metrics.h>
#include <shoal/outbox.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CONTEXTS 16

struct apply_ctx;

struct sl_events {
    sl_service *svc;
    const sl_service_def *def;
    sl_logger *log;
    sl_metrics *metrics;
    char url[512];
    sl_db *relay_db;
    sl_db *consumer_db;
    sl_outbox_relay *relay;
    sl_bus *bus;
    sl_bus_broker *broker; /* inproc: the process's shared broker (borrowed), or NULL */
    sl_bus_runner **runners;
    size_t nrunners;
    int started;
    char *contexts[MAX_CONTEXTS];
    size_t ncontexts;
    sl_series *backlog;
    sl_series *backlog_age;
    uv_timer_t backlog_timer;
    struct apply_ctx *applies;
    int64_t ack_wait_ms; /* bus.ack_wait_ms: unacked deliveries come back after this */
    int replicas;        /* bus.replicas: stream replicas (1 locally, 3 in a NATS cluster) */
    /* bus.tls_ca_file, bus.tls_cert_file, bus.tls_key_file, bus.user; "" → unset. The
     * password comes from bus.password_file (never from the configuration itself). */
    char tls_ca[512], tls_server[256], tls_cert[512], tls_key[512], user[128], password[256];
    atomic_int bus_up; /* worker 0 writes, /readyz on any worker reads */
    unsigned ticks;
    /* In-process broker of the hosted shape: dead letters go to the dead_letters table of the
     * consumer database (at most dead_max rows, bus.dead_letters_max). */
    bool dead_in_db;
    int64_t dead_max;
    sl_series *dead_stored, *dead_refused;
    uint64_t dead_refusals; /* logged at the first and every 100th */
};

/* ---- spans of the relay and the consumers (worker 0's tracer) ---- */

/* The traceparent an envelope carries (the request that wrote the event), when valid. */
static int envelope_trace(const char *env, size_t len, sl_trace_ctx *out)
{
    static const char key[] = "\"traceparent\":\"";
    const char *p = env ? memmem(env, len, key, sizeof key - 1) : NULL;
    if (!p) return 0;
    p += sizeof key - 1;
    return (size_t)(env + len - p) >= SL_TRACEPARENT_LEN &&
           sl_traceparent_parse(p, SL_TRACEPARENT_LEN, out) == 0;
}

static void messaging_attrs(const sl_events *ev, sl_span *s, const char *op, const char *dest,
                            const char *id)
{
    /* The in-process broker of the hosted shape is no NATS. */
    sl_span_set_attr_str(s, "messaging.system",
                         strncmp(ev->url, "inproc:", 7) == 0 ? "shoal_inproc" : "nats");
    sl_span_set_attr_str(s, "messaging.operation.type", op);
    sl_span_set_attr_str(s, "messaging.operation.name", op);
    sl_span_set_attr_str(s, "messaging.destination.name", dest);
    if (id) sl_span_set_attr_str(s, "messaging.message.id", id);
}

/* A publish in flight: one producer span per message, ended when the broker acknowledged. */
typedef struct relay_call {
    sl_outbox_done_cb done;
    void *done_data;
    size_t n;
    sl_span *spans[];
} relay_call;

static void relay_done(void *data, int status)
{
    relay_call *rc = data;
    for (size_t i = 0; i < rc->n; i++) {
        if (status != 0)
            sl_span_set_status(rc->spans[i], SL_SPAN_STATUS_ERROR, sl_strerror(status));
        sl_span_end(rc->spans[i]);
    }
    sl_outbox_done_cb done = rc->done;
    void *dd = rc->done_data;
    free(rc);
    done(dd, status);
}

/* The relay publishes through the bus once worker 0 has opened it. */
static int relay_publish(void *ctx, const sl_outbox_msg *msgs, size_t n, sl_outbox_done_cb done,
                         void *done_data)
{
    sl_events *ev = ctx;
    if (!ev->bus || !sl_bus_ready(ev->bus))
        return SL_EUNAVAIL; /* the relay backs off and tries again */
    sl_outbox_publisher pub = sl_bus_outbox_publisher(ev->bus);
    sl_tracer *tr = ev->svc->w ? ev->svc->w[0].sw.tracer : NULL;
    relay_call *call = tr ? malloc(sizeof *call + n * sizeof(sl_span *)) : NULL;
    if (!call) return pub.publish(pub.ctx, msgs, n, done, done_data);
    *call = (relay_call){.done = done, .done_data = done_data, .n = n};
    for (size_t i = 0; i < n; i++) {
        /* A child of the request that wrote the event; a new trace for one without. */
        sl_trace_ctx parent;
        int has = envelope_trace(msgs[i].envelope, msgs[i].envelope_len, &parent);
        char name[SL_SPAN_NAME_MAX + 1];
        snprintf(name, sizeof name, "send %s", msgs[i].type);
        sl_span_start(tr, name, SL_SPAN_PRODUCER, has ? &parent : NULL, &call->spans[i]);
        if (sl_span_is_recording(call->spans[i])) {
            messaging_attrs(ev, call->spans[i], "send", msgs[i].type, msgs[i].id);
            sl_span_set_attr_str(call->spans[i], "messaging.message.conversation_id",
                                 msgs[i].subject);
            sl_span_set_attr_int(call->spans[i], "shoal.outbox.seq", msgs[i].seq);
        }
    }
    int rc = pub.publish(pub.ctx, msgs, n, relay_done, call);
    if (rc != 0) { /* not started: relay_done will not run */
        for (size_t i = 0; i < n; i++) {
            sl_span_set_status(call->spans[i], SL_SPAN_STATUS_ERROR, sl_strerror(rc));
            sl_span_end(call->spans[i]);
        }
        free(call);
    }
    return rc;
}

static void relay_hook(void *data, const char *what, int64_t value)
{
    sl_events *ev = data;
    if (strcmp(what, "publish_failed") == 0 && (value == 1 || value % 20 == 0))
        SL_LOG_WARN(ev->log, NULL, "publishing outbox events failed; retrying",
                    SL_LOG_INT("consecutive_failures", value));
}

/* The bus state for /readyz and the backlog gauges are refreshed on worker 0, whose thread owns
 * the bus and the relay's connection. */
static void refresh_backlog(uv_timer_t *t)
{
    sl_events *ev = t->data;
    atomic_store(&ev->bus_up, ev->bus && sl_bus_ready(ev->bus));
    if (ev->ticks++ % 2) return; /* the backlog every second, the bus state every 500 ms */
    int64_t n = 0, age_ms = 0;
    if (sl_outbox_backlog(ev->relay_db, sl_clock_wall_ms(sl_clock_system()), &n, &age_ms) != 0)
        return;
    if (ev->backlog) sl_gauge_set(ev->backlog, (double)n);
    if (ev->backlog_age) sl_gauge_set(ev->backlog_age, (double)age_ms / 1000.0);
    int64_t dead = 0;
    if (ev->dead_in_db && ev->dead_stored && sl__dead_store_count(ev->consumer_db, &dead) == 0)
        sl_gauge_set(ev->dead_stored, (double)dead);
}

static void add_context(sl_events *ev, const char *topic_or_context, int is_topic)
{
    char ctx[64];
    if (is_topic) {
        /* "shop.<context>.<name>..." → "<context>" */
        const char *a = strchr(topic_or_context, '.');
        const char *b = a ? strchr(a + 1, '.') : NULL;
        if (!a || !b || (size_t)(b - a - 1) >= sizeof ctx) return;
        memcpy(ctx, a + 1, (size_t)(b - a - 1));
        ctx[b - a - 1] = '\0';
    } else {
        snprintf(ctx, sizeof ctx, "%s", topic_or_context);
    }
    for (size_t i = 0; i < ev->ncontexts; i++)
        if (strcmp(ev->contexts[i], ctx) == 0) return;
    if (ev->ncontexts < MAX_CONTEXTS) ev->contexts[ev->ncontexts++] = strdup(ctx);
}

/* Copies string key `path` into out (cap bytes); "" when absent. Returns 0 or SL_ECONFIG. */
static int get_str(sl_config *cfg, const char *path, char *out, size_t cap, char *err)
{
    const char *v = NULL;
    if (sl_config_get_string(cfg, path, "", &v, err) != 0) return SL_ECONFIG;
    if (strlen(v) >= cap) {
        snprintf(err, SL_CONFIG_ERR_MAX, "%s: longer than %zu bytes", path, cap - 1);
        return SL_ECONFIG;
    }
    snprintf(out, cap, "%s", v);
    return 0;
}

/*
 * The bus's TLS and credential keys. The password is read from bus.password_file, which must
 * be a regular file that only its owner may read or write (0600 or stricter); one line, the
 * trailing newline dropped. The password itself is never logged.
 */
static int read_bus_security(sl_events *ev, sl_config *cfg, char *err)
{
    char pwfile[512];
    if (get_str(cfg, "bus.tls_ca_file", ev->tls_ca, sizeof ev->tls_ca, err) != 0 ||
        get_str(cfg, "bus.tls_server_name", ev->tls_server, sizeof ev->tls_server, err) != 0 ||
        get_str(cfg, "bus.tls_cert_file", ev->tls_cert, sizeof ev->tls_cert, err) != 0 ||
        get_str(cfg, "bus.tls_key_file", ev->tls_key, sizeof ev->tls_key, err) != 0 ||
        get_str(cfg, "bus.user", ev->user, sizeof ev->user, err) != 0 ||
        get_str(cfg, "bus.password_file", pwfile, sizeof pwfile, err) != 0)
        return SL_ECONFIG;
    if ((ev->tls_cert[0] == '\0') != (ev->tls_key[0] == '\0')) {
        snprintf(err, SL_CONFIG_ERR_MAX, "bus.tls_cert_file: goes with bus.tls_key_file");
        return SL_ECONFIG;
    }
    if (ev->tls_cert[0] && !ev->tls_ca[0]) {
        snprintf(err, SL_CONFIG_ERR_MAX, "bus.tls_cert_file: needs bus.tls_ca_file");
        return SL_ECONFIG;
    }
    if ((ev->user[0] == '\0') != (pwfile[0] == '\0')) {
        snprintf(err, SL_CONFIG_ERR_MAX, "bus.user: goes with bus.password_file");
        return SL_ECONFIG;
    }
    if (pwfile[0] == '\0') return 0;
    int fd = open(pwfile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, SL_CONFIG_ERR_MAX, "bus.password_file: cannot open '%.200s'", pwfile);
        if (fd >= 0) close(fd);
        return SL_ECONFIG;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
        snprintf(err, SL_CONFIG_ERR_MAX,
                 "bus.password_file: '%.200s' must be a regular file of mode 0600 or stricter",
                 pwfile);
        close(fd);
        return SL_ECONFIG;
    }
    ssize_t n = read(fd, ev->password, sizeof ev->password);
    close(fd);
    if (n < 0 || (size_t)n >= sizeof ev->password) {
        snprintf(err, SL_CONFIG_ERR_MAX, "bus.password_file: unreadable or over %zu bytes",
                 sizeof ev->password - 1);
        return SL_ECONFIG;
    }
    ev->password[n] = '\0';
    ev->password[strcspn(ev->password, "\r\n")] = '\0';
    if (ev->password[0] == '\0') {
        snprintf(err, SL_CONFIG_ERR_MAX, "bus.password_file: '%.200s' is empty", pwfile);
        return SL_ECONFIG;
    }
    return 0;
}

int sl__events_new(sl_service *svc, const sl_service_def *def, sl_config *cfg, const char *db_url,
                   const void *db_opts, sl_logger *log, sl_metrics *metrics, sl_events **out)
{
    *out = NULL;
    if (!def->migrations) return 0; /* no database, no outbox, no events */
    char err[SL_CONFIG_ERR_MAX] = {0};
    const char *url = NULL;
    if (sl_config_get_string(cfg, "bus.url", "", &url, err) != 0) {
        SL_LOG_ERROR(log, NULL, "configuration", SL_LOG_STR("error", err));
        return SL_ECONFIG;
    }
    sl_events *ev = calloc(1, sizeof *ev);
    if (!ev) return SL_ENOMEM;
    ev->svc = svc;
    ev->def = def;
    ev->log = log;
    ev->metrics = metrics;
    snprintf(ev->url, sizeof ev->url, "%s", url);
    int64_t ack_wait = 0;
    if (sl_config_get_int(cfg, "bus.ack_wait_ms", 30000, 100, 3600000, &ack_wait, err) != 0) {
        SL_LOG_ERROR(log, NULL, "configuration", SL_LOG_STR("error", err));
        free(ev);
        return SL_ECONFIG;
    }
    ev->ack_wait_ms = ack_wait;
    int64_t replicas = 1;
    if (sl_config_get_int(cfg, "bus.replicas", 1, 1, 5, &replicas, err) != 0) {
        SL_LOG_ERROR(log, NULL, "configuration", SL_LOG_STR("error", err));
        free(ev);
        return SL_ECONFIG;
    }
    ev->replicas = (int)replicas;
    if (sl_config_get_int(cfg, "bus.dead_letters_max", 10000, 1, 10000000, &ev->dead_max, err) !=
        0) {
        SL_LOG_ERROR(log, NULL, "configuration", SL_LOG_STR("error", err));
        free(ev);
        return SL_ECONFIG;
    }
    if (read_bus_security(ev, cfg, err) != 0) {
        SL_LOG_ERROR(log, NULL, "configuration", SL_LOG_STR("error", err));
        sl__events_free(ev);
        return SL_ECONFIG;
    }
    for (const char *const *p = def->publishes; p && *p; p++)
        add_context(ev, *p, 0);
    for (size_t i = 0; i < def->nsubscriptions; i++)
        add_context(ev, def->subscriptions[i].topic, 1);
    if (metrics) {
        static const char *const labels[] = {"service"};
        const char *values[] = {def->name};
        sl_metric_family *f1, *f2;
        if (sl_metrics_gauge(metrics, "outbox_backlog", "Events written but not yet published.",
                             labels, 1, &f1) == 0)
            ev->backlog = sl_metric_series(f1, values);
        if (sl_metrics_gauge(metrics, "outbox_oldest_age_seconds",
                             "Age of the oldest unpublished event.", labels, 1, &f2) == 0)
            ev->backlog_age = sl_metric_series(f2, values);
        sl_metric_family *f3, *f4;
        if (sl_metrics_gauge(metrics, "dead_letters_stored",
                             "Dead letters kept in the service's database (in-process broker).",
                             labels, 1, &f3) == 0)
            ev->dead_stored = sl_metric_series(f3, values);
        if (sl_metrics_counter(metrics, "dead_letters_refused_total",
                               "Dead letters the service's database could not keep (full at "
                               "bus.dead_letters_max, or an error); the message comes back.",
                               labels, 1, &f4) == 0)
            ev->dead_refused = sl_metric_series(f4, values);
    }

    char dberr[256];
    int rc = sl_db_open(db_url, db_opts, &ev->relay_db, dberr, sizeof dberr);
    if (rc == 0) rc = sl_db_open(db_url, db_opts, &ev->consumer_db, dberr, sizeof dberr);
    if (rc != 0) {
        SL_LOG_ERROR(log, NULL, "cannot open the database", SL_LOG_STR("error", dberr));
        sl__events_free(ev);
        return rc;
    }
    sl_outbox_publisher pub = {.publish = relay_publish, .ctx = ev};
    sl_outbox_relay_options ro = {
        .retention_ms = 7LL * 24 * 3600 * 1000, .hook = relay_hook, .hook_data = ev};
    rc = sl_outbox_relay_new(ev->relay_db, &pub, &ro, &ev->relay);
    if (rc != 0) {
        sl__events_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

void sl__events_watch(sl_events *ev, sl_db *db)
{
    if (ev && ev->relay) sl_outbox_relay_watch(ev->relay, db);
}

typedef struct apply_ctx {
    sl_events *ev;
    const sl_subscription_def *sub;
} apply_ctx;

static int apply_cb(void *data, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    apply_ctx *a = data;
    sl_tracer *tr = a->ev->svc->w ? a->ev->svc->w[0].sw.tracer : NULL;
    if (!tr) return a->sub->apply(a->ev->svc, tx, msg, reason, cap);
    /* The consumer span: a child of, and linked to, the context the envelope carries. */
    sl_trace_ctx parent;
    int has = msg->traceparent &&
              sl_traceparent_parse(msg->traceparent, strlen(msg->traceparent), &parent) == 0;
    char name[SL_SPAN_NAME_MAX + 1];
    snprintf(name, sizeof name, "process %s", msg->topic);
    sl_span *span;
    sl_span_start(tr, name, SL_SPAN_CONSUMER, has ? &parent : NULL, &span);
    if (sl_span_is_recording(span)) {
        messaging_attrs(a->ev, span, "process", msg->topic, msg->id);
        if (msg->group) sl_span_set_attr_str(span, "messaging.consumer.group.name", msg->group);
        if (msg->subject)
            sl_span_set_attr_str(span, "messaging.message.conversation_id", msg->subject);
        sl_span_set_attr_int(span, "messaging.nats.delivery_count", msg->deliveries);
        if (has) sl_span_add_link(span, &parent);
    }
    int rc = a->sub->apply(a->ev->svc, tx, msg, reason, cap);
    if (rc != 0)
        sl_span_set_status(span, SL_SPAN_STATUS_ERROR,
                           reason && reason[0] ? reason : sl_strerror(rc));
    sl_span_end(span);
    return rc;
}

/* A dead letter of one of the runners, into the consumer database (in-process broker). */
static int keep_dead(void *data, const char *topic, const char *group, const char *key,
                     const char *letter, size_t len)
{
    sl_events *ev = data;
    int rc = sl__dead_store_put(ev->consumer_db, group, key, topic, letter, len,
                                sl_clock_wall_ms(sl_clock_system()), ev->dead_max);
    if (rc != 0) {
        if (ev->dead_refused) sl_counter_add(ev->dead_refused, 0, 1);
        if (ev->dead_refusals++ % 100 == 0)
            SL_LOG_WARN(ev->log, NULL,
                        rc == SL_ELIMIT ? "dead letters full (bus.dead_letters_max): the message "
                                          "stays unsettled and comes back"
                                        : "cannot keep a dead letter: the message comes back",
                        SL_LOG_STR("topic", topic), SL_LOG_STR("group", group),
                        SL_LOG_STR("event_id", key), SL_LOG_INT("max", ev->dead_max),
                        SL_LOG_STR("error", sl_strerror(rc)),
                        SL_LOG_INT("refusals", (int64_t)ev->dead_refusals));
    }
    return rc;
}

int sl__events_start(sl_events *ev, uv_loop_t *loop)
{
    if (!ev) return 0;
    int rc = sl_outbox_relay_start(ev->relay, loop);
    if (rc != 0) return rc;
    ev->started = 1;
    uv_timer_init(loop, &ev->backlog_timer);
    ev->backlog_timer.data = ev;
    uv_timer_start(&ev->backlog_timer, refresh_backlog, 0, 500);
    if (ev->url[0] == '\0') {
        if (ev->def->nsubscriptions > 0 || ev->def->publishes)
            SL_LOG_WARN(ev->log, NULL,
                        "no bus.url: events stay in the outbox and subscriptions are idle");
        return 0;
    }
    sl_bus_options bo = {.url = ev->url,
                         .name = ev->def->name,
                         .contexts = (const char *const *)ev->contexts,
                         .n_contexts = ev->ncontexts,
                         .replicas = ev->replicas,
                         .metrics = ev->metrics,
                         .metrics_shard = 0,
                         .broker = ev->broker,
                         .tls_ca_file = ev->tls_ca[0] ? ev->tls_ca : NULL,
                         .tls_server_name = ev->tls_server[0] ? ev->tls_server : NULL,
                         .tls_cert_file = ev->tls_cert[0] ? ev->tls_cert : NULL,
                         .tls_key_file = ev->tls_key[0] ? ev->tls_key : NULL,
                         .user = ev->user[0] ? ev->user : NULL,
                         .password = ev->user[0] ? ev->password : NULL,
                         .publish_contexts = ev->def->publishes};
    char err[256] = {0};
    rc = sl_bus_open(loop, &bo, &ev->bus, err, sizeof err);
    if (rc != 0) {
        SL_LOG_ERROR(ev->log, NULL, "cannot open the bus", SL_LOG_STR("url", ev->url),
                     SL_LOG_STR("error", err));
        return rc;
    }
    ev->dead_in_db = ev->broker != NULL;
    if (ev->def->nsubscriptions) {
        ev->runners = calloc(ev->def->nsubscriptions, sizeof(sl_bus_runner *));
        ev->applies = calloc(ev->def->nsubscriptions, sizeof(apply_ctx));
        if (!ev->runners || !ev->applies) return SL_ENOMEM;
    }
    for (size_t i = 0; i < ev->def->nsubscriptions; i++) {
        const sl_subscription_def *sub = &ev->def->subscriptions[i];
        char group[SL_BUS_GROUP_MAX + 1];
        if (sub->group) {
            snprintf(group, sizeof group, "%s", sub->group);
        } else {
            /* "<service>-<topic with dots as dashes>", within the group name rules */
            int n = snprintf(group, sizeof group, "%s-%s", ev->def->name, sub->topic);
            for (int k = 0; k < n && k < (int)sizeof group; k++)
                if (group[k] == '.') group[k] = '-';
        }
        apply_ctx *a = &ev->applies[i];
        a->ev = ev;
        a->sub = sub;
        sl_bus_sub_options so = {.unordered = sub->unordered, .ack_wait_ms = ev->ack_wait_ms};
        sl_bus_runner_options ro = {.consumer = group};
        rc = sl_bus_runner_new(ev->bus, ev->consumer_db, sub->topic, group, &so, &ro, apply_cb, a,
                               &ev->runners[ev->nrunners]);
        if (rc != 0) {
            SL_LOG_ERROR(ev->log, NULL, "cannot subscribe", SL_LOG_STR("topic", sub->topic),
                         SL_LOG_STR("error", sl_strerror(rc)));
            return rc;
        }
        if (ev->broker) sl__bus_runner_keep_dead(ev->runners[ev->nrunners], keep_dead, ev);
        ev->nrunners++;
        SL_LOG_INFO(ev->log, NULL, "subscribed", SL_LOG_STR("topic", sub->topic),
                    SL_LOG_STR("group", group));
    }
    return 0;
}

void sl__events_stop(sl_events *ev)
{
    if (!ev) return;
    for (size_t i = 0; i < ev->nrunners; i++)
        sl_bus_runner_free(ev->runners[i]);
    ev->nrunners = 0;
    if (ev->started) {
        sl_outbox_relay_stop(ev->relay);
        uv_close((uv_handle_t *)&ev->backlog_timer, NULL);
        ev->started = 0;
    }
    if (ev->bus) sl_bus_close(ev->bus, NULL, NULL);
    ev->bus = NULL;
}

sl_db *sl__events_dead_db(sl_events *ev)
{
    return ev && ev->dead_in_db && sl__events_bus(ev) ? ev->consumer_db : NULL;
}

/* A redriven dead letter: its row goes once every consuming group settled the message. */
typedef struct redrive_ctx {
    sl_events *ev;
    int64_t seq;
} redrive_ctx;

static void redrive_settled(void *data, int status)
{
    redrive_ctx *c = data;
    sl_events *ev = c->ev;
    if (status == 0 && ev->dead_in_db) {
        int rc = sl__dead_store_delete(ev->consumer_db, c->seq);
        if (rc != 0)
            SL_LOG_WARN(ev->log, NULL, "cannot delete a redriven dead letter",
                        SL_LOG_INT("seq", c->seq), SL_LOG_STR("error", sl_strerror(rc)));
    }
    free(c);
}

int sl__events_redrive_dead(sl_events *ev, const char *topic, uint64_t seq)
{
    sl_bus *bus = sl__events_bus(ev);
    if (!bus || !ev->dead_in_db) return SL_EUNAVAIL;
    if (seq > INT64_MAX) return SL_ENOTFOUND;
    char *env = NULL, subject[SL_BUS_ID_MAX + 1];
    size_t len = 0;
    int rc = sl__dead_store_envelope(ev->consumer_db, topic, (int64_t)seq, &env, &len, subject);
    if (rc != 0) return rc;
    /* A dedup id of its own: the broker has seen the original's. The envelope keeps the
     * event's id, so a group that applied it already (its inbox) acks it unapplied. */
    char id[SL_BUS_ID_MAX + 1];
    snprintf(id, sizeof id, "redrive:%.64s:%" PRIu64, ev->def->name, seq);
    redrive_ctx *c = malloc(sizeof *c);
    if (!c) {
        free(env);
        return SL_ENOMEM;
    }
    *c = (redrive_ctx){ev, (int64_t)seq};
    sl_bus_out out = {.topic = topic,
                      .id = id,
                      .subject = subject[0] ? subject : id,
                      .envelope = env,
                      .envelope_len = len};
    rc = sl_bus_publish(bus, &out, 1, redrive_settled, c);
    free(env);
    if (rc != 0) free(c);
    return rc;
}

sl_bus *sl__events_bus(sl_events *ev)
{
    return ev && ev->bus && sl_bus_ready(ev->bus) ? ev->bus : NULL;
}

void sl__events_free(sl_events *ev)
{
    if (!ev) return;
    sl_outbox_relay_free(ev->relay);
    sl_db_close(ev->relay_db);
    sl_db_close(ev->consumer_db);
    free(ev->runners);
    free(ev->applies);
    for (size_t i = 0; i < ev->ncontexts; i++)
        free(ev->contexts[i]);
    volatile char *pw = ev->password; /* not left in freed memory */
    for (size_t i = 0; i < sizeof ev->password; i++)
        pw[i] = '\0';
    free(ev);
}

int sl_event_refuse(char *reason, size_t cap, const char *what, const sl_json_errors *errs)
{
    if (reason && cap) {
        if (errs && errs->count)
            snprintf(reason, cap, "%s: %s %s", what, errs->items[0].field, errs->items[0].message);
        else
            snprintf(reason, cap, "%s: data is missing or invalid", what);
    }
    return SL_EPARSE;
}

int sl__events_share_broker(sl_events *ev, sl_bus_broker *broker)
{
    if (!ev || strncmp(ev->url, "inproc:", 7) != 0) return 0;
    ev->broker = broker;
    return 1;
}

int sl__events_bus_ok(const sl_events *ev)
{
    if (!ev || ev->url[0] == '\0') return 1;
    return atomic_load(&((sl_events *)ev)->bus_up);
}
