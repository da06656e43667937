/*
 * Idempotency keys on sl_db (idempotency.h). The claim is an insert that
 * does nothing on conflict; when it inserted nothing, the stored row tells
 * whether this is a replay or a mismatch. Both backends serialise two
 * claimants of one key on the row (SQLite: one writer; PostgreSQL: the
 * unique index waits for the first transaction), so the second sees the
 * first's committed answer.
 */
#include <shoal/idempotency.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int sl_idem_key_valid(const char *key, size_t len)
{
    if (!key || len == 0 || len > SL_IDEM_KEY_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e) return 0;
    return 1;
}

static void hash_hex(const void *req, size_t len, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, req, len);
    sodium_bin2hex(out, 65, h, sizeof h);
}

void sl_idem_result_free(sl_idem_result *r)
{
    if (r) {
        free(r->body);
        r->body = NULL;
        r->body_len = 0;
    }
}

int sl_idem_begin(sl_db *tx, const char *scope, const char *key, const void *req, size_t req_len,
                  int64_t now_ms, sl_idem_result *out)
{
    memset(out, 0, sizeof *out);
    if (!sl_idem_key_valid(key, key ? strlen(key) : 0) || !scope || !*scope ||
        strlen(scope) > SL_IDEM_KEY_MAX)
        return SL_EINVAL;
    if (!sl_db_in_tx(tx)) return SL_ESTATE;
    char hex[65];
    hash_hex(req ? req : "", req ? req_len : 0, hex);

    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "INSERT INTO idempotency_keys (scope, idem_key, request_hash, status, "
                           "created_ms) VALUES (?, ?, ?, 0, ?) ON CONFLICT DO NOTHING",
                           &st);
    if (rc != 0) return rc;
    if ((rc = sl_db_bind_text(st, 1, scope, strlen(scope))) == 0 &&
        (rc = sl_db_bind_text(st, 2, key, strlen(key))) == 0 &&
        (rc = sl_db_bind_text(st, 3, hex, 64)) == 0 && (rc = sl_db_bind_int64(st, 4, now_ms)) == 0)
        rc = sl_db_step(st);
    int64_t inserted = rc == SL_DB_DONE ? sl_db_changes(st) : 0;
    sl_db_stmt_done(st);
    if (rc < 0) return rc;
    if (inserted == 1) {
        out->state = SL_IDEM_NEW;
        return 0;
    }

    rc = sl_db_prepare(tx,
                       "SELECT request_hash, status, response FROM idempotency_keys "
                       "WHERE scope = ? AND idem_key = ?",
                       &st);
    if (rc != 0) return rc;
    if ((rc = sl_db_bind_text(st, 1, scope, strlen(scope))) == 0 &&
        (rc = sl_db_bind_text(st, 2, key, strlen(key))) == 0)
        rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        size_t hlen = 0, blen = 0;
        const char *h = sl_db_column_text(st, 0, &hlen);
        int status = (int)sl_db_column_int64(st, 1);
        const char *b = sl_db_column_text(st, 2, &blen);
        if (hlen != 64 || memcmp(h, hex, 64) != 0) {
            out->state = SL_IDEM_MISMATCH;
        } else {
            out->state = SL_IDEM_REPLAY;
            out->status = status;
            out->body = malloc(blen + 1);
            if (!out->body) {
                rc = SL_ENOMEM;
            } else {
                if (b && blen) memcpy(out->body, b, blen);
                out->body[blen] = '\0';
                out->body_len = blen;
            }
        }
        rc = rc == SL_ENOMEM ? rc : 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ECONFLICT; /* inserted nothing yet nothing there: a concurrent prune */
    }
    sl_db_stmt_done(st);
    return rc;
}

int sl_idem_finish(sl_db *tx, const char *scope, const char *key, int status, const char *body,
                   size_t body_len)
{
    if (body_len > SL_IDEM_BODY_MAX) return SL_ELIMIT;
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx,
                           "UPDATE idempotency_keys SET status = ?, response = ? "
                           "WHERE scope = ? AND idem_key = ? AND status = 0",
                           &st);
    if (rc != 0) return rc;
    if ((rc = sl_db_bind_int64(st, 1, status)) == 0 &&
        (rc = body ? sl_db_bind_text(st, 2, body, body_len) : sl_db_bind_null(st, 2)) == 0 &&
        (rc = sl_db_bind_text(st, 3, scope, strlen(scope))) == 0 &&
        (rc = sl_db_bind_text(st, 4, key, strlen(key))) == 0)
        rc = sl_db_step(st);
    int64_t n = rc == SL_DB_DONE ? sl_db_changes(st) : 0;
    sl_db_stmt_done(st);
    if (rc < 0) return rc;
    return n == 1 ? 0 : SL_ENOTFOUND;
}

int sl_idem_prune(sl_db *db, int64_t cutoff_ms, int64_t *removed)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, "DELETE FROM idempotency_keys WHERE created_ms < ?", &st);
    if (rc != 0) return rc;
    if ((rc = sl_db_bind_int64(st, 1, cutoff_ms)) == 0) rc = sl_db_step(st);
    if (rc == SL_DB_DONE && removed) *removed = sl_db_changes(st);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}
