/*
 * The OTLP/HTTP JSON decoder of the receiver (traces.h): ExportTraceServiceRequest →
 * traces_batch. Shape (OTLP JSON encoding of opentelemetry.proto.collector.trace.v1):
 *
 *   {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name",
 *                                                  "value":{"stringValue":"order"}}]},
 *                      "scopeSpans":[{"scope":{...},"spans":[{
 *       "traceId":"<32 hex>","spanId":"<16 hex>","parentSpanId":"<16 hex or empty>",
 *       "name":"...","kind":2,"startTimeUnixNano":"<decimal>","endTimeUnixNano":"<decimal>",
 *       "attributes":[{"key":"...","value":{"stringValue"|"intValue"|"boolValue"|
 *                                            "doubleValue": ...}}],
 *       "links":[{"traceId":"...","spanId":"..."}],
 *       "status":{"code":2,"message":"..."}}]}]}]}
 *
 * Unknown members are ignored (the encoding's rule for forward compatibility); a member that
 * is present with the wrong type or value is an error naming its path. Pure.
 */
#include "traces.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ctx {
    char *field; /* TRACES_FIELD_MAX */
    char *msg;   /* TRACES_MSG_MAX */
} ctx;

static int fail(ctx *c, const char *path, const char *fmt, ...) SL_PRINTF(3, 4);
static int fail(ctx *c, const char *path, const char *fmt, ...)
{
    snprintf(c->field, TRACES_FIELD_MAX, "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, TRACES_MSG_MAX, fmt, ap);
    va_end(ap);
    return SL_EINVAL;
}

/* Writes a field path (cut at TRACES_FIELD_MAX bytes). */
static void path_of(char *out, const char *fmt, ...) SL_PRINTF(2, 3);
static void path_of(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, TRACES_FIELD_MAX, fmt, ap);
    va_end(ap);
}

void traces_batch_free(traces_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) {
        json_decref(b->spans[i].attributes);
        json_decref(b->spans[i].links);
    }
    free(b->spans);
    memset(b, 0, sizeof *b);
}

const char *traces_kind_name(int kind)
{
    switch (kind) {
    case TRACES_KIND_SERVER:
        return "server";
    case TRACES_KIND_CLIENT:
        return "client";
    case TRACES_KIND_PRODUCER:
        return "producer";
    case TRACES_KIND_CONSUMER:
        return "consumer";
    default:
        return "internal";
    }
}

const char *traces_status_name(int status)
{
    switch (status) {
    case TRACES_STATUS_OK:
        return "ok";
    case TRACES_STATUS_ERROR:
        return "error";
    default:
        return "unset";
    }
}

/* Copies s (len bytes) into dst (cap bytes incl. NUL), cut on a UTF-8 boundary. */
static void copy_cut(char *dst, size_t cap, const char *s, size_t len)
{
    if (len >= cap) {
        len = cap - 1;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
}

/* A hex id of `digits` digits, not all zero, into out (lowercase). Returns 1 when valid. */
static int hex_id(const char *s, size_t len, size_t digits, char *out)
{
    if (len != digits) return 0;
    int nonzero = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'F') ch = (char)(ch - 'A' + 'a');
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return 0;
        if (ch != '0') nonzero = 1;
        out[i] = ch;
    }
    out[len] = '\0';
    return nonzero;
}

/* Reads member `key` of `obj` as an id; `optional`: absent or "" gives "". */
static int read_id(ctx *c, const json_t *obj, const char *key, size_t digits, int optional,
                   const char *path, char *out)
{
    char p[TRACES_FIELD_MAX];
    path_of(p, "%s.%s", path, key);
    const json_t *v = json_object_get(obj, key);
    out[0] = '\0';
    if (!v || (json_is_string(v) && json_string_length(v) == 0)) {
        if (optional) return 0;
        return fail(c, p, "is required");
    }
    if (!json_is_string(v) || !hex_id(json_string_value(v), json_string_length(v), digits, out))
        return fail(c, p, "must be %zu hex digits, not all zero", digits);
    return 0;
}

/* A fixed64 nanosecond time: a decimal string (the JSON encoding of 64-bit integers) or a
 * non-negative integer. */
