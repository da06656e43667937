/*
 * The payment service's internal interface (docs/services/payment.md): the
 * wallet aggregate and its pure rules (domain.c), its event-store access,
 * read model and audit (store.c), the commands with their transactions,
 * retries and idempotency (commands.c), the event applier (events.c) and the
 * service definition (payment.c).
 *
 * A wallet is the event stream `account-<user_id>` in the library event
 * store; its state (pay_account) is only ever the fold of its events,
 * optionally starting from a snapshot. Nothing else is authoritative.
 *
 * Threads: everything here runs on the caller's thread over the caller's
 * connection; a pay_account is owned by one thread.
 */
#ifndef SHOAL_SVC_PAYMENT_H
#define SHOAL_SVC_PAYMENT_H

#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/eventstore.h>
#include <shoal/json.h>
#include <shoal/service.h>

#include <stddef.h>
#include <stdint.h>

#define PAY_CURRENCY         "JPY"
#define PAY_AMOUNT_MAX       1000000000LL       /* one deposit, transfer or charge: 1..10^9 */
#define PAY_BALANCE_MAX      1000000000000000LL /* 10^15: a deposit beyond is refused */
#define PAY_USER_ID_MAX      64                 /* bytes (SL_IDENTITY_ID_MAX) */
#define PAY_ORDER_ID_MAX     100                /* bytes */
#define PAY_ORDERS_MAX       100000             /* orders remembered per account */
#define PAY_STREAM_MAX       (8 + PAY_USER_ID_MAX + 1)
#define PAY_VIOLATION_MAX    200
#define PAY_SNAPSHOT_EVERY   50 /* default payment.snapshot_every */
#define PAY_RETRIES          8  /* attempts of a command on a version conflict */
#define PAY_ES_SUBSCRIBER    "payment.balances"
#define PAY_AUDIT_ISSUES_MAX 100

/* ---- events ------------------------------------------------------------------------------ */

#define PAY_EVENT_KIND_MAP(X)                                                                      \
    X(OPENED, "AccountOpened")                                                                     \
    X(DEPOSITED, "MoneyDeposited")                                                                 \
    X(WITHDRAWN, "MoneyWithdrawn")                                                                 \
    X(CHARGED, "PaymentCharged")                                                                   \
    X(REFUNDED, "PaymentRefunded")

typedef enum pay_kind {
#define PAY_KIND_ENUM_(name, text) PAY_EV_##name,
    PAY_EVENT_KIND_MAP(PAY_KIND_ENUM_)
#undef PAY_KIND_ENUM_
        PAY_EV_COUNT
} pay_kind;

/* Returns the event type name of `k` ("MoneyDeposited"), static storage. */
const char *pay_kind_name(pay_kind k);

/*
 * One wallet event, decoded. `peer` is the other user of a transfer (the
 * source of a transfer-in deposit, the target of a withdrawal); a deposit
 * with an empty `peer` is money entering the shop from outside.
 */
typedef struct pay_event {
    pay_kind kind;
    int64_t amount;
    char user_id[PAY_USER_ID_MAX + 1];   /* OPENED */
    char order_id[PAY_ORDER_ID_MAX + 1]; /* CHARGED, REFUNDED */
    char peer[PAY_USER_ID_MAX + 1];      /* transfers */
    char transfer_id[SL_DB_UUID_STR];    /* transfers */
} pay_event;

/*
 * Decodes a stored event (type and JSON data of `len` bytes). Returns 0, or
 * SL_EPARSE for an unknown type or malformed data (database contents are
 * outside input: never asserted on).
 */
int pay_event_decode(const char *type, const char *data, size_t len, pay_event *out) SL_MUST_CHECK;

/* Encodes the data of `ev` as JSON text. Returns owned text (free with free()) or NULL. */
char *pay_event_encode(const pay_event *ev);

/* ---- the aggregate ---------------------------------------------------------------------- */

typedef struct pay_order {
    char order_id[PAY_ORDER_ID_MAX + 1];
    int64_t charged;  /* 0: never charged */
    int64_t refunded; /* total refunded; a refund of 0 on an uncharged order is a tombstone */
    int refund_seen;
} pay_order;

/*
 * The wallet state: the fold of its events. Folding never fails on a
 * rule break: it counts the break in `violations` and keeps the first
 * message, so the audit can report broken histories (the commands never
 * append an event that would break a rule).
 */
typedef struct pay_account {
    int opened;
    int64_t version; /* of the last event folded (0: none) */
    int64_t at_ms;   /* time of the last event folded */
    int64_t balance;
    int64_t deposited;    /* from outside (deposits without a peer) */
    int64_t transfer_in;  /* deposits from another wallet */
    int64_t transfer_out; /* withdrawals to another wallet */
    int64_t charged;
    int64_t refunded;
    int64_t violations;
    char violation[PAY_VIOLATION_MAX];
    pay_order *orders; /* sorted by order_id; owned */
    size_t norders, cap;
} pay_account;

void pay_account_init(pay_account *a);
void pay_account_free(pay_account *a);

