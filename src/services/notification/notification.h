/*
 * The notification service's internal interface (docs/services/notification.md):
 * composing a notification from an order or payment event (domain.c), its
 * tables (store.c), the pluggable senders — a mailbox of files per user
 * (sender_file.c) and a minimal SMTP client over libuv (sender_smtp.c) —
 * the event applier (events.c) and the service definition with its delivery
 * pump (notification.c).
 *
 * Threads: a sender and the pump belong to one loop thread (worker 0).
 */
#ifndef SHOAL_SVC_NOTIFICATION_H
#define SHOAL_SVC_NOTIFICATION_H

#include "order/contract/order_events.h"

#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/json.h>
#include <shoal/service.h>

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define NOTIF_USER_ID_MAX  64
#define NOTIF_SUBJECT_MAX  200
#define NOTIF_BODY_MAX     2000
#define NOTIF_KIND_MAX     32
#define NOTIF_BATCH        16   /* deliveries per pump step */
#define NOTIF_RETRY_MS     1000 /* redelivery delay per attempt so far; capped */
#define NOTIF_RETRY_MAX_MS 60000

/* What a consumed event becomes. */
typedef struct notif_msg {
    char notification_id[SL_DB_UUID_STR];
    char user_id[NOTIF_USER_ID_MAX + 1];
    char kind[NOTIF_KIND_MAX];
    char subject[NOTIF_SUBJECT_MAX + 1];
    char body[NOTIF_BODY_MAX + 1];
    int64_t created_ms;
} notif_msg;

/*
 * Composes the notification of event `type` with `data` (borrowed) into
 * *out (id and time left to the caller). Returns 0, or SL_EPARSE with a
 * message in reason (cap bytes) for an unknown type or data without a
 * valid user_id / order_id.
 */
int notif_compose(const char *type, const json_t *data, notif_msg *out, char *reason,
                  size_t cap) SL_MUST_CHECK;

/* 1 when `s` (len bytes) can be a user id and a directory name: 1..64 of [A-Za-z0-9._-],
 * not starting with '.'. */
int notif_user_id_valid(const char *s, size_t len);

/* ---- store ------------------------------------------------------------------------------- */

/* Records m and its pending delivery inside the open transaction. SL_ECONFLICT when the event
 * was recorded already. */
int notif_record(sl_db *tx, const notif_msg *m, const char *event_id) SL_MUST_CHECK;

/* Sets *seen when a notification was already recorded for event_id. */
int notif_seen(sl_db *tx, const char *event_id, int *seen) SL_MUST_CHECK;

typedef int (*notif_row_cb)(void *data, const notif_msg *m, int64_t delivered_ms);
int notif_list(sl_db *db, const char *user_id, int64_t offset, int64_t limit, notif_row_cb cb,
               void *data, int64_t *total) SL_MUST_CHECK;

/* Loads up to `max` deliveries due at now_ms (undelivered, next_ms <= now) into out[]. */
int notif_due(sl_db *db, int64_t now_ms, notif_msg *out, size_t max, size_t *n) SL_MUST_CHECK;
int notif_mark_delivered(sl_db *db, const char *id, int64_t now_ms) SL_MUST_CHECK;
int notif_mark_failed(sl_db *db, const char *id, int64_t now_ms, const char *error) SL_MUST_CHECK;

/* ---- senders ----------------------------------------------------------------------------- */

/* Completion of one send: 0 delivered, else an SL_E* code (retried later). */
typedef void (*notif_sent_cb)(void *data, int status);

/*
 * A sender: send() delivers m (copied before it returns) and calls done
 * exactly once on the loop thread (possibly before returning); if send()
 * returns non-zero, done is never called. Deliveries are idempotent per
 * notification id. close() frees the sender (no send in flight).
 */
typedef struct notif_sender {
    int (*send)(void *ctx, const notif_msg *m, notif_sent_cb done, void *done_data);
    void (*close)(void *ctx);
    void *ctx;
} notif_sender;

/* The file sender: <dir>/<user_id>/<notification_id>.txt written to a temporary file, fsynced
 * and renamed. `dir` is copied. Returns 0 or SL_ENOMEM. */
int notif_file_sender_new(const char *dir, notif_sender *out) SL_MUST_CHECK;

typedef struct notif_smtp_config {
    const char *host; /* IPv4/IPv6 literal or name */
    int port;
    const char *from;        /* envelope sender */
    const char *rcpt_domain; /* recipient = <user_id>@<rcpt_domain> */
    const char *helo;        /* EHLO name; NULL → "shoal.local" */
    int64_t timeout_ms;      /* per conversation; 0 → 10000 */
} notif_smtp_config;

/* The SMTP sender (RFC 5321 without TLS or AUTH) on `loop`: one connection per message.
 * Strings are copied. Returns 0, SL_EINVAL or SL_ENOMEM. */
int notif_smtp_sender_new(uv_loop_t *loop, const notif_smtp_config *cfg,
                          notif_sender *out) SL_MUST_CHECK;

/* Builds the RFC 5322 message (headers, CRLF lines, dot-stuffed, ending CRLF.CRLF) for m.
 * Returns owned text (free with free()) or NULL. Exposed for tests. */
char *notif_smtp_message(const notif_smtp_config *cfg, const notif_msg *m, size_t *len);

/* ---- events (events.c) ------------------------------------------------------------------ */

/* sl_event_apply_cb for every consumed topic: compose, record once. */
int notif_apply(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap);

extern const sl_service_def notification_service;
extern const sl_migration_set sl_migrations_notification;

#endif /* SHOAL_SVC_NOTIFICATION_H */
