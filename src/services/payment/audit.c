/*
 * The wallet audit (GET /admin/audit): replays every `account-*` stream of
 * the event store with the domain fold and reports what breaks the
 * invariants — a negative balance at any point, a refund above its charge,
 * an order charged twice, malformed events, transfers that do not pair up,
 * money not conserved (sum of balances != outside deposits − charges +
 * refunds), and a balances read model that differs from the replay at the
 * position it claims to have reached. Reads only.
 *
 * Its `checks` ({name, ok, value, detail}, include/shoal/audit.h) are what the
 * gateway joins across services: `ledger` (the findings above), `charged_once`
 * (no order charged twice in a wallet), `money_conserved`, `charge_digest`
 * (count, sum and set digest of (order id, net charge) over the orders with a
 * net charge, compared with the order service's), `in_flight` and
 * `outbox_backlog`.
 */
#include "payment.h"

#include <shoal/audit.h>
#include <shoal/clock.h>
#include <shoal/eventstore.h>
#include <shoal/outbox.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAMES_BATCH       200
#define AUDIT_STREAMS_MAX 1000000

typedef struct audit {
    json_t *violations;
    int64_t dropped;
    int64_t accounts, events;
    int64_t balances, deposited, charged, refunded, tin, tout;
    int64_t checkpoint;
    int64_t rows_matched;
    int64_t double_charges;
    sl_audit_digest charges; /* (order id, net charge) of the orders with a net charge */
} audit;


static void issue(audit *au, const char *account, const char *fmt, ...) SL_PRINTF(3, 4);

static void issue(audit *au, const char *account, const char *fmt, ...)
{
    if (json_array_size(au->violations) >= PAY_AUDIT_ISSUES_MAX) {
        au->dropped++;
        return;
    }
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *v = account ? json_pack("{s:s,s:s}", "account_id", account, "message", msg)
                        : json_pack("{s:n,s:s}", "account_id", "message", msg);
    if (v) json_array_append_new(au->violations, v);
}

typedef struct stream_ctx {
    audit *au;
    const char *user_id;
    pay_account a;
    int64_t row_position; /* 0: no read-model row */
    int found_row_pos;
    int64_t bal_at_row, ver_at_row;
    int64_t first_position;
    int malformed;
} stream_ctx;

static int audit_event(void *data, const sl_es_record *rec)
{
    stream_ctx *c = data;
    pay_event ev;
    c->au->events++;
    if (c->first_position == 0) c->first_position = rec->position;
    if (pay_event_decode(rec->type, rec->data, rec->data_len, &ev) != 0) {
        issue(c->au, c->user_id, "version %lld: malformed %s event", (long long)rec->version,
              rec->type);
        c->malformed = 1;
        return 1;
    }
    if (ev.kind == PAY_EV_CHARGED) {
        const pay_order *o = pay_find_order(&c->a, ev.order_id);
        if (o && o->charged > 0) c->au->double_charges++;
    }
    int rc = pay_fold(&c->a, &ev, rec->version, rec->created_ms);
    if (rc) return rc;
    if (rec->position == c->row_position) {
        c->found_row_pos = 1;
        c->bal_at_row = c->a.balance;
        c->ver_at_row = c->a.version;
    }
    return 0;
}

