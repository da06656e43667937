/*
 * The `nats://` bus backend: NATS JetStream through nats.c 3.4, under these
 * threading rules:
 *
 * - nats.c does its socket I/O on its own threads, not through its libuv
 *   adapter: the 3.4.1 adapter keeps the protocol parser across reconnects
 *   (nats.c issue #1007), so a server killed while a message was half read
 *   left the connection redialling forever (seen here: nats.pipeline timed
 *   out; each redial got INFO and PONG, then closed on a parse error). It
 *   also made a fetch wait for the loop to go idle. Everything the library
 *   delivers reaches the loop through one mutex queue and a uv_async, so
 *   handlers and completions still run on the loop thread.
 * - Connections are made on the loop thread (sl_bus_open, first subscribe)
 *   with retry-on-failed-connect and a capped exponential reconnect delay,
 *   so an absent server never blocks the loop.
 * - Publishing is js_PublishMsgAsync on the loop with the event id as
 *   Nats-Msg-Id and MaxWait as the per-message timeout; a large MaxPending
 *   and a 1 ms StallWait keep the loop from stalling. The ack handler runs
 *   on a library thread: it counts the message against its batch (a map
 *   finds the batch) and queues the batch for the loop once all are in.
 * - Each subscription has fetch threads: one per ordering partition, each
 *   with its own durable pull consumer holding at most one unacked message
 *   and its next pull request already with the server; or, unordered, two
 *   threads on one durable, each with half of max_inflight, so one pull is
 *   out while the other thread queues its batch. They use a connection of
 *   their own, one for unordered and one for ordered subscriptions (which
 *   writes at once: see consumer_conn). A fetch thread declares its stream
 *   and consumer, pulls only while its subscription has room, and queues
 *   messages for the loop, where the core runs handlers and acks with the
 *   non-blocking natsMsg_Ack/Nak/Term; the fetch thread frees them.
 * - nats.c 3.4.1's natsSubscription_Fetch overruns its message array (fixed upstream in
 *   3.10) when, as it starts, the subscription already queues more than half of
 *   `batch` messages but fewer than `batch`: it asks the server for the rest
 *   and then waits for a count it has already passed, storing every further message that
 *   reaches the subscription's inbox past the array's end until the pull expires. Messages
 *   of earlier pulls keep reaching that inbox (one inbox per subscription) after their Fetch
 *   returned; after a server restart the pulls queued while disconnected are sent all at once
 *   and flood it, and the heap was corrupted (nats.pipeline). So a fetch thread pulls only
 *   while connected, binds a new subscription (a new inbox) after each reconnect, and when
 *   messages are already queued fetches exactly those (see fetcher_main).
 * - A fetched natsMsg keeps a bare pointer to the subscription it came through (nats.c takes
 *   no reference for it), and natsMsg_Ack/Nak/Term read the subscription, its JetStream part
 *   and its connection through that pointer. So a fetch thread destroys its subscription
 *   (after a failed pull, or when it exits) only once the loop has settled every message it
 *   fetched through it: see fetcher_unbind.
 * - Admin work (stream set-up, dead letters, lag) runs in uv_queue_work.
 */
#include "bus/bus_int.h"

#include <nats/nats.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NB_FETCH_WAIT_MS      500
#define NB_UNORDERED_FETCHERS 2
#define NB_DLQ_STRIPES        8 /* dead-letter scan locks, by topic */

typedef struct nb_fetcher nb_fetcher;
typedef struct nb_bus nb_bus;

typedef enum { IT_MSG, IT_PUB, IT_EXIT, IT_CLOSED } nb_kind;

typedef struct nb_item {
    nb_kind kind;
    nb_fetcher *f;
    natsMsg *msg;
    unsigned bound;      /* IT_MSG: f->bound when fetched (fetch thread; read on the loop) */
    uint64_t stream_seq; /* IT_MSG: its JetStream metadata, read on the fetch thread */
    unsigned deliveries;
    int64_t published_ms;
    bool env_ok;          /* IT_MSG: `env` was read on the fetch thread (the loop takes it) */
    sl__bus_envelope env; /* parsing off the loop leaves the loop the database work */
    bus_pub *pub;
    struct nb_item *next;
} nb_item;

typedef struct nb_sub {
    sl_bus_sub *sub;
    nb_bus *nb;
    unsigned nf, alive;
    nb_fetcher *f[SL_BUS_PARTITIONS_MAX];
} nb_sub;

/* A fetchers' connection. */
typedef struct nb_fconn {
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
} nb_fconn;

struct nb_fetcher {
    nb_sub *ns;
    int part; /* -1: unordered */
    char durable[SL_BUS_GROUP_MAX + SL_BUS_TOPIC_MAX + 16];
    char filter[SL_BUS_TOPIC_MAX + 16];
    char stream[64];
    unsigned cap;
    nb_fconn *fc; /* its connection: the unordered or the ordered one */
    /* Shared with the thread, under nb->mu. */
    pthread_cond_t cv; /* its own: one settle wakes only this fetcher, not all of them */
    unsigned held;     /* fetched and not yet settled by the loop: each references the sub */
    unsigned bound;    /* subscriptions dropped so far: the fetch thread counts one up when it
                        * destroys its sub, the loop checks a settled message came through the
                        * live one */
    natsMsg **dead;    /* settled messages, freed by the fetch thread (natsMsg_Destroy wakes the */
    size_t ndead;      /* library's collector thread: too dear for the loop, once per message) */
    size_t capdead;
    bool stop, exited;
    pthread_t thread;
};

typedef struct pm_entry {
    natsMsg *key;
    bus_pub *pub;
} pm_entry;

struct nb_bus {
    sl_bus *bus;
    natsOptions *opts;
    natsConnection *nc; /* publishes, admin */
    jsCtx *js;
    /* The fetchers' connections, each made at the first subscribe of its kind, so a fetch
     * never queues behind publish traffic: [0] unordered, [1] ordered (see consumer_conn). */
    nb_fconn fc[2];
    uv_async_t async;
    uv_timer_t timer; /* stream set-up retries and lag polls */
    bool streams_ok, setup_running, closing, conn_closed, published_any;
    int works;        /* uv_queue_work in flight */
    int open_handles; /* async + timer until both close callbacks ran */
    pthread_mutex_t mu;
    /* One dead-letter scan of a topic at a time (scans of one topic share a consumer name);
     * scans of different topics take different stripes and run at once. */
    pthread_mutex_t dlq_mu[NB_DLQ_STRIPES];
    nb_item *head, *tail;
    pm_entry *pm; /* open addressing map natsMsg* -> batch, under mu */
    size_t pm_cap;
    int64_t lag_next_ms;
    /* Copies of the TLS and credential options (every connection applies them). */
    char *tls_ca, *tls_server, *tls_cert, *tls_key, *user, *password;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- queue to the loop --------------------------------------------------------------------- */

static void push_locked(nb_bus *nb, nb_item *it)
{
    it->next = NULL;
    if (nb->tail)
        nb->tail->next = it;
    else
        nb->head = it;
    nb->tail = it;
}

/* uv_async_send happens under the mutex: the loop takes the mutex before it closes the async
 * handle, so no thread can be between its push and its send when the handle goes. */
static void push(nb_bus *nb, nb_item *it)
{
    pthread_mutex_lock(&nb->mu);
    push_locked(nb, it);
    uv_async_send(&nb->async);
    pthread_mutex_unlock(&nb->mu);
}

/* ---- publish map ---------------------------------------------------------------------------- */

static size_t pm_slot(const nb_bus *nb, const natsMsg *m)
{
    uintptr_t x = (uintptr_t)m;
    x ^= x >> 17;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 20) & (nb->pm_cap - 1);
}

