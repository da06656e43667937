/*
 * The notification service definition: consumers of the order and payment
 * events (each recorded once, with its pending delivery, in the inbox's
 * transaction), GET /notifications, and the delivery pump on worker 0: a
 * timer picks due deliveries AFTER their transaction committed, hands them
 * one at a time to the configured sender (files by default, SMTP on
 * request) and marks each delivered only when the sender confirmed, so a
 * crash between commit and delivery means a redelivery, never a loss.
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
    size_t n, next;
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

/* ---- events ------------------------------------------------------------------------------ */

int notif_apply(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    notif_msg m;
    int rc = notif_compose(msg->type ? msg->type : msg->topic, msg->data, &m, reason, cap);
    if (rc) return rc;
    int seen;
    if ((rc = notif_seen(tx, msg->id, &seen)) != 0 || seen) return rc; /* once per event */
    m.created_ms = wall_ms();
    if ((rc = sl_uuid7_at(m.created_ms, m.notification_id)) != 0) return rc;
    return notif_record(tx, &m, msg->id);
}

/* ---- delivery pump ----------------------------------------------------------------------- */

static void pump_run(pump *p);

static void on_sent(void *data, int status)
{
    pump *p = data;
    if (p->closed) { /* the delivery is redone after the restart (not marked delivered) */
        pump_free(p);
        return;
    }
    const notif_msg *m = &p->batch[p->next];
    sl_db *db = sl_svc_worker_db(p->w);
    int rc = status == 0
                 ? notif_mark_delivered(db, m->notification_id, wall_ms())
                 : notif_mark_failed(db, m->notification_id, wall_ms(), sl_strerror(status));
    if (status != 0 || rc != 0)
        SL_LOG_WARN(sl_svc_worker_log(p->w), NULL, "notification delivery failed; will retry",
                    SL_LOG_STR("notification_id", m->notification_id),
                    SL_LOG_STR("error", sl_strerror(status ? status : rc)));
    p->next++;
    if (p->in_send) {
        p->sync_done = 1; /* pump_run continues the loop */
        return;
    }
    pump_run(p);
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
            if (notif_mark_failed(sl_svc_worker_db(p->w), p->batch[p->next].notification_id,
                                  wall_ms(), sl_strerror(rc)) != 0)
                break; /* the database is failing: try the batch again on a later tick */
            p->next++;
            continue;
        }
        if (!p->sync_done) return; /* on_sent resumes */
    }
    p->busy = 0;
    p->next = p->n = 0;
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
    uv_timer_start(&p->timer, on_tick, (uint64_t)poll_ms, (uint64_t)poll_ms);
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
        SL_LOG_ERROR(sl_svc_worker_log(w), sl_req_trace(req), "notification list failed",
                     SL_LOG_STR("error", sl_db_errmsg(sl_svc_worker_db(w))));
        sl_respond_problem_ex(req, 503, "the notification store is unavailable", NULL);
        return;
    }
    json_t *out = json_pack("{s:o,s:I,s:I,s:I}", "items", items, "page", (json_int_t)page,
                            "per_page", (json_int_t)per_page, "total", (json_int_t)total);
    sl_respond_json_value(req, 200, out);
    json_decref(out);
}

static const sl_route_def routes[] = {
    {SL_HTTP_GET, "/notifications", h_list, 0},
};

static const sl_subscription_def subscriptions[] = {
    {.topic = "shop.order.created.v1", .apply = notif_apply},
    {.topic = "shop.order.confirmed.v1", .apply = notif_apply},
    {.topic = "shop.order.cancelled.v1", .apply = notif_apply},
    {.topic = "shop.order.shipped.v1", .apply = notif_apply},
    {.topic = "shop.payment.refunded.v1", .apply = notif_apply},
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