/* The read-model row of user_id: *found, balance, version, position. */
static int view_row(sl_db *db, const char *user_id, int *found, int64_t v[3])
{
    sl_db_stmt *st;
    *found = 0;
    int rc = sl_db_prepare(
        db, "SELECT balance, version, position FROM wallet_balances WHERE user_id = ?", &st);
    if (rc) return rc;
    rc = sl_db_bind_text(st, 1, user_id, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *found = 1;
        for (int i = 0; i < 3; i++)
            v[i] = sl_db_column_int64(st, i);
        rc = 0;
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static int audit_stream(sl_db *db, audit *au, const char *stream)
{
    stream_ctx c = {.au = au, .user_id = stream + 8};
    pay_account_init(&c.a);
    int64_t row[3] = {0};
    int has_row;
    int rc = view_row(db, c.user_id, &has_row, row);
    if (rc) return rc;
    if (has_row) c.row_position = row[2];
    for (;;) {
        size_t n = 0;
        rc = sl_es_read_stream(db, stream, c.a.version + 1, SL_ES_FORWARDS, 500, audit_event, &c,
                               &n);
        if (rc || n < 500) break;
    }
    if (rc == 1 && c.malformed) rc = 0;
    if (rc) goto out;
    au->accounts++;
    if (c.a.violations > 0)
        issue(au, c.user_id, "%s (%lld rule breaks)", c.a.violation, (long long)c.a.violations);
    if (c.a.balance < 0) issue(au, c.user_id, "negative balance %lld", (long long)c.a.balance);
    for (size_t i = 0; i < c.a.norders; i++) {
        const pay_order *o = &c.a.orders[i];
        if (o->charged - o->refunded > 0)
            sl_audit_digest_add(&au->charges, o->order_id, strlen(o->order_id),
                                o->charged - o->refunded);
    }
    au->balances += c.a.balance;
    au->deposited += c.a.deposited;
    au->charged += c.a.charged;
    au->refunded += c.a.refunded;
    au->tin += c.a.transfer_in;
    au->tout += c.a.transfer_out;
    if (has_row) {
        au->rows_matched++;
        if (!c.found_row_pos)
            issue(au, c.user_id, "read model at position %lld, which is not in this wallet",
                  (long long)row[2]);
        else if (row[0] != c.bal_at_row || row[1] != c.ver_at_row)
            issue(au, c.user_id,
                  "read model says balance %lld at version %lld; the replay gives %lld at %lld",
                  (long long)row[0], (long long)row[1], (long long)c.bal_at_row,
                  (long long)c.ver_at_row);
    } else if (c.first_position > 0 && c.first_position <= au->checkpoint) {
        issue(au, c.user_id, "missing from the read model (projection at position %lld)",
              (long long)au->checkpoint);
    }
out:
    pay_account_free(&c.a);
    return rc;
}

/* Reads up to NAMES_BATCH stream names after `after` into names[]. */
static int stream_names(sl_db *db, const char *after, char names[][PAY_STREAM_MAX], size_t *n)
{
    sl_db_stmt *st;
    *n = 0;
    int rc = sl_db_prepare(db,
                           "SELECT DISTINCT stream FROM es_events WHERE stream > ? AND stream "
                           "LIKE 'account-%' ORDER BY stream LIMIT ?",
                           &st);
    if (rc) return rc;
    if ((rc = sl_db_bind_text(st, 1, after, SIZE_MAX)) == 0)
        rc = sl_db_bind_int64(st, 2, NAMES_BATCH);
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        size_t len;
        const char *s = sl_db_column_text(st, 0, &len);
        if (len < PAY_STREAM_MAX) memcpy(names[(*n)++], s, len + 1);
        rc = 0;
    }
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static int count_rows(sl_db *db, int64_t *n)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT count(*) FROM wallet_balances", &st);
    if (rc) return rc;
    rc = sl_db_step(st);
    if (rc == SL_DB_ROW) *n = sl_db_column_int64(st, 0);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static json_t *totals(const audit *au)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "balances", (json_int_t)au->balances, "deposited",
                     (json_int_t)au->deposited, "charged", (json_int_t)au->charged, "refunded",
                     (json_int_t)au->refunded, "transferred_in", (json_int_t)au->tin,
                     "transferred_out", (json_int_t)au->tout);
}


