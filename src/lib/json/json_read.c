/*
 * The table-driven field validator. jansson's json_unpack names missing keys
 * but not mistyped ones and silently truncates "i" integers to int, so
 * each row of an sl_json_field table is checked by hand: type, null, bounds,
 * enum. Every error is collected with its path, for RFC 9457 `errors[]`.
 */
#include "json/json_int.h"

#include <shoal/json.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Room for a prefix and a name before sl_json_errors_add() truncates the result. */
#define PATH_BUF (SL_JSON_FIELD_MAX * 2)

int sl_json_path_key(char *buf, size_t cap, const char *prefix, const char *key)
{
    int n = (prefix && *prefix) ? snprintf(buf, cap, "%s.%s", prefix, key)
                                : snprintf(buf, cap, "%s", key);
    return (n < 0 || (size_t)n >= cap) ? SL_ELIMIT : 0;
}

int sl_json_path_index(char *buf, size_t cap, const char *prefix, size_t index)
{
    int n = snprintf(buf, cap, "%s[%zu]", prefix ? prefix : "", index);
    return (n < 0 || (size_t)n >= cap) ? SL_ELIMIT : 0;
}

static const char *plural(int64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static int bounded(const sl_json_field *f)
{
    return f->min != 0 || f->max != 0;
}

static size_t code_points(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

/* Records "must be one of: a, b, c", shortened with "..." when the list is long. */
static void enum_error(sl_json_errors *errs, const char *path, const char *const *allowed)
{
    char list[SL_JSON_MESSAGE_MAX - 20];
    size_t pos = 0;
    for (size_t i = 0; allowed[i]; i++) {
        size_t need = strlen(allowed[i]) + (i ? 2 : 0);
        if (pos + need + 4 >= sizeof list) {
            memcpy(list + pos, "...", 4);
            pos += 3;
            break;
        }
        pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", i ? ", " : "", allowed[i]);
    }
    list[pos] = '\0';
    sl_json_errors_add(errs, path, "must be one of: %s", list);
}

static int check_string(const sl_json_field *f, const json_t *v, const char *path,
                        sl_json_errors *errs)
{
    if (!json_is_string(v)) {
        sl_json_errors_add(errs, path, "must be a string");
        return 0;
    }
    const char *s = json_string_value(v);
    size_t bytes = json_string_length(v);
    if (strlen(s) != bytes) {
        sl_json_errors_add(errs, path, "must not contain NUL characters");
        return 0;
    }
    if (f->max_bytes && bytes > f->max_bytes) {
        sl_json_errors_add(errs, path, "must be at most %zu bytes", f->max_bytes);
        return 0;
    }
    if (bounded(f)) {
        int64_t chars = (int64_t)code_points(s, bytes);
        if (chars < f->min) {
            sl_json_errors_add(errs, path, "must be at least %" PRId64 " %s", f->min,
                               plural(f->min, "character", "characters"));
            return 0;
        }
        if (chars > f->max) {
            sl_json_errors_add(errs, path, "must be at most %" PRId64 " %s", f->max,
                               plural(f->max, "character", "characters"));
            return 0;
        }
    }
    if (f->allowed) {
        size_t i = 0;
        while (f->allowed[i] && strcmp(f->allowed[i], s) != 0)
            i++;
        if (!f->allowed[i]) {
            enum_error(errs, path, f->allowed);
            return 0;
        }
    }
    if (f->out) *(const char **)f->out = s;
    return 1;
}

static int check_int(const sl_json_field *f, const json_t *v, const char *path,
                     sl_json_errors *errs)
{
    /* json_is_integer is false for reals such as 2.0 or 1e3: those are rejected on purpose. */
    if (!json_is_integer(v)) {
        sl_json_errors_add(errs, path, "must be an integer");
        return 0;
    }
    int64_t x = (int64_t)json_integer_value(v); /* json_int_t is long long: no truncation */
    if (bounded(f) && x < f->min) {
        sl_json_errors_add(errs, path, "must be at least %" PRId64, f->min);
        return 0;
    }
    if (bounded(f) && x > f->max) {
        sl_json_errors_add(errs, path, "must be at most %" PRId64, f->max);
        return 0;
    }
    if (f->out) *(int64_t *)f->out = x;
    return 1;
}

static int check_number(const sl_json_field *f, const json_t *v, const char *path,
                        sl_json_errors *errs)
{
    if (!json_is_number(v)) {
        sl_json_errors_add(errs, path, "must be a number");
        return 0;
    }
    double x = json_number_value(v);
    if (bounded(f) && x < (double)f->min) {
        sl_json_errors_add(errs, path, "must be at least %" PRId64, f->min);
        return 0;
    }
    if (bounded(f) && x > (double)f->max) {
        sl_json_errors_add(errs, path, "must be at most %" PRId64, f->max);
        return 0;
    }
    if (f->out) *(double *)f->out = x;
    return 1;
}

static int check_array(const sl_json_field *f, const json_t *v, const char *path,
                       sl_json_errors *errs)
{
    if (!json_is_array(v)) {
        sl_json_errors_add(errs, path, "must be an array");
        return 0;
    }
    int64_t items = (int64_t)json_array_size(v);
    if (bounded(f) && items < f->min) {
        sl_json_errors_add(errs, path, "must have at least %" PRId64 " %s", f->min,
                           plural(f->min, "item", "items"));
        return 0;
    }
    if (bounded(f) && items > f->max) {
        sl_json_errors_add(errs, path, "must have at most %" PRId64 " %s", f->max,
                           plural(f->max, "item", "items"));
        return 0;
    }
    if (f->out) *(json_t **)f->out = (json_t *)v;
    return 1;
}

/* Checks one present, non-null value against its row. Returns 1 when valid. */
static int check_value(const sl_json_field *f, const json_t *v, const char *path,
                       sl_json_errors *errs)
{
    switch (f->kind) {
    case SL_JSON_STRING:
        return check_string(f, v, path, errs);
    case SL_JSON_INT:
        return check_int(f, v, path, errs);
    case SL_JSON_NUMBER:
        return check_number(f, v, path, errs);
    case SL_JSON_ARRAY:
        return check_array(f, v, path, errs);
    case SL_JSON_BOOL:
        if (!json_is_boolean(v)) {
            sl_json_errors_add(errs, path, "must be a boolean");
            return 0;
        }
        if (f->out) *(bool *)f->out = json_is_true(v);
        return 1;
    case SL_JSON_OBJECT:
        if (!json_is_object(v)) {
            sl_json_errors_add(errs, path, "must be an object");
            return 0;
        }
        if (f->out) *(json_t **)f->out = (json_t *)v;
        return 1;
    }
    sl_json_errors_add(errs, path, "has an unknown kind in the validation table");
    return 0;
}

static void join(char *buf, const char *prefix, const char *name)
{
    if (sl_json_path_key(buf, PATH_BUF, prefix, name) != 0) {
        /* Cut: sl_json_errors_add() shortens it further on a UTF-8 boundary. */
        buf[PATH_BUF - 1] = '\0';
    }
}

static int known(const sl_json_field *fields, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fields[i].name, key) == 0) return 1;
    return 0;
}

