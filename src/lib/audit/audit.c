/*
 * Set digests and the check shape of the audits (include/shoal/audit.h).
 */
#include <shoal/audit.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

uint64_t sl_audit_hash(const char *id, size_t len, int64_t amount)
{
    SL_ASSERT(id != NULL || len == 0);
    /* FNV-1a over the id, a separator and the amount's 8 bytes, then a 64-bit finaliser
     * (splitmix64's) so nearby inputs spread over the whole range before they are summed. */
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
    uint64_t a = (uint64_t)amount;
    for (int i = 0; i < 8; i++) {
        h ^= (a >> (8 * i)) & 0xff;
        h *= 1099511628211ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

void sl_audit_digest_add(sl_audit_digest *d, const char *id, size_t len, int64_t amount)
{
    SL_ASSERT(d != NULL);
    d->count++;
    d->amount = (int64_t)((uint64_t)d->amount + (uint64_t)amount);
    d->digest += sl_audit_hash(id, len, amount);
}

json_t *sl_audit_digest_json(const sl_audit_digest *d)
{
    SL_ASSERT(d != NULL);
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)d->digest);
    return json_pack("{s:I,s:I,s:s}", "count", (json_int_t)d->count, "amount",
                     (json_int_t)d->amount, "digest", hex);
}

json_t *sl_audit_check_new(const char *name, bool ok, json_t *value, const char *fmt, ...)
{
    SL_ASSERT(name != NULL);
    char detail[SL_AUDIT_DETAIL_MAX] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    return json_pack("{s:s,s:b,s:o,s:s}", "name", name, "ok", ok, "value",
                     value ? value : json_null(), "detail", detail);
}

json_t *sl_audit_outbox_check(int64_t backlog, int64_t oldest_ms)
{
    return sl_audit_check_new("outbox_backlog", oldest_ms <= SL_AUDIT_OUTBOX_GRACE_MS,
                              json_pack("{s:I,s:I}", "count", (json_int_t)backlog, "oldest_age_ms",
                                        (json_int_t)oldest_ms),
                              "%lld unpublished, the oldest %lld ms old", (long long)backlog,
                              (long long)oldest_ms);
}

int sl_audit_append(json_t *checks, json_t *check)
{
    if (check == NULL) return SL_ENOMEM;
    if (json_array_append_new(checks, check) != 0) return SL_ENOMEM;
    return 0;
}
