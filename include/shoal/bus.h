/*
 * The event bus (docs/events.md): topics, consumer groups, explicit acks,
 * redelivery with backoff, dead-lettering to `<topic>.dlq`, per-subject
 * ordering within a group, duplicate publishes dropped by event id.
 *
 * One API over two backends chosen by URL (one file each, behind the vtable
 * in src/lib/bus/bus_int.h): `nats://host:port[,nats://…]` is NATS
 * JetStream (the real one); `inproc:` keeps everything in memory on the
 * bus's loop (unit tests, single-process mode).
 *
 * Threads. An sl_bus belongs to one libuv loop thread (the "loop thread"):
 * every function below is called on it unless its comment says otherwise,
 * and every callback (publish completions, handlers) runs on it, never
 * synchronously from the call that registered it. The NATS backend does its
 * blocking work (stream/consumer set-up, fetches, admin calls) on its own
 * threads and hands results to the loop through uv_async (the rules are in
 * src/lib/bus/nats.c).
 *
 * Topics are NATS-style subjects `shop.<context>.<name>…` without
 * wildcards; by convention a topic is the CloudEvents `type`
 * (`shop.order.confirmed.v1`). One stream per bounded context holds
 * `shop.<context>.>` (created idempotently at start). Dead letters of topic
 * T go to `T.dlq`, in the same stream.
 *
 * Ordering (docs/architecture.md "Event bus"): messages whose CloudEvents
 * `subject` (the aggregate id) is equal are handled in publish order within
 * a group, across all of the group's instances, when the subscription is
 * `ordered` (the default). NATS: the publisher writes each message to the
 * partition subject `T.p.<k>`, k = hash(subject) mod `partitions`, and each
 * group has one durable pull consumer per partition with at most one
 * unacknowledged message; inproc: the broker holds back a subject while an
 * earlier message of it is unacknowledged in the group.
 *
 * Publish acknowledgements (docs/events.md): NATS acknowledges once the
 * stream stored the message; a confirming inproc broker (the hosted shape,
 * sl_bus_broker_options.confirm) once every consuming group settled it, so
 * the outbox keeps a row unpublished until its event was applied.
 */
#ifndef SHOAL_BUS_H
#define SHOAL_BUS_H

#include <shoal/clock.h>
#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/metrics.h>
#include <shoal/outbox.h>

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sl_bus sl_bus;
typedef struct sl_bus_sub sl_bus_sub;
typedef struct sl_bus_runner sl_bus_runner;
/* An in-memory broker shared by several inproc buses (several "processes" in one test). */
typedef struct sl_bus_broker sl_bus_broker;

/* Limits. */
#define SL_BUS_TOPIC_MAX      200 /* bytes of a topic, without NUL */
#define SL_BUS_GROUP_MAX      64  /* bytes of a group name: [A-Za-z0-9_-] */
#define SL_BUS_ID_MAX         128 /* bytes of an event id */
#define SL_BUS_PARTITIONS_MAX 64
#define SL_BUS_BATCH_MAX      4096 /* messages per sl_bus_publish call */
#define SL_BUS_REASON_MAX     256  /* bytes of a dead-letter reason kept */

