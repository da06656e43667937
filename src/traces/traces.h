/*
 * shoal-traces: the local trace receiver (docs/observability.md, "Local trace view").
 *
 * Three layers, each usable alone:
 *   - otlp_json.c (pure): an OTLP/HTTP JSON ExportTraceServiceRequest, already parsed by
 *     sl_json_parse, into a bounded batch of spans; every field checked or bounded, the first
 *     bad one named;
 *   - store.c: the bounded SQLite store (spans, one summary row per trace, the counters) and
 *     the queries of the JSON API;
 *   - receiver.c: the service definition (POST /v1/traces, GET /api/traces,
 *     GET /api/traces/{trace_id}) on the service host.
 */
#ifndef SHOAL_TRACES_H
#define SHOAL_TRACES_H

#include <shoal/common.h>
#include <shoal/db.h>
#include <shoal/service.h>

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds of what one request may carry and of what is kept of each span. Longer strings are cut
 * on a UTF-8 boundary; attributes and links beyond the count are dropped and counted. */
#define TRACES_SPANS_MAX      10000 /* spans in one request; more → 400 */
#define TRACES_NAME_MAX       256   /* span name, bytes */
#define TRACES_SERVICE_MAX    128   /* service.name, bytes */
#define TRACES_STATUS_MSG_MAX 512   /* status.message, bytes */
#define TRACES_ATTRS_MAX      64    /* attributes kept per span */
#define TRACES_ATTR_KEY_MAX   128   /* attribute key, bytes (longer: the attribute is dropped) */
#define TRACES_ATTR_VALUE_MAX 1024  /* string attribute value, bytes */
#define TRACES_LINKS_MAX      16    /* links kept per span */
#define TRACES_ORDER_ID_MAX   64    /* shoal.order_id, bytes (longer: not indexed) */
#define TRACES_BODY_MAX       (8u << 20) /* POST /v1/traces body; more → 413 */
#define TRACES_FIELD_MAX      128        /* a field path in an error */
#define TRACES_MSG_MAX        160        /* an error message */

/* Span kinds as OTLP numbers them. */
enum {
    TRACES_KIND_UNSPECIFIED,
    TRACES_KIND_INTERNAL,
    TRACES_KIND_SERVER,
    TRACES_KIND_CLIENT,
    TRACES_KIND_PRODUCER,
    TRACES_KIND_CONSUMER
};
/* Status codes as OTLP numbers them. */
enum { TRACES_STATUS_UNSET, TRACES_STATUS_OK, TRACES_STATUS_ERROR };

typedef struct traces_span {
    char trace_id[33]; /* lowercase hex */
    char span_id[17];
    char parent_span_id[17]; /* "" for a root */
    char service[TRACES_SERVICE_MAX + 1];
    char name[TRACES_NAME_MAX + 1];
    int kind;   /* TRACES_KIND_* */
    int status; /* TRACES_STATUS_* */
    char status_message[TRACES_STATUS_MSG_MAX + 1];
    int64_t start_ns, end_ns;
    char order_id[TRACES_ORDER_ID_MAX + 1]; /* attribute shoal.order_id, "" when absent */
    json_t *attributes; /* owned object: key → string, integer, boolean or real */
    json_t *links;      /* owned array of {trace_id, span_id} */
} traces_span;

typedef struct traces_batch {
    traces_span *spans; /* owned */
    size_t n, cap;
    size_t dropped_attributes, dropped_links; /* beyond the bounds, or of unsupported types */
} traces_batch;

/* Frees what the batch holds and empties it (it may be reused). */
void traces_batch_free(traces_batch *b);

/*
 * Decodes an ExportTraceServiceRequest (OTLP JSON encoding) from `root` (borrowed) into `out`
 * (empty on entry; free with traces_batch_free, also on failure). Ids are hex (either case,
 * stored lowercase), kinds and status codes numbers or their enum names, times decimal strings
 * or numbers, attribute values stringValue|intValue|boolValue|doubleValue (others dropped and
 * counted). Returns 0, SL_EINVAL with the first bad field's path in `field` and what is wrong
 * in `msg` (both NUL-terminated, TRACES_FIELD_MAX / TRACES_MSG_MAX bytes), SL_ELIMIT (more
 * than TRACES_SPANS_MAX spans; field "resourceSpans") or SL_ENOMEM. Pure.
 */
int traces_decode(const json_t *root, traces_batch *out, char *field, char *msg);

/* The kind and status names of the JSON API ("server", "error", ...). Static strings. */
const char *traces_kind_name(int kind);
const char *traces_status_name(int status);

/* ---- the store (store.c) ------------------------------------------------------------------- */

typedef struct traces_bounds {
    int64_t max_spans;  /* kept at most; the oldest traces (by arrival) go first */
    int64_t max_age_ns; /* a trace not added to for this long goes (0: no age bound) */
} traces_bounds;

typedef struct traces_add_result {
    int64_t stored;         /* new spans (a span already stored is not stored twice) */
    int64_t evicted_traces; /* traces removed by the bounds during this add */
    int64_t evicted_spans;
} traces_add_result;

/*
 * Stores the batch in one transaction, then applies the bounds (`now_ns`: the wall clock, for
 * the age bound). Returns 0 or the database's error (nothing stored).
 */
int traces_store_add(sl_db *db, const traces_batch *b, const traces_bounds *bounds, int64_t now_ns,
                     traces_add_result *r);

typedef struct traces_query {
    int64_t limit;        /* 1..100 */
    int errors;           /* only traces with an error span */
    int slowest;          /* order by duration, longest first (else newest start first) */
    const char *order_id; /* NULL, or traces having a span with shoal.order_id equal to it */
} traces_query;

/* Lists traces: returns 0 and *out = {"traces":[...]} (owned, json_decref) or an error. */
int traces_store_list(sl_db *db, const traces_query *q, json_t **out);

/* One trace: returns 0 and *out = {"trace_id","spans":[...]} (owned), SL_ENOTFOUND, or an
 * error. `trace_id` is 32 lowercase hex digits. */
int traces_store_get(sl_db *db, const char *trace_id, json_t **out);

typedef struct traces_stats {
    int64_t spans, traces, evicted_traces, evicted_spans;
} traces_stats;

/* The store's counters (kept in the database, so they survive a restart). */
int traces_store_stats(sl_db *db, traces_stats *out);

/* ---- the service ---------------------------------------------------------------------------- */

extern const sl_service_def traces_service;

#endif
