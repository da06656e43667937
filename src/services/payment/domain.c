/*
 * The wallet's pure rules: event codec, the fold that rebuilds an account's
 * state from its events, the snapshot codec, the decisions a command takes
 * on that state (funds, per-order charge and refund limits) and input
 * checks. No I/O; unit-tested alone (tests/services/payment/domain_test.c).
 */
#include "payment.h"

#include <shoal/id.h>
#include <shoal/json.h>

#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
#define PAY_KIND_NAME_(name, text) text,
    PAY_EVENT_KIND_MAP(PAY_KIND_NAME_)
#undef PAY_KIND_NAME_
};

const char *pay_kind_name(pay_kind k)
{
    return (unsigned)k < PAY_EV_COUNT ? kind_names[k] : "unknown";
}

/* ---- input checks ------------------------------------------------------------------------ */

int pay_user_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > PAY_USER_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f) return 0;
    return 1;
}

int pay_order_id_valid(const char *s, size_t len)
{
    return sl_id_text_valid(s, len, PAY_ORDER_ID_MAX);
}

json_t *pay_money(int64_t v)
{
    return json_pack("{s:I,s:s}", "amount", (json_int_t)v, "currency", PAY_CURRENCY);
}

int pay_read_money(const json_t *obj, const char *name, int64_t max, int64_t *out,
                   sl_json_errors *errs)
{
    const json_t *v = json_object_get(obj, name);
    char sub[SL_JSON_FIELD_MAX];
    if (v == NULL || json_is_null(v)) {
        sl_json_errors_add(errs, name, "is required");
        return SL_EINVAL;
    }
    if (json_is_object(v)) {
        snprintf(sub, sizeof sub, "%s.currency", name);
        const json_t *cur = json_object_get(v, "currency");
        if (cur && (!json_is_string(cur) || strcmp(json_string_value(cur), PAY_CURRENCY) != 0)) {
            sl_json_errors_add(errs, sub, "must be \"%s\"", PAY_CURRENCY);
            return SL_EINVAL;
        }
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            if (strcmp(k, "amount") != 0 && strcmp(k, "currency") != 0) {
                snprintf(sub, sizeof sub, "%s.%s", name, k);
                sl_json_errors_add(errs, sub, "is not allowed");
                return SL_EINVAL;
            }
        }
        snprintf(sub, sizeof sub, "%s.amount", name);
        v = json_object_get(v, "amount");
        name = sub;
        if (v == NULL) {
            sl_json_errors_add(errs, name, "is required");
            return SL_EINVAL;
        }
    }
    /* A real ("2.0") is not an integer amount; jansson keeps the distinction. */
    if (!json_is_integer(v)) {
        sl_json_errors_add(errs, name, "must be an integer amount of minor units (JPY)");
        return SL_EINVAL;
    }
    json_int_t n = json_integer_value(v);
    if (n < 1 || n > max) {
        sl_json_errors_add(errs, name, "must be between 1 and %lld", (long long)max);
        return SL_EINVAL;
    }
    *out = (int64_t)n;
    return 0;
}

/* ---- event codec ------------------------------------------------------------------------- */

static int copy_str(const json_t *o, const char *key, char *out, size_t cap, int required)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL) return required ? SL_EPARSE : 0;
    if (!json_is_string(v)) return SL_EPARSE;
    size_t n = json_string_length(v);
    if (n == 0 || n >= cap) return SL_EPARSE;
    memcpy(out, json_string_value(v), n + 1);
    return 0;
}

