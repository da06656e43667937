/*
 * The notification service definition: consumers of the order and payment
 * events (each recorded once, with its pending delivery, in the inbox's
 * transaction), GET /notifications, and the delivery pump on worker 0: a
 * timer picks due deliveries AFTER their transaction committed, hands them
 * one at a time to the configured sender (files by default, SMTP on
 * request) and marks them delivered only once the sender confirmed (the
 * whole batch's marks in one transaction after its last send), so a crash
 * between commit and delivery, or before the batch's marks commit, means a
 * redelivery, never a loss. A full batch is followed at once by the next
 * (on the next loop iteration), so a backlog drains faster than one batch per
 * poll.
 */
#include "notification.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/config.h>
#include <shoal/identity.h>
#include <shoal/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS_DEFAULT 200

typedef struct pump {
    uv_timer_t timer;
    sl_svc_worker *w;
    notif_sender sender;
    notif_msg batch[NOTIF_BATCH];
    int status[NOTIF_BATCH]; /* each sent message's outcome: 0 or the sender's error */
    size_t n, next;
    uint64_t poll_ms;
    int busy;    /* a batch is being sent */
    int in_send; /* inside sender.send: its done callback ran synchronously */
    int sync_done;
    int closed; /* the worker stopped while a send was in flight: on_sent frees the pump */
} pump;

static void pump_free(pump *p)
{
    p->sender.close(p->sender.ctx);
    free(p);
}

static int64_t wall_ms(void)
{
    return sl_clock_wall_ms(sl_clock_system());
}

/* ---- delivery pump ----------------------------------------------------------------------- */

static void pump_run(pump *p);
static void on_tick(uv_timer_t *t);

static void on_sent(void *data, int status)
{
    pump *p = data;
    if (p->closed) { /* the delivery is redone after the restart (not marked delivered) */
        pump_free(p);
        return;
    }
    p->status[p->next++] = status;
    if (p->in_send) {
        p->sync_done = 1; /* pump_run continues the loop */
        return;
    }
    pump_run(p);
}

/* Records the outcome of the batch's sends in one transaction. Returns 0 or the database error
 * (nothing marked: those delivered are delivered again, which a sender repeats harmlessly). */
static int mark_batch(pump *p)
{
    sl_db *db = sl_svc_worker_db(p->w);
    int64_t now = wall_ms();
    int rc = sl_db_begin(db);
    for (size_t i = 0; rc == 0 && i < p->n; i++) {
        const notif_msg *m = &p->batch[i];
        if (p->status[i] == 0) {
            rc = notif_mark_delivered(db, m->notification_id, now);
            continue;
        }
        SL_LOG_WARN(sl_svc_worker_log(p->w), NULL, "notification delivery failed; will retry",
                    SL_LOG_STR("notification_id", m->notification_id),
                    SL_LOG_STR("error", sl_strerror(p->status[i])));
        rc = notif_mark_failed(db, m->notification_id, now, sl_strerror(p->status[i]));
    }
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) {
        if (sl_db_in_tx(db)) sl_db_rollback(db);
        SL_LOG_WARN(sl_svc_worker_log(p->w), NULL,
                    "marking notifications failed; they are delivered again",
                    SL_LOG_STR("error", sl_strerror(rc)));
    }
    return rc;
}

/* Sends the rest of the batch; returns when a send is pending or the batch is done. */
static void pump_run(pump *p)
{
    while (p->next < p->n) {
        p->in_send = 1;
        p->sync_done = 0;
        int rc = p->sender.send(p->sender.ctx, &p->batch[p->next], on_sent, p);
        p->in_send = 0;
        if (rc != 0) {
            p->status[p->next++] = rc;
            continue;
        }
        if (!p->sync_done) return; /* on_sent resumes */
    }
    /* On failure (logged) the batch is sent again when due. */
    int full = mark_batch(p) == 0 && p->n == NOTIF_BATCH;
    p->busy = 0;
    p->next = p->n = 0;
    /* A full batch may have more behind it: the next batch on the next loop iteration. */
    if (full) uv_timer_start(&p->timer, on_tick, 0, p->poll_ms);
}

static void on_tick(uv_timer_t *t)
{
    pump *p = t->data;
    if (p->busy) return;
    size_t n = 0;
    int rc = notif_due(sl_svc_worker_db(p->w), wall_ms(), p->batch, NOTIF_BATCH, &n);
    if (rc != 0 || n == 0) return;
    p->n = n;
    p->next = 0;
    p->busy = 1;
    pump_run(p);
}

static int make_sender(sl_svc_worker *w, notif_sender *out)
{
    sl_config *cfg = sl_service_config(sl_svc_worker_service(w));
    char err[SL_CONFIG_ERR_MAX];
    const char *kind, *dir, *host, *from, *domain;
    int64_t port;
    if (sl_config_get_string(cfg, "notification.sender", "file", &kind, err) ||
        sl_config_get_string(cfg, "notification.mailbox_dir", "data/mailboxes", &dir, err) ||
        sl_config_get_string(cfg, "notification.smtp.host", "127.0.0.1", &host, err) ||
        sl_config_get_int(cfg, "notification.smtp.port", 25, 1, 65535, &port, err) ||
        sl_config_get_string(cfg, "notification.smtp.from", "shop@shoal.local", &from, err) ||
        sl_config_get_string(cfg, "notification.smtp.rcpt_domain", "shoal.local", &domain, err)) {
        SL_LOG_ERROR(sl_svc_worker_log(w), NULL, "bad configuration", SL_LOG_STR("error", err));
        return SL_ECONFIG;
    }
    if (strcmp(kind, "smtp") == 0) {
        notif_smtp_config sc = {
            .host = host, .port = (int)port, .from = from, .rcpt_domain = domain};
        return notif_smtp_sender_new(sl_svc_worker_loop(w), &sc, out);
    }
    if (strcmp(kind, "file") != 0) {
        SL_LOG_ERROR(sl_svc_worker_log(w), NULL, "notification.sender must be file or smtp");
        return SL_ECONFIG;
    }
    return notif_file_sender_new(dir, out);
}