/*
 * Folds one event at stream `version` and time `at_ms` into `a`. Returns 0,
 * or SL_ENOMEM / SL_ELIMIT (more than PAY_ORDERS_MAX orders), leaving `a`
 * unchanged. Rule breaks are recorded, not returned (see pay_account).
 */
int pay_fold(pay_account *a, const pay_event *ev, int64_t version, int64_t at_ms) SL_MUST_CHECK;

/* The order entry of `order_id`, or NULL. */
const pay_order *pay_find_order(const pay_account *a, const char *order_id);

/* Snapshot codec: encode returns owned JSON text (free with free()) or NULL; decode fills a
 * freshly initialised `a` and returns 0 or SL_EPARSE / SL_ENOMEM. */
char *pay_account_encode(const pay_account *a);
int pay_account_decode(const char *text, size_t len, pay_account *a) SL_MUST_CHECK;

/* ---- decisions (pure) ------------------------------------------------------------------- */

typedef enum pay_verdict {
    PAY_OK = 0,
    PAY_INSUFFICIENT,    /* balance too small */
    PAY_BALANCE_LIMIT,   /* the balance would pass PAY_BALANCE_MAX */
    PAY_ALREADY_CHARGED, /* the same order was charged the same amount: answer with it */
    PAY_CHARGE_MISMATCH, /* the order was charged another amount */
    PAY_ORDER_REFUNDED,  /* the order was refunded (or cancelled) before any charge */
    PAY_TOO_MANY_ORDERS, /* PAY_ORDERS_MAX reached */
} pay_verdict;

pay_verdict pay_check_deposit(const pay_account *a, int64_t amount);
/* The daily limit of an owner's own deposits: `spent` so far this UTC day; limit 0: none.
 * Returns 1 when `amount` more would pass it. */
int pay_deposit_over_limit(int64_t spent, int64_t amount, int64_t limit);
/* The start (ms) of the UTC day holding `now_ms`. */
int64_t pay_day_start_ms(int64_t now_ms);
pay_verdict pay_check_debit(const pay_account *a, int64_t amount);
pay_verdict pay_check_charge(const pay_account *a, const char *order_id, int64_t amount);
/* What a refund of `order_id` returns now: charged minus refunded (0 if never charged). */
int64_t pay_refundable(const pay_account *a, const char *order_id);

/* Returns 1 for an acceptable user id (1..64 visible ASCII) / order id (1..100 of
 * [A-Za-z0-9._:-]). */
int pay_user_id_valid(const char *s, size_t len);
int pay_order_id_valid(const char *s, size_t len);

/*
 * Reads a money input at `obj[name]`: an integer of minor units or
 * {"amount": n, "currency": "JPY"}, within 1..max. Records a field error in
 * `errs` ("amount" or "amount.currency") and returns SL_EINVAL when bad;
 * absent and required also errs. Stores the value in *out.
 */
int pay_read_money(const json_t *obj, const char *name, int64_t max, int64_t *out,
                   sl_json_errors *errs) SL_MUST_CHECK;

/* {"amount": v, "currency": "JPY"}: returns a new reference or NULL. */
json_t *pay_money(int64_t v);

/* ---- store (store.c) -------------------------------------------------------------------- */

/* Writes "account-<user_id>" into out (PAY_STREAM_MAX bytes). */
void pay_stream_name(const char *user_id, char out[PAY_STREAM_MAX]);

/*
 * Rebuilds the wallet of `user_id` from its latest snapshot (when
 * `snapshots`) and the events after it, stopping before the first event
 * later than `as_of_ms` (INT64_MAX: all). `a` must be freshly initialised.
 * Returns 0 (a missing stream leaves `a` unopened, version 0) or an error.
 */
int pay_load(sl_db *db, const char *user_id, int64_t as_of_ms, int snapshots,
             pay_account *a) SL_MUST_CHECK;

/* One entry of a wallet's history. */
typedef struct pay_history_item {
    const pay_event *ev;
    int64_t version, position, at_ms, balance_after;
} pay_history_item;
typedef int (*pay_history_cb)(void *data, const pay_history_item *it);

/* Calls cb for the versions hi, hi-1, …, lo of the wallet (newest first), with the balance
 * after each from the fold. 1 <= lo <= hi. Returns 0, cb's value, or an error. */
int pay_history(sl_db *db, const char *user_id, int64_t lo, int64_t hi, pay_history_cb cb,
                void *data) SL_MUST_CHECK;

/*
 * Serialises writers of the given wallets (PostgreSQL: transaction-scoped
 * advisory locks taken in a fixed order, so appends touching several
 * streams never deadlock on the event store's row locks; SQLite: writers
 * are already serialised by BEGIN IMMEDIATE, nothing to do).
 */
int pay_lock_wallets(sl_db *tx, const char *const *user_ids, size_t n) SL_MUST_CHECK;

/* Appends evs[0..n) to the wallet of `user_id` with `expected` version; the first event's id
 * is `first_id` (NULL: generated). sl_es_append's returns. */
int pay_append(sl_db *tx, const char *user_id, int64_t expected, const pay_event *evs, size_t n,
               const char *first_id, int64_t now_ms, sl_es_result *res) SL_MUST_CHECK;

