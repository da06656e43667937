/*
 * The tally's event applier (tally.h): the read model tally_view is fed
 * only by shop.tally.incremented.v1 coming back through the bus. The host's
 * runner calls it inside the transaction that also claims the event in the
 * inbox, so each event counts once.
 */
#include "tally.h"

#include <shoal/bus.h>

int tally_apply_incremented(void *svc, sl_db *tx, const sl_bus_msg *msg, char *reason, size_t cap)
{
    (void)svc;
    tally_incremented ev;
    int rc = tally_incremented_decode(msg->data, &ev, reason, cap);
    if (rc != 0) return rc; /* SL_EPARSE: dead-lettered with the reason */
    return tally_store_view_add(tx, ev.counter, ev.amount);
}