static int read_time(ctx *c, const json_t *obj, const char *key, const char *path, int64_t *out)
{
    char p[TRACES_FIELD_MAX];
    path_of(p, "%s.%s", path, key);
    const json_t *v = json_object_get(obj, key);
    if (!v) return fail(c, p, "is required");
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 0 || len > 19) goto bad;
        int64_t x = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') goto bad;
            if (x > (INT64_MAX - (s[i] - '0')) / 10) goto bad;
            x = x * 10 + (s[i] - '0');
        }
        *out = x;
        return 0;
    }
bad:
    return fail(c, p, "must be a decimal string of nanoseconds since the epoch");
}

/* An enum: a number within [0, max], or one of `names` (index = value); absent gives 0. */
static int read_enum(ctx *c, const json_t *obj, const char *key, const char *path,
                     const char *const *names, int max, int *out)
{
    char p[TRACES_FIELD_MAX];
    path_of(p, "%s.%s", path, key);
    const json_t *v = json_object_get(obj, key);
    *out = 0;
    if (!v) return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= max) {
        *out = (int)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v))
        for (int i = 0; i <= max; i++)
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = i;
                return 0;
            }
    return fail(c, p, "must be an integer 0..%d or its enum name", max);
}

/* Optional array member: absent → NULL (ok); present and not an array → error. */
static int read_array(ctx *c, const json_t *obj, const char *key, const char *path,
                      const json_t **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) {
        char p[TRACES_FIELD_MAX];
        path_of(p, "%s.%s", path, key);
        return fail(c, p, "must be an array");
    }
    *out = v;
    return 0;
}

/* An AnyValue into a JSON scalar (new reference), or NULL for a type not kept. Errors for a
 * present but malformed value. */
static int any_value(ctx *c, const json_t *v, const char *path, json_t **out)
{
    *out = NULL;
    if (!json_is_object(v)) return fail(c, path, "must be an object (AnyValue)");
    const json_t *x;
    if ((x = json_object_get(v, "stringValue"))) {
        if (!json_is_string(x)) return fail(c, path, "stringValue must be a string");
        char buf[TRACES_ATTR_VALUE_MAX + 1];
        copy_cut(buf, sizeof buf, json_string_value(x), json_string_length(x));
        *out = json_string(buf);
        return *out ? 0 : SL_ENOMEM;
    }
    if ((x = json_object_get(v, "intValue"))) {
        json_int_t n = 0;
        if (json_is_integer(x)) {
            n = json_integer_value(x);
        } else if (json_is_string(x)) {
            const char *s = json_string_value(x);
            size_t len = json_string_length(x), i = 0;
            int neg = len > 0 && s[0] == '-';
            i = (size_t)neg;
            if (len == i || len > 20) return fail(c, path, "intValue must be a 64-bit integer");
            uint64_t u = 0;
            for (; i < len; i++) {
                if (s[i] < '0' || s[i] > '9' || u > (UINT64_MAX - 9) / 10)
                    return fail(c, path, "intValue must be a 64-bit integer");
                u = u * 10 + (uint64_t)(s[i] - '0');
            }
            if ((!neg && u > (uint64_t)INT64_MAX) || (neg && u > (uint64_t)INT64_MAX + 1))
                return fail(c, path, "intValue must be a 64-bit integer");
            n = neg ? (json_int_t)(0 - u) : (json_int_t)u;
        } else {
            return fail(c, path, "intValue must be a 64-bit integer");
        }
        *out = json_integer(n);
        return *out ? 0 : SL_ENOMEM;
    }
    if ((x = json_object_get(v, "boolValue"))) {
        if (!json_is_boolean(x)) return fail(c, path, "boolValue must be true or false");
        *out = json_boolean(json_is_true(x));
        return *out ? 0 : SL_ENOMEM;
    }
    if ((x = json_object_get(v, "doubleValue"))) {
        if (!json_is_number(x)) return fail(c, path, "doubleValue must be a number");
        *out = json_real(json_number_value(x));
        return *out ? 0 : SL_ENOMEM;
    }
    return 0; /* arrayValue, kvlistValue, bytesValue or empty: not kept */
}

/* Reads an attributes array into `into` (an object; may be NULL to only validate and find
 * service.name / shoal.order_id). */
