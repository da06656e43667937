/*
 * shoal-user's event applier: the read model (user_view) follows the user's
 * own events, from the bus or from the local projector over this database's
 * outbox (store.c).
 */
#include "user_int.h"

#include <shoal/bus.h>

#include <stdio.h>
#include <string.h>

int user_apply_event(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    SL_ASSERT(tx && msg);
    const char *type = msg->type ? msg->type : msg->topic;
    if (!type ||
        (strcmp(type, USER_EVENT_REGISTERED) != 0 && strcmp(type, USER_EVENT_UPDATED) != 0)) {
        snprintf(reason, cap, "type: not a user event");
        return SL_EPARSE;
    }
    user_state u;
    int rc = user_event_parse(msg->data, msg->subject, &u, reason, cap);
    if (rc != 0) return rc;
    rc = user_view_put(tx, &u);
    if (rc != 0 && rc != SL_EPARSE) snprintf(reason, cap, "database: %s", sl_errname(rc));
    return rc;
}
