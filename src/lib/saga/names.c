/*
 * Printable names of the saga enums (from the X-macro tables of saga.h),
 * their parsers, id and name validation, and the UTF-8 sanitiser used for
 * reasons and history details. Pure.
 */
#include "saga/saga_int.h"

#include <string.h>

static const char *const status_names[] = {
#define N_(name, text) text,
    SL_SAGA_STATUS_MAP(N_)
#undef N_
};
static const char *const step_status_names[] = {
#define N_(name, text) text,
    SL_SAGA_STEP_STATUS_MAP(N_)
#undef N_
};
static const char *const hist_names[] = {
#define N_(name, text) text,
    SL_SAGA_HIST_MAP(N_)
#undef N_
};
static const char *const phase_names[] = {"idle", "inflight", "waiting", "none"};

static int parse_name(const char *const *names, size_t n, const char *s, int *out)
{
    if (s == NULL) return SL_EPARSE;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return SL_EPARSE;
}

const char *sl_saga_status_name(sl_saga_status s)
{
    return (unsigned)s < SL_ARRAY_LEN(status_names) ? status_names[s] : "unknown";
}

const char *sl_saga_step_status_name(sl_saga_step_status s)
{
    return (unsigned)s < SL_ARRAY_LEN(step_status_names) ? step_status_names[s] : "unknown";
}

const char *sl_saga_hist_kind_name(sl_saga_hist_kind k)
{
    return (unsigned)k < SL_ARRAY_LEN(hist_names) ? hist_names[k] : "unknown";
}

const char *sl_saga_call_name(sl_saga_call_kind c)
{
    switch (c) {
    case SL_SAGA_ACTION:
        return "action";
    case SL_SAGA_COMPENSATION:
        return "compensation";
    }
    return "unknown";
}

const char *sl__saga_phase_name(sl_saga_phase p)
{
    return (unsigned)p < SL_ARRAY_LEN(phase_names) ? phase_names[p] : NULL;
}

int sl_saga_status_parse(const char *s, sl_saga_status *out)
{
    int v;
    if (parse_name(status_names, SL_ARRAY_LEN(status_names), s, &v) != 0) return SL_EPARSE;
    *out = (sl_saga_status)v;
    return 0;
}

int sl__saga_step_status_parse(const char *s, sl_saga_step_status *out)
{
    int v;
    if (parse_name(step_status_names, SL_ARRAY_LEN(step_status_names), s, &v) != 0)
        return SL_EPARSE;
    *out = (sl_saga_step_status)v;
    return 0;
}

int sl__saga_hist_kind_parse(const char *s, sl_saga_hist_kind *out)
{
    int v;
    if (parse_name(hist_names, SL_ARRAY_LEN(hist_names), s, &v) != 0) return SL_EPARSE;
    *out = (sl_saga_hist_kind)v;
    return 0;
}

int sl__saga_phase_parse(const char *s, sl_saga_phase *out)
{
    int v;
    if (parse_name(phase_names, SL_ARRAY_LEN(phase_names), s, &v) != 0) return SL_EPARSE;
    *out = (sl_saga_phase)v;
    return 0;
}

bool sl_saga_status_final(sl_saga_status s)
{
    return s == SL_SAGA_COMPLETED || s == SL_SAGA_COMPENSATED;
}

bool sl__saga_id_valid(const char *s)
{
    if (s == NULL) return false;
    size_t n = strlen(s);
    if (n == 0 || n > SL_SAGA_ID_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok) return false;
    }
    return true;
}

bool sl__saga_name_valid(const char *s)
{
    if (s == NULL) return false;
    size_t n = strlen(s);
    if (n == 0 || n > SL_SAGA_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/* Length of the valid UTF-8 sequence at s[0..len) (RFC 3629 §4: no overlongs, no surrogates,
 * nothing above U+10FFFF), or 0 when it is invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (len < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

size_t sl__saga_text_copy(char *dst, size_t cap, const char *src, size_t len)
{
    SL_ASSERT(dst != NULL && cap > 0 && (src != NULL || len == 0));
    size_t w = 0, i = 0;
    const unsigned char *s = (const unsigned char *)src;
    while (i < len) {
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0 || (n == 1 && s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7F) {
            if (w + 1 > cap - 1) break;
            dst[w++] = '?';
            i++;
            continue;
        }
        if (w + n > cap - 1) break;
        memcpy(dst + w, s + i, n);
        w += n;
        i += n;
    }
    dst[w] = '\0';
    return w;
}