static int read_attrs(ctx *c, const json_t *arr, const char *path, json_t *into, size_t *dropped,
                      char *service, char *order_id)
{
    size_t i;
    const json_t *kv;
    json_array_foreach(arr, i, kv)
    {
        char p[TRACES_FIELD_MAX];
        path_of(p, "%s[%zu]", path, i);
        if (!json_is_object(kv)) return fail(c, p, "must be an object {key, value}");
        const json_t *k = json_object_get(kv, "key");
        if (!json_is_string(k)) {
            char q[TRACES_FIELD_MAX];
            path_of(q, "%s.key", p);
            return fail(c, q, "must be a string");
        }
        const json_t *v = json_object_get(kv, "value");
        json_t *val = NULL;
        if (v) {
            char q[TRACES_FIELD_MAX];
            path_of(q, "%s.value", p);
            int rc = any_value(c, v, q, &val);
            if (rc != 0) return rc;
        }
        const char *key = json_string_value(k);
        size_t klen = json_string_length(k);
        if (!val || klen == 0 || klen > TRACES_ATTR_KEY_MAX || strlen(key) != klen) {
            json_decref(val);
            (*dropped)++;
            continue;
        }
        if (service && strcmp(key, "service.name") == 0 && json_is_string(val))
            copy_cut(service, TRACES_SERVICE_MAX + 1, json_string_value(val),
                     json_string_length(val));
        if (order_id && strcmp(key, "shoal.order_id") == 0 && json_is_string(val) &&
            json_string_length(val) <= TRACES_ORDER_ID_MAX)
            snprintf(order_id, TRACES_ORDER_ID_MAX + 1, "%s", json_string_value(val));
        if (!into || (json_object_size(into) >= TRACES_ATTRS_MAX && !json_object_get(into, key))) {
            json_decref(val);
            if (into) (*dropped)++;
            continue;
        }
        if (json_object_set_new(into, key, val) != 0) return SL_ENOMEM;
    }
    return 0;
}

static const char *const kind_names[] = {"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL",
                                         "SPAN_KIND_SERVER",      "SPAN_KIND_CLIENT",
                                         "SPAN_KIND_PRODUCER",    "SPAN_KIND_CONSUMER"};
static const char *const status_names[] = {"STATUS_CODE_UNSET", "STATUS_CODE_OK",
                                           "STATUS_CODE_ERROR"};

static int read_span(ctx *c, const json_t *sp, const char *path, const char *service,
                     traces_batch *b)
{
    if (!json_is_object(sp)) return fail(c, path, "must be an object (Span)");
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        traces_span *ns = realloc(b->spans, cap * sizeof *ns);
        if (!ns) return SL_ENOMEM;
        b->spans = ns;
        b->cap = cap;
    }
    traces_span *s = &b->spans[b->n];
    memset(s, 0, sizeof *s);
    snprintf(s->service, sizeof s->service, "%s", service);
    int rc;
    if ((rc = read_id(c, sp, "traceId", 32, 0, path, s->trace_id)) != 0 ||
        (rc = read_id(c, sp, "spanId", 16, 0, path, s->span_id)) != 0 ||
        (rc = read_id(c, sp, "parentSpanId", 16, 1, path, s->parent_span_id)) != 0 ||
        (rc = read_enum(c, sp, "kind", path, kind_names, 5, &s->kind)) != 0 ||
        (rc = read_time(c, sp, "startTimeUnixNano", path, &s->start_ns)) != 0 ||
        (rc = read_time(c, sp, "endTimeUnixNano", path, &s->end_ns)) != 0)
        return rc;
    char p[TRACES_FIELD_MAX];
    if (s->end_ns < s->start_ns) {
        path_of(p, "%s.endTimeUnixNano", path);
        return fail(c, p, "must not be before startTimeUnixNano");
    }
    const json_t *name = json_object_get(sp, "name");
    if (name && !json_is_string(name)) {
        path_of(p, "%s.name", path);
        return fail(c, p, "must be a string");
    }
    if (name) copy_cut(s->name, sizeof s->name, json_string_value(name), json_string_length(name));
    const json_t *st = json_object_get(sp, "status");
    if (st && !json_is_null(st)) {
        path_of(p, "%s.status", path);
        if (!json_is_object(st)) return fail(c, p, "must be an object {code, message}");
        if ((rc = read_enum(c, st, "code", p, status_names, 2, &s->status)) != 0) return rc;
        const json_t *m = json_object_get(st, "message");
        if (m && !json_is_string(m)) {
            path_of(p, "%s.status.message", path);
            return fail(c, p, "must be a string");
        }
        if (m)
            copy_cut(s->status_message, sizeof s->status_message, json_string_value(m),
                     json_string_length(m));
    }
    /* The span owns its JSON from here: counted in b->n so a failure frees it. */
    s->attributes = json_object();
    s->links = json_array();
    b->n++;
    if (!s->attributes || !s->links) return SL_ENOMEM;
    const json_t *attrs, *links;
    if ((rc = read_array(c, sp, "attributes", path, &attrs)) != 0 ||
        (rc = read_array(c, sp, "links", path, &links)) != 0)
        return rc;
    if (attrs) {
        path_of(p, "%s.attributes", path);
        if ((rc = read_attrs(c, attrs, p, s->attributes, &b->dropped_attributes, NULL,
                             s->order_id)) != 0)
            return rc;
    }
    size_t i;
    const json_t *l;
    json_array_foreach(links, i, l)
    {
        char lp[TRACES_FIELD_MAX];
        path_of(lp, "%s.links[%zu]", path, i);
        if (!json_is_object(l)) return fail(c, lp, "must be an object (Link)");
        char tid[33], sid[17];
        if ((rc = read_id(c, l, "traceId", 32, 0, lp, tid)) != 0 ||
            (rc = read_id(c, l, "spanId", 16, 0, lp, sid)) != 0)
            return rc;
        if (json_array_size(s->links) >= TRACES_LINKS_MAX) {
            b->dropped_links++;
            continue;
        }
        json_t *o = json_pack("{s:s, s:s}", "trace_id", tid, "span_id", sid);
        if (!o || json_array_append_new(s->links, o) != 0) return SL_ENOMEM;
    }
    return 0;
}

