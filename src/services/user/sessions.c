/*
 * Sessions and refresh tokens (store.h, "sessions"): the SQL of login,
 * refresh, logout and revocation. A refresh token is 32 random bytes in
 * base64url; only its SHA-256 is stored. Every write runs in one short
 * transaction; revocations take the next number of session_revocations,
 * which serialises them and orders them for the gateway's poll.
 */
#include "store.h"

#include <shoal/id.h>
#include <shoal/rand.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define HASH_HEX (2 * crypto_hash_sha256_BYTES + 1)

static void token_hash(const char *token, char out[HASH_HEX])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(out, HASH_HEX, h, sizeof h);
}

/* Runs `sql` with text (t) and integer (i) arguments as `kinds` says ("tti"...). */
static int run(sl_db *db, const char *sql, const char *kinds, const char *const *t,
               const int64_t *i, int64_t *changes)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    size_t ti = 0, ii = 0;
    for (int k = 0; rc == 0 && kinds[k]; k++)
        rc = kinds[k] == 't' ? sl_db_bind_text(st, k + 1, t[ti++], SIZE_MAX)
                             : sl_db_bind_int64(st, k + 1, i[ii++]);
    if (rc != 0) {
        sl_db_stmt_done(st);
        return rc;
    }
    return sl_db_run(st, changes);
}

static int new_refresh(sl_db *tx, const char *sid, int64_t now_ms,
                       char token[USER_REFRESH_TOKEN_MAX + 1])
{
    unsigned char raw[32];
    size_t n = 0;
    int rc = sl_rand_secure_bytes(raw, sizeof raw);
    if (rc == 0) rc = sl_b64url_encode(raw, sizeof raw, token, USER_REFRESH_TOKEN_MAX + 1, &n);
    sodium_memzero(raw, sizeof raw);
    if (rc != 0) return rc;
    char h[HASH_HEX];
    token_hash(token, h);
    const char *t[] = {h, sid};
    const int64_t i[] = {now_ms};
    return run(tx,
               "INSERT INTO refresh_tokens (hash, session_id, created_ms, spent_ms) VALUES (?, ?, "
               "?, NULL)",
               "tti", t, i, NULL);
}

int user_session_open(sl_db *db, const char *user_id, int64_t now_ms, int64_t ttl_ms,
                      char sid[SL_DB_UUID_STR], char token[USER_REFRESH_TOKEN_MAX + 1])
{
    int rc = sl_uuid7_at(now_ms, sid);
    if (rc != 0) return rc;
    rc = sl_db_begin(db);
    if (rc != 0) return rc;
    const char *t[] = {sid, user_id};
    const int64_t i[] = {now_ms, now_ms + ttl_ms};
    rc = run(db,
             "INSERT INTO sessions (id, user_id, created_ms, expires_ms, revoked_ms, revoked_seq) "
             "VALUES (?, ?, ?, ?, NULL, NULL)",
             "ttii", t, i, NULL);
    if (rc == 0) rc = new_refresh(db, sid, now_ms, token);
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) sl_db_rollback(db);
    return rc;
}

/* Revokes session `sid` (or every live session of `user_id` when sid is NULL) in `tx`. */
static int revoke_in_tx(sl_db *tx, const char *sid, const char *user_id, int64_t now_ms)
{
    int rc =
        run(tx, "UPDATE session_revocations SET seq = seq + 1 WHERE id = 1", "", NULL, NULL, NULL);
    if (rc != 0) return rc;
    const char *t[] = {sid ? sid : user_id};
    const int64_t i[] = {now_ms};
    return run(tx,
               sid ? "UPDATE sessions SET revoked_ms = ?, revoked_seq = (SELECT seq FROM "
                     "session_revocations WHERE id = 1) WHERE id = ? AND revoked_ms IS NULL"
                   : "UPDATE sessions SET revoked_ms = ?, revoked_seq = (SELECT seq FROM "
                     "session_revocations WHERE id = 1) WHERE user_id = ? AND revoked_ms IS NULL",
               "it", t, i, NULL);
}

int user_sessions_revoke_user(sl_db *tx, const char *user_id, int64_t now_ms)
{
    return revoke_in_tx(tx, NULL, user_id, now_ms);
}

/* Looks the token up: its session, whether it was spent, the session's user and state. */
typedef struct token_row {
    char sid[SL_DB_UUID_STR];
    char user_id[USER_ID_MAX + 1];
    int spent, revoked;
    int64_t expires_ms;
} token_row;

