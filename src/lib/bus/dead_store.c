/*
 * The `dead_letters` table (dead_store.h): prepared statements only.
 */
#include "bus/dead_store.h"

#include "bus/bus_int.h"

#include <stdlib.h>
#include <string.h>

static int run_write(sl_db *db, const char *consumer, const char *key, const char *topic,
                     const char *letter, size_t len, int64_t now_ms, int64_t max)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "DELETE FROM dead_letters WHERE consumer = ? AND dkey = ?", &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, consumer, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_text(st, 2, key, SIZE_MAX);
    if (rc != 0) {
        sl_db_stmt_done(st);
        return rc;
    }
    if ((rc = sl_db_run(st, NULL)) != 0) return rc;
    int64_t n = 0;
    if ((rc = sl__dead_store_count(db, &n)) != 0) return rc;
    if (n >= max) return SL_ELIMIT;
    rc = sl_db_prepare(db,
                       "INSERT INTO dead_letters (consumer, dkey, topic, letter, created_ms) "
                       "VALUES (?, ?, ?, ?, ?)",
                       &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, consumer, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_text(st, 2, key, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_text(st, 3, topic, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_text(st, 4, letter, len);
    if (rc == 0) rc = sl_db_bind_int64(st, 5, now_ms);
    if (rc != 0) {
        sl_db_stmt_done(st);
        return rc;
    }
    return sl_db_run(st, NULL);
}

int sl__dead_store_put(sl_db *db, const char *consumer, const char *key, const char *topic,
                       const char *letter, size_t len, int64_t now_ms, int64_t max)
{
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    rc = run_write(db, consumer, key, topic, letter, len, now_ms, max);
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) sl_db_rollback(db);
    return rc;
}

int sl__dead_store_list(sl_db *db, const char *topic, size_t max, sl_bus_dead *out, size_t *n)
{
    *n = 0;
    sl_db_stmt *st;
    int rc = sl_db_prepare(
        db, "SELECT seq, letter FROM dead_letters WHERE topic = ? ORDER BY seq LIMIT ?", &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, topic, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_int64(st, 2, (int64_t)max);
    int step = rc == 0 ? SL_DB_ROW : rc;
    while (rc == 0 && *n < max && (step = sl_db_step(st)) == SL_DB_ROW) {
        size_t len = 0;
        const char *letter = sl_db_column_text(st, 1, &len);
        char *env = NULL;
        size_t el = 0;
        if (sl__bus_dead_parse(letter, len, &out[*n], &env, &el) != 0) continue;
        free(env);
        out[*n].dlq_seq = (uint64_t)sl_db_column_int64(st, 0);
        (*n)++;
    }
    if (rc == 0 && step != SL_DB_ROW && step != SL_DB_DONE) rc = step;
    sl_db_stmt_done(st);
    return rc;
}

int sl__dead_store_envelope(sl_db *db, const char *topic, int64_t seq, char **env, size_t *len,
                            char *subject)
{
    *env = NULL;
    *len = 0;
    subject[0] = '\0';
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT letter FROM dead_letters WHERE seq = ? AND topic = ?", &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_int64(st, 1, seq);
    if (rc == 0) rc = sl_db_bind_text(st, 2, topic, SIZE_MAX);
    int step = rc == 0 ? sl_db_step(st) : rc;
    if (step == SL_DB_ROW) {
        size_t ll = 0;
        const char *letter = sl_db_column_text(st, 0, &ll);
        sl_bus_dead d;
        rc = sl__bus_dead_parse(letter, ll, &d, env, len);
        if (rc == 0 && *env == NULL) rc = SL_EPARSE;
        if (rc == 0) memcpy(subject, d.subject, sizeof d.subject);
    } else {
        rc = step == SL_DB_DONE ? SL_ENOTFOUND : step;
    }
    sl_db_stmt_done(st);
    if (rc != 0) {
        free(*env);
        *env = NULL;
        *len = 0;
    }
    return rc;
}

int sl__dead_store_delete(sl_db *db, int64_t seq)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "DELETE FROM dead_letters WHERE seq = ?", &st);
    if (rc != 0) return rc;
    if ((rc = sl_db_bind_int64(st, 1, seq)) != 0) {
        sl_db_stmt_done(st);
        return rc;
    }
    return sl_db_run(st, NULL);
}

int sl__dead_store_count(sl_db *db, int64_t *n)
{
    *n = 0;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT count(*) FROM dead_letters", &st);
    if (rc != 0) return rc;
    int step = sl_db_step(st);
    if (step == SL_DB_ROW)
        *n = sl_db_column_int64(st, 0);
    else
        rc = step == SL_DB_DONE ? SL_EIO : step;
    sl_db_stmt_done(st);
    return rc;
}