static void pm_put(nb_bus *nb, natsMsg *m, bus_pub *p)
{
    size_t i = pm_slot(nb, m);
    while (nb->pm[i].key != NULL)
        i = (i + 1) & (nb->pm_cap - 1);
    nb->pm[i] = (pm_entry){m, p};
}

static bus_pub *pm_take(nb_bus *nb, natsMsg *m)
{
    size_t i = pm_slot(nb, m);
    while (nb->pm[i].key != m) {
        if (nb->pm[i].key == NULL) return NULL;
        i = (i + 1) & (nb->pm_cap - 1);
    }
    bus_pub *p = nb->pm[i].pub;
    nb->pm[i].key = NULL;
    /* Backward-shift deletion keeps probe chains intact. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & (nb->pm_cap - 1);
        if (nb->pm[j].key == NULL) break;
        size_t k = pm_slot(nb, nb->pm[j].key);
        if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            nb->pm[i] = nb->pm[j];
            nb->pm[j].key = NULL;
            i = j;
        }
    }
    return p;
}

/* Counts one message of `p` as settled (under nb->mu). Returns true when it was the batch's
 * last: the caller then reports the batch to the loop (one item per batch, not per ack). */
static bool pub_account(bus_pub *p, int status)
{
    if (status == 0) {
        p->be_acked++;
    } else {
        p->be_failed++;
        if (p->be_status == 0) p->be_status = status;
    }
    return --p->be_left == 0;
}

static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)pa;
    nb_bus *nb = closure;
    int status = 0;
    if (pae != NULL) status = pae->Err == NATS_TIMEOUT ? SL_ETIMEDOUT : SL_EIO;
    pthread_mutex_lock(&nb->mu);
    bus_pub *p = pm_take(nb, msg);
    bool last = p != NULL && pub_account(p, status);
    pthread_mutex_unlock(&nb->mu);
    if (last) {
        nb_item *it = malloc(sizeof *it);
        if (it == NULL) abort(); /* a batch would never complete; nothing sane to do */
        *it = (nb_item){.kind = IT_PUB, .pub = p};
        push(nb, it);
    }
    natsMsg_Destroy(msg);
}

/* Loop: reports a batch whose every message was accounted for. */
static void pub_report(bus_pub *p)
{
    size_t ok = p->be_acked, bad = p->be_failed;
    int status = p->be_status;
    /* The last call frees p. */
    for (size_t i = 0; i < ok + bad; i++)
        sl__bus_pub_msg_done(p, i < ok ? 0 : status);
}

/* ---- connection ---------------------------------------------------------------------------- */

static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
    (void)nc;
    nb_bus *nb = closure;
    int64_t d = nb->bus->opt.reconnect_wait_ms;
    for (int i = 1; i < attempts && d < 5000; i++)
        d *= 2;
    return d > 5000 ? 5000 : d;
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    nb_bus *nb = closure;
    nb_item *it = calloc(1, sizeof *it);
    if (it == NULL) return; /* the close path also polls conn status */
    it->kind = IT_CLOSED;
    push(nb, it);
}

static int set_servers(natsOptions *opts, const char *url)
{
    char *copy = strdup(url);
    const char *list[16];
    int n = 0;
    if (copy == NULL) return SL_ENOMEM;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && n < 16;
         tok = strtok_r(NULL, ",", &save))
        list[n++] = tok;
    natsStatus s = natsOptions_SetServers(opts, list, n);
    free(copy);
    return s == NATS_OK ? 0 : SL_ECONFIG;
}

/* Runs on a library thread when a connection that failed its first attempt comes up. Nothing
 * to do there (the loop's timer declares the streams, the fetchers bind once connected), but
 * nats.c only retries a failed first connect in the background when this callback is set:
 * without it natsConnection_Connect retries in the caller, for ever with MaxReconnect -1, and
 * a service started while its broker was down never got past sl_bus_open. */
static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
}

/* What every connection shares: retry and reconnect forever with a capped backoff, PINGs
 * every 2 s, so a connection that stops answering is dropped and redialled after about 6 s
 * (the library default is 2 minutes), and the TLS and credential options. Returns 0, or
 * SL_ECONFIG with a message in err (a file that does not load). */
static int set_common_options(nb_bus *nb, natsOptions *o, char *err, size_t errlen)
{
    natsOptions_SetName(o, nb->bus->opt.name);
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetCustomReconnectDelay(o, reconnect_delay, nb);
    natsOptions_SetRetryOnFailedConnect(o, true, on_connected, NULL);
    natsOptions_SetTimeout(o, 2000);
    natsOptions_SetPingInterval(o, 2000);
    natsOptions_SetMaxPingsOut(o, 2);
    if (nb->tls_ca != NULL) {
        if (natsOptions_SetSecure(o, true) != NATS_OK ||
            natsOptions_LoadCATrustedCertificates(o, nb->tls_ca) != NATS_OK) {
            if (err) snprintf(err, errlen, "bus: cannot load bus.tls_ca_file '%s'", nb->tls_ca);
            return SL_ECONFIG;
        }
        if (nb->tls_server != NULL &&
            natsOptions_SetExpectedHostname(o, nb->tls_server) != NATS_OK) {
            if (err) snprintf(err, errlen, "bus: bad bus.tls_server_name");
            return SL_ECONFIG;
        }
        if (nb->tls_cert != NULL &&
            natsOptions_LoadCertificatesChain(o, nb->tls_cert, nb->tls_key) != NATS_OK) {
            if (err)
                snprintf(err, errlen, "bus: cannot load bus.tls_cert_file '%s' with its key",
                         nb->tls_cert);
            return SL_ECONFIG;
        }
    }
    if (nb->user != NULL && natsOptions_SetUserInfo(o, nb->user, nb->password) != NATS_OK) {
        if (err) snprintf(err, errlen, "bus: cannot set the NATS user");
        return SL_ECONFIG;
    }
    /* With an identity, replies come to inboxes of this process's own prefix, the only ones
     * its user may subscribe to (docs/mesh.md): `_INBOX.<name>.`. */
    if (nb->user != NULL || nb->tls_cert != NULL) {
        char prefix[96];
        int n = snprintf(prefix, sizeof prefix, "_INBOX.%s", nb->bus->opt.name);
        if (n < 0 || (size_t)n >= sizeof prefix || strpbrk(prefix, " *>\t") != NULL ||
            natsOptions_SetCustomInboxPrefix(o, prefix) != NATS_OK) {
            if (err) snprintf(err, errlen, "bus: the name cannot make an inbox prefix");
            return SL_ECONFIG;
        }
    }
    return 0;
}

/*
 * Makes the fetchers' connection of one kind (loop thread, first subscribe of that kind).
 * nats.c sends what a connection writes from a flusher thread that first waits 1 ms to gather
 * more. An unordered batch's acks gain from that. An ordered partition waits for each of its
 * messages' ack before the server sends the next, so on the ordered connection every ack and
 * pull request goes out at once (SendAsap). Returns 0 or SL_EUNAVAIL.
 */
static int consumer_conn(nb_bus *nb, bool ordered)
{
    nb_fconn *c = &nb->fc[ordered];
    if (c->js != NULL) return 0;
    if (natsOptions_Create(&c->opts) != NATS_OK) return SL_EUNAVAIL;
    int rc = set_servers(c->opts, nb->bus->opt.url);
    if (rc == 0 && set_common_options(nb, c->opts, NULL, 0) != 0) rc = SL_EUNAVAIL;
    if (rc == 0) {
        if (ordered) natsOptions_SetSendAsap(c->opts, true);
        natsStatus s = natsConnection_Connect(&c->nc, c->opts);
        if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) rc = SL_EUNAVAIL;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    if (rc == 0 && natsConnection_JetStream(&c->js, c->nc, &jo) != NATS_OK) rc = SL_EUNAVAIL;
    if (rc != 0) {
        natsConnection_Destroy(c->nc);
        natsOptions_Destroy(c->opts);
        c->nc = NULL;
        c->opts = NULL;
    }
    return rc;
}