typedef struct sl_bus_options {
    const char *url;              /* "nats://127.0.0.1:4222[,nats://…]" or "inproc:"; required */
    const char *name;             /* connection name (logs, NATS monitoring); NULL → "shoal" */
    const char *const *contexts;  /* bounded contexts whose streams are declared at open */
    size_t n_contexts;            /* (others are declared on first subscribe) */
    int replicas;                 /* stream replicas: 0 → 1 (3 in a cluster) */
    int64_t max_age_ms;           /* stream retention by age: 0 → 7 days */
    int64_t max_bytes;            /* stream retention by size: 0 → 1 GiB */
    int64_t duplicate_window_ms;  /* Nats-Msg-Id window: 0 → 120000 */
    size_t max_msg_bytes;         /* largest message published or handled: 0 → 1 MiB */
    unsigned partitions;          /* ordering partitions per topic: 0 → 8; MUST be equal
                                     for every publisher and consumer of a topic */
    unsigned publish_max_pending; /* messages awaiting a publish ack: 0 → 65536 */
    int64_t publish_timeout_ms;   /* a batch not acked by then fails: 0 → 10000 */
    int64_t reconnect_wait_ms;    /* first reconnect backoff: 0 → 100 (doubles to 5 s) */
    int64_t lag_poll_ms;          /* how often consumer lag is read: 0 → 5000; <0 never */
    sl_bus_broker *broker;        /* inproc: shared broker (borrowed); NULL → a private one */
    sl_metrics *metrics;          /* NULL → no metrics (borrowed; must outlive the bus) */
    unsigned metrics_shard;       /* shard of the loop thread in `metrics` */
    const sl_clock *clock;        /* NULL → sl_clock_system(); inproc timers still use uv */
    /* NATS transport security (ignored by inproc). The strings are read during sl_bus_open
     * only. With tls_ca_file every connection speaks TLS and the server's chain must verify
     * against that bundle; tls_cert_file and tls_key_file (both or neither) are the client
     * certificate the server may map to a user; user and password (both or neither) are a
     * plain user. A file that cannot be loaded fails sl_bus_open with SL_ECONFIG.
     * tls_server_name: the name the server's certificate must carry (DNS SAN, or its CN when
     * it has no DNS SAN); NULL → the host of the URL (an IP must then be in its IP SANs). */
    const char *tls_ca_file;
    const char *tls_server_name;
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *user;
    const char *password;
    /* NULL-terminated contexts this process publishes to (NULL → none). When the bus has an
     * identity (a client certificate or a user) and the server is reachable at open,
     * sl_bus_open checks that the server accepts the connection and lets it publish
     * `shop.<context>.>` for each of these (a probe JetStream refuses to store); a refusal
     * fails sl_bus_open with SL_ECONFIG and a message naming the user (and the subject). */
    const char *const *publish_contexts;
} sl_bus_options;

/*
 * Creates an in-memory broker for inproc buses. Returns 0 and *out (returns
 * owned, free with sl_bus_broker_free after every bus using it is freed), or
 * SL_ENOMEM. `max_msgs` bounds the messages kept per topic (0 → 1,000,000);
 * beyond it the oldest are dropped (like a stream's retention).
 */
SL_API int sl_bus_broker_new(size_t max_msgs, sl_bus_broker **out) SL_MUST_CHECK;

typedef struct sl_bus_broker_options {
    size_t max_msgs;   /* messages kept per topic: 0 → 1,000,000 (oldest dropped beyond) */
    int confirm;       /* 1: a publish is acknowledged only once every group the topic had
                          when the message arrived has settled it (acked after its handler,
                          or dead-lettered); settled messages are then dropped, dead-letter
                          topics excepted. For processes whose outbox is the durable log. */
    size_t max_queued; /* confirm: messages owed to groups at once; beyond it a publish fails
                          with SL_ELIMIT: 0 → 65536 */
} sl_bus_broker_options;

/*
 * Creates a broker with `opt` (copied). Returns 0 and *out (returns owned, free with
 * sl_bus_broker_free after every bus using it is closed), SL_EINVAL (opt NULL) or SL_ENOMEM.
 * Every bus sharing a broker must run on one loop.
 */
SL_API int sl_bus_broker_new_opts(const sl_bus_broker_options *opt,
                                  sl_bus_broker **out) SL_MUST_CHECK;
SL_API void sl_bus_broker_free(sl_bus_broker *b);

/* Messages some group still owes (a confirming broker's queue; 0 otherwise). Loop thread. */
SL_API size_t sl_bus_broker_queued(const sl_bus_broker *b);

/*
 * Opens a bus on `loop` (borrowed, must outlive the bus). Call it on the
 * loop thread, before uv_run or from a callback: NATS connects here (a
 * short handshake; if the server is unreachable it keeps retrying in the
 * background with backoff and this call still succeeds) and a set-up
 * thread declares the streams of opt->contexts. `opt` is copied (strings
 * too). Returns 0 and *out (returns owned, close with sl_bus_close),
 * SL_EINVAL / SL_ECONFIG for a bad URL or option, SL_ENOMEM, SL_EUNAVAIL
 * when the backend cannot start at all. `errbuf` (may be NULL) gets a
 * message on failure.
 */
SL_API int sl_bus_open(uv_loop_t *loop, const sl_bus_options *opt, sl_bus **out, char *errbuf,
                       size_t errlen) SL_MUST_CHECK;

typedef void (*sl_bus_close_cb)(sl_bus *bus, void *data);