/* Saves a snapshot of `a` when the append from old_version crossed a multiple of `every`. */
int pay_snapshot_maybe(sl_db *tx, const char *user_id, const pay_account *a, int64_t old_version,
                       int64_t every, int64_t now_ms) SL_MUST_CHECK;

/* The stream holding the event with id `event_id` into out; *found 0 when none. */
int pay_event_stream(sl_db *db, const char *event_id, char out[PAY_STREAM_MAX],
                     int *found) SL_MUST_CHECK;

/* The deterministic event ids of an order's charge and first refund: "charge-<order_id>". */
void pay_charge_event_id(const char *order_id, char out[PAY_ORDER_ID_MAX + 16]);

/* Read model: one catch-up step of the balances projection (worker 0 only). */
int pay_project_poll(sl_db *db, size_t batch_max, size_t *handled) SL_MUST_CHECK;

typedef struct pay_view_row {
    const char *user_id;
    int64_t balance, version, position, updated_ms;
} pay_view_row;
typedef int (*pay_view_cb)(void *data, const pay_view_row *row);
int pay_view_list(sl_db *db, int64_t offset, int64_t limit, pay_view_cb cb, void *data,
                  int64_t *total) SL_MUST_CHECK;

/*
 * The audit: replays every wallet stream and checks that no balance is
 * negative, refunds never exceed charges, transfers pair up, money is
 * conserved (sum of balances == outside deposits − charges + refunds) and the
 * read model equals the replay. Returns 0 with *report (new reference:
 * {ok, accounts, events, totals, violations:[...]}) or an error.
 */
int pay_audit(sl_db *db, json_t **report) SL_MUST_CHECK;

/* ---- commands (commands.c) ------------------------------------------------------------------- */

/* Writes one event to the outbox inside tx (sl_svc_emit in the service; a stub in tests). */
typedef int (*pay_emit_cb)(void *data, sl_db *tx, const char *type, const char *subject,
                           const json_t *payload);

typedef struct pay_env {
    sl_db *db;
    int64_t snapshot_every;
    pay_emit_cb emit;
    void *emit_data;
    int64_t (*now_ms)(void *data); /* NULL: the system clock */
    void *now_data;
} pay_env;

/* A command's answer: HTTP status and JSON body (owned; free with pay_answer_free). */
typedef struct pay_answer {
    int status;
    char *body;
    size_t len;
    int problem; /* body is application/problem+json */
} pay_answer;
void pay_answer_free(pay_answer *a);

/* Idempotency claim: scope/key (NULL key: none) and the canonical request bytes. */
typedef struct pay_idem {
    const char *scope;
    const char *key;
    const char *req;
    size_t req_len;
} pay_idem;

/* Each command runs in its own transaction(s) on env->db, retries on version conflicts and
 * busy errors, and returns 0 with *ans filled, or a database error (nothing applied). */
int pay_cmd_open(pay_env *env, const char *user_id, pay_answer *ans) SL_MUST_CHECK;
/* Default payment.deposit_daily_limit: an owner's own deposits per UTC day. */
#define PAY_DEPOSIT_DAILY_LIMIT 1000000LL

/* Who asks for a deposit (borrowed strings), for its audit row and its limit. */
typedef struct pay_deposit_ctx {
    const char *actor_id;   /* the owner, or the admin on the admin path */
    const char *actor_role; /* "customer", "admin", ... */
    const char *request_id; /* "" when none */
    int64_t daily_limit;    /* the owner's own deposits per UTC day; 0: none (admin path) */
} pay_deposit_ctx;

/* A deposit: 409 `deposit_limit` when it would pass ctx->daily_limit, 409 `balance_limit`;
 * writes its audit row (deposit_audit) in the same transaction. */
int pay_cmd_deposit(pay_env *env, const pay_idem *idem, const char *user_id, int64_t amount,
                    const pay_deposit_ctx *ctx, pay_answer *ans) SL_MUST_CHECK;
int pay_cmd_transfer(pay_env *env, const pay_idem *idem, const char *from, const char *to,
                     int64_t amount, pay_answer *ans) SL_MUST_CHECK;
int pay_cmd_charge(pay_env *env, const pay_idem *idem, const char *order_id, const char *user_id,
                   int64_t amount, pay_answer *ans) SL_MUST_CHECK;
int pay_cmd_refund(pay_env *env, const pay_idem *idem, const char *order_id, const char *user_id,
                   pay_answer *ans) SL_MUST_CHECK;

/* Opens the wallet of `user_id` inside the caller's transaction when absent (the
 * shop.user.registered.v1 consumer). Returns 0 or an error. */
int pay_open_in_tx(sl_db *tx, const char *user_id, int64_t now_ms) SL_MUST_CHECK;

/* Applies one shop.user.registered.v1 event (sl_event_apply_cb; events.c). */
int pay_apply_user_registered(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                              size_t cap);

extern const sl_service_def payment_service;
extern const sl_migration_set sl_migrations_payment;

#endif /* SHOAL_SVC_PAYMENT_H */
