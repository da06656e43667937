/*
 * The wallet commands: each runs in one transaction that rebuilds the
 * wallet(s) from their events, decides with the pure rules of domain.c,
 * appends the new events with the exact expected versions (a transfer
 * appends to both streams before one commit), snapshots when due, writes
 * its integration event to the outbox and, when the caller sent an
 * idempotency key, stores its answer with the key. A version conflict or a
 * busy database rolls everything back and the command runs again from the
 * re-read state (at most PAY_RETRIES times), so funds are always checked
 * against the state the append is conditional on.
 */
#include "payment.h"

#include <shoal/clock.h>
#include <shoal/eventstore.h>
#include <shoal/idempotency.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pay_answer_free(pay_answer *a)
{
    free(a->body);
    memset(a, 0, sizeof *a);
}

static int64_t env_now(const pay_env *env)
{
    return env->now_ms ? env->now_ms(env->now_data) : sl_clock_wall_ms(sl_clock_system());
}

/* Answers with a JSON value (stolen). */
static int answer_json(pay_answer *ans, int status, json_t *v)
{
    if (!v) return SL_ENOMEM;
    ans->body = sl_json_dump(v, &ans->len);
    json_decref(v);
    if (!ans->body) return SL_ENOMEM;
    ans->status = status;
    ans->problem = 0;
    return 0;
}

/* A problem answer; `reason` (may be NULL) is a machine-readable member for callers such as
 * the checkout saga; `field` (may be NULL) names the input at fault. */
static int answer_problem(pay_answer *ans, int status, const char *detail, const char *reason,
                          const char *field)
{
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (field) sl_json_errors_add(&errs, field, "%s", detail);
    int rc = answer_json(ans, status, sl_svc_problem(status, reason, detail, &errs));
    ans->problem = 1;
    return rc;
}

static int emit(pay_env *env, sl_db *tx, const char *type, const char *subject, json_t *payload)
{
    if (!payload) return SL_ENOMEM;
    int rc = env->emit ? env->emit(env->emit_data, tx, type, subject, payload) : 0;
    json_decref(payload);
    return rc;
}

typedef int (*cmd_fn)(pay_env *env, sl_db *tx, const void *args, int64_t now_ms, pay_answer *ans);

static int retryable(int rc)
{
    return rc == SL_ECONFLICT || rc == SL_EBUSY;
}

/* One attempt: claim the key, run the command, store its answer, commit. */
static int attempt(pay_env *env, const pay_idem *idem, cmd_fn fn, const void *args, pay_answer *ans)
{
    sl_db *db = env->db;
    int64_t now = env_now(env);
    int rc = sl_db_begin(db);
    if (rc) return rc;
    int keyed = idem && idem->key;
    if (keyed) {
        sl_idem_result r;
        rc = sl_idem_begin(db, idem->scope, idem->key, idem->req, idem->req_len, now, &r);
        if (rc == 0 && r.state == SL_IDEM_REPLAY) {
            sl_db_rollback(db); /* the claim found the stored answer and wrote nothing */
            ans->status = r.status;
            ans->body = r.body;
            ans->len = r.body_len;
            ans->problem = r.status >= 400;
            return 0;
        }
        if (rc == 0 && r.state == SL_IDEM_MISMATCH) {
            sl_db_rollback(db);
            sl_idem_result_free(&r);
            int rc2 = answer_json(ans, 422, sl_svc_idem_mismatch());
            ans->problem = 1;
            return rc2;
        }
        sl_idem_result_free(&r);
    }
    if (rc == 0) rc = fn(env, db, args, now, ans);
    if (rc == 0 && keyed)
        rc = sl_idem_finish(db, idem->scope, idem->key, ans->status, ans->body, ans->len);
    if (rc == 0) return sl_db_commit(db);
    sl_db_rollback(db);
    return rc;
}

static int run(pay_env *env, const pay_idem *idem, cmd_fn fn, const void *args, pay_answer *ans)
{
    memset(ans, 0, sizeof *ans);
    int rc = SL_EBUSY;
    for (int i = 0; i < PAY_RETRIES; i++) {
        rc = attempt(env, idem, fn, args, ans);
        if (rc == 0) return 0;
        pay_answer_free(ans);
        if (!retryable(rc)) return rc;
    }
    return rc;
}

/* Folds `evs` into `a` as the next versions, then appends them conditionally on the version
 * `a` had, and snapshots when due. */
