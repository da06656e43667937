/*
 * Parsing JSON request bodies with limits, and the bounded error list that
 * parsing and validation report into. The nesting depth is checked by an
 * iterative scan before jansson (whose parser recurses) ever sees the input.
 */
#include "json/json_int.h"

#include <shoal/json.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void sl_json_errors_init(sl_json_errors *errs)
{
    errs->count = 0;
    errs->dropped = 0;
}

size_t sl_json_errors_total(const sl_json_errors *errs)
{
    return errs->count + errs->dropped;
}

void sl_json_errors_add(sl_json_errors *errs, const char *field, const char *fmt, ...)
{
    if (!errs) return;
    if (errs->count >= SL_JSON_ERRORS_MAX) {
        errs->dropped++;
        return;
    }
    sl_json_error *e = &errs->items[errs->count++];
    if (!field) field = "";
    sl__json_utf8_copy(e->field, sizeof e->field, field, strlen(field));
    char msg[SL_JSON_MESSAGE_MAX * 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t used = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    sl__json_utf8_copy(e->message, sizeof e->message, msg, used);
}

/*
 * Returns 1 when no point of `buf` is nested deeper than `max` arrays/objects. Brackets
 * inside strings do not count; an escape skips the next byte so `"\""` stays a string.
 * The scan does not validate anything else: jansson does that afterwards.
 */
static int depth_within(const char *buf, size_t len, unsigned max)
{
    unsigned depth = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > max) return 0;
            break;
        case ']':
        case '}':
            if (depth > 0) depth--;
            break;
        default:
            break;
        }
    }
    return 1;
}

int sl_json_parse(const char *buf, size_t len, const sl_json_limits *lim, json_t **out,
                  sl_json_errors *errs)
{
    size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes : SL_JSON_DEFAULT_MAX_BYTES;
    unsigned max_depth = lim && lim->max_depth ? lim->max_depth : SL_JSON_DEFAULT_MAX_DEPTH;
    bool any_top = lim && lim->allow_any_top;
    *out = NULL;
    if (len > max_bytes) {
        sl_json_errors_add(errs, "", "body is larger than %zu bytes", max_bytes);
        return SL_ELIMIT;
    }
    if (!depth_within(buf, len, max_depth)) {
        sl_json_errors_add(errs, "", "JSON nests deeper than %u levels", max_depth);
        return SL_ELIMIT;
    }
    json_error_t jerr;
    /* JSON_DECODE_ANY so that a wrong top-level type gets our own error and code below. The
     * quick loader makes the same value in a fraction of the time, or cannot tell (jansson
     * then judges, and reports where the text goes wrong). */
    json_t *v = NULL;
    if (!sl_json_quick_load(buf, len, &v))
        v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!v) {
        if (json_error_code(&jerr) == json_error_out_of_memory) return SL_ENOMEM;
        sl_json_errors_add(errs, "", "invalid JSON at line %d, column %d: %s", jerr.line,
                           jerr.column, jerr.text);
        return SL_EPARSE;
    }
    if (!any_top && !json_is_object(v)) {
        json_decref(v);
        sl_json_errors_add(errs, "", "must be a JSON object");
        return SL_EINVAL;
    }
    *out = v;
    return 0;
}
