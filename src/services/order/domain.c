/*
 * shoal-order's pure rules: the order state machine (which action is legal in
 * which status), the validation of a new order's body, totals with overflow
 * checks, and how a saga participant's HTTP answer is classified (ok,
 * business refusal with the order's cancel reason, or transient failure).
 * No I/O; tests/services/order/domain_test.c covers every transition.
 */
#include "order.h"

#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
#define ORDER_STATUS_NAME_(name, text) text,
    ORDER_STATUS_MAP(ORDER_STATUS_NAME_)
#undef ORDER_STATUS_NAME_
};

static const char *const action_names[] = {
#define ORDER_ACTION_NAME_(name, text) text,
    ORDER_ACTION_MAP(ORDER_ACTION_NAME_)
#undef ORDER_ACTION_NAME_
};

const char *order_status_name(order_status s)
{
    return (unsigned)s < ORDER_STATUS_COUNT ? status_names[s] : "unknown";
}

const char *order_action_name(order_action a)
{
    return (unsigned)a < ORDER_ACTION_COUNT ? action_names[a] : "unknown";
}

int order_status_parse(const char *s, size_t len, order_status *out)
{
    for (int i = 0; i < ORDER_STATUS_COUNT; i++) {
        if (strlen(status_names[i]) == len && memcmp(status_names[i], s, len) == 0) {
            *out = (order_status)i;
            return 0;
        }
    }
    return SL_EINVAL;
}

int order_transition(order_status from, order_action a, order_status *next)
{
    order_status to = from;
    int rc = SL_ESTATE;
    switch (a) {
    case ORDER_ACT_CONFIRM:
        if (from == ORDER_PENDING) to = ORDER_CONFIRMED, rc = 0;
        break;
    case ORDER_ACT_CHECKOUT_FAIL:
        if (from == ORDER_PENDING) to = ORDER_CANCELLED, rc = 0;
        break;
    case ORDER_ACT_CUSTOMER_CANCEL:
        /* A pending order's checkout is still deciding (its saga may be charging right now):
         * the customer retries once it is confirmed or cancelled (docs/services/order.md). */
        if (from == ORDER_CONFIRMED)
            to = ORDER_CANCELLED, rc = 0;
        else if (from == ORDER_PENDING)
            rc = SL_EAGAIN;
        break;
    case ORDER_ACT_SHIP:
        if (from == ORDER_CONFIRMED) to = ORDER_SHIPPED, rc = 0;
        break;
    case ORDER_ACT_DELIVER:
        if (from == ORDER_SHIPPED) to = ORDER_DELIVERED, rc = 0;
        break;
    default:
        break;
    }
    if (rc == 0) *next = to;
    return rc;
}

int order_status_rank(order_status s)
{
    switch (s) {
    case ORDER_PENDING:
        return 0;
    case ORDER_CONFIRMED:
        return 1;
    case ORDER_SHIPPED:
        return 2;
    case ORDER_DELIVERED:
        return 3;
    case ORDER_CANCELLED:
        return 4;
    default:
        return -1;
    }
}

/* ---- requests ------------------------------------------------------------------------------- */

int order_id_valid(const char *s, size_t len)
{
    return order_event_id_valid(s, len); /* the ids the order's events carry */
}