static void stream_setup_kick(nb_bus *nb);

/* ---- admin work (uv threadpool) -------------------------------------------------------------- */

static int ensure_stream(nb_bus *nb, jsCtx *js, const char *context, char *err, size_t errlen)
{
    const sl_bus_options *o = &nb->bus->opt;
    char name[80], subj[80];
    snprintf(name, sizeof name, "SHOP_%s", context);
    for (char *p = name; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
    snprintf(subj, sizeof subj, "shop.%s.>", context);
    const char *subjects[1] = {subj};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.Replicas = o->replicas;
    sc.MaxAge = o->max_age_ms * 1000000;
    sc.MaxBytes = o->max_bytes;
    sc.Duplicates = o->duplicate_window_ms * 1000000;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, js, &sc, NULL, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) {
        /* Declared with other limits before: bring it to this configuration. */
        s = js_UpdateStream(&si, js, &sc, NULL, &jerr);
    }
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        if (err) snprintf(err, errlen, "stream %s: %s (%d)", name, natsStatus_GetText(s), jerr);
        return SL_EUNAVAIL;
    }
    return 0;
}

static int ensure_stream_for(nb_bus *nb, jsCtx *js, const char *topic)
{
    char ctx[64];
    const char *c = topic + 5, *e = strchr(c, '.');
    size_t n = (size_t)(e - c);
    if (n >= sizeof ctx) return SL_ELIMIT;
    memcpy(ctx, c, n);
    ctx[n] = '\0';
    return ensure_stream(nb, js, ctx, NULL, 0);
}

typedef struct nb_work {
    uv_work_t req;
    nb_bus *nb;
    int kind; /* 0 streams, 1 list, 2 redrive, 3 lag */
    char topic[SL_BUS_TOPIC_MAX + 1];
    char group[SL_BUS_GROUP_MAX + 1];
    sl_bus_sub *lag_sub; /* lag poll: update this sub's gauge (may be gone: checked on loop) */
    uint64_t seq;
    size_t max;
    int status;
    size_t count;
    sl_bus_dead *items;
    sl_bus_dead_list_cb lcb;
    sl_bus_admin_cb acb;
    void *data;
} nb_work;

static void streams_work(nb_work *w)
{
    const sl_bus_options *o = &w->nb->bus->opt;
    for (size_t i = 0; i < o->n_contexts && w->status == 0; i++)
        w->status = ensure_stream(w->nb, w->nb->js, o->contexts[i], NULL, 0);
}

/* The consumer a dead-letter scan of `topic` uses: `<bus name>__dlq__<topic, dots as dashes>`,
 * a name known in advance, so that mesh mode's NATS permissions can grant exactly it (and
 * its filter, `<topic>.dlq`) to the service (src/cli/nats_mesh.c makes the same name). */
static int dlq_consumer_name(const char *bus_name, const char *topic, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s__dlq__%s", bus_name ? bus_name : "bus", topic);
    if (n < 0 || (size_t)n >= cap) return SL_ELIMIT;
    for (char *c = out; *c; c++)
        if (*c == '.') *c = '-';
    return 0;
}

/* Reads the dead letters of w->topic with a pull consumer of a fixed name (no acks needed),
 * deleted after the scan (and by the server after 60 s idle if this process dies first).
 * Calls each(w, meta seq, msg) for every one, in order. */
static int dlq_scan_locked(nb_work *w, size_t max, int (*each)(nb_work *, uint64_t, natsMsg *))
{
    char stream[64], subj[SL_BUS_TOPIC_MAX + 8], name[128 + SL_BUS_TOPIC_MAX + 16];
    int rc = sl_bus_stream_name(w->topic, stream, sizeof stream);
    if (rc == 0) rc = dlq_consumer_name(w->nb->bus->opt.name, w->topic, name, sizeof name);
    if (rc != 0) return rc;
    snprintf(subj, sizeof subj, "%s.dlq", w->topic);
    jsErrCode jerr = 0;
    /* A consumer left by a scan that did not finish has moved on: start from the first. */
    (void)js_DeleteConsumer(w->nb->js, stream, name, NULL, &jerr);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Name = name; /* a named ephemeral: the create request carries the filter */
    cc.FilterSubject = subj;
    cc.AckPolicy = js_AckNone;
    cc.DeliverPolicy = js_DeliverAll;
    cc.InactiveThreshold = (int64_t)60 * 1000000000;
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_AddConsumer(&ci, w->nb->js, stream, &cc, NULL, &jerr);
    /* What the filter matched when the consumer was made: the scan reads that many and stops,
     * instead of waiting out a fetch that has nothing more to give. */
    uint64_t pending = s == NATS_OK && ci ? ci->NumPending : 0;
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) return SL_EUNAVAIL;
    if (pending == 0) {
        (void)js_DeleteConsumer(w->nb->js, stream, name, NULL, &jerr);
        return 0;
    }
    if (pending < max) max = (size_t)pending;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = name;
    natsSubscription *sub = NULL;
    s = js_PullSubscribe(&sub, w->nb->js, subj, NULL, NULL, &so, &jerr);
    if (s != NATS_OK) {
        (void)js_DeleteConsumer(w->nb->js, stream, name, NULL, &jerr);
        return SL_EUNAVAIL;
    }
    size_t seen = 0;
    while (seen < max && rc == 0) {
        natsMsgList list = {0};
        int want = (int)(max - seen > 256 ? 256 : max - seen);
        s = natsSubscription_Fetch(&list, sub, want, 300, &jerr);
        if (s != NATS_OK) break; /* timeout: nothing more */
        for (int i = 0; i < list.Count && rc == 0; i++) {
            jsMsgMetaData *meta = NULL;
            if (natsMsg_GetMetaData(&meta, list.Msgs[i]) == NATS_OK) {
                rc = each(w, meta->Sequence.Stream, list.Msgs[i]);
                seen++;
            }
            jsMsgMetaData_Destroy(meta);
        }
        natsMsgList_Destroy(&list);
        if (list.Count < want) break;
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    (void)js_DeleteConsumer(w->nb->js, stream, name, NULL, &jerr);
    return rc;
}

static int dlq_scan(nb_work *w, size_t max, int (*each)(nb_work *, uint64_t, natsMsg *))
{
    uint32_t h = 2166136261u; /* FNV-1a of the topic picks the stripe */
    for (const char *c = w->topic; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    pthread_mutex_t *mu = &w->nb->dlq_mu[h % NB_DLQ_STRIPES];
    pthread_mutex_lock(mu);
    int rc = dlq_scan_locked(w, max, each);
    pthread_mutex_unlock(mu);
    return rc;
}

static int list_each(nb_work *w, uint64_t seq, natsMsg *m)
{
    char *env = NULL;
    size_t el = 0;
    sl_bus_dead *d = &w->items[w->count];
    if (sl__bus_dead_parse(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), d, &env, &el) != 0)
        return 0;
    free(env);
    d->dlq_seq = seq;
    w->count++;
    return 0;
}

