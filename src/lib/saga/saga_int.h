/*
 * Internals shared by the saga engine, its JSON state codec and its store
 * (src/lib/saga): name tables and the text sanitiser that keeps reasons and
 * history details valid UTF-8 without NUL bytes (PostgreSQL TEXT and jansson
 * both reject anything else). Not part of the public API.
 */
#ifndef SHOAL_SAGA_INT_H
#define SHOAL_SAGA_INT_H

#include <shoal/saga.h>

#include <stddef.h>

/*
 * Copies at most cap - 1 bytes of src[0..len) into dst (cap >= 1) and NUL-terminates it.
 * Invalid UTF-8 sequences, NUL and other C0 controls except tab become '?', and the copy is
 * cut at a character boundary. Returns the bytes written (without the NUL).
 */
size_t sl__saga_text_copy(char *dst, size_t cap, const char *src, size_t len);

/* Name parsers (0 or SL_EPARSE). */
int sl__saga_step_status_parse(const char *s, sl_saga_step_status *out);
int sl__saga_hist_kind_parse(const char *s, sl_saga_hist_kind *out);

/* Phase names: "idle", "inflight", "waiting", "none"; NULL when out of range. */
const char *sl__saga_phase_name(sl_saga_phase p);
int sl__saga_phase_parse(const char *s, sl_saga_phase *out);

/* True when `s` is a valid saga id / name. */
bool sl__saga_id_valid(const char *s);
bool sl__saga_name_valid(const char *s);

/*
 * Registry claims (registry.c). claim: 0 when `id` is now (or already) held by `owner` (a new
 * claim remembers `now_ms`, the driver's wall clock, for sl_saga_registry_oldest_ms),
 * SL_EBUSY when another owner holds it, SL_ENOMEM. release: drops `owner`'s claim (no-op when
 * it holds none).
 */
int sl__saga_registry_claim(sl_saga_registry *r, const char *id, const void *owner, int64_t now_ms);
void sl__saga_registry_release(sl_saga_registry *r, const char *id, const void *owner);

#endif /* SHOAL_SAGA_INT_H */