static void pump_closed(uv_handle_t *h)
{
    pump *p = h->data;
    if (p->busy)
        p->closed = 1;
    else
        pump_free(p);
}

static int worker_init(sl_svc_worker *w)
{
    if (sl_svc_worker_index(w) != 0) return 0;
    pump *p = calloc(1, sizeof *p);
    if (!p) return SL_ENOMEM;
    p->w = w;
    int rc = make_sender(w, &p->sender);
    int64_t poll_ms = POLL_MS_DEFAULT;
    char err[SL_CONFIG_ERR_MAX];
    if (rc == 0 && sl_config_get_int(sl_service_config(sl_svc_worker_service(w)),
                                     "notification.delivery_poll_ms", POLL_MS_DEFAULT, 10, 60000,
                                     &poll_ms, err) != 0)
        rc = SL_ECONFIG;
    if (rc != 0) {
        free(p);
        return rc;
    }
    uv_timer_init(sl_svc_worker_loop(w), &p->timer);
    p->timer.data = p;
    p->poll_ms = (uint64_t)poll_ms;
    uv_timer_start(&p->timer, on_tick, p->poll_ms, p->poll_ms);
    sl_svc_worker_set_data(w, p);
    return 0;
}

static void worker_fini(sl_svc_worker *w)
{
    pump *p = sl_svc_worker_data(w);
    if (!p) return;
    uv_timer_stop(&p->timer);
    /* An SMTP conversation still in flight ends (accepted, refused or timed out) while the
     * loop drains; the pump then lives until its done callback (see pump_closed/on_sent). */
    uv_close((uv_handle_t *)&p->timer, pump_closed);
    sl_svc_worker_set_data(w, NULL);
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static int list_item(void *data, const notif_msg *m, int64_t delivered_ms)
{
    char created[SL_RFC3339_MAX], delivered[SL_RFC3339_MAX];
    sl_rfc3339_format(m->created_ms * 1000000, created, sizeof created);
    if (delivered_ms) sl_rfc3339_format(delivered_ms * 1000000, delivered, sizeof delivered);
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "notification_id", m->notification_id, "user_id",
                  m->user_id, "kind", m->kind, "subject", m->subject, "body", m->body, "created_at",
                  created, "delivered_at", delivered_ms ? json_string(delivered) : json_null());
    return o && json_array_append_new(data, o) == 0 ? 0 : SL_ENOMEM;
}

static void h_list(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int64_t page, per_page, total = 0;
    int bad = sl_req_page(req, &page, &per_page, &errs) != 0;
    sl_slice v;
    char uid[NOTIF_USER_ID_MAX + 1] = "";
    if (!sl_http_query_param(req->query, "user_id", &v)) {
        sl_json_errors_add(&errs, "user_id", "is required");
        bad = 1;
    } else if (!notif_user_id_valid(v.ptr, v.len)) {
        sl_json_errors_add(&errs, "user_id", "is not a user id");
        bad = 1;
    } else {
        memcpy(uid, v.ptr, v.len);
        uid[v.len] = '\0';
    }
    if (bad) {
        sl_respond_invalid(req, &errs);
        return;
    }
    if (strcmp(uid, id.user_id) != 0 && strcmp(id.role, "admin") != 0) {
        sl_respond_problem_ex(req, 403, "only the user or an admin may read these", NULL);
        return;
    }
    json_t *items = json_array();
    int rc = items ? notif_list(sl_svc_worker_db(w), uid, (page - 1) * per_page, per_page,
                                list_item, items, &total)
                   : SL_ENOMEM;
    if (rc != 0) {
        json_decref(items);
        sl_respond_db_error(req, rc, "notification list failed");
        return;
    }
    sl_respond_owned(req, 200,
                     json_pack("{s:o,s:I,s:I,s:I}", "items", items, "page", (json_int_t)page,
                               "per_page", (json_int_t)per_page, "total", (json_int_t)total));
}

static const sl_route_def routes[] = {
    {SL_HTTP_GET, "/notifications", h_list, 0},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = ORDER_EV_CREATED, .apply = notif_apply, .unordered = 1},
    {.topic = ORDER_EV_CONFIRMED, .apply = notif_apply, .unordered = 1},
    {.topic = ORDER_EV_CANCELLED, .apply = notif_apply, .unordered = 1},
    {.topic = ORDER_EV_SHIPPED, .apply = notif_apply, .unordered = 1},
    {.topic = "shop.payment.refunded.v1", .apply = notif_apply, .unordered = 1},
};

const sl_service_def notification_service = {
    .name = "notification",
    .default_port = 8107,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .migrations = &sl_migrations_notification,
    .subscriptions = subscriptions,
    .nsubscriptions = SL_ARRAY_LEN(subscriptions),
};
