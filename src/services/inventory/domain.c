/*
 * Inventory's pure rules: what a valid reservation request is, how items
 * compare (idempotency per order), what a release or a commit does in each
 * reservation state, when a reservation has expired, how a restock is
 * bounded, the invariants of one stock row that the audit checks, and the
 * data of its events as JSON text. No I/O;
 * tests/services/inventory/domain_test.c covers it alone.
 */
#include "inventory.h"

#include <shoal/id.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int inv_id_valid(const char *s, size_t len)
{
    return sl_id_text_valid(s, len, INV_ID_MAX);
}

sl_json_field inv_id_field(const char *name, const char **out)
{
    SL_ASSERT(name != NULL && out != NULL);
    return (sl_json_field){.name = name,
                           .kind = SL_JSON_STRING,
                           .flags = SL_JSON_REQUIRED,
                           .min = 1,
                           .max = INV_ID_MAX,
                           .max_bytes = INV_ID_MAX,
                           .out = out};
}

static const char *const status_names[] = {"reserved", "committed", "released"};

const char *inv_status_name(inv_status st)
{
    return (unsigned)st < SL_ARRAY_LEN(status_names) ? status_names[st] : "unknown";
}

int inv_status_parse(const char *s, inv_status *out)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(status_names); i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *out = (inv_status)i;
            return 0;
        }
    }
    return SL_EINVAL;
}

void inv_items_sort(inv_item *items, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        inv_item cur = items[i];
        size_t j = i;
        while (j > 0 && strcmp(items[j - 1].product_id, cur.product_id) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = cur;
    }
}

int inv_items_equal(const inv_item *a, size_t na, const inv_item *b, size_t nb)
{
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].product_id, b[i].product_id) != 0 || a[i].qty != b[i].qty) return 0;
    return 1;
}

/* Validates items[i]; on success appends it to `items`. */
static void read_item(const json_t *it, size_t i, inv_item *items, size_t *n, sl_json_errors *errs)
{
    char prefix[32];
    if (sl_json_path_index(prefix, sizeof prefix, "items", i) != 0) return;
    const char *pid = NULL;
    int64_t qty = 0;
    const sl_json_field f[] = {
        inv_id_field("product_id", &pid),
        {.name = "qty",
         .kind = SL_JSON_INT,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = INV_QTY_MAX,
         .out = &qty},
    };
    if (sl_json_read_at(it, prefix, f, SL_ARRAY_LEN(f), SL_JSON_REJECT_UNKNOWN, errs) != 0) return;
    char field[48];
    snprintf(field, sizeof field, "%s.product_id", prefix);
    if (!inv_id_valid(pid, strlen(pid))) {
        sl_json_errors_add(errs, field, "must be 1..%d characters of A-Z a-z 0-9 . _ : -",
                           INV_ID_MAX);
        return;
    }
    for (size_t k = 0; k < *n; k++) {
        if (strcmp(items[k].product_id, pid) == 0) {
            sl_json_errors_add(errs, field,
                               "names the same product as items[%zu]; send one "
                               "entry per product",
                               items[k].index);
            return;
        }
    }
    inv_item *dst = &items[(*n)++];
    snprintf(dst->product_id, sizeof dst->product_id, "%s", pid);
    dst->qty = qty;
    dst->index = i;
}

int inv_read_reservation(const json_t *body, char order_id[INV_ID_MAX + 1], inv_item *items,
                         size_t *n, sl_json_errors *errs)
{
    const char *oid = NULL;
    json_t *arr = NULL;
    const sl_json_field f[] = {
        inv_id_field("order_id", &oid),
        {.name = "items",
         .kind = SL_JSON_ARRAY,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = INV_ITEMS_MAX,
         .out = &arr},
    };
    size_t before = sl_json_errors_total(errs);
    *n = 0;
    if (sl_json_read(body, f, SL_ARRAY_LEN(f), SL_JSON_REJECT_UNKNOWN, errs) != 0) {
        /* Errors are recorded; go on so that the items are checked too. */
    }
    if (oid && !inv_id_valid(oid, strlen(oid)))
        sl_json_errors_add(errs, "order_id", "must be 1..%d characters of A-Z a-z 0-9 . _ : -",
                           INV_ID_MAX);
    else if (oid)
        snprintf(order_id, INV_ID_MAX + 1, "%s", oid);
    if (arr) {
        size_t len = json_array_size(arr);
        for (size_t i = 0; i < len && i < INV_ITEMS_MAX; i++)
            read_item(json_array_get(arr, i), i, items, n, errs);
    }
    if (sl_json_errors_total(errs) != before) return SL_EINVAL;
    inv_items_sort(items, *n);
    return 0;
}

inv_action inv_release_decide(int exists, inv_status st)
{
    if (!exists) return INV_ACT_TOMBSTONE;
    switch (st) {
    case INV_ST_RESERVED:
        return INV_ACT_APPLY;
    case INV_ST_RELEASED:
        return INV_ACT_NOOP;
    case INV_ST_COMMITTED:
        /* The order was confirmed, then cancelled before shipping: return the units. */
        return INV_ACT_RETURN;
    }
    return INV_ACT_REFUSE;
}

