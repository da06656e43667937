/*
 * Internals of the event bus: the core (bus.c) owns the public objects,
 * parses envelopes, runs handlers, decides ack / nack / dead-letter and
 * counts; a backend (inproc.c, nats.c) moves bytes. The backend vtable is
 * the only seam between them (backends sit behind a small vtable, one file
 * each). Everything here runs on the bus's loop thread unless a
 * comment says otherwise.
 */
#ifndef SHOAL_BUS_INT_H
#define SHOAL_BUS_INT_H

#include "bus/dead_store.h"
#include "bus/envelope_decode.h"

#include <shoal/bus.h>

#include <stdbool.h>

/* A message on its way to the broker: `wire` is the subject it is stored under
 * (`topic.p.<k>` for an event, `topic.dlq` for a dead letter). */
typedef struct bus_wire {
    char *topic;
    char *wire;
    char *id;      /* the dedup id (Nats-Msg-Id) */
    char *subject; /* the ordering key */
    char *data;
    size_t len;
} bus_wire;

/* One publish call. The backend reports each message with sl__bus_pub_msg_done (from any thread
 * that holds no bus lock is NOT allowed: only on the loop thread). */
typedef struct bus_pub {
    struct sl_bus *bus;
    size_t n, remaining;
    int status;
    bool canceled;
    sl_bus_publish_cb cb;
    void *cb_data;
    struct bus_pub *next; /* core: list of pending publishes */
    struct bus_pub *prev;
    /* Backend scratch (nats: acks counted on the ack thread under its mutex, reported to the
     * loop once per batch). */
    size_t be_left, be_acked, be_failed;
    int be_status;
    bus_wire msgs[];
} bus_pub;

/* A message handed from the backend to the core. `handle` is the backend's token for settle. */
typedef struct bus_delivery {
    const char *data;
    size_t len;
    uint64_t stream_seq;
    unsigned deliveries;
    int64_t published_ms;
    void *handle;
    /* The envelope already read by the backend off the loop (sl__bus_envelope_decode with depth 0),
     * or NULL: sl__bus_deliver then reads it. sl__bus_deliver always takes its contents (uses or
     * frees them), whatever happens to the message. */
    sl__bus_envelope *env;
} bus_delivery;

enum bus_settle { BUS_SETTLE_ACK, BUS_SETTLE_NAK, BUS_SETTLE_TERM, BUS_SETTLE_NONE };

/* The dead-letter payload: a JSON object (see bus.c dead_letter_json). */

typedef struct bus_backend_vt {
    const char *name;
    int (*open)(struct sl_bus *bus, char *err, size_t errlen);
    /* Starts closing; the backend calls sl__bus_backend_closed(bus) once, later, on the loop. */
    void (*close)(struct sl_bus *bus);
    int (*ready)(const struct sl_bus *bus);
    /* Takes the batch; completes each message with sl__bus_pub_msg_done on the loop, later. */
    int (*publish)(struct sl_bus *bus, bus_pub *pub);
    int (*sub_start)(sl_bus_sub *sub);
    /* Stops deliveries now; calls sl__bus_sub_released(sub) on the loop, later, when the backend
     * no longer references sub. */
    void (*sub_stop)(sl_bus_sub *sub);
    /* Settles (and releases) one delivery; BUS_SETTLE_NONE only releases it. */
    void (*settle)(sl_bus_sub *sub, void *handle, enum bus_settle kind, int64_t delay_ms);
    /* Admin: run asynchronously, call back on the loop. */
    int (*dlq_list)(struct sl_bus *bus, const char *topic, size_t max, sl_bus_dead_list_cb cb,
                    void *data);
    int (*dlq_redrive)(struct sl_bus *bus, const char *topic, uint64_t dlq_seq, sl_bus_admin_cb cb,
                       void *data);
    int (*lag)(struct sl_bus *bus, const char *topic, const char *group, sl_bus_admin_cb cb,
               void *data);
} bus_backend_vt;

extern const bus_backend_vt sl__bus_inproc_vt;
extern const bus_backend_vt sl__bus_nats_vt;

typedef struct bus_metrics {
    sl_metric_family *published, *acked, *delivered, *redelivered, *dead, *lag, *latency;
} bus_metrics;

struct sl_bus {
    uv_loop_t *loop;
    sl_bus_options opt; /* strings below are owned copies */
    char *url, *name;
    char **contexts;
    const bus_backend_vt *vt;
    void *be;
    bool closing;
    sl_bus_close_cb close_cb;
    void *close_data;
    sl_bus_sub *subs;
    bus_pub *pubs; /* pending publishes */
    size_t pending_msgs;
    sl_bus_stats stats;
    bus_metrics m;
    bool has_metrics;
    bool backend_closing, backend_closed;
    uv_idle_t reap; /* finishes close on the next loop iteration */
};

/* The runner's batch hook: receives every accepted message of one delivery batch. */
typedef void (*bus_batch_cb)(void *data, const sl_bus_msg *const *msgs, sl_bus_reply *replies,
                             size_t n);

struct sl_bus_sub {
    sl_bus *bus;
    char topic[SL_BUS_TOPIC_MAX + 1];
    char group[SL_BUS_GROUP_MAX + 1];
    char dlq[SL_BUS_TOPIC_MAX + 8];
    sl_bus_sub_options opt;
    char **types;
    sl_bus_handler_cb handler;
    bus_batch_cb batch;
    void *data;
    bool stopped;
    unsigned inflight;
    sl_bus_sub *next;
    void *be;
    sl_series *s_delivered, *s_redelivered, *s_dead, *s_latency, *s_lag;
    struct bus_scratch *scratch; /* sl__bus_deliver's per-chunk arrays (loop only) */
    /* Where dead letters go instead of `dlq` (sl__bus_runner_keep_dead), or NULL. */
    sl__bus_dead_keep_cb dead_keep;
    void *dead_keep_data;
};

/* Core entry points for backends (loop thread). */
void sl__bus_pub_msg_done(bus_pub *pub, int status);
void sl__bus_deliver(sl_bus_sub *sub, const bus_delivery *d, size_t n);
void sl__bus_sub_released(sl_bus_sub *sub);
void sl__bus_backend_closed(sl_bus *bus);
int sl__bus_subscribe_batch(sl_bus *bus, const char *topic, const char *group,
                            const sl_bus_sub_options *opt, bus_batch_cb batch, void *data,
                            sl_bus_sub **out);

/* Builds the wire subject of a message of `topic` for `subject`; 0 or SL_ELIMIT. */
int sl__bus_wire_subject(const sl_bus *bus, const char *topic, const char *subject, char *out,
                         size_t cap);
/* The durable consumer name of `group` on `topic`, partition `part` (-1: unordered). */
int sl__bus_durable_name(const char *group, const char *topic, int part, char *out, size_t cap);
/* Parses a dead-letter payload into *out and the original envelope (malloc'd, may be NULL when
 * the envelope was not kept) into *env / *env_len. Returns 0 or SL_EPARSE. */
int sl__bus_dead_parse(const char *data, size_t len, sl_bus_dead *out, char **env, size_t *env_len);
/* Backoff before delivery number `deliveries` + 1. */
int64_t sl__bus_backoff_ms(const sl_bus_sub_options *o, unsigned deliveries);
int64_t sl__bus_now_wall_ms(const sl_bus *bus);

#endif /* SHOAL_BUS_INT_H */