/* 1 when the string holds no C0 control character nor DEL (addresses are single lines). */
static int no_controls(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int read_address(const json_t *v, order_address *a, sl_json_errors *errs)
{
    const char *s[5] = {"", "", "", "", ""};
    static const char *const names[5] = {"name", "line1", "city", "postal_code", "country"};
    static const int64_t max[5] = {ORDER_ADDR_NAME_MAX, ORDER_ADDR_LINE_MAX, ORDER_ADDR_CITY_MAX,
                                   ORDER_ADDR_POSTAL_MAX, ORDER_ADDR_COUNTRY_MAX};
    sl_json_field f[5];
    for (int i = 0; i < 5; i++)
        f[i] = (sl_json_field){.name = names[i],
                               .kind = SL_JSON_STRING,
                               .flags = SL_JSON_REQUIRED,
                               .min = 1,
                               .max = max[i],
                               .max_bytes = (size_t)max[i] * 4,
                               .out = &s[i]};
    int rc = sl_json_read_at(v, "shipping_address", f, 5, SL_JSON_REJECT_UNKNOWN, errs);
    for (int i = 0; i < 5; i++) {
        if (s[i][0] == '\0') continue;
        char path[64];
        snprintf(path, sizeof path, "shipping_address.%s", names[i]);
        if (!no_controls(s[i])) {
            sl_json_errors_add(errs, path, "must not contain control characters");
            rc = SL_EINVAL;
        } else if (strspn(s[i], " ") == strlen(s[i])) {
            sl_json_errors_add(errs, path, "must not be blank");
            rc = SL_EINVAL;
        }
    }
    if (rc != 0) return SL_EINVAL;
    copy_str(a->name, sizeof a->name, s[0]);
    copy_str(a->line1, sizeof a->line1, s[1]);
    copy_str(a->city, sizeof a->city, s[2]);
    copy_str(a->postal_code, sizeof a->postal_code, s[3]);
    copy_str(a->country, sizeof a->country, s[4]);
    return 0;
}

static int read_items(const json_t *items, order_request *out, sl_json_errors *errs)
{
    int bad = 0;
    out->n = 0;
    for (size_t i = 0; i < json_array_size(items) && i < ORDER_ITEMS_MAX; i++) {
        const char *pid = NULL;
        int64_t qty = 0;
        char prefix[32];
        const sl_json_field f[] = {
            {.name = "product_id",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = ORDER_ID_MAX,
             .max_bytes = ORDER_ID_MAX,
             .out = &pid},
            {.name = "qty",
             .kind = SL_JSON_INT,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = ORDER_QTY_MAX,
             .out = &qty},
        };
        if (sl_json_path_index(prefix, sizeof prefix, "items", i) != 0) return SL_EINVAL;
        if (sl_json_read_at(json_array_get(items, i), prefix, f, 2, SL_JSON_REJECT_UNKNOWN, errs) !=
            0) {
            bad = 1;
            continue;
        }
        char path[48];
        snprintf(path, sizeof path, "%s.product_id", prefix);
        if (!order_id_valid(pid, strlen(pid))) {
            sl_json_errors_add(errs, path, "must be 1..64 characters of [A-Za-z0-9._:-]");
            bad = 1;
            continue;
        }
        for (size_t j = 0; j < out->n; j++) {
            if (strcmp(out->items[j].product_id, pid) == 0) {
                sl_json_errors_add(errs, path, "names the same product as items[%zu]", j);
                bad = 1;
            }
        }
        order_item *it = &out->items[out->n++];
        memset(it, 0, sizeof *it);
        copy_str(it->product_id, sizeof it->product_id, pid);
        it->qty = qty;
    }
    return bad ? SL_EINVAL : 0;
}

int order_read_request(const json_t *body, order_request *out, sl_json_errors *errs)
{
    json_t *items = NULL, *addr = NULL;
    const sl_json_field f[] = {
        {.name = "items",
         .kind = SL_JSON_ARRAY,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = ORDER_ITEMS_MAX,
         .out = &items},
        {.name = "shipping_address",
         .kind = SL_JSON_OBJECT,
         .flags = SL_JSON_REQUIRED,
         .out = &addr},
    };
    memset(out, 0, sizeof *out);
    int rc = sl_json_read(body, f, 2, SL_JSON_REJECT_UNKNOWN, errs);
    if (items && read_items(items, out, errs) != 0) rc = SL_EINVAL;
    if (addr && read_address(addr, &out->addr, errs) != 0) rc = SL_EINVAL;
    return rc == 0 ? 0 : SL_EINVAL;
}

int order_total(const order_item *items, size_t n, int64_t *total, char currency[4], size_t *bad)
{
    int64_t sum = 0;
    currency[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i == 0) {
            memcpy(currency, items[0].currency, 4);
        } else if (strcmp(currency, items[i].currency) != 0) {
            if (bad) *bad = i;
            return SL_ECONFLICT;
        }
        int64_t line;
        if (__builtin_mul_overflow(items[i].qty, items[i].unit_price, &line) ||
            __builtin_add_overflow(sum, line, &sum)) {
            if (bad) *bad = i;
            return SL_ELIMIT;
        }
    }
    *total = sum;
    return 0;
}

/* ---- saga replies ---------------------------------------------------------------------------- */

sl_saga_reply_kind order_classify(order_call call, int status, const char *reason,
                                  const char *res_status, char *cancel_reason)
{
    int inventory = call == ORDER_CALL_RESERVE || call == ORDER_CALL_RELEASE;
    const char *fallback = inventory ? "reservation_failed" : "payment_failed";
    cancel_reason[0] = '\0';
    if (status >= 200 && status < 300) {
        /* Inventory answers a repeated reserve with the reservation as it stands: anything
         * but "reserved" means this order's reservation can no longer succeed. */
        if (call == ORDER_CALL_RESERVE && res_status && strcmp(res_status, "reserved") != 0) {
            snprintf(cancel_reason, ORDER_REASON_MAX, "%s", fallback);
            return SL_SAGA_REPLY_REFUSED;
        }
        return SL_SAGA_REPLY_OK;
    }
    if (status == 409 && call == ORDER_CALL_RELEASE && reason &&
        strcmp(reason, "already_committed") == 0) {
        /* The reservation was committed (order.confirmed reached inventory first): there is
         * nothing left to release and inventory has no way back. Retrying cannot change that,
         * so the step is done; the executor logs it and the history keeps the answer. */
        snprintf(cancel_reason, ORDER_REASON_MAX, "already_committed");
        return SL_SAGA_REPLY_OK;
    }
    if (status == 400 || status == 409 || status == 422) {
        const char *r = fallback;
        if (reason && call == ORDER_CALL_RESERVE && strcmp(reason, "insufficient_stock") == 0)
            r = "insufficient_stock";
        if (reason && call == ORDER_CALL_CHARGE && strcmp(reason, "insufficient_funds") == 0)
            r = "insufficient_funds";
        snprintf(cancel_reason, ORDER_REASON_MAX, "%s", r);
        return SL_SAGA_REPLY_REFUSED;
    }
    return SL_SAGA_REPLY_FAILED; /* 5xx, 408, 429, 401/403/404/405 and anything unexpected */
}

void order_cancel_reason(const char *saga_reason, char *out)
{
    static const char *const known[] = {"insufficient_stock",
                                        "reservation_failed",
                                        "insufficient_funds",
                                        "payment_failed",
                                        "timeout",
                                        "aborted"};
    size_t n = strcspn(saga_reason, ":");
    for (size_t i = 0; i < SL_ARRAY_LEN(known); i++) {
        if (strlen(known[i]) == n && strncmp(known[i], saga_reason, n) == 0) {
            snprintf(out, ORDER_REASON_MAX, "%s", known[i]);
            return;
        }
    }
    snprintf(out, ORDER_REASON_MAX, "payment_failed");
}