int pay_event_decode(const char *type, const char *data, size_t len, pay_event *out)
{
    memset(out, 0, sizeof *out);
    int k = -1;
    for (int i = 0; i < PAY_EV_COUNT; i++)
        if (type && strcmp(type, kind_names[i]) == 0) k = i;
    if (k < 0 || data == NULL) return SL_EPARSE;
    out->kind = (pay_kind)k;
    json_error_t e;
    /* The quick loader first: a charge folds the wallet's events since its snapshot, and
     * json_loadb was most of that; jansson decides what the quick loader cannot prove. */
    json_t *o = NULL;
    if (!sl_json_quick_load(data, len, &o)) o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e);
    if (!json_is_object(o)) {
        json_decref(o);
        return SL_EPARSE;
    }
    int rc = 0;
    if (out->kind != PAY_EV_OPENED) {
        const json_t *a = json_object_get(o, "amount");
        /* 0 only for a refund tombstone; never above one command's maximum. */
        if (!json_is_integer(a) || json_integer_value(a) < 0 ||
            json_integer_value(a) > PAY_AMOUNT_MAX)
            rc = SL_EPARSE;
        else
            out->amount = (int64_t)json_integer_value(a);
    }
    switch (out->kind) {
    case PAY_EV_OPENED:
        rc = copy_str(o, "user_id", out->user_id, sizeof out->user_id, 1);
        break;
    case PAY_EV_DEPOSITED:
        if (rc == 0) rc = copy_str(o, "from_user_id", out->peer, sizeof out->peer, 0);
        if (rc == 0) rc = copy_str(o, "transfer_id", out->transfer_id, sizeof out->transfer_id, 0);
        break;
    case PAY_EV_WITHDRAWN:
        if (rc == 0) rc = copy_str(o, "to_user_id", out->peer, sizeof out->peer, 1);
        if (rc == 0) rc = copy_str(o, "transfer_id", out->transfer_id, sizeof out->transfer_id, 1);
        break;
    case PAY_EV_CHARGED:
    case PAY_EV_REFUNDED:
        if (rc == 0) rc = copy_str(o, "order_id", out->order_id, sizeof out->order_id, 1);
        break;
    default:
        rc = SL_EPARSE;
    }
    json_decref(o);
    return rc;
}

char *pay_event_encode(const pay_event *ev)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    if (ev->kind == PAY_EV_OPENED) {
        bad |= json_object_set_new(o, "user_id", json_string(ev->user_id));
    } else {
        bad |= json_object_set_new(o, "amount", json_integer(ev->amount));
        bad |= json_object_set_new(o, "currency", json_string(PAY_CURRENCY));
    }
    if (ev->kind == PAY_EV_CHARGED || ev->kind == PAY_EV_REFUNDED)
        bad |= json_object_set_new(o, "order_id", json_string(ev->order_id));
    if ((ev->kind == PAY_EV_DEPOSITED || ev->kind == PAY_EV_WITHDRAWN) && ev->peer[0]) {
        bad |= json_object_set_new(o, ev->kind == PAY_EV_DEPOSITED ? "from_user_id" : "to_user_id",
                                   json_string(ev->peer));
        bad |= json_object_set_new(o, "transfer_id", json_string(ev->transfer_id));
    }
    char *s = bad ? NULL : sl_json_dump(o, NULL);
    json_decref(o);
    return s;
}

/* ---- the fold ---------------------------------------------------------------------------- */

void pay_account_init(pay_account *a)
{
    memset(a, 0, sizeof *a);
}

void pay_account_free(pay_account *a)
{
    free(a->orders);
    memset(a, 0, sizeof *a);
}