/*
 * Closes the bus: stops every subscription (in-flight messages are neither
 * acked nor nacked; they come back after ack_wait), fails pending publishes
 * with SL_ECANCELED, joins the backend's threads, closes its handles and
 * calls cb (may be NULL) from the loop once everything is released; the
 * bus is freed after cb returns. Loop thread; do not use `bus` afterwards.
 */
SL_API void sl_bus_close(sl_bus *bus, sl_bus_close_cb cb, void *data);

/* Returns 1 when the backend is connected and its streams are declared, else 0. Loop thread. */
SL_API int sl_bus_ready(const sl_bus *bus);

/* ---- publishing ---------------------------------------------------------------------- */

/* One message to publish. Every pointer is borrowed for the duration of sl_bus_publish. */
typedef struct sl_bus_out {
    const char *topic;    /* required */
    const char *id;       /* required: the CloudEvents id, sent as Nats-Msg-Id (dedup) */
    const char *subject;  /* required: the aggregate id (ordering key) */
    const char *envelope; /* the CloudEvents JSON envelope */
    size_t envelope_len;
} sl_bus_out;

/*
 * Publish completion: status 0 when the broker durably acknowledged every
 * message of the batch (a message dropped as a duplicate counts as
 * acknowledged), else the first error (SL_ETIMEDOUT, SL_EUNAVAIL,
 * SL_ECANCELED on close, SL_EIO). On failure some messages may have been
 * stored: publishing the batch again is safe within the duplicate window.
 */
typedef void (*sl_bus_publish_cb)(void *data, int status);

/*
 * Publishes `n` messages (1..SL_BUS_BATCH_MAX) in order. Never blocks: when
 * the backend is disconnected or `publish_max_pending` messages await acks
 * it fails at once. Returns 0 and later calls cb(data, status) exactly once
 * on the loop thread (never from inside this call); or returns SL_EINVAL
 * (bad topic, missing id/subject), SL_ELIMIT (a message over max_msg_bytes,
 * or the pending limit), SL_EUNAVAIL (not connected), SL_ECLOSED, and then
 * never calls cb. Copies what it needs before returning. Loop thread.
 */
SL_API int sl_bus_publish(sl_bus *bus, const sl_bus_out *msgs, size_t n, sl_bus_publish_cb cb,
                          void *data) SL_MUST_CHECK;

/*
 * Returns an outbox publisher (include/shoal/outbox.h) that publishes each
 * outbox row to the topic named by its `type`, with its id and subject, and
 * reports done only when every message was acknowledged, so the relay marks
 * rows sent only then. The publisher borrows `bus` (it must outlive the
 * relay). Loop thread (the relay's).
 */
SL_API sl_outbox_publisher sl_bus_outbox_publisher(sl_bus *bus);

/* ---- consuming ----------------------------------------------------------------------- */

/* A delivered message, valid during the handler call only. */
typedef struct sl_bus_msg {
    const char *topic;       /* the topic it was published to */
    const char *group;       /* the consuming group */
    sl_slice payload;        /* the raw envelope bytes */
    const char *id;          /* CloudEvents id (from the parsed envelope) */
    const char *type;        /* CloudEvents type */
    const char *source;      /* CloudEvents source */
    const char *subject;     /* CloudEvents subject (aggregate id) */
    const char *time;        /* CloudEvents time; may be NULL */
    const char *traceparent; /* NULL when absent */
    const json_t *data;      /* the `data` member (borrowed); NULL when absent */
    uint64_t stream_seq;     /* broker sequence (NATS stream sequence) */
    unsigned deliveries;     /* 1 on first delivery */
    int64_t published_ms;    /* broker timestamp of the publish, wall clock ms */
} sl_bus_msg;

/* What a handler decides. */
typedef enum sl_bus_verdict {
    SL_BUS_ACK = 0, /* done: never delivered to this group again */
    SL_BUS_NACK,    /* failed: deliver again after `delay_ms` (0 → backoff from deliveries);
                       after max_deliver attempts it is dead-lettered with `reason` */
    SL_BUS_REJECT,  /* poison: dead-letter now with `reason`, no retry */
    SL_BUS_DROP,    /* settle nothing: the message comes back after ack_wait, as if this
                       instance had crashed (tests, hand-offs) */
} sl_bus_verdict;

typedef struct sl_bus_reply {
    sl_bus_verdict verdict;
    int64_t delay_ms;               /* NACK only */
    char reason[SL_BUS_REASON_MAX]; /* NACK/REJECT: kept with the dead letter */
} sl_bus_reply;

