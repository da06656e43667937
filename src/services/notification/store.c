/*
 * The notification service's SQL: recording a notification with its pending
 * delivery (one transaction, together with the inbox claim), listing a
 * user's notifications, and the delivery outbox (due rows, delivered,
 * failed with backoff). Prepared statements only.
 */
#include "notification.h"

#include <stdio.h>
#include <string.h>

static int bind_msg(sl_db_stmt *st, const notif_msg *m, const char *event_id)
{
    int rc;
    if ((rc = sl_db_bind_text(st, 1, m->notification_id, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 2, m->user_id, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 3, m->kind, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 4, m->subject, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 5, m->body, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_text(st, 6, event_id, SIZE_MAX)) == 0)
        rc = sl_db_bind_int64(st, 7, m->created_ms);
    return rc;
}

static int run_done(sl_db_stmt *st, int rc)
{
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc == SL_DB_DONE ? 0 : (rc < 0 ? rc : SL_EIO);
}

int notif_record(sl_db *tx, const notif_msg *m, const char *event_id)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "INSERT INTO notifications (notification_id, user_id, kind, subject, "
                           "body, event_id, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           &st);
    if (rc) return rc;
    if ((rc = run_done(st, bind_msg(st, m, event_id))) != 0) return rc;
    rc = sl_db_prepare(tx, "INSERT INTO deliveries (notification_id, next_ms) VALUES (?, ?)", &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, m->notification_id, SIZE_MAX)) == 0)
        rc = sl_db_bind_int64(st, 2, m->created_ms);
    return run_done(st, rc);
}

static void read_msg(sl_db_stmt *st, notif_msg *m)
{
    memset(m, 0, sizeof *m);
    snprintf(m->notification_id, sizeof m->notification_id, "%s", sl_db_column_text(st, 0, NULL));
    snprintf(m->user_id, sizeof m->user_id, "%s", sl_db_column_text(st, 1, NULL));
    snprintf(m->kind, sizeof m->kind, "%s", sl_db_column_text(st, 2, NULL));
    snprintf(m->subject, sizeof m->subject, "%s", sl_db_column_text(st, 3, NULL));
    snprintf(m->body, sizeof m->body, "%s", sl_db_column_text(st, 4, NULL));
    m->created_ms = sl_db_column_int64(st, 5);
}

int notif_list(sl_db *db, const char *user_id, int64_t offset, int64_t limit, notif_row_cb cb,
               void *data, int64_t *total)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT count(*) FROM notifications WHERE user_id = ?", &st);
    if (rc) return rc;
    rc = sl_db_bind_text(st, 1, user_id, SIZE_MAX);
    if (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) *total = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    if (rc < 0) return rc;
    rc = sl_db_prepare(db,
                       "SELECT n.notification_id, n.user_id, n.kind, n.subject, n.body, "
                       "n.created_ms, d.delivered_ms FROM notifications n LEFT JOIN deliveries d "
                       "ON d.notification_id = n.notification_id WHERE n.user_id = ? "
                       "ORDER BY n.created_ms DESC, n.notification_id DESC LIMIT ? OFFSET ?",
                       &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, user_id, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 2, limit)) == 0)
        rc = sl_db_bind_int64(st, 3, offset);
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        notif_msg m;
        read_msg(st, &m);
        rc = cb(data, &m, sl_db_column_is_null(st, 6) ? 0 : sl_db_column_int64(st, 6));
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : (rc == SL_DB_DONE ? 0 : rc);
}

int notif_due(sl_db *db, int64_t now_ms, notif_msg *out, size_t max, size_t *n)
{
    *n = 0;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "SELECT n.notification_id, n.user_id, n.kind, n.subject, n.body, "
                           "n.created_ms FROM deliveries d JOIN notifications n ON "
                           "n.notification_id = d.notification_id WHERE d.delivered_ms IS NULL "
                           "AND d.next_ms <= ? ORDER BY d.next_ms LIMIT ?",
                           &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_int64(st, 1, now_ms)) == 0) rc = sl_db_bind_int64(st, 2, (int64_t)max);
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        read_msg(st, &out[(*n)++]);
        rc = 0;
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int notif_mark_delivered(sl_db *db, const char *id, int64_t now_ms)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "UPDATE deliveries SET delivered_ms = ?, attempts = attempts + 1 "
                           "WHERE notification_id = ?",
                           &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_int64(st, 1, now_ms)) == 0) rc = sl_db_bind_text(st, 2, id, SIZE_MAX);
    return run_done(st, rc);
}

int notif_mark_failed(sl_db *db, const char *id, int64_t now_ms, const char *error)
{
    /* Backoff grows linearly with the attempts (NOTIF_RETRY_MS each), capped at
     * NOTIF_RETRY_MAX_MS from the seventh attempt on; computed in the UPDATE itself. */
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, "
                           "next_ms = ? + CASE WHEN attempts >= 6 THEN ? ELSE ? * (attempts + 1) "
                           "END WHERE notification_id = ?",
                           &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, error, SIZE_MAX)) == 0 &&
        (rc = sl_db_bind_int64(st, 2, now_ms)) == 0 &&
        (rc = sl_db_bind_int64(st, 3, NOTIF_RETRY_MAX_MS)) == 0 &&
        (rc = sl_db_bind_int64(st, 4, NOTIF_RETRY_MS)) == 0)
        rc = sl_db_bind_text(st, 5, id, SIZE_MAX);
    return run_done(st, rc);
}

int notif_seen(sl_db *tx, const char *event_id, int *seen)
{
    sl_db_stmt *st;
    *seen = 0;
    int rc = sl_db_prepare(tx, "SELECT 1 FROM notifications WHERE event_id = ?", &st);
    if (rc) return rc;
    rc = sl_db_bind_text(st, 1, event_id, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    *seen = rc == SL_DB_ROW;
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}