/* Binary search: index of order_id, or where it would go (with *found = 0). */
static size_t order_index(const pay_account *a, const char *order_id, int *found)
{
    size_t lo = 0, hi = a->norders;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(a->orders[mid].order_id, order_id);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const pay_order *pay_find_order(const pay_account *a, const char *order_id)
{
    int found;
    size_t i = order_index(a, order_id, &found);
    return found ? &a->orders[i] : NULL;
}

/* The entry for order_id, inserted (zeroed) when absent. */
static int order_slot(pay_account *a, const char *order_id, pay_order **out)
{
    int found;
    size_t i = order_index(a, order_id, &found);
    if (!found) {
        if (a->norders >= PAY_ORDERS_MAX) return SL_ELIMIT;
        if (a->norders == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 8;
            if (cap > PAY_ORDERS_MAX) cap = PAY_ORDERS_MAX;
            pay_order *p = realloc(a->orders, cap * sizeof *p);
            if (!p) return SL_ENOMEM;
            a->orders = p;
            a->cap = cap;
        }
        memmove(&a->orders[i + 1], &a->orders[i], (a->norders - i) * sizeof *a->orders);
        memset(&a->orders[i], 0, sizeof *a->orders);
        snprintf(a->orders[i].order_id, sizeof a->orders[i].order_id, "%s", order_id);
        a->norders++;
    }
    *out = &a->orders[i];
    return 0;
}

static void violate(pay_account *a, int64_t version, const char *what)
{
    if (a->violations++ == 0)
        snprintf(a->violation, sizeof a->violation, "version %lld: %s", (long long)version, what);
}

/* Adds `delta` to the balance, recording an overflow or a negative result. */
static void move_balance(pay_account *a, int64_t delta, int64_t version)
{
    int64_t nb;
    if (__builtin_add_overflow(a->balance, delta, &nb)) {
        violate(a, version, "balance overflow");
        return;
    }
    a->balance = nb;
    if (nb < 0) violate(a, version, "negative balance");
}

int pay_fold(pay_account *a, const pay_event *ev, int64_t version, int64_t at_ms)
{
    pay_order *o = NULL;
    if (ev->kind == PAY_EV_CHARGED || ev->kind == PAY_EV_REFUNDED) {
        int rc = order_slot(a, ev->order_id, &o);
        if (rc) return rc;
    }
    if (version != a->version + 1) violate(a, version, "version gap");
    if (ev->kind != PAY_EV_OPENED && !a->opened) violate(a, version, "event before AccountOpened");
    if (ev->kind != PAY_EV_OPENED && ev->kind != PAY_EV_REFUNDED && ev->amount <= 0)
        violate(a, version, "amount not positive");
    switch (ev->kind) {
    case PAY_EV_OPENED:
        if (a->opened) violate(a, version, "opened twice");
        a->opened = 1;
        break;
    case PAY_EV_DEPOSITED:
        move_balance(a, ev->amount, version);
        if (ev->peer[0])
            a->transfer_in += ev->amount;
        else
            a->deposited += ev->amount;
        break;
    case PAY_EV_WITHDRAWN:
        move_balance(a, -ev->amount, version);
        a->transfer_out += ev->amount;
        break;
    case PAY_EV_CHARGED:
        if (o->charged > 0) violate(a, version, "order charged twice");
        if (o->refund_seen) violate(a, version, "order charged after its refund");
        move_balance(a, -ev->amount, version);
        o->charged += ev->amount;
        a->charged += ev->amount;
        break;
    case PAY_EV_REFUNDED:
        if (o->refunded + ev->amount > o->charged) violate(a, version, "refund exceeds charge");
        move_balance(a, ev->amount, version);
        o->refunded += ev->amount;
        o->refund_seen = 1;
        a->refunded += ev->amount;
        break;
    default:
        violate(a, version, "unknown event");
    }
    a->version = version;
    a->at_ms = at_ms;
    return 0;
}

/* ---- decisions --------------------------------------------------------------------------- */

pay_verdict pay_check_deposit(const pay_account *a, int64_t amount)
{
    return a->balance > PAY_BALANCE_MAX - amount ? PAY_BALANCE_LIMIT : PAY_OK;
}

int pay_deposit_over_limit(int64_t spent, int64_t amount, int64_t limit)
{
    return limit > 0 && (spent > limit || amount > limit - spent);
}

int64_t pay_day_start_ms(int64_t now_ms)
{
    int64_t day = 86400000;
    int64_t r = now_ms % day;
    return now_ms - (r < 0 ? r + day : r);
}

pay_verdict pay_check_debit(const pay_account *a, int64_t amount)
{
    return a->balance < amount ? PAY_INSUFFICIENT : PAY_OK;
}

pay_verdict pay_check_charge(const pay_account *a, const char *order_id, int64_t amount)
{
    const pay_order *o = pay_find_order(a, order_id);
    if (o && o->charged > 0)
        return o->charged == amount ? PAY_ALREADY_CHARGED : PAY_CHARGE_MISMATCH;
    if (o && o->refund_seen) return PAY_ORDER_REFUNDED;
    if (!o && a->norders >= PAY_ORDERS_MAX) return PAY_TOO_MANY_ORDERS;
    return pay_check_debit(a, amount);
}

int64_t pay_refundable(const pay_account *a, const char *order_id)
{
    const pay_order *o = pay_find_order(a, order_id);
    return o ? o->charged - o->refunded : 0;
}

/* ---- snapshot codec ---------------------------------------------------------------------- */

char *pay_account_encode(const pay_account *a)
{
    json_t *orders = json_array();
    for (size_t i = 0; orders && i < a->norders; i++) {
        const pay_order *o = &a->orders[i];
        if (json_array_append_new(orders,
                                  json_pack("[s,I,I,b]", o->order_id, (json_int_t)o->charged,
                                            (json_int_t)o->refunded, o->refund_seen))) {
            json_decref(orders);
            return NULL;
        }
    }
    json_t *s = json_pack("{s:i,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:o}", "v", 1, "opened",
                          a->opened, "version", (json_int_t)a->version, "at_ms",
                          (json_int_t)a->at_ms, "balance", (json_int_t)a->balance, "deposited",
                          (json_int_t)a->deposited, "transfer_in", (json_int_t)a->transfer_in,
                          "transfer_out", (json_int_t)a->transfer_out, "charged",
                          (json_int_t)a->charged, "refunded", (json_int_t)a->refunded, "violations",
                          (json_int_t)a->violations, "violation", a->violation, "orders", orders);
    if (!s) return NULL;
    char *text = sl_json_dump(s, NULL);
    json_decref(s);
    return text;
}

int pay_account_decode(const char *text, size_t len, pay_account *a)
{
    json_error_t e;
    json_t *s = NULL; /* quick loader first, as for events */
    if (!sl_json_quick_load(text, len, &s)) s = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    int v = 0, opened = 0;
    json_int_t ver = 0, at = 0, bal = 0, dep = 0, tin = 0, tout = 0, chg = 0, ref = 0, vio = 0;
    const char *vmsg = NULL;
    json_t *orders = NULL;
    if (!s ||
        json_unpack(s, "{s:i,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:o}", "v", &v, "opened",
                    &opened, "version", &ver, "at_ms", &at, "balance", &bal, "deposited", &dep,
                    "transfer_in", &tin, "transfer_out", &tout, "charged", &chg, "refunded", &ref,
                    "violations", &vio, "violation", &vmsg, "orders", &orders) != 0 ||
        v != 1 || ver < 0 || !json_is_array(orders) || json_array_size(orders) > PAY_ORDERS_MAX) {
        json_decref(s);
        return SL_EPARSE;
    }
    pay_account_init(a);
    a->opened = opened;
    a->version = ver;
    a->at_ms = at;
    a->balance = bal;
    a->deposited = dep;
    a->transfer_in = tin;
    a->transfer_out = tout;
    a->charged = chg;
    a->refunded = ref;
    a->violations = vio;
    snprintf(a->violation, sizeof a->violation, "%s", vmsg);
    int rc = 0;
    size_t i;
    json_t *item;
    json_array_foreach(orders, i, item)
    {
        const char *id = NULL;
        json_int_t c = 0, r = 0;
        int seen = 0;
        pay_order *o;
        if (json_unpack(item, "[s,I,I,b]", &id, &c, &r, &seen) != 0 ||
            !pay_order_id_valid(id, strlen(id)) || pay_find_order(a, id) != NULL) {
            rc = SL_EPARSE;
            break;
        }
        if ((rc = order_slot(a, id, &o)) != 0) break;
        o->charged = c;
        o->refunded = r;
        o->refund_seen = seen;
    }
    json_decref(s);
    if (rc) pay_account_free(a);
    return rc;
}