/*
 * A message handler: runs on the loop thread, fills *reply (zeroed, i.e.
 * SL_BUS_ACK, on entry). It must not block. The message is settled (acked,
 * nacked or dead-lettered) after it returns.
 */
typedef void (*sl_bus_handler_cb)(void *data, const sl_bus_msg *msg, sl_bus_reply *reply);

typedef struct sl_bus_sub_options {
    int64_t ack_wait_ms;      /* unacked messages come back after this: 0 → 30000 */
    unsigned max_deliver;     /* attempts before dead-lettering: 0 → 5 */
    int64_t backoff_base_ms;  /* NACK without delay / ack_wait expiry backoff: 0 → 1000,
                                doubling per delivery, capped at backoff_max_ms */
    int64_t backoff_max_ms;   /* 0 → 60000 */
    unsigned max_inflight;    /* delivered but unsettled messages per instance: 0 → 2048 */
    unsigned fetch_batch;     /* unordered NATS pulls this many at once: 0 → 512 */
    int unordered;            /* 1: no per-subject order (one durable; more throughput) */
    const char *const *types; /* NULL-terminated accepted CloudEvents types; NULL → any.
                                 Others are dead-lettered as "unknown event type" */
} sl_bus_sub_options;

/*
 * Subscribes `group` to `topic`: every group receives every message of the
 * topic, starting with the oldest one the stream still retains when the
 * group is first created (the group is durable: it remembers its position
 * across restarts); subscriptions of one group
 * (in this or other processes) share the messages. Each message is parsed
 * as a CloudEvents envelope first; a malformed envelope, one over
 * max_msg_bytes or of a type not in `types` is dead-lettered with a reason
 * without calling the handler. `opt` may be NULL (defaults) and is copied,
 * as are topic and group; it must be the same for every instance of a
 * group. Returns 0 and *out (valid until sl_bus_unsubscribe or close),
 * SL_EINVAL (bad topic or group), SL_ENOMEM, SL_ECLOSED. Delivery starts
 * asynchronously (the NATS consumer is created on the backend's thread).
 * Loop thread.
 */
SL_API int sl_bus_subscribe(sl_bus *bus, const char *topic, const char *group,
                            const sl_bus_sub_options *opt, sl_bus_handler_cb handler, void *data,
                            sl_bus_sub **out) SL_MUST_CHECK;

/*
 * Stops delivering to this instance; the group and its position stay (a
 * later subscribe resumes). Messages it holds unsettled come back to the
 * group after ack_wait. The handler is not called after this returns. Loop
 * thread; `sub` is invalid afterwards.
 */
SL_API void sl_bus_unsubscribe(sl_bus_sub *sub);

/* ---- the transactional consumer runner ------------------------------------------------ */

/*
 * The effect of one event, run inside the runner's open transaction on
 * `tx`. Return 0 to apply (the runner commits, then acks), a negative code
 * to roll back and retry later (the runner NACKs with `reason`, if set), or
 * SL_EPARSE for an event that can never apply (the runner dead-letters it).
 * It may run more than once for one delivery when the transaction did not
 * commit (a failed commit, or another event of the batch failed and the
 * batch is run again with a savepoint per event): only effects made
 * through `tx` may count.
 */
typedef int (*sl_bus_apply_cb)(void *data, sl_db *tx, const sl_bus_msg *msg, char *reason,
                               size_t reason_cap);

typedef struct sl_bus_runner_options {
    const char *consumer;  /* inbox consumer name; NULL → the group */
    unsigned batch_max;    /* messages per transaction: 0 → 64 (1 disables batching) */
    const sl_clock *clock; /* NULL → sl_clock_system() (inbox timestamps) */
} sl_bus_runner_options;

/*
 * Subscribes like sl_bus_subscribe and wraps `apply` in a database
 * transaction on `db` (borrowed; used on the loop thread only, never inside
 * a caller's transaction) together with sl_inbox_claim(consumer, event id):
 * an event already claimed is acked without calling `apply`; an applied
 * event is acked only after the commit. Messages that arrive together are
 * applied in one transaction; when one fails, the batch runs again with a
 * savepoint per message, so one failure rolls back only its own effect. A failed commit NACKs the
 * whole batch. Returns 0 and *out (returns owned, free with sl_bus_runner_free), or the errors of
 * sl_bus_subscribe. Loop thread.
 */
