/*
 * shoal-user's reads with read-your-writes: reads come from the read model;
 * given `min_position` (a position a command answered with), a read waits on
 * a timer until the read model has reached it, up to `user.read_wait_ms`,
 * then answers 503 with Retry-After.
 */
#include "user_int.h"

#include <shoal/log.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void serve_list(read_wait *rw, sl_db *db)
{
    json_t *items = json_array();
    int64_t total = 0;
    int rc = items ? user_view_list(db, rw->role[0] ? rw->role : NULL, rw->page, rw->per_page,
                                    items, &total)
                   : SL_ENOMEM;
    if (rc != 0) {
        json_decref(items);
        sl_respond_db_error(rw->req, rc, "list users failed");
        return;
    }
    json_t *j = json_pack("{s:o, s:I, s:I, s:I}", "items", items, "page", (json_int_t)rw->page,
                          "per_page", (json_int_t)rw->per_page, "total", (json_int_t)total);
    sl_respond_json_value(rw->req, 200, j);
    json_decref(j);
}

/* Serves the read if the view has reached min_position (or `final`). Returns 1 when answered. */
static int read_try(read_wait *rw, int final)
{
    sl_db *db = sl_svc_worker_db(rw->uw->w);
    int64_t wm = 0;
    int rc = user_view_watermark(db, &wm);
    user_state u;
    int64_t rowpos = -1;
    if (rc == 0 && rw->kind == READ_ONE) {
        rc = user_view_get(db, rw->id, &u);
        if (rc == 0) rowpos = u.position;
        if (rc == SL_ENOTFOUND) rc = 0;
    }
    if (rc != 0) {
        sl_respond_db_error(rw->req, rc, "read model query failed");
        return 1;
    }
    if (!user_position_reached(rw->min_position, wm, rowpos)) {
        if (!final) return 0;
        sl_respond_problem_reason(rw->req, 503, NULL,
                                  "the read model has not reached min_position yet", NULL, 1);
        return 1;
    }
    if (rw->kind == READ_LIST)
        serve_list(rw, db);
    else if (rowpos < 0)
        sl_respond_problem_ex(rw->req, 404, "no such user", NULL);
    else
        user_respond_user(rw->req, 200, &u);
    return 1;
}

static void wait_closed(uv_handle_t *h)
{
    read_wait *rw = h->data;
    user_worker *uw = rw->uw;
    free(rw);
    user_worker_unref(uw);
}

static void wait_finish(read_wait *rw)
{
    for (read_wait **p = &rw->uw->waits; *p; p = &(*p)->next) {
        if (*p == rw) {
            *p = rw->next;
            break;
        }
    }
    uv_timer_stop(&rw->timer);
    uv_close((uv_handle_t *)&rw->timer, wait_closed);
}

static void wait_tick(uv_timer_t *t)
{
    read_wait *rw = t->data;
    if (sl_http_req_cancelled(rw->req)) {
        sl_respond_problem_ex(rw->req, 503, "the client went away", NULL); /* releases it */
        wait_finish(rw);
        return;
    }
    int final = uv_now(t->loop) >= rw->deadline;
    if (read_try(rw, final)) wait_finish(rw);
}

void user_waits_abort(user_worker *uw)
{
    while (uw->waits) {
        read_wait *rw = uw->waits;
        sl_respond_problem_reason(rw->req, 503, NULL, "the service is stopping", NULL, 1);
        wait_finish(rw);
    }
}

/* Serves `tmpl` now, or waits for the read model on a timer. */
void user_read_start(const read_wait *tmpl)
{
    read_wait first = *tmpl;
    user_worker *uw = tmpl->uw;
    if (read_try(&first, uw->svc->read_wait_ms == 0)) return;
    read_wait *rw = malloc(sizeof *rw);
    if (!rw) {
        sl_respond_problem_reason(tmpl->req, 503, NULL, "out of memory", NULL, 1);
        return;
    }
    *rw = *tmpl;
    uv_loop_t *loop = sl_svc_worker_loop(uw->w);
    uv_timer_init(loop, &rw->timer);
    rw->timer.data = rw;
    rw->deadline = uv_now(loop) + (uint64_t)uw->svc->read_wait_ms;
    rw->next = uw->waits;
    uw->waits = rw;
    uw->refs++;
    uv_timer_start(&rw->timer, wait_tick, (uint64_t)uw->svc->read_poll_ms,
                   (uint64_t)uw->svc->read_poll_ms);
}

/* Reads ?min_position= (0 when absent): at most the last position handed out. */
static int read_min_position(sl_http_req *req, sl_svc_worker *w, int64_t *out, sl_json_errors *errs)
{
    sl_slice v;
    *out = 0;
    if (!sl_http_query_param(req->query, "min_position", &v)) return 0;
    int64_t n = 0;
    int ok = v.len > 0 && v.len <= 18;
    for (size_t i = 0; ok && i < v.len; i++) {
        ok = v.ptr[i] >= '0' && v.ptr[i] <= '9';
        n = n * 10 + (v.ptr[i] - '0');
    }
    if (!ok) {
        sl_json_errors_add(errs, "min_position", "must be a non-negative integer");
        return SL_EINVAL;
    }
    int64_t last = 0;
    int rc = user_store_last_position(sl_svc_worker_db(w), &last);
    if (rc != 0) return rc;
    if (n > last) {
        sl_json_errors_add(errs, "min_position", "must not exceed the last write position (%lld)",
                           (long long)last);
        return SL_EINVAL;
    }
    *out = n;
    return 0;
}

/* Fills the common part of a read; answers the request and returns non-zero on bad input. */
int user_read_prepare(sl_http_req *req, sl_svc_worker *w, read_wait *rw, sl_json_errors *errs)
{
    memset(rw, 0, sizeof *rw);
    rw->req = req;
    rw->uw = sl_svc_worker_data(w);
    int rc = read_min_position(req, w, &rw->min_position, errs);
    if (rc != 0 && rc != SL_EINVAL) {
        sl_respond_db_error(req, rc, "position lookup failed");
        return rc;
    }
    return rc;
}
