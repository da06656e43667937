/*
 * Pure rules of the notification service: which events become which
 * notification (order received, confirmed, cancelled with its reason,
 * shipped; payment refunded), with their subject and text, and the checks
 * on ids that end up in file names. No I/O.
 */
#include "notification.h"

#include <stdio.h>
#include <string.h>

int notif_user_id_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > NOTIF_USER_ID_MAX || s[0] == '.') return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* A string member of at most `max` bytes, printable (no control characters), or NULL. */
static const char *text_of(const json_t *data, const char *key, size_t max)
{
    const json_t *v = json_object_get(data, key);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
        return NULL;
    const char *s = json_string_value(v);
    for (size_t i = 0; s[i]; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return NULL;
    return s;
}

/* Money as "1,200 JPY" (or a bare integer); "" when absent or malformed. */
static void money_text(const json_t *v, char *out, size_t cap)
{
    if (json_is_object(v)) v = json_object_get(v, "amount");
    if (!json_is_integer(v)) {
        snprintf(out, cap, "(amount unknown)");
        return;
    }
    snprintf(out, cap, "%lld JPY", (long long)json_integer_value(v));
}

int notif_compose(const char *type, const json_t *data, notif_msg *out, char *reason, size_t cap)
{
    memset(out, 0, sizeof *out);
    const char *uid = data ? text_of(data, "user_id", NOTIF_USER_ID_MAX) : NULL;
    const char *oid = data ? text_of(data, "order_id", 100) : NULL;
    if (!uid || !notif_user_id_valid(uid, strlen(uid)) || !oid) {
        snprintf(reason, cap, "%s: data needs a valid user_id and order_id", type ? type : "?");
        return SL_EPARSE;
    }
    snprintf(out->user_id, sizeof out->user_id, "%s", uid);
    char money[64];
    if (type && strcmp(type, ORDER_EV_CREATED) == 0) {
        money_text(json_object_get(data, "total_amount"), money, sizeof money);
        snprintf(out->kind, sizeof out->kind, "order_received");
        snprintf(out->subject, sizeof out->subject, "We received your order %s", oid);
        snprintf(out->body, sizeof out->body,
                 "Thank you! Your order %s (total %s) was received and is being processed.", oid,
                 money);
    } else if (type && strcmp(type, ORDER_EV_CONFIRMED) == 0) {
        money_text(json_object_get(data, "total_amount"), money, sizeof money);
        snprintf(out->kind, sizeof out->kind, "order_confirmed");
        snprintf(out->subject, sizeof out->subject, "Your order %s is confirmed", oid);
        snprintf(out->body, sizeof out->body,
                 "Your order %s is confirmed: stock is reserved and %s was paid.", oid, money);
    } else if (type && strcmp(type, ORDER_EV_CANCELLED) == 0) {
        const char *why = text_of(data, "reason", 200);
        snprintf(out->kind, sizeof out->kind, "order_cancelled");
        snprintf(out->subject, sizeof out->subject, "Your order %s was cancelled", oid);
        snprintf(out->body, sizeof out->body, "Your order %s was cancelled (reason: %s).", oid,
                 why ? why : "unspecified");
    } else if (type && strcmp(type, ORDER_EV_SHIPPED) == 0) {
        snprintf(out->kind, sizeof out->kind, "order_shipped");
        snprintf(out->subject, sizeof out->subject, "Your order %s has shipped", oid);
        snprintf(out->body, sizeof out->body, "Good news: your order %s is on its way.", oid);
    } else if (type && strcmp(type, "shop.payment.refunded.v1") == 0) {
        money_text(json_object_get(data, "amount"), money, sizeof money);
        snprintf(out->kind, sizeof out->kind, "order_refunded");
        snprintf(out->subject, sizeof out->subject, "Refund for order %s", oid);
        snprintf(out->body, sizeof out->body, "%s was refunded to your wallet for order %s.", money,
                 oid);
    } else {
        snprintf(reason, cap, "unexpected event type %s", type ? type : "(none)");
        return SL_EPARSE;
    }
    return 0;
}