int sl_json_read_at(const json_t *obj, const char *prefix, const sl_json_field *fields, size_t n,
                    unsigned flags, sl_json_errors *errs)
{
    if (!json_is_object(obj)) {
        sl_json_errors_add(errs, prefix, "must be an object");
        return SL_EINVAL;
    }
    int bad = 0;
    char path[PATH_BUF];
    for (size_t i = 0; i < n; i++) {
        const sl_json_field *f = &fields[i];
        const json_t *v = json_object_get(obj, f->name);
        if (!v || (json_is_null(v) && (f->flags & SL_JSON_NULLABLE))) {
            if (v || !(f->flags & SL_JSON_REQUIRED)) continue;
            join(path, prefix, f->name);
            sl_json_errors_add(errs, path, "is required");
            bad = 1;
            continue;
        }
        join(path, prefix, f->name);
        if (json_is_null(v)) {
            sl_json_errors_add(errs, path, "must not be null");
            bad = 1;
        } else if (!check_value(f, v, path, errs)) {
            bad = 1;
        }
    }
    if (flags & SL_JSON_REJECT_UNKNOWN) {
        const char *key;
        json_t *v;
        /* jansson's iterator API takes a non-const object; it does not modify it. */
        json_object_foreach((json_t *)obj, key, v)
        {
            if (known(fields, n, key)) continue;
            join(path, prefix, key);
            sl_json_errors_add(errs, path, "is not allowed");
            bad = 1;
        }
    }
    return bad ? SL_EINVAL : 0;
}

int sl_json_read(const json_t *obj, const sl_json_field *fields, size_t n, unsigned flags,
                 sl_json_errors *errs)
{
    return sl_json_read_at(obj, NULL, fields, n, flags, errs);
}

int sl_json_read_money(const json_t *v, const char *path, int64_t amount_min, int64_t amount_max,
                       int64_t *amount, char currency[4], sl_json_errors *errs)
{
    SL_ASSERT(amount != NULL && currency != NULL && amount_min < amount_max);
    int64_t value = 0;
    const char *cur = NULL;
    const sl_json_field f[] = {
        {.name = "amount",
         .kind = SL_JSON_INT,
         .flags = SL_JSON_REQUIRED,
         .min = amount_min,
         .max = amount_max,
         .out = &value},
        {.name = "currency",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 3,
         .max = 3,
         .max_bytes = 3,
         .out = &cur},
    };
    if (sl_json_read_at(v, path, f, SL_ARRAY_LEN(f), 0, errs) != 0) return SL_EINVAL;
    for (int i = 0; i < 3; i++) {
        if (cur[i] < 'A' || cur[i] > 'Z') {
            char at[PATH_BUF];
            join(at, path, "currency");
            sl_json_errors_add(errs, at, "must be three upper-case letters (ISO 4217)");
            return SL_EINVAL;
        }
    }
    *amount = value;
    memcpy(currency, cur, 4);
    return 0;
}
