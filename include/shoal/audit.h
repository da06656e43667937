/*
 * Audit building blocks shared by the services' `/admin/audit` answers and
 * their readers (the gateway's join, `shoal audit`): a set digest that lets
 * two services compare the same set of (id, amount) pairs without shipping
 * the rows, and the one shape every check has, {name, ok, value, detail}.
 *
 * The digest of a set is its size, the sum of its amounts and the sum modulo
 * 2^64 of a 64-bit hash of each (id, amount). Sums commute, so the order in
 * which rows are read does not matter; equal digests mean equal sets (a
 * collision needs a difference of hashes that sums to zero, about 2^-64 per
 * comparison). Pure module: no I/O; thread-safe.
 */
#ifndef SHOAL_AUDIT_H
#define SHOAL_AUDIT_H

#include <shoal/common.h>

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a check's detail text, with the NUL. */
#define SL_AUDIT_DETAIL_MAX 512

typedef struct sl_audit_digest {
    int64_t count;   /* members */
    int64_t amount;  /* sum of their amounts */
    uint64_t digest; /* sum of sl_audit_hash over the members, mod 2^64 */
} sl_audit_digest;

/* The 64-bit hash of one member: `id` (len bytes, borrowed) with its amount. */
SL_API uint64_t sl_audit_hash(const char *id, size_t len, int64_t amount);

/* Adds one member to `d` (zero-initialise it first). */
SL_API void sl_audit_digest_add(sl_audit_digest *d, const char *id, size_t len, int64_t amount);

/* {"count": n, "amount": sum, "digest": "<16 hex digits>"}: returns a new reference or NULL. */
SL_API json_t *sl_audit_digest_json(const sl_audit_digest *d);

/*
 * One check: {"name", "ok", "value", "detail"}. Steals `value` (NULL becomes
 * null); `fmt` may be NULL for an empty detail. Returns a new reference or
 * NULL (out of memory; `value` is released either way).
 */
SL_API json_t *sl_audit_check_new(const char *name, bool ok, json_t *value, const char *fmt, ...)
    SL_PRINTF(4, 5);

/* An outbox whose oldest unpublished event is older than this fails `outbox_backlog`. */
#define SL_AUDIT_OUTBOX_GRACE_MS 60000

/*
 * The `outbox_backlog` check every service reports: `{count, oldest_age_ms}` from
 * sl_outbox_backlog, failing once the oldest event waited SL_AUDIT_OUTBOX_GRACE_MS. Returns a
 * new reference or NULL (out of memory).
 */
SL_API json_t *sl_audit_outbox_check(int64_t backlog, int64_t oldest_ms);

/* Appends `check` (stolen; NULL means out of memory) to the array `checks`. Returns 0 or
 * SL_ENOMEM. */
SL_API int sl_audit_append(json_t *checks, json_t *check);

#endif
