/*
 * The notification service's event applier: every consumed order or payment
 * event becomes at most one notification (domain.c composes it), recorded
 * with its pending delivery in the inbox's transaction; the delivery pump in
 * notification.c sends it after the commit.
 */
#include "notification.h"

#include <shoal/bus.h>
#include <shoal/clock.h>
#include <shoal/id.h>

int notif_apply(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    SL_ASSERT(tx && msg);
    notif_msg m;
    int rc = notif_compose(msg->type ? msg->type : msg->topic, msg->data, &m, reason, cap);
    if (rc) return rc;
    int seen;
    if ((rc = notif_seen(tx, msg->id, &seen)) != 0 || seen) return rc; /* once per event */
    m.created_ms = sl_clock_wall_ms(sl_clock_system());
    if ((rc = sl_uuid7_at(m.created_ms, m.notification_id)) != 0) return rc;
    return notif_record(tx, &m, msg->id);
}
