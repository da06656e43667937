/*
 * List paging limits and keyset cursors.
 *
 * `?page=&per_page=` lists read with OFFSET, so a deep page scans every row
 * before it: sl_page_depth_check() caps page × per_page. Deeper walks use a
 * keyset cursor: an opaque string (base64url, no padding) that carries the
 * sort key of the last row served; the next page reads the rows after it in
 * the same order, at the cost of an index seek, and rows inserted meanwhile
 * neither repeat nor shift the walk. A cursor holds 1..SL_CURSOR_FIELDS_MAX
 * text fields joined by '\n'; what they mean is up to the list that made it,
 * which must validate each field as it would any input.
 */
#ifndef SHOAL_CURSOR_H
#define SHOAL_CURSOR_H

#include <shoal/common.h>
#include <shoal/json.h>

#include <stddef.h>
#include <stdint.h>

#define SL_PAGE_DEPTH_MAX    10000 /* page × per_page */
#define SL_CURSOR_FIELDS_MAX 4
#define SL_CURSOR_FIELD_MAX  800  /* bytes per field (a product name: 200 code points) */
#define SL_CURSOR_MAX        4300 /* encoded bytes, accepted and produced */

/*
 * Returns 0 when page × per_page ≤ SL_PAGE_DEPTH_MAX; otherwise records an error on `page`
 * that points at `cursor` in `errs` and returns SL_EINVAL.
 */
SL_API int sl_page_depth_check(int64_t page, int64_t per_page, sl_json_errors *errs);

/* A decoded cursor: n fields, each NUL-terminated. */
typedef struct sl_cursor {
    size_t n;
    char f[SL_CURSOR_FIELDS_MAX][SL_CURSOR_FIELD_MAX + 1];
} sl_cursor;

/*
 * Encodes the `n` fields (borrowed; each ≤ SL_CURSOR_FIELD_MAX bytes without '\n' or NUL)
 * into `out` (`cap` bytes, NUL-terminated). Returns 0; SL_EINVAL for a bad field or n outside
 * 1..SL_CURSOR_FIELDS_MAX; SL_ELIMIT when `out` is too small.
 */
SL_API int sl_cursor_encode(const char *const *fields, size_t n, char *out,
                            size_t cap) SL_MUST_CHECK;

/*
 * Decodes `len` bytes of `in` (borrowed) into *out. Returns 0, or SL_EINVAL for anything
 * that sl_cursor_encode() could not have produced (too long, not base64url, a bad field
 * count or length, a NUL byte).
 */
SL_API int sl_cursor_decode(const char *in, size_t len, sl_cursor *out) SL_MUST_CHECK;

#endif /* SHOAL_CURSOR_H */