static int commit_events(pay_env *env, sl_db *tx, const char *user_id, pay_account *a,
                         pay_event *evs, size_t n, const char *first_id, int64_t now)
{
    int64_t old = a->version;
    for (size_t i = 0; i < n; i++) {
        int rc = pay_fold(a, &evs[i], old + 1 + (int64_t)i, now);
        if (rc) return rc;
    }
    sl_es_result res;
    int rc = pay_append(tx, user_id, old == 0 ? SL_ES_NO_STREAM : old, evs, n, first_id, now, &res);
    if (rc == 0 && res.version != a->version) rc = SL_ECONFLICT; /* cannot happen; re-run */
    if (rc == 0) rc = pay_snapshot_maybe(tx, user_id, a, old, env->snapshot_every, now);
    return rc;
}

/* Loads a wallet inside the command's transaction. */
static int load(pay_env *env, sl_db *tx, const char *user_id, pay_account *a)
{
    return pay_load(tx, user_id, INT64_MAX, env->snapshot_every > 0, a);
}

static void opened_event(pay_event *ev, const char *user_id)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = PAY_EV_OPENED;
    snprintf(ev->user_id, sizeof ev->user_id, "%s", user_id);
}

static void opened_id(const char *user_id, char out[PAY_STREAM_MAX + 8])
{
    snprintf(out, PAY_STREAM_MAX + 8, "opened-%s", user_id);
}

static json_t *wallet_json(const char *user_id, const pay_account *a)
{
    return json_pack("{s:s,s:o,s:I}", "account_id", user_id, "balance", pay_money(a->balance),
                     "version", (json_int_t)a->version);
}

static json_t *balance_json(const pay_account *a)
{
    return json_pack("{s:o,s:I}", "balance", pay_money(a->balance), "version",
                     (json_int_t)a->version);
}

/* ---- open -------------------------------------------------------------------------------- */

int pay_open_in_tx(sl_db *tx, const char *user_id, int64_t now_ms)
{
    SL_ASSERT(tx && user_id);
    const char *ids[] = {user_id};
    int rc = pay_lock_wallets(tx, ids, 1);
    if (rc) return rc;
    int64_t v;
    char stream[PAY_STREAM_MAX];
    pay_stream_name(user_id, stream);
    if ((rc = sl_es_stream_version(tx, stream, &v)) != 0) return rc;
    if (v > 0) return 0; /* opened already (lazily, by a first deposit or read) */
    pay_event ev;
    opened_event(&ev, user_id);
    char id[PAY_STREAM_MAX + 8];
    opened_id(user_id, id);
    sl_es_result res;
    return pay_append(tx, user_id, SL_ES_NO_STREAM, &ev, 1, id, now_ms, &res);
}

static int fn_open(pay_env *env, sl_db *tx, const void *args, int64_t now, pay_answer *ans)
{
    const char *user_id = args;
    int rc = pay_open_in_tx(tx, user_id, now);
    pay_account a;
    pay_account_init(&a);
    if (rc == 0) rc = load(env, tx, user_id, &a);
    if (rc == 0) rc = answer_json(ans, 200, wallet_json(user_id, &a));
    pay_account_free(&a);
    return rc;
}

int pay_cmd_open(pay_env *env, const char *user_id, pay_answer *ans)
{
    SL_ASSERT(env && env->db && user_id && ans);
    return run(env, NULL, fn_open, user_id, ans);
}

/* ---- deposit ----------------------------------------------------------------------------- */

typedef struct money_args {
    const char *user_id; /* the wallet (the payer for transfers and charges) */
    const char *other;   /* transfer target; charge/refund: the order id */
    int64_t amount;
} money_args;

typedef struct deposit_args {
    money_args m;
    const pay_deposit_ctx *dep; /* who asks */
} deposit_args;

/* The owner's own deposits since the start of the UTC day of `now`. */
static int deposited_today(sl_db *tx, const char *user_id, int64_t now, int64_t *sum)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "SELECT COALESCE(SUM(amount), 0) FROM deposit_audit WHERE user_id = ? "
                           "AND actor_id = ? AND at_ms >= ?",
                           &st);
    if (rc) return rc;
    rc = sl_db_bind_text(st, 1, user_id, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_text(st, 2, user_id, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_int64(st, 3, pay_day_start_ms(now));
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *sum = sl_db_column_int64(st, 0);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        *sum = 0;
    }
    sl_db_stmt_done(st);
    return rc;
}