SL_API int sl_bus_runner_new(sl_bus *bus, sl_db *db, const char *topic, const char *group,
                             const sl_bus_sub_options *sub_opt, const sl_bus_runner_options *opt,
                             sl_bus_apply_cb apply, void *data, sl_bus_runner **out) SL_MUST_CHECK;

/* Unsubscribes and frees the runner. NULL is ignored. Loop thread. */
SL_API void sl_bus_runner_free(sl_bus_runner *r);

/* ---- administration (dead letters, lag) ----------------------------------------------- */

/* One dead letter, as listed. */
typedef struct sl_bus_dead {
    uint64_t dlq_seq; /* its id in the dead-letter queue (for redrive) */
    char topic[SL_BUS_TOPIC_MAX + 1];
    char group[SL_BUS_GROUP_MAX + 1];
    char id[SL_BUS_ID_MAX + 1];
    unsigned deliveries; /* delivery count when it was dead-lettered */
    char reason[SL_BUS_REASON_MAX];
    char subject[SL_BUS_ID_MAX + 1]; /* the event's subject (from its envelope), or "" */
    char at[40]; /* RFC 3339 UTC: when it was dead-lettered (else the event's time), or "" */
} sl_bus_dead;

typedef void (*sl_bus_dead_list_cb)(void *data, int status, const sl_bus_dead *items, size_t n);
typedef void (*sl_bus_admin_cb)(void *data, int status, size_t count);

/*
 * Lists at most `max` (1..1000) dead letters of `topic` (those in
 * `topic`.dlq), oldest first. Asynchronous (the NATS backend reads on a
 * worker thread): cb(data, status, items, n) runs later on the loop thread;
 * items are valid during the call. Returns 0, or SL_EINVAL / SL_ECLOSED and
 * then cb is never called. Loop thread.
 */
SL_API int sl_bus_dlq_list(sl_bus *bus, const char *topic, size_t max, sl_bus_dead_list_cb cb,
                           void *data) SL_MUST_CHECK;

/*
 * Redrives dead letters of `topic`: republishes the original envelope of
 * the one numbered `dlq_seq` (0: every one) to `topic` (all groups see it
 * again; idempotent consumers skip what they already applied), then
 * removes it from the dead-letter queue. cb(data, status, count) runs later
 * on the loop thread with the number redriven. Returns 0, or SL_EINVAL /
 * SL_ECLOSED and then cb is never called. Loop thread.
 */
SL_API int sl_bus_dlq_redrive(sl_bus *bus, const char *topic, uint64_t dlq_seq, sl_bus_admin_cb cb,
                              void *data) SL_MUST_CHECK;

/*
 * Reads the lag of `group` on `topic` (messages not yet delivered plus
 * delivered but unacked, summed over partitions) into cb's count; also
 * refreshes the bus_consumer_lag gauge. Asynchronous like sl_bus_dlq_list.
 * Returns 0, SL_EINVAL or SL_ECLOSED (cb then never called). Loop thread.
 */
SL_API int sl_bus_lag(sl_bus *bus, const char *topic, const char *group, sl_bus_admin_cb cb,
                      void *data) SL_MUST_CHECK;

/* ---- helpers -------------------------------------------------------------------------- */

/* Returns 1 when `topic` is a valid topic (shop.<context>.<name>…, no wildcards), else 0. */
SL_API int sl_bus_topic_valid(const char *topic);

/*
 * Returns the ordering partition of `subject` among `partitions` (FNV-1a of the bytes,
 * modulo). Pure; any thread.
 */
SL_API unsigned sl_bus_partition(const char *subject, unsigned partitions);

/*
 * Builds the stream name for `topic` ("shop.order.x" → "SHOP_ORDER") into
 * `out`. Returns 0, SL_EINVAL for an invalid topic, SL_ELIMIT when it does
 * not fit. Pure; any thread.
 */
SL_API int sl_bus_stream_name(const char *topic, char *out, size_t cap) SL_MUST_CHECK;

/*
 * Counters of this bus (also exported as metrics when opt.metrics was
 * given): published (messages accepted by sl_bus_publish), acked (publish
 * acks), delivered, redelivered (deliveries > 1), dead_lettered. Loop thread.
 */
typedef struct sl_bus_stats {
    uint64_t published, acked, delivered, redelivered, dead_lettered;
} sl_bus_stats;
SL_API void sl_bus_get_stats(const sl_bus *bus, sl_bus_stats *out);

#endif /* SHOAL_BUS_H */