static int redrive_each(nb_work *w, uint64_t seq, natsMsg *m)
{
    if (w->seq && w->seq != seq) return 0;
    sl_bus_dead d;
    char *env = NULL;
    size_t el = 0;
    if (sl__bus_dead_parse(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), &d, &env, &el) !=
            0 ||
        env == NULL) {
        free(env);
        return 0;
    }
    json_t *o = json_loadb(env, el, 0, NULL);
    const char *subj = o ? json_string_value(json_object_get(o, "subject")) : NULL;
    char wire[SL_BUS_TOPIC_MAX + 16], rid[SL_BUS_ID_MAX + 48], stream[64];
    int rc = sl__bus_wire_subject(w->nb->bus, w->topic, subj ? subj : d.id, wire, sizeof wire);
    snprintf(rid, sizeof rid, "%s:redrive:%llu", d.id, (unsigned long long)seq);
    json_decref(o);
    if (rc == 0) rc = sl_bus_stream_name(w->topic, stream, sizeof stream);
    if (rc == 0) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = rid;
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus s = js_Publish(&pa, w->nb->js, wire, env, (int)el, &po, &jerr);
        jsPubAck_Destroy(pa);
        if (s == NATS_OK) s = js_DeleteMsg(w->nb->js, stream, seq, NULL, &jerr);
        if (s == NATS_OK)
            w->count++;
        else
            rc = SL_EUNAVAIL;
    }
    free(env);
    return rc;
}

static void lag_work(nb_work *w)
{
    char stream[64], durable[sizeof(((nb_fetcher *)0)->durable)];
    if (sl_bus_stream_name(w->topic, stream, sizeof stream) != 0) {
        w->status = SL_EINVAL;
        return;
    }
    unsigned parts = w->nb->bus->opt.partitions;
    bool found = false;
    for (int p = -1; p < (int)parts; p++) {
        if (sl__bus_durable_name(w->group, w->topic, p, durable, sizeof durable) != 0) continue;
        jsConsumerInfo *ci = NULL;
        jsErrCode jerr = 0;
        if (js_GetConsumerInfo(&ci, w->nb->js, stream, durable, NULL, &jerr) == NATS_OK) {
            found = true;
            w->count += (size_t)ci->NumPending + (size_t)ci->NumAckPending;
        }
        jsConsumerInfo_Destroy(ci);
    }
    if (!found) w->status = SL_ENOTFOUND;
}

static void work_run(uv_work_t *req)
{
    nb_work *w = req->data;
    switch (w->kind) {
    case 0:
        streams_work(w);
        break;
    case 1:
        w->status = dlq_scan(w, w->max, list_each);
        break;
    case 2:
        w->status = dlq_scan(w, 1000, redrive_each);
        break;
    default:
        lag_work(w);
        break;
    }
}

static void maybe_closed(nb_bus *nb);

static void work_done(uv_work_t *req, int status)
{
    nb_work *w = req->data;
    nb_bus *nb = w->nb;
    nb->works--;
    if (status != 0 && w->status == 0) w->status = SL_ECANCELED;
    switch (w->kind) {
    case 0:
        nb->setup_running = false;
        nb->streams_ok = w->status == 0;
        break;
    case 1:
        w->lcb(w->data, w->status, w->items, w->count);
        break;
    case 2:
        w->acb(w->data, w->status, w->count);
        break;
    default:
        if (w->acb) {
            w->acb(w->data, w->status, w->count);
        } else if (w->status == 0) {
            /* A lag poll: the sub may have gone meanwhile; look it up. */
            for (sl_bus_sub *s = nb->bus->subs; s; s = s->next)
                if (s == w->lag_sub && s->s_lag) sl_gauge_set(s->s_lag, (double)w->count);
        }
        break;
    }
    free(w->items);
    free(w);
    maybe_closed(nb);
}

static int queue_work(nb_bus *nb, nb_work *w)
{
    w->nb = nb;
    w->req.data = w;
    int rc = uv_queue_work(nb->bus->loop, &w->req, work_run, work_done);
    if (rc == 0) nb->works++;
    return rc;
}

static void stream_setup_kick(nb_bus *nb)
{
    if (nb->streams_ok || nb->setup_running || nb->closing) return;
    nb_work *w = calloc(1, sizeof *w);
    if (w == NULL) return;
    w->kind = 0;
    if (queue_work(nb, w) != 0) {
        free(w);
        return;
    }
    nb->setup_running = true;
}

static void on_timer(uv_timer_t *t)
{
    nb_bus *nb = t->data;
    if (nb->closing) return;
    if (!nb->streams_ok) stream_setup_kick(nb);
    const sl_bus_options *o = &nb->bus->opt;
    int64_t now = mono_ms();
    if (o->lag_poll_ms > 0 && now >= nb->lag_next_ms && nb->bus->has_metrics) {
        nb->lag_next_ms = now + o->lag_poll_ms;
        for (sl_bus_sub *s = nb->bus->subs; s; s = s->next) {
            if (s->stopped || s->s_lag == NULL) continue;
            nb_work *w = calloc(1, sizeof *w);
            if (w == NULL) break;
            w->kind = 3;
            w->lag_sub = s;
            snprintf(w->topic, sizeof w->topic, "%s", s->topic);
            snprintf(w->group, sizeof w->group, "%s", s->group);
            if (queue_work(nb, w) != 0) free(w);
        }
    }
}

/* ---- fetch threads ----------------------------------------------------------------------------
 */

static bool fetcher_wait(nb_fetcher *f, int64_t ms, bool for_room)
{
    /* Waits up to `ms` (or, with for_room, until the fetcher may hold more). Returns stop. */
    nb_bus *nb = f->ns->nb;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&nb->mu);
    while (!f->stop && (!for_room || f->held >= f->cap))
        if (pthread_cond_timedwait(&f->cv, &nb->mu, &ts) != 0) break;
    bool stop = f->stop;
    pthread_mutex_unlock(&nb->mu);
    return stop;
}