int traces_decode(const json_t *root, traces_batch *out, char *field, char *msg)
{
    SL_ASSERT(out != NULL && field != NULL && msg != NULL);
    ctx c = {field, msg};
    field[0] = msg[0] = '\0';
    if (!json_is_object(root)) return fail(&c, "", "must be an object (ExportTraceServiceRequest)");
    const json_t *rss;
    int rc = read_array(&c, root, "resourceSpans", "", &rss);
    if (rc != 0) {
        snprintf(field, TRACES_FIELD_MAX, "resourceSpans");
        return rc;
    }
    /* Count first: a request over the bound is refused before anything is built. */
    size_t total = 0, i, j, k;
    const json_t *rs, *ss, *sp;
    json_array_foreach(rss, i, rs)
    {
        const json_t *sss = json_object_get(rs, "scopeSpans");
        json_array_foreach(sss, j, ss)
        {
            total += json_array_size(json_object_get(ss, "spans"));
        }
    }
    if (total > TRACES_SPANS_MAX) {
        snprintf(field, TRACES_FIELD_MAX, "resourceSpans");
        snprintf(msg, TRACES_MSG_MAX, "at most %d spans per request (got %zu)", TRACES_SPANS_MAX,
                 total);
        return SL_ELIMIT;
    }
    json_array_foreach(rss, i, rs)
    {
        char p[TRACES_FIELD_MAX];
        path_of(p, "resourceSpans[%zu]", i);
        if (!json_is_object(rs)) return fail(&c, p, "must be an object (ResourceSpans)");
        char service[TRACES_SERVICE_MAX + 1] = "unknown_service";
        const json_t *res = json_object_get(rs, "resource");
        if (res && !json_is_null(res)) {
            char rp[TRACES_FIELD_MAX];
            path_of(rp, "%s.resource", p);
            if (!json_is_object(res)) return fail(&c, rp, "must be an object (Resource)");
            const json_t *ra;
            size_t ignored = 0;
            if ((rc = read_array(&c, res, "attributes", rp, &ra)) != 0) return rc;
            path_of(rp, "%s.resource.attributes", p);
            if (ra && (rc = read_attrs(&c, ra, rp, NULL, &ignored, service, NULL)) != 0) return rc;
        }
        const json_t *sss;
        if ((rc = read_array(&c, rs, "scopeSpans", p, &sss)) != 0) return rc;
        json_array_foreach(sss, j, ss)
        {
            char sp_[TRACES_FIELD_MAX];
            path_of(sp_, "%s.scopeSpans[%zu]", p, j);
            if (!json_is_object(ss)) return fail(&c, sp_, "must be an object (ScopeSpans)");
            const json_t *spans;
            if ((rc = read_array(&c, ss, "spans", sp_, &spans)) != 0) return rc;
            json_array_foreach(spans, k, sp)
            {
                char path[TRACES_FIELD_MAX];
                path_of(path, "%s.spans[%zu]", sp_, k);
                if ((rc = read_span(&c, sp, path, service, out)) != 0) return rc;
            }
        }
    }
    return 0;
}
