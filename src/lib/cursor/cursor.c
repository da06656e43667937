/*
 * Paging depth and keyset cursors (cursor.h). A cursor is the base64url
 * (auth.h's strict codec) of its fields joined by '\n'.
 */
#include <shoal/auth.h>
#include <shoal/cursor.h>

#include <string.h>

int sl_page_depth_check(int64_t page, int64_t per_page, sl_json_errors *errs)
{
    if (page <= 0 || per_page <= 0 || page <= SL_PAGE_DEPTH_MAX / per_page) return 0;
    sl_json_errors_add(errs, "page",
                       "page * per_page must be at most %d; lists that take a cursor walk "
                       "deeper with each answer's next_cursor",
                       SL_PAGE_DEPTH_MAX);
    return SL_EINVAL;
}

#define RAW_MAX (SL_CURSOR_FIELDS_MAX * (SL_CURSOR_FIELD_MAX + 1))

int sl_cursor_encode(const char *const *fields, size_t n, char *out, size_t cap)
{
    SL_ASSERT(fields || n == 0);
    SL_ASSERT(out && cap > 0);
    out[0] = '\0';
    if (n == 0 || n > SL_CURSOR_FIELDS_MAX) return SL_EINVAL;
    char raw[RAW_MAX];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(fields[i]);
        if (k > SL_CURSOR_FIELD_MAX || memchr(fields[i], '\n', k)) return SL_EINVAL;
        if (i) raw[len++] = '\n';
        memcpy(raw + len, fields[i], k);
        len += k;
    }
    if (len == 0) return SL_EINVAL; /* one empty field: nothing to encode */
    size_t olen = 0;
    int rc =
        sl_b64url_encode(raw, len, out, cap < SL_CURSOR_MAX + 1 ? cap : SL_CURSOR_MAX + 1, &olen);
    if (rc != 0) out[0] = '\0';
    return rc == 0 ? 0 : SL_ELIMIT;
}

int sl_cursor_decode(const char *in, size_t len, sl_cursor *out)
{
    SL_ASSERT(out && (in || len == 0));
    memset(out, 0, sizeof *out);
    if (len == 0 || len > SL_CURSOR_MAX) return SL_EINVAL;
    char raw[RAW_MAX];
    size_t n = 0;
    if (sl_b64url_decode(in, len, raw, sizeof raw, &n) != 0 || n == 0) return SL_EINVAL;
    if (memchr(raw, '\0', n)) return SL_EINVAL;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && raw[i] != '\n') continue;
        size_t k = i - start;
        if (out->n == SL_CURSOR_FIELDS_MAX || k > SL_CURSOR_FIELD_MAX) {
            memset(out, 0, sizeof *out);
            return SL_EINVAL;
        }
        memcpy(out->f[out->n], raw + start, k);
        out->f[out->n][k] = '\0';
        out->n++;
        start = i + 1;
    }
    return 0;
}
