/*
 * The payment service's event applier: a registered user gets a wallet (the
 * same opening as the first read of one, pay_open_in_tx), inside the
 * consumer's transaction.
 */
#include "payment.h"

#include <shoal/bus.h>
#include <shoal/clock.h>

int pay_apply_user_registered(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    SL_ASSERT(tx && msg);
    const json_t *uid = msg->data ? json_object_get(msg->data, "user_id") : NULL;
    if (!json_is_string(uid) ||
        !pay_user_id_valid(json_string_value(uid), json_string_length(uid))) {
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        sl_json_errors_add(&errs, "user_id", "is missing or not a user id");
        return sl_event_refuse(reason, cap, "user.registered", &errs);
    }
    return pay_open_in_tx(tx, json_string_value(uid), sl_clock_wall_ms(sl_clock_system()));
}
