/*
 * The cart's appliers of the events it consumes besides the product events
 * (which the price replica of product/contract/ applies): a confirmed order
 * takes its units out of its user's cart.
 */
#include "cart.h"

#include <shoal/bus.h>
#include <shoal/clock.h>

#include <stdlib.h>

/* Takes `qty` units of one product out of the user's cart. */
static int take_out(sl_db *tx, const char *user, const char *pid, int64_t qty)
{
    int64_t cur = 0;
    int rc = cart_store_item_qty(tx, user, pid, &cur);
    if (rc == SL_ENOTFOUND) return 0; /* not (or no longer) in the cart */
    if (rc != 0) return rc;
    int64_t left = cart_after_order(cur, qty);
    if (left == 0) return cart_store_item_delete(tx, user, pid, NULL);
    return cart_store_item_set(tx, user, pid, left, sl_clock_wall_ms(sl_clock_system()));
}

int cart_apply_order_confirmed(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason,
                               size_t cap)
{
    (void)svc;
    SL_ASSERT(tx != NULL && msg != NULL);
    const char *type = msg->type ? msg->type : msg->topic;
    order_event_view *ev = malloc(sizeof *ev);
    if (!ev) return SL_ENOMEM;
    /* Every item is validated before anything changes. */
    int rc = order_event_decode(type, msg->data, 0, ev, reason, cap);
    if (rc == 0 && !ev->has_items) {
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        sl_json_errors_add(&errs, "items", "is required");
        rc = sl_event_refuse(reason, cap, type, &errs);
    }
    for (size_t i = 0; rc == 0 && i < ev->nitems; i++)
        rc = take_out(tx, ev->user_id, ev->items[i].product_id, ev->items[i].qty);
    free(ev);
    return rc;
}