static natsSubscription *fetcher_bind(nb_fetcher *f)
{
    nb_bus *nb = f->ns->nb;
    const sl_bus_sub_options *o = &f->ns->sub->opt;
    jsCtx *js = f->fc->js;
    if (ensure_stream_for(nb, js, f->ns->sub->topic) != 0) return NULL;
    int64_t backoff[16];
    unsigned nb_off = o->max_deliver < 16 ? o->max_deliver : 16;
    for (unsigned i = 0; i < nb_off; i++) {
        /* ack_wait with backoff: ack_wait, then doubling, capped at backoff_max. */
        int64_t d = o->ack_wait_ms;
        int64_t cap = o->backoff_max_ms > d ? o->backoff_max_ms : d;
        for (unsigned k = 0; k < i && d < cap; k++)
            d *= 2;
        backoff[i] = (d > cap ? cap : d) * 1000000;
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = f->durable;
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = o->ack_wait_ms * 1000000;
    cc.BackOff = backoff;
    cc.BackOffLen = (int)nb_off;
    /* The runner dead-letters after max_deliver; the server keeps a margin so a crash during
     * dead-lettering still gets another delivery. */
    cc.MaxDeliver = (int64_t)o->max_deliver + 3;
    cc.MaxAckPending = f->part >= 0 ? 1 : (int64_t)o->max_inflight * 4;
    cc.FilterSubject = f->filter;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddConsumer(&ci, js, f->stream, &cc, NULL, &jerr);
    if (s != NATS_OK && (jerr == JSConsumerNameExistErr || jerr == JSConsumerExistingActiveErr ||
                         jerr == 10148 /* already exists, other config */))
        s = js_UpdateConsumer(&ci, js, f->stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    ci = NULL;
    if (s != NATS_OK) {
        /* Maybe it exists with a config the server refuses to update: bind anyway. */
        if (js_GetConsumerInfo(&ci, js, f->stream, f->durable, NULL, &jerr) != NATS_OK) return NULL;
        jsConsumerInfo_Destroy(ci);
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = f->stream;
    so.Consumer = f->durable; /* bind: Unsubscribe would not delete it */
    natsSubscription *sub = NULL;
    s = js_PullSubscribe(&sub, js, f->filter, f->durable, NULL, &so, &jerr);
    return s == NATS_OK ? sub : NULL;
}

/* Frees the messages the loop settled (fetch thread). */
static void free_dead(nb_fetcher *f)
{
    nb_bus *nb = f->ns->nb;
    pthread_mutex_lock(&nb->mu);
    natsMsg **dead = f->dead;
    size_t n = f->ndead;
    f->dead = NULL;
    f->ndead = f->capdead = 0;
    pthread_mutex_unlock(&nb->mu);
    for (size_t i = 0; i < n; i++)
        natsMsg_Destroy(dead[i]);
    free(dead);
}

/*
 * Fetch thread (the subscription is its own; f->held and f->bound are under nb->mu, f->bound
 * written only here): destroys its subscription, after a failed pull or on exit. The messages it
 * fetched through it and the loop still holds (f->held, queued or being handled) are acked
 * through it (natsMsg_Ack reads msg->sub, which nats.c does not keep alive): destroying it
 * first let the loop's acks read freed memory and write through whatever the allocator had
 * put there, and after a server restart the heap was corrupted. So wait until the loop has
 * settled all of them (nb_settle signals when f->held reaches 0); this waits also when
 * stopping, as the loop settles what it holds either way.
 */
static void fetcher_unbind(nb_fetcher *f, natsSubscription **sub)
{
    nb_bus *nb = f->ns->nb;
    pthread_mutex_lock(&nb->mu);
    while (f->held > 0)
        pthread_cond_wait(&f->cv, &nb->mu);
    if (*sub != NULL) f->bound++; /* messages of the next subscription carry the new count */
    pthread_mutex_unlock(&nb->mu);
    free_dead(f);
    natsSubscription_Destroy(*sub);
    *sub = NULL;
}

/* The reconnects of the fetcher's connection so far (fetch thread; `st` is its own). nats.c
 * counts a reconnect before it resends anything on the new connection. */
static uint64_t fetcher_reconnects(const nb_fetcher *f, natsStatistics *st)
{
    uint64_t n = 0;
    if (natsConnection_GetStats(f->fc->nc, st) == NATS_OK)
        natsStatistics_GetCounts(st, NULL, NULL, NULL, NULL, &n);
    return n;
}

static void *fetcher_main(void *arg)
{
    nb_fetcher *f = arg;
    nb_bus *nb = f->ns->nb;
    const size_t max_bytes = nb->bus->opt.max_msg_bytes; /* set before any thread starts */
    /* sub, stats and bound_reconnects are this thread's own. */
    natsSubscription *sub = NULL;
    natsStatistics *stats = NULL;  /* for fetcher_reconnects */
    uint64_t bound_reconnects = 0; /* the connection's reconnects when `sub` was bound */
    int64_t backoff = 100;
    for (;;) {
        if (sub == NULL) {
            if (stats == NULL && natsStatistics_Create(&stats) != NATS_OK) stats = NULL;
            if (stats != NULL && natsConnection_Status(f->fc->nc) == NATS_CONN_STATUS_CONNECTED) {
                bound_reconnects = fetcher_reconnects(f, stats);
                sub = fetcher_bind(f);
            }
            if (sub == NULL) {
                if (fetcher_wait(f, backoff, false)) break;
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
            backoff = 100;
        }
        if (fetcher_wait(f, NB_FETCH_WAIT_MS, true)) break;
        free_dead(f);
        pthread_mutex_lock(&nb->mu);
        unsigned room = f->cap > f->held ? f->cap - f->held : 0;
        pthread_mutex_unlock(&nb->mu);
        if (room == 0) continue;
        unsigned batch = f->part >= 0 ? 1 : f->ns->sub->opt.fetch_batch;
        if (batch > room) batch = room;
        /* Around the nats.c 3.4.1 Fetch overrun (see the top of the file). Disconnected, a
         * pull would wait in the reconnect buffer and reach the server with the others. */
        if (natsConnection_Status(f->fc->nc) != NATS_CONN_STATUS_CONNECTED) {
            if (fetcher_wait(f, NB_FETCH_WAIT_MS / 5, false)) break;
            continue;
        }
        /* Reconnected since the bind: pulls sent before may still deliver to this inbox. */
        if (fetcher_reconnects(f, stats) != bound_reconnects) {
            fetcher_unbind(f, &sub);
            continue;
        }
        /* Messages already queued (a pull that outlived its Fetch): take exactly those, so
         * Fetch finds `batch` of them queued and sends no pull of its own. Only this thread
         * takes from the queue, so it holds at least `pending` when Fetch looks. */
        int pending = 0;
        if (natsSubscription_GetPending(sub, &pending, NULL) == NATS_OK && pending > 0 &&
            (unsigned)pending < batch)
            batch = (unsigned)pending;
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, sub, (int)batch, NB_FETCH_WAIT_MS, &jerr);
        if (s == NATS_OK) {
            /* Items and metadata are made here, off the loop and outside the lock. f->bound
             * changes only on this thread: read without the lock. */
            nb_item *head = NULL, **tail = &head, *last = NULL;
            unsigned n = 0, bound = f->bound;
            for (int i = 0; i < list.Count; i++) {
                nb_item *it = malloc(sizeof *it);
                if (it == NULL) continue; /* not acked: comes back after ack_wait */
                jsMsgMetaData *meta = NULL;
                natsMsg_GetMetaData(&meta, list.Msgs[i]);
                *it = (nb_item){.kind = IT_MSG,
                                .f = f,
                                .msg = list.Msgs[i],
                                .bound = bound,
                                .stream_seq = meta ? meta->Sequence.Stream : 0,
                                .deliveries = meta ? (unsigned)meta->NumDelivered : 1,
                                .published_ms = meta ? meta->Timestamp / 1000000 : 0};
                jsMsgMetaData_Destroy(meta);
                /* A message that fails here is read again on the loop, which dead-letters it
                 * with the reason. */
                size_t len = (size_t)natsMsg_GetDataLength(it->msg);
                char why[8];
                it->env_ok =
                    len <= max_bytes && sl__bus_envelope_decode(natsMsg_GetData(it->msg), len, 0,
                                                                &it->env, why, sizeof why) == 0;
                list.Msgs[i] = NULL;
                *tail = last = it;
                tail = &it->next;
                n++;
            }
            if (n) {
                pthread_mutex_lock(&nb->mu);
                if (nb->tail)
                    nb->tail->next = head;
                else
                    nb->head = head;
                nb->tail = last;
                last->next = NULL;
                f->held += n;
                uv_async_send(&nb->async);
                pthread_mutex_unlock(&nb->mu);
            }
            natsMsgList_Destroy(&list);
        } else if (s != NATS_TIMEOUT) {
            /* Connection lost, consumer deleted, …: bind again after a pause, once the loop
             * has settled what came through this subscription. */
            fetcher_unbind(f, &sub);
            if (fetcher_wait(f, backoff, false)) break;
        }
    }
    /* Messages still held reference the subscription: wait until the loop settled them. */
    fetcher_unbind(f, &sub);
    natsStatistics_Destroy(stats);
    nb_item *it = calloc(1, sizeof *it);
    pthread_mutex_lock(&nb->mu);
    f->exited = true;
    if (it) {
        it->kind = IT_EXIT;
        it->f = f;
        push_locked(nb, it);
    }
    uv_async_send(&nb->async);
    pthread_mutex_unlock(&nb->mu);
    return NULL;
}

/* ---- loop side --------------------------------------------------------------------------------
 */

static void fetcher_gone(nb_fetcher *f)
{
    nb_sub *ns = f->ns;
    pthread_join(f->thread, NULL);
    pthread_cond_destroy(&f->cv);
    free(f);
    if (--ns->alive > 0) return;
    sl_bus_sub *s = ns->sub;
    free(ns);
    sl__bus_sub_released(s);
}

static void drain(nb_bus *nb)
{
    pthread_mutex_lock(&nb->mu);
    nb_item *it = nb->head;
    nb->head = nb->tail = NULL;
    pthread_mutex_unlock(&nb->mu);
    while (it) {
        nb_item *next = it->next;
        switch (it->kind) {
        case IT_PUB:
            pub_report(it->pub);
            break;
        case IT_MSG: {
            /* Deliver runs of messages of one subscription together (one runner
             * transaction), across its partitions: an ordered partition holds one message at a
             * time, so this keeps each partition's order and commits once for all of them. */
            enum { RUN = 256 };
            bus_delivery d[RUN];
            nb_fetcher *f = it->f;
            size_t n = 0;
            nb_item *cur = it;
            while (cur && cur->kind == IT_MSG && cur->f->ns == f->ns && n < RUN) {
                d[n++] = (bus_delivery){natsMsg_GetData(cur->msg),
                                        (size_t)natsMsg_GetDataLength(cur->msg),
                                        cur->stream_seq,
                                        cur->deliveries,
                                        cur->published_ms,
                                        cur,
                                        cur->env_ok ? &cur->env : NULL};
                cur = cur->next;
            }
            /* The items are the handles: settle frees them, so read the rest of the list
             * before delivering. */
            next = cur;
            sl__bus_deliver(f->ns->sub, d, n);
            it = next;
            continue;
        }
        case IT_EXIT:
            fetcher_gone(it->f);
            break;
        case IT_CLOSED:
            nb->conn_closed = true;
            break;
        }
        free(it);
        it = next;
    }
    maybe_closed(nb);
}

static void on_async(uv_async_t *a)
{
    drain(a->data);
}

static void nb_settle(sl_bus_sub *s, void *handle, enum bus_settle kind, int64_t delay_ms)
{
    nb_bus *nb = s->bus->be;
    nb_item *it = handle;
    natsMsg *m = it->msg;
    switch (kind) {
    case BUS_SETTLE_ACK:
        natsMsg_Ack(m, NULL);
        break;
    case BUS_SETTLE_NAK:
        natsMsg_NakWithDelay(m, delay_ms, NULL);
        break;
    case BUS_SETTLE_TERM:
        natsMsg_Term(m, NULL);
        break;
    case BUS_SETTLE_NONE:
        break;
    }
    nb_fetcher *f = it->f;
    pthread_mutex_lock(&nb->mu);
    /* The ack above read the message's subscription: it must still have been alive, i.e. the
     * fetch thread has not dropped it (it cannot while this message counts in f->held). */
    SL_ASSERT(it->bound == f->bound);
    if (f->ndead == f->capdead) {
        size_t cap = f->capdead ? f->capdead * 2 : 256;
        natsMsg **d = realloc(f->dead, cap * sizeof *d);
        if (d != NULL) {
            f->dead = d;
            f->capdead = cap;
        }
    }
    if (f->ndead < f->capdead) {
        f->dead[f->ndead++] = m;
        m = NULL;
    }
    /* Wake the fetch thread only when it may be waiting: for room, or (stopping) for 0. */
    if (f->held-- >= f->cap || f->held == 0) pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&nb->mu);
    if (m) natsMsg_Destroy(m); /* no room in the list: free it here */
    free(it);
}

static int nb_sub_start(sl_bus_sub *s)
{
    nb_bus *nb = s->bus->be;
    bool ordered = !s->opt.unordered;
    if (consumer_conn(nb, ordered) != 0) return SL_EUNAVAIL;
    nb_sub *ns = calloc(1, sizeof *ns);
    if (ns == NULL) return SL_ENOMEM;
    ns->sub = s;
    ns->nb = nb;
    /* Unordered: two fetch threads on the one durable, so a pull is with the server while the
     * other thread hands its batch to the loop (one alone leaves the consumer idle for that). */
    unsigned uf = s->opt.max_inflight >= NB_UNORDERED_FETCHERS ? NB_UNORDERED_FETCHERS : 1;
    ns->nf = ordered ? s->bus->opt.partitions : uf;
    char stream[64];
    int rc = sl_bus_stream_name(s->topic, stream, sizeof stream);
    for (unsigned i = 0; i < ns->nf && rc == 0; i++) {
        nb_fetcher *f = calloc(1, sizeof *f);
        if (f == NULL) {
            rc = SL_ENOMEM;
            break;
        }
        f->ns = ns;
        pthread_cond_init(&f->cv, NULL);
        f->part = ordered ? (int)i : -1;
        snprintf(f->stream, sizeof f->stream, "%s", stream);
        if (ordered)
            snprintf(f->filter, sizeof f->filter, "%s.p.%u", s->topic, i);
        else
            snprintf(f->filter, sizeof f->filter, "%s.p.*", s->topic);
        rc = sl__bus_durable_name(s->group, s->topic, f->part, f->durable, sizeof f->durable);
        /* Ordered: the partition's consumer holds one unacked message at a time
         * (MaxAckPending 1); a cap of 2 lets the thread send its next pull while the loop
         * handles the message, so the server sends the next one as soon as the ack arrives.
         * Unordered: the threads split max_inflight. */
        f->cap = ordered ? 2 : (s->opt.max_inflight + uf - 1 - i) / uf;
        f->fc = &nb->fc[ordered];
        if (rc == 0 && pthread_create(&f->thread, NULL, fetcher_main, f) != 0) rc = SL_ENOMEM;
        if (rc != 0) {
            pthread_cond_destroy(&f->cv);
            free(f);
            break;
        }
        ns->f[i] = f;
        ns->alive++;
    }
    if (rc != 0) {
        /* Stop what started; the sub is released when they are gone (never: not linked). */
        pthread_mutex_lock(&nb->mu);
        for (unsigned i = 0; i < ns->alive; i++) {
            ns->f[i]->stop = true;
            pthread_cond_signal(&ns->f[i]->cv);
        }
        pthread_mutex_unlock(&nb->mu);
        for (unsigned i = 0; i < ns->alive; i++) {
            pthread_join(ns->f[i]->thread, NULL);
            pthread_cond_destroy(&ns->f[i]->cv);
            free(ns->f[i]);
        }
        free(ns);
        return rc;
    }
    s->be = ns;
    return 0;
}

static void nb_sub_stop(sl_bus_sub *s)
{
    nb_bus *nb = s->bus->be;
    nb_sub *ns = s->be;
    pthread_mutex_lock(&nb->mu);
    for (unsigned i = 0; i < ns->nf; i++) {
        ns->f[i]->stop = true;
        pthread_cond_signal(&ns->f[i]->cv);
    }
    pthread_mutex_unlock(&nb->mu);
}

static int nb_publish(sl_bus *bus, bus_pub *p)
{
    nb_bus *nb = bus->be;
    enum { CHUNK = 256 };
    natsMsg *m[CHUNK];
    size_t sent = 0;
    int status = 0;
    p->be_left = p->n;
    /* In chunks: create the messages, register them all under one lock (an ack may arrive
     * as soon as a message is out), then send them. */
    while (sent < p->n && status == 0) {
        size_t k = p->n - sent < CHUNK ? p->n - sent : CHUNK, made = 0;
        for (; made < k; made++) {
            const bus_wire *w = &p->msgs[sent + made];
            if (natsMsg_Create(&m[made], w->wire, NULL, w->data, (int)w->len) != NATS_OK) {
                status = SL_ENOMEM;
                break;
            }
        }
        pthread_mutex_lock(&nb->mu);
        for (size_t j = 0; j < made; j++)
            pm_put(nb, m[j], p);
        pthread_mutex_unlock(&nb->mu);
        size_t j = 0;
        for (; j < made; j++) {
            jsPubOptions po;
            jsPubOptions_Init(&po);
            po.MsgId = p->msgs[sent + j].id;
            po.MaxWait = bus->opt.publish_timeout_ms;
            natsMsg *key = m[j];
            natsStatus s = js_PublishMsgAsync(nb->js, &m[j], &po);
            nb->published_any = true;
            if (s != NATS_OK) {
                status = s == NATS_TIMEOUT ? SL_EAGAIN : SL_EUNAVAIL;
                m[j] = key;
                break;
            }
        }
        /* Not sent (after a failure): take them back. Later messages are not sent after a
         * failure (they could overtake the failed one). */
        pthread_mutex_lock(&nb->mu);
        for (size_t q = j; q < made; q++)
            pm_take(nb, m[q]);
        pthread_mutex_unlock(&nb->mu);
        for (size_t q = j; q < made; q++)
            natsMsg_Destroy(m[q]);
        sent += j;
    }
    if (sent == 0 && status != 0) return status; /* nothing sent: fail the call */
    if (sent < p->n) {
        pthread_mutex_lock(&nb->mu);
        bool last = false;
        for (size_t i = sent; i < p->n; i++)
            last = pub_account(p, status);
        pthread_mutex_unlock(&nb->mu);
        if (last) {
            nb_item *it = calloc(1, sizeof *it);
            if (it == NULL) abort(); /* cannot report: a batch would hang */
            *it = (nb_item){.kind = IT_PUB, .pub = p};
            push(nb, it);
        }
    }
    return 0;
}

static void free_security(nb_bus *nb);

static void handle_closed(uv_handle_t *h)
{
    nb_bus *nb = h->data;
    if (--nb->open_handles > 0) return; /* the async and the timer close in either order */
    sl_bus *bus = nb->bus;
    pthread_mutex_destroy(&nb->mu);
    for (int i = 0; i < NB_DLQ_STRIPES; i++)
        pthread_mutex_destroy(&nb->dlq_mu[i]);
    free_security(nb);
    free(nb->pm);
    free(nb);
    bus->be = NULL;
    sl__bus_backend_closed(bus);
}

static void maybe_closed(nb_bus *nb)
{
    if (!nb->closing || nb->works > 0 || !nb->conn_closed) return;
    if (uv_is_closing((uv_handle_t *)&nb->async)) return;
/* Every publish has been reported: the library answered or timed out each message. */
drain_rest:
    if (nb->head) {
        drain(nb);
        goto drain_rest;
    }
    /* Wait out any thread still inside push() (it sends under the mutex). */
    pthread_mutex_lock(&nb->mu);
    pthread_mutex_unlock(&nb->mu);
    jsCtx_Destroy(nb->js);
    natsConnection_Destroy(nb->nc);
    natsOptions_Destroy(nb->opts);
    nb->open_handles = 2;
    uv_close((uv_handle_t *)&nb->async, handle_closed);
    uv_close((uv_handle_t *)&nb->timer, handle_closed);
}

static void nb_close(sl_bus *bus)
{
    nb_bus *nb = bus->be;
    nb->closing = true;
    uv_timer_stop(&nb->timer);
    /* Pending async publishes: take them back so their batches complete now. */
    natsMsgList pending = {0};
    /* nats.c 3.4.1 crashes here when nothing was ever published async (no pending map yet). */
    if (nb->published_any && bus->pending_msgs > 0 &&
        js_PublishAsyncGetPendingList(&pending, nb->js) == NATS_OK) {
        for (int i = 0; i < pending.Count; i++) {
            pthread_mutex_lock(&nb->mu);
            bus_pub *p = pm_take(nb, pending.Msgs[i]);
            bool last = p != NULL && pub_account(p, SL_ECANCELED);
            pthread_mutex_unlock(&nb->mu);
            if (last) pub_report(p);
        }
        natsMsgList_Destroy(&pending);
    }
    /* Every fetcher has exited (the core closes the backend once each subscription is
     * released): the fetchers' connections go now; Close flushes the last acks. */
    for (int i = 0; i < 2; i++) {
        nb_fconn *c = &nb->fc[i];
        if (c->nc == NULL) continue;
        natsConnection_Close(c->nc);
        jsCtx_Destroy(c->js);
        natsConnection_Destroy(c->nc);
        natsOptions_Destroy(c->opts);
        *c = (nb_fconn){0};
    }
    /* The closed callback (a library thread) completes the close: wait for it even when the
     * status already reads CLOSED, or it could run after the loop is gone. */
    natsConnection_Close(nb->nc);
    maybe_closed(nb);
}

static int nb_ready(const sl_bus *bus)
{
    const nb_bus *nb = bus->be;
    return nb != NULL && !nb->closing && nb->streams_ok &&
           natsConnection_Status(nb->nc) == NATS_CONN_STATUS_CONNECTED;
}

static int probe_on(nb_bus *nb, natsConnection *pc, char *err, size_t errlen);

static void free_security(nb_bus *nb)
{
    if (nb->password != NULL) {
        volatile char *p = nb->password; /* not left in freed memory */
        while (*p)
            *p++ = '\0';
    }
    free(nb->tls_ca);
    free(nb->tls_server);
    free(nb->tls_cert);
    free(nb->tls_key);
    free(nb->user);
    free(nb->password);
}

static int copy_security(nb_bus *nb, const sl_bus_options *o, char *err, size_t errlen)
{
    if ((o->tls_cert_file == NULL) != (o->tls_key_file == NULL)) {
        snprintf(err, errlen, "bus: tls_cert_file and tls_key_file go together");
        return SL_ECONFIG;
    }
    if ((o->user == NULL) != (o->password == NULL)) {
        snprintf(err, errlen, "bus: user and password go together");
        return SL_ECONFIG;
    }
    if (o->tls_cert_file != NULL && o->tls_ca_file == NULL) {
        snprintf(err, errlen, "bus: a client certificate needs tls_ca_file (TLS)");
        return SL_ECONFIG;
    }
    const char *src[6] = {o->tls_ca_file, o->tls_cert_file, o->tls_key_file,
                          o->user,        o->password,      o->tls_server_name};
    char **dst[6] = {&nb->tls_ca, &nb->tls_cert, &nb->tls_key,
                     &nb->user,   &nb->password, &nb->tls_server};
    for (int i = 0; i < 6; i++)
        if (src[i] != NULL && (*dst[i] = strdup(src[i])) == NULL) return SL_ENOMEM;
    return 0;
}

/*
 * Checks that the server lets this connection publish to each of opt.publish_contexts (loop
 * thread, at open, connected). The probe is a request to `shop.<context>.permission-probe`
 * with the header Nats-Expected-Stream naming no stream: JetStream answers it with an error
 * and stores nothing (or, before the stream exists, the server answers "no responders").
 * A denied publish gets no answer: the server sends a permissions violation instead, which
 * the connection keeps as its last error. Returns 0 or SL_ECONFIG with the subject and the
 * user in err.
 */
static int probe_publish(nb_bus *nb, char *err, size_t errlen)
{
    const sl_bus_options *o = &nb->bus->opt;
    if (nb->user == NULL && nb->tls_cert == NULL) return 0; /* no identity, no permissions */
    /* A connection of its own, without the closed callback of the bus's connections. */
    natsOptions *po = NULL;
    natsConnection *pc = NULL;
    int rc = natsOptions_Create(&po) == NATS_OK ? 0 : SL_ENOMEM;
    if (rc == 0) rc = set_servers(po, o->url);
    if (rc == 0) rc = set_common_options(nb, po, err, errlen);
    if (rc == 0) {
        natsOptions_SetMaxReconnect(po, 0);
        natsOptions_SetRetryOnFailedConnect(po, false, NULL, NULL);
        natsStatus s = natsConnection_Connect(&pc, po);
        if (s == NATS_OK) {
            rc = probe_on(nb, pc, err, errlen);
        } else if (s == NATS_SSL_ERROR || s == NATS_CONNECTION_AUTH_FAILED ||
                   s == NATS_NOT_PERMITTED || s == NATS_PROTOCOL_ERROR ||
                   (s == NATS_IO_ERROR && nb->tls_ca != NULL)) {
            /* Refused, not unreachable (that is NATS_NO_SERVER): retrying would never help. A
             * client certificate the server does not accept shows as an I/O or protocol error
             * (with TLS 1.3 the client's handshake completes first; the server then closes the
             * connection instead of answering). */
            const char *text = nats_GetLastError(NULL);
            snprintf(err, errlen, "bus: the NATS server refuses the connection of '%s' (%s)",
                     nb->user ? nb->user : nb->tls_cert, text ? text : natsStatus_GetText(s));
            rc = SL_ECONFIG;
        }
        /* Unreachable now: the bus retries in the background and the check is skipped. */
    }
    natsConnection_Destroy(pc);
    natsOptions_Destroy(po);
    return rc;
}

static int probe_on(nb_bus *nb, natsConnection *pc, char *err, size_t errlen)
{
    const sl_bus_options *o = &nb->bus->opt;
    for (const char *const *c = o->publish_contexts; c && *c; c++) {
        char subj[96];
        if (snprintf(subj, sizeof subj, "shop.%s.permission-probe", *c) >= (int)sizeof subj)
            return SL_ELIMIT;
        natsMsg *m = NULL, *reply = NULL;
        if (natsMsg_Create(&m, subj, NULL, NULL, 0) != NATS_OK) return SL_ENOMEM;
        natsMsgHeader_Set(m, "Nats-Expected-Stream", "shoal-permission-probe");
        natsStatus s = natsConnection_RequestMsg(&reply, pc, m, 2000);
        natsMsg_Destroy(m);
        natsMsg_Destroy(reply);
        if (s == NATS_OK || s == NATS_NO_RESPONDERS) continue;
        const char *text = NULL;
        if (natsConnection_GetLastError(pc, &text) == NATS_NOT_PERMITTED) {
            const char *who = nb->user ? nb->user : nb->tls_cert ? nb->tls_cert : "(anonymous)";
            snprintf(err, errlen,
                     "bus: the NATS server refuses publishing to shop.%s.> for user '%s' (%s)", *c,
                     who, text ? text : "permissions violation");
            return SL_ECONFIG;
        }
        /* No answer and no refusal (JetStream busy): the first real publish will tell. */
    }
    return 0;
}

static int nb_open(sl_bus *bus, char *err, size_t errlen)
{
    nb_bus *nb = calloc(1, sizeof *nb);
    if (nb == NULL) return SL_ENOMEM;
    nb->bus = bus;
    nb->pm_cap = 1024;
    while (nb->pm_cap < 2 * ((size_t)bus->opt.publish_max_pending + 16))
        nb->pm_cap *= 2;
    nb->pm = calloc(nb->pm_cap, sizeof *nb->pm);
    if (nb->pm == NULL) {
        free(nb);
        return SL_ENOMEM;
    }
    pthread_mutex_init(&nb->mu, NULL);
    for (int i = 0; i < NB_DLQ_STRIPES; i++)
        pthread_mutex_init(&nb->dlq_mu[i], NULL);
    int rc = SL_EUNAVAIL;
    if (natsOptions_Create(&nb->opts) != NATS_OK) goto fail;
    if ((rc = set_servers(nb->opts, bus->opt.url)) != 0) {
        snprintf(err, errlen, "bus: bad NATS URL '%s'", bus->opt.url);
        goto fail;
    }
    if ((rc = copy_security(nb, &bus->opt, err, errlen)) != 0 ||
        (rc = set_common_options(nb, nb->opts, err, errlen)) != 0 ||
        (rc = probe_publish(nb, err, errlen)) != 0)
        goto fail;
    rc = SL_EUNAVAIL;
    natsOptions_SetClosedCB(nb->opts, on_closed, nb);
    natsOptions_SetReconnectBufSize(nb->opts, 8 * 1024 * 1024);
    natsStatus s = natsConnection_Connect(&nb->nc, nb->opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
        snprintf(err, errlen, "bus: NATS connect: %s", natsStatus_GetText(s));
        goto fail;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = (int64_t)bus->opt.publish_max_pending + 16;
    jo.PublishAsync.StallWait = 1;
    jo.PublishAsync.AckHandler = on_pub_ack;
    jo.PublishAsync.AckHandlerClosure = nb;
    jo.Wait = 5000;
    if (natsConnection_JetStream(&nb->js, nb->nc, &jo) != NATS_OK) {
        snprintf(err, errlen, "bus: JetStream context failed");
        goto fail;
    }
    uv_async_init(bus->loop, &nb->async, on_async);
    uv_timer_init(bus->loop, &nb->timer);
    nb->async.data = nb->timer.data = nb;
    uv_timer_start(&nb->timer, on_timer, 200, 200);
    uv_unref((uv_handle_t *)&nb->timer);
    bus->be = nb;
    stream_setup_kick(nb);
    return 0;
fail:
    if (nb->nc) {
        natsConnection_Close(nb->nc);
        natsConnection_Destroy(nb->nc);
    }
    natsOptions_Destroy(nb->opts);
    pthread_mutex_destroy(&nb->mu);
    for (int i = 0; i < NB_DLQ_STRIPES; i++)
        pthread_mutex_destroy(&nb->dlq_mu[i]);
    free_security(nb);
    free(nb->pm);
    free(nb);
    return rc;
}

/* ---- admin entry points
 * -------------------------------------------------------------------------- */

static int admin(sl_bus *bus, int kind, const char *topic, const char *group, uint64_t seq,
                 size_t max, sl_bus_dead_list_cb lcb, sl_bus_admin_cb acb, void *data)
{
    nb_bus *nb = bus->be;
    nb_work *w = calloc(1, sizeof *w);
    if (w == NULL) return SL_ENOMEM;
    w->kind = kind;
    snprintf(w->topic, sizeof w->topic, "%s", topic);
    if (group) snprintf(w->group, sizeof w->group, "%s", group);
    w->seq = seq;
    w->max = max;
    w->lcb = lcb;
    w->acb = acb;
    w->data = data;
    if (kind == 1 && (w->items = calloc(max, sizeof *w->items)) == NULL) {
        free(w);
        return SL_ENOMEM;
    }
    int rc = queue_work(nb, w);
    if (rc != 0) {
        free(w->items);
        free(w);
    }
    return rc;
}

static int nb_dlq_list(sl_bus *bus, const char *topic, size_t max, sl_bus_dead_list_cb cb,
                       void *data)
{
    return admin(bus, 1, topic, NULL, 0, max, cb, NULL, data);
}

static int nb_dlq_redrive(sl_bus *bus, const char *topic, uint64_t seq, sl_bus_admin_cb cb,
                          void *data)
{
    return admin(bus, 2, topic, NULL, seq, 0, NULL, cb, data);
}

static int nb_lag(sl_bus *bus, const char *topic, const char *group, sl_bus_admin_cb cb, void *data)
{
    return admin(bus, 3, topic, group, 0, 0, NULL, cb, data);
}

const bus_backend_vt sl__bus_nats_vt = {
    .name = "nats",
    .open = nb_open,
    .close = nb_close,
    .ready = nb_ready,
    .publish = nb_publish,
    .sub_start = nb_sub_start,
    .sub_stop = nb_sub_stop,
    .settle = nb_settle,
    .dlq_list = nb_dlq_list,
    .dlq_redrive = nb_dlq_redrive,
    .lag = nb_lag,
};