/* The joinable checks (see the top of this file) from a finished replay. */
static int audit_checks(sl_db *db, const audit *au, json_t **out)
{
    int64_t now = sl_clock_wall_ms(sl_clock_system()), backlog = 0, oldest = 0;
    int rc = sl_outbox_backlog(db, now, &backlog, &oldest);
    if (rc != 0) return rc;
    json_t *arr = json_array();
    if (!arr) return SL_ENOMEM;
    size_t nv = json_array_size(au->violations);
    const json_t *first = json_object_get(json_array_get(au->violations, 0), "message");
    rc = sl_audit_append(
        arr, sl_audit_check_new("ledger", nv == 0 && au->dropped == 0,
                                json_integer((json_int_t)(nv + (size_t)au->dropped)), "%s",
                                nv ? json_string_value(first) : "every wallet replays cleanly"));
    int64_t expect = au->deposited - au->charged + au->refunded;
    if (rc == 0)
        rc = sl_audit_append(
            arr, sl_audit_check_new(
                     "money_conserved", au->balances == expect && au->tin == au->tout, totals(au),
                     "balances %lld, deposits - charges + refunds %lld; transfers %lld "
                     "in, %lld out",
                     (long long)au->balances, (long long)expect, (long long)au->tin,
                     (long long)au->tout));
    if (rc == 0)
        rc = sl_audit_append(arr,
                             sl_audit_check_new("charged_once", au->double_charges == 0,
                                                json_integer(au->double_charges),
                                                "%lld orders charged more than once in a wallet",
                                                (long long)au->double_charges));
    if (rc == 0)
        rc = sl_audit_append(
            arr, sl_audit_check_new("charge_digest", true, sl_audit_digest_json(&au->charges),
                                    "%lld orders with a net charge, %lld in all",
                                    (long long)au->charges.count, (long long)au->charges.amount));
    if (rc == 0)
        rc =
            sl_audit_append(arr, sl_audit_check_new("in_flight", true, json_integer(backlog),
                                                    "%lld events unpublished", (long long)backlog));
    if (rc == 0) rc = sl_audit_append(arr, sl_audit_outbox_check(backlog, oldest));
    if (rc != 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int pay_audit(sl_db *db, json_t **report)
{
    *report = NULL;
    audit au = {.violations = json_array()};
    char(*names)[PAY_STREAM_MAX] = malloc(NAMES_BATCH * sizeof *names);
    if (!au.violations || !names) {
        json_decref(au.violations);
        free(names);
        return SL_ENOMEM;
    }
    /* The checkpoint first: read-model rows only move forward from here on. */
    int rc = sl_es_checkpoint(db, PAY_ES_SUBSCRIBER, &au.checkpoint);
    char after[PAY_STREAM_MAX] = "";
    while (rc == 0 && au.accounts < AUDIT_STREAMS_MAX) {
        size_t n = 0;
        if ((rc = stream_names(db, after, names, &n)) != 0) break;
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = audit_stream(db, &au, names[i]);
        if (n < NAMES_BATCH) break;
        memcpy(after, names[n - 1], PAY_STREAM_MAX);
    }
    free(names);
    int64_t rows = 0;
    if (rc == 0) rc = count_rows(db, &rows);
    if (rc) {
        json_decref(au.violations);
        return rc;
    }
    /* Money enters only by deposits and leaves only by charges (refunds bring it back). */
    if (au.balances != au.deposited - au.charged + au.refunded)
        issue(&au, NULL,
              "money not conserved: balances %lld != deposits %lld - charges %lld + refunds %lld",
              (long long)au.balances, (long long)au.deposited, (long long)au.charged,
              (long long)au.refunded);
    if (au.tin != au.tout)
        issue(&au, NULL, "transfers do not pair up: %lld received, %lld sent", (long long)au.tin,
              (long long)au.tout);
    if (rows > au.rows_matched)
        issue(&au, NULL, "read model has %lld rows for wallets without events",
              (long long)(rows - au.rows_matched));
    size_t nv = json_array_size(au.violations);
    json_t *checks = NULL;
    rc = audit_checks(db, &au, &checks);
    if (rc != 0) {
        json_decref(au.violations);
        return rc;
    }
    /* `ok` keeps its meaning (the wallets' invariants); the gateway judges the checks. */
    *report =
        json_pack("{s:b,s:I,s:I,s:I,s:o,s:o,s:I,s:o}", "ok", nv == 0, "accounts",
                  (json_int_t)au.accounts, "events", (json_int_t)au.events, "read_model_position",
                  (json_int_t)au.checkpoint, "totals", totals(&au), "violations", au.violations,
                  "violations_dropped", (json_int_t)au.dropped, "checks", checks);
    return *report ? 0 : SL_ENOMEM;
}