static int find_token(sl_db *tx, const char *hash, token_row *r)
{
    memset(r, 0, sizeof *r);
    sl_db_stmt *st;
    int rc =
        sl_db_prepare(tx,
                      "SELECT s.id, s.user_id, CASE WHEN t.spent_ms IS NULL THEN 0 ELSE 1 END, "
                      "CASE WHEN s.revoked_ms IS NULL THEN 0 ELSE 1 END, s.expires_ms FROM "
                      "refresh_tokens t JOIN sessions s ON s.id = "
                      "t.session_id WHERE t.hash = ?",
                      &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, hash, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        sl_db_column_copy(st, 0, r->sid, sizeof r->sid);
        sl_db_column_copy(st, 1, r->user_id, sizeof r->user_id);
        r->spent = sl_db_column_int64(st, 2) != 0;
        r->revoked = sl_db_column_int64(st, 3) != 0;
        r->expires_ms = sl_db_column_int64(st, 4);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

int user_session_refresh(sl_db *db, const char *token, int64_t now_ms, user_refreshed *out)
{
    memset(out, 0, sizeof *out);
    char h[HASH_HEX];
    token_hash(token, h);
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    /* Serialise with other revocations first, so a concurrent reuse is seen. */
    rc = run(db, "UPDATE session_revocations SET seq = seq WHERE id = 1", "", NULL, NULL, NULL);
    token_row r;
    if (rc == 0) rc = find_token(db, h, &r);
    int verdict = 0;
    if (rc == 0 && r.spent) {
        /* A spent token again: one of its holders is a thief. End the session. */
        rc = revoke_in_tx(db, r.sid, NULL, now_ms);
        verdict = SL_ESTATE;
    } else if (rc == 0 && (r.revoked || r.expires_ms <= now_ms)) {
        verdict = SL_ESTATE;
    } else if (rc == 0) {
        const char *t[] = {h};
        const int64_t i[] = {now_ms};
        int64_t changed = 0;
        rc = run(db, "UPDATE refresh_tokens SET spent_ms = ? WHERE hash = ? AND spent_ms IS NULL",
                 "it", t, i, &changed);
        if (rc == 0 && changed != 1) rc = SL_ECONFLICT;
        if (rc == 0) rc = new_refresh(db, r.sid, now_ms, out->refresh_token);
        if (rc == 0) {
            memcpy(out->sid, r.sid, sizeof out->sid);
            memcpy(out->user_id, r.user_id, sizeof out->user_id);
        }
    }
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) {
        sl_db_rollback(db);
        memset(out, 0, sizeof *out);
        return rc == SL_ENOTFOUND ? SL_ESTATE : rc;
    }
    if (verdict != 0) memset(out, 0, sizeof *out);
    return verdict;
}

int user_session_logout(sl_db *db, const char *token, int64_t now_ms)
{
    char h[HASH_HEX];
    token_hash(token, h);
    int rc = sl_db_begin(db);
    if (rc != 0) return rc;
    token_row r;
    rc = find_token(db, h, &r);
    if (rc == 0 && !r.revoked) rc = revoke_in_tx(db, r.sid, NULL, now_ms);
    if (rc == SL_ENOTFOUND) rc = 0; /* nothing to end: the same answer (no oracle) */
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) sl_db_rollback(db);
    return rc;
}

int user_sessions_revoked(sl_db *db, int64_t after, int64_t since_ms, size_t max, user_revoked *out,
                          size_t *n, int64_t *last)
{
    *n = 0;
    *last = after;
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "SELECT id, revoked_seq, revoked_ms FROM sessions WHERE revoked_seq > "
                           "? ORDER BY revoked_seq LIMIT ?",
                           &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_int64(st, 1, after);
    if (rc == 0) rc = sl_db_bind_int64(st, 2, (int64_t)max);
    size_t read = 0;
    int64_t first = 0;
    while (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        rc = 0;
        *last = sl_db_column_int64(st, 1);
        if (read++ == 0) first = *last;
        if (sl_db_column_int64(st, 2) < since_ms) continue; /* its tokens have expired */
        sl_db_column_copy(st, 0, out[*n].sid, sizeof out[*n].sid);
        out[*n].revoked_ms = sl_db_column_int64(st, 2);
        (*n)++;
    }
    sl_db_stmt_done(st);
    /* One revocation may end several sessions (one number): a full read may have cut the last
     * number's group, so the next read starts at it again (the gateway's set takes repeats). */
    if (read == max && first < *last) (*last)--;
    return rc == SL_DB_DONE ? 0 : rc;
}

int user_sessions_revoked_head(sl_db *db, int64_t *seq)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "SELECT seq FROM session_revocations WHERE id = 1", &st);
    if (rc != 0) return rc;
    rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *seq = sl_db_column_int64(st, 0);
        rc = 0;
    }
    sl_db_stmt_done(st);
    return rc;
}
