/*
 * Login throttling's storage: the failure counters of user_login_admit() in
 * the table login_failures, read and written in one short transaction per
 * attempt. The transaction first touches the global row, which serialises
 * every attempt of every worker and instance on it, so that concurrent
 * attempts are counted one after the other and none sees a stale counter.
 * Keys are hashes: the table holds neither emails nor addresses.
 */
#include "store.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define KEY_MAX 40 /* "a:" + 32 hex digits */

static void hash_key(char kind, const char *s, char out[KEY_MAX])
{
    unsigned char h[16];
    crypto_generichash(h, sizeof h, (const unsigned char *)s, strlen(s), NULL, 0);
    out[0] = kind;
    out[1] = ':';
    sodium_bin2hex(out + 2, KEY_MAX - 2, h, sizeof h);
}

/* Reads the counter under `key` (absent: zeros). */
static int load(sl_db *tx, const char *key, user_login_counter *c)
{
    *c = (user_login_counter){0, 0, 0};
    sl_db_stmt *st;
    int rc = sl_db_prepare(
        tx, "SELECT failures, last_ms, blocked_until_ms FROM login_failures WHERE key = ?", &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, key, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        c->failures = sl_db_column_int64(st, 0);
        c->last_ms = sl_db_column_int64(st, 1);
        c->blocked_until_ms = sl_db_column_int64(st, 2);
        rc = 0;
    }
    sl_db_stmt_done(st);
    return rc;
}

static int save(sl_db *tx, const char *key, const user_login_counter *c)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "INSERT INTO login_failures (key, failures, last_ms, blocked_until_ms) "
                           "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET failures = "
                           "excluded.failures, last_ms = excluded.last_ms, blocked_until_ms = "
                           "excluded.blocked_until_ms",
                           &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, key, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_int64(st, 2, c->failures);
    if (rc == 0) rc = sl_db_bind_int64(st, 3, c->last_ms);
    if (rc == 0) rc = sl_db_bind_int64(st, 4, c->blocked_until_ms);
    if (rc != 0) {
        sl_db_stmt_done(st);
        return rc;
    }
    return sl_db_run(st, NULL);
}

typedef struct counters {
    char akey[KEY_MAX], ckey[KEY_MAX];
    user_login_counter a, c, g;
} counters;

/* Begins the transaction, takes the global row's lock and loads the three counters. */
static int open_counters(sl_db *db, const char *email, const char *client, counters *k)
{
    if (email) hash_key('a', email, k->akey);
    hash_key('c', client, k->ckey);
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    sl_db_stmt *st;
    rc = sl_db_prepare(db, "UPDATE login_failures SET failures = failures WHERE key = 'g'", &st);
    if (rc == 0) rc = sl_db_run(st, NULL);
    if (rc == 0) rc = load(db, "g", &k->g);
    if (rc == 0 && email) rc = load(db, k->akey, &k->a);
    if (rc == 0) rc = load(db, k->ckey, &k->c);
    if (rc != 0) sl_db_rollback(db);
    return rc;
}

static int close_counters(sl_db *db, const char *email, const counters *k)
{
    int rc = save(db, "g", &k->g);
    if (rc == 0 && email) rc = save(db, k->akey, &k->a);
    if (rc == 0) rc = save(db, k->ckey, &k->c);
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) sl_db_rollback(db);
    return rc;
}

int user_login_begin(sl_db *db, const user_login_policy *p, const char *email, const char *client,
                     int64_t now_ms, int64_t *retry_ms)
{
    counters k;
    int rc = open_counters(db, email, client, &k);
    if (rc != 0) return rc;
    int verdict = user_login_admit(p, now_ms, email ? &k.a : NULL, &k.c, &k.g, retry_ms);
    /* A refusal still saves: decayed counters reset. */
    rc = close_counters(db, email, &k);
    return rc != 0 ? rc : verdict;
}

int user_login_success(sl_db *db, const user_login_policy *p, const char *email, const char *client,
                       int64_t now_ms)
{
    counters k;
    int rc = open_counters(db, email, client, &k);
    if (rc != 0) return rc;
    user_login_succeeded(p, &k.a, &k.c, &k.g);
    sl_db_stmt *st;
    rc = sl_db_prepare(db,
                       "DELETE FROM login_failures WHERE key <> 'g' AND last_ms < ? AND "
                       "blocked_until_ms < ?",
                       &st);
    if (rc == 0) rc = sl_db_bind_int64(st, 1, now_ms - p->window_ms);
    if (rc == 0) rc = sl_db_bind_int64(st, 2, now_ms);
    if (rc == 0) rc = sl_db_run(st, NULL);
    if (rc != 0) {
        sl_db_rollback(db);
        return rc;
    }
    return close_counters(db, email, &k);
}