static int audit_deposit(sl_db *tx, const deposit_args *d, int64_t version, int64_t now)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "INSERT INTO deposit_audit (user_id, version, amount, actor_id, "
                           "actor_role, request_id, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           &st);
    if (rc) return rc;
    const money_args *m = &d->m;
    const char *rid = d->dep->request_id ? d->dep->request_id : "";
    rc = sl_db_bind_text(st, 1, m->user_id, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_int64(st, 2, version);
    if (rc == 0) rc = sl_db_bind_int64(st, 3, m->amount);
    if (rc == 0) rc = sl_db_bind_text(st, 4, d->dep->actor_id, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_text(st, 5, d->dep->actor_role, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_text(st, 6, rid, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_int64(st, 7, now);
    if (rc) {
        sl_db_stmt_done(st);
        return rc;
    }
    return sl_db_run(st, NULL);
}

static int fn_deposit(pay_env *env, sl_db *tx, const void *p, int64_t now, pay_answer *ans)
{
    const deposit_args *d = p;
    const money_args *m = &d->m;
    const char *ids[] = {m->user_id};
    pay_account a;
    pay_account_init(&a);
    int rc = pay_lock_wallets(tx, ids, 1);
    if (rc == 0) rc = load(env, tx, m->user_id, &a);
    if (rc) goto out;
    if (pay_check_deposit(&a, m->amount) != PAY_OK) {
        rc = answer_problem(ans, 409, "the balance would exceed its maximum", "balance_limit",
                            "amount");
        goto out;
    }
    /* The wallet's lock (above) serialises its deposits, so the sum cannot race. */
    int64_t spent = 0;
    if (d->dep->daily_limit > 0 && (rc = deposited_today(tx, m->user_id, now, &spent)) != 0)
        goto out;
    if (pay_deposit_over_limit(spent, m->amount, d->dep->daily_limit)) {
        rc = answer_problem(ans, 409, "the daily deposit limit would be exceeded", "deposit_limit",
                            "amount");
        goto out;
    }
    /* Every user has a wallet from registration on: open it here if the registration event has
     * not arrived yet (it will then find the stream and do nothing). */
    pay_event evs[2];
    size_t n = 0;
    char oid[PAY_STREAM_MAX + 8];
    if (a.version == 0) {
        opened_event(&evs[n++], m->user_id);
        opened_id(m->user_id, oid);
    }
    memset(&evs[n], 0, sizeof evs[n]);
    evs[n].kind = PAY_EV_DEPOSITED;
    evs[n++].amount = m->amount;
    rc = commit_events(env, tx, m->user_id, &a, evs, n, a.version == 0 ? oid : NULL, now);
    if (rc == 0) rc = audit_deposit(tx, d, a.version, now);
    if (rc == 0)
        rc = emit(env, tx, "shop.payment.deposited.v1", m->user_id,
                  json_pack("{s:s,s:o,s:o}", "user_id", m->user_id, "amount", pay_money(m->amount),
                            "balance", pay_money(a.balance)));
    if (rc == 0) rc = answer_json(ans, 200, balance_json(&a));
out:
    pay_account_free(&a);
    return rc;
}

int pay_cmd_deposit(pay_env *env, const pay_idem *idem, const char *user_id, int64_t amount,
                    const pay_deposit_ctx *ctx, pay_answer *ans)
{
    SL_ASSERT(env && env->db && user_id && ctx && ctx->actor_id && ctx->actor_role && ans);
    deposit_args d = {{user_id, NULL, amount}, ctx};
    return run(env, idem, fn_deposit, &d, ans);
}

/* ---- transfer ---------------------------------------------------------------------------- */

static int fn_transfer(pay_env *env, sl_db *tx, const void *p, int64_t now, pay_answer *ans)
{
    const money_args *m = p;
    const char *ids[] = {m->user_id, m->other};
    pay_account from, to;
    pay_account_init(&from);
    pay_account_init(&to);
    int rc = pay_lock_wallets(tx, ids, 2);
    if (rc == 0) rc = load(env, tx, m->user_id, &from);
    if (rc == 0) rc = load(env, tx, m->other, &to);
    if (rc) goto out;
    if (!to.opened) {
        rc = answer_problem(ans, 422, "no wallet exists for this user", "unknown_user",
                            "to_user_id");
    } else if (pay_check_debit(&from, m->amount) != PAY_OK) {
        rc = answer_problem(ans, 409, "insufficient funds", "insufficient_funds", "amount");
    } else if (pay_check_deposit(&to, m->amount) != PAY_OK) {
        rc = answer_problem(ans, 409, "the recipient's balance would exceed its maximum",
                            "balance_limit", "amount");
    } else {
        pay_event out_ev = {.kind = PAY_EV_WITHDRAWN, .amount = m->amount};
        pay_event in_ev = {.kind = PAY_EV_DEPOSITED, .amount = m->amount};
        snprintf(out_ev.peer, sizeof out_ev.peer, "%s", m->other);
        snprintf(in_ev.peer, sizeof in_ev.peer, "%s", m->user_id);
        rc = sl_uuid7_at(now, out_ev.transfer_id);
        memcpy(in_ev.transfer_id, out_ev.transfer_id, sizeof in_ev.transfer_id);
        /* Both appends are conditional on the versions just read; one commit makes both. */
        if (rc == 0) rc = commit_events(env, tx, m->user_id, &from, &out_ev, 1, NULL, now);
        if (rc == 0) rc = commit_events(env, tx, m->other, &to, &in_ev, 1, NULL, now);
        if (rc == 0) rc = answer_json(ans, 200, balance_json(&from));
    }
out:
    pay_account_free(&from);
    pay_account_free(&to);
    return rc;
}

int pay_cmd_transfer(pay_env *env, const pay_idem *idem, const char *from, const char *to,
                     int64_t amount, pay_answer *ans)
{
    SL_ASSERT(env && env->db && from && to && ans);
    money_args m = {from, to, amount};
    return run(env, idem, fn_transfer, &m, ans);
}

/* ---- charge ------------------------------------------------------------------------------ */

static json_t *charge_json(const char *order_id, const char *user_id, int64_t amount,
                           const pay_account *a)
{
    char cid[PAY_ORDER_ID_MAX + 16];
    pay_charge_event_id(order_id, cid);
    return json_pack("{s:s,s:s,s:s,s:o,s:o}", "charge_id", cid, "order_id", order_id, "user_id",
                     user_id, "amount", pay_money(amount), "balance", pay_money(a->balance));
}

/* Refuses an order whose charge lives in another wallet (one charge per order, store-wide). */
static int other_wallet(sl_db *tx, const char *order_id, const char *user_id, int *other,
                        char stream[PAY_STREAM_MAX])
{
    char cid[PAY_ORDER_ID_MAX + 16], mine[PAY_STREAM_MAX];
    int found;
    pay_charge_event_id(order_id, cid);
    pay_stream_name(user_id ? user_id : "", mine);
    int rc = pay_event_stream(tx, cid, stream, &found);
    *other = rc == 0 && found && (user_id == NULL || strcmp(stream, mine) != 0);
    if (rc == 0 && !found) stream[0] = '\0';
    return rc;
}

static int fn_charge(pay_env *env, sl_db *tx, const void *p, int64_t now, pay_answer *ans)
{
    const money_args *m = p;
    const char *ids[] = {m->user_id};
    char stream[PAY_STREAM_MAX];
    int other = 0;
    pay_account a;
    pay_account_init(&a);
    int rc = other_wallet(tx, m->other, m->user_id, &other, stream);
    if (rc == 0 && other) {
        rc = answer_problem(ans, 409, "this order was charged to another wallet",
                            "order_charged_elsewhere", "order_id");
        goto out;
    }
    if (rc == 0) rc = pay_lock_wallets(tx, ids, 1);
    if (rc == 0) rc = load(env, tx, m->user_id, &a);
    if (rc) goto out;
    switch (pay_check_charge(&a, m->other, m->amount)) {
    case PAY_ALREADY_CHARGED: /* one charge per order, whatever the key */
        rc = answer_json(ans, 200, charge_json(m->other, m->user_id, m->amount, &a));
        break;
    case PAY_CHARGE_MISMATCH:
        rc = answer_problem(ans, 409, "this order was already charged another amount",
                            "charge_mismatch", "amount");
        break;
    case PAY_ORDER_REFUNDED:
        rc = answer_problem(ans, 409, "this order was refunded before it was charged",
                            "order_refunded", "order_id");
        break;
    case PAY_TOO_MANY_ORDERS:
        rc = answer_problem(ans, 409, "this wallet has too many orders", "too_many_orders", NULL);
        break;
    case PAY_INSUFFICIENT:
        rc = answer_problem(ans, 409, "insufficient funds", "insufficient_funds", "amount");
        break;
    default: {
        pay_event ev = {.kind = PAY_EV_CHARGED, .amount = m->amount};
        char cid[PAY_ORDER_ID_MAX + 16];
        snprintf(ev.order_id, sizeof ev.order_id, "%s", m->other);
        pay_charge_event_id(m->other, cid);
        rc = commit_events(env, tx, m->user_id, &a, &ev, 1, cid, now);
        if (rc == 0)
            rc = emit(env, tx, "shop.payment.charged.v1", m->user_id,
                      json_pack("{s:s,s:s,s:o}", "order_id", m->other, "user_id", m->user_id,
                                "amount", pay_money(m->amount)));
        if (rc == 0) rc = answer_json(ans, 201, charge_json(m->other, m->user_id, m->amount, &a));
    }
    }
out:
    pay_account_free(&a);
    return rc;
}

int pay_cmd_charge(pay_env *env, const pay_idem *idem, const char *order_id, const char *user_id,
                   int64_t amount, pay_answer *ans)
{
    SL_ASSERT(env && env->db && order_id && user_id && ans);
    money_args m = {user_id, order_id, amount};
    return run(env, idem, fn_charge, &m, ans);
}

/* ---- refund ------------------------------------------------------------------------------ */

static json_t *refund_json(const char *order_id, const char *user_id, int64_t amount,
                           const pay_account *a)
{
    const pay_order *o = a ? pay_find_order(a, order_id) : NULL;
    return json_pack("{s:s,s:o,s:o,s:o,s:o}", "order_id", order_id, "user_id",
                     user_id ? json_string(user_id) : json_null(), "amount", pay_money(amount),
                     "refunded_total", pay_money(o ? o->refunded : 0), "balance",
                     a ? pay_money(a->balance) : json_null());
}

static int fn_refund(pay_env *env, sl_db *tx, const void *p, int64_t now, pay_answer *ans)
{
    const money_args *m = p;
    char stream[PAY_STREAM_MAX];
    int other = 0;
    pay_account a;
    pay_account_init(&a);
    int rc = other_wallet(tx, m->other, m->user_id, &other, stream);
    if (rc) goto out;
    if (other && m->user_id) {
        rc = answer_problem(ans, 409, "this order was charged to another wallet",
                            "order_charged_elsewhere", "user_id");
        goto out;
    }
    /* The wallet: the one charged, else the one named by the caller, else none. */
    const char *uid = stream[0] ? stream + 8 : m->user_id;
    if (uid == NULL) {
        rc = answer_json(ans, 200, refund_json(m->other, NULL, 0, NULL));
        goto out;
    }
    const char *ids[] = {uid};
    if ((rc = pay_lock_wallets(tx, ids, 1)) != 0 || (rc = load(env, tx, uid, &a)) != 0) goto out;
    int64_t due = pay_refundable(&a, m->other);
    const pay_order *o = pay_find_order(&a, m->other);
    if (due == 0 && (stream[0] || (o && o->refund_seen))) {
        rc = answer_json(ans, 200, refund_json(m->other, uid, 0, &a)); /* nothing left */
        goto out;
    }
    /* Either the rest of the charge goes back, or (never charged) a refund of 0 is recorded as
     * a tombstone, so a charge for this order arriving late is refused. */
    pay_event evs[2];
    size_t n = 0;
    char oid[PAY_STREAM_MAX + 8];
    int open = a.version == 0;
    if (open) {
        opened_event(&evs[n++], uid);
        opened_id(uid, oid);
    }
    memset(&evs[n], 0, sizeof evs[n]);
    evs[n].kind = PAY_EV_REFUNDED;
    evs[n].amount = due;
    snprintf(evs[n++].order_id, sizeof evs[0].order_id, "%s", m->other);
    rc = commit_events(env, tx, uid, &a, evs, n, open ? oid : NULL, now);
    if (rc == 0 && due > 0)
        rc = emit(env, tx, "shop.payment.refunded.v1", uid,
                  json_pack("{s:s,s:s,s:o}", "order_id", m->other, "user_id", uid, "amount",
                            pay_money(due)));
    if (rc == 0) rc = answer_json(ans, 200, refund_json(m->other, uid, due, &a));
out:
    pay_account_free(&a);
    return rc;
}

int pay_cmd_refund(pay_env *env, const pay_idem *idem, const char *order_id, const char *user_id,
                   pay_answer *ans)
{
    SL_ASSERT(env && env->db && order_id && ans);
    money_args m = {user_id, order_id, 0};
    return run(env, idem, fn_refund, &m, ans);
}
