/* The tally's SQL (tally.h): the write model tally_commands and the read model tally_view. */
#include "tally.h"

#include <string.h>

int tally_store_command_add(sl_db *tx, const char *id, const char *counter, int64_t amount)
{
    sl_db_stmt *st;
    int rc =
        sl_db_prepare(tx, "INSERT INTO tally_commands (id, counter, amount) VALUES (?, ?, ?)", &st);
    if (rc != 0) return rc;
    if ((rc = sl_db_bind_text(st, 1, id, strlen(id))) == 0 &&
        (rc = sl_db_bind_text(st, 2, counter, strlen(counter))) == 0 &&
        (rc = sl_db_bind_int64(st, 3, amount)) == 0)
        rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int tally_store_view_add(sl_db *tx, const char *counter, int64_t amount)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "INSERT INTO tally_view (counter, total, events) VALUES (?, ?, 1) "
                           "ON CONFLICT (counter) DO UPDATE SET total = tally_view.total + "
                           "excluded.total, events = tally_view.events + 1",
                           &st);
    if (rc != 0) return rc;
    if ((rc = sl_db_bind_text(st, 1, counter, strlen(counter))) == 0 &&
        (rc = sl_db_bind_int64(st, 2, amount)) == 0)
        rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

int tally_store_view_get(sl_db *db, const char *counter, int64_t *total, int64_t *events)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT total, events FROM tally_view WHERE counter = ?", &st);
    if (rc != 0) return rc;
    if ((rc = sl_db_bind_text(st, 1, counter, strlen(counter))) == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *total = sl_db_column_int64(st, 0);
        *events = sl_db_column_int64(st, 1);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}