inv_action inv_commit_decide(int exists, inv_status st)
{
    if (!exists) return INV_ACT_UNKNOWN;
    switch (st) {
    case INV_ST_RESERVED:
        return INV_ACT_APPLY;
    case INV_ST_COMMITTED:
        return INV_ACT_NOOP;
    case INV_ST_RELEASED:
        return INV_ACT_REFUSE;
    }
    return INV_ACT_REFUSE;
}

int inv_is_expired(inv_status st, int64_t expires_ms, int64_t now_ms)
{
    return st == INV_ST_RESERVED && expires_ms <= now_ms;
}

int inv_restock_apply(int64_t stock, int64_t qty, int64_t *out)
{
    if (qty < 1 || qty > INV_RESTOCK_MAX) return SL_EINVAL;
    if (stock < 0 || stock > INV_STOCK_MAX - qty) return SL_ELIMIT;
    *out = stock + qty;
    return 0;
}

static void add_violation(inv_violation *out, size_t cap, size_t *n, size_t *dropped,
                          const char *check, const char *subject, const char *detail)
{
    if (*n >= cap) {
        (*dropped)++;
        return;
    }
    inv_violation *v = &out[(*n)++];
    snprintf(v->check, sizeof v->check, "%s", check);
    snprintf(v->subject, sizeof v->subject, "%s", subject);
    snprintf(v->detail, sizeof v->detail, "%s", detail);
}

void inv_audit_stock_row(const char *product_id, int64_t stock, int64_t reserved,
                         int64_t active_sum, inv_violation *out, size_t cap, size_t *n,
                         size_t *dropped)
{
    char d[160];
    if (stock < 0) {
        snprintf(d, sizeof d, "stock is %lld", (long long)stock);
        add_violation(out, cap, n, dropped, "stock_negative", product_id, d);
    }
    if (reserved < 0) {
        snprintf(d, sizeof d, "reserved is %lld", (long long)reserved);
        add_violation(out, cap, n, dropped, "reserved_negative", product_id, d);
    }
    if (reserved > stock) {
        snprintf(d, sizeof d, "available is %lld (stock %lld, reserved %lld)",
                 (long long)(stock - reserved), (long long)stock, (long long)reserved);
        add_violation(out, cap, n, dropped, "available_negative", product_id, d);
    }
    if (reserved != active_sum) {
        snprintf(d, sizeof d, "reserved is %lld but active reservations hold %lld",
                 (long long)reserved, (long long)active_sum);
        add_violation(out, cap, n, dropped, "reserved_mismatch", product_id, d);
    }
}

/* ---- event data as JSON text ---------------------------------------------------------------- */

/* A bounded text buffer; `bad` once something did not fit. */
typedef struct jbuf {
    char *p;
    size_t len, cap;
    int bad;
} jbuf;

static void jb_raw(jbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->bad || n >= b->cap - b->len) {
        b->bad = 1;
        return;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static void jb_str(jbuf *b, const char *s)
{
    jb_raw(b, "\"");
    if (b->bad) return;
    size_t need = sl_json_escape(s, strlen(s), b->p + b->len, b->cap - b->len);
    if (need >= b->cap - b->len) {
        b->bad = 1;
        return;
    }
    b->len += need;
    jb_raw(b, "\"");
}

static void jb_int(jbuf *b, int64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", (long long)v);
    jb_raw(b, num);
}

/* Bytes enough for one escaped id (each byte at most a \uXXXX escape) and its quotes. */
#define JB_STR_MAX(n) ((n)*6 + 2)

char *inv_stock_event(const inv_stock *s)
{
    SL_ASSERT(s != NULL);
    size_t cap = JB_STR_MAX(INV_ID_MAX) + 128;
    jbuf b = {.p = malloc(cap), .cap = cap};
    if (!b.p) return NULL;
    jb_raw(&b, "{\"product_id\":");
    jb_str(&b, s->product_id);
    jb_raw(&b, ",\"stock\":");
    jb_int(&b, s->stock);
    jb_raw(&b, ",\"reserved\":");
    jb_int(&b, s->reserved);
    jb_raw(&b, ",\"available\":");
    jb_int(&b, s->stock - s->reserved);
    jb_raw(&b, "}");
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *inv_order_event(const inv_reservation *r, const char *reason)
{
    SL_ASSERT(r != NULL && r->n <= INV_ITEMS_MAX);
    size_t cap = JB_STR_MAX(INV_ID_MAX) * (r->n + 1) + 48 * (r->n + 1) +
                 (reason ? JB_STR_MAX(strlen(reason)) : 0) + 64;
    jbuf b = {.p = malloc(cap), .cap = cap};
    if (!b.p) return NULL;
    jb_raw(&b, "{\"order_id\":");
    jb_str(&b, r->order_id);
    jb_raw(&b, ",\"items\":[");
    for (size_t i = 0; i < r->n; i++) {
        jb_raw(&b, i ? ",{\"product_id\":" : "{\"product_id\":");
        jb_str(&b, r->items[i].product_id);
        jb_raw(&b, ",\"qty\":");
        jb_int(&b, r->items[i].qty);
        jb_raw(&b, "}");
    }
    jb_raw(&b, "]");
    if (reason) {
        jb_raw(&b, ",\"reason\":");
        jb_str(&b, reason);
    }
    jb_raw(&b, "}");
    if (b.bad) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
