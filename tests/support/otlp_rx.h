/*
 * A small OTLP/HTTP receiver for tests, written from the OTLP JSON encoding
 * rules and independent of the exporter's code: it listens on 127.0.0.1 on a
 * thread of the test, accepts POST /v1/traces with a JSON body, checks every
 * request's shape (resourceSpans, resource.attributes with service.name,
 * scopeSpans, scope, and per span: 32/16 lowercase-hex ids not all zero, an
 * optional 16-hex parentSpanId, a name, kind 1..5, decimal-string times with
 * end >= start, typed attributes, links, status code 0..2) and keeps a copy
 * of each span with its service name. In SILENT mode it accepts connections
 * and never answers (a collector that hangs).
 */
#ifndef SHOAL_TEST_OTLP_RX_H
#define SHOAL_TEST_OTLP_RX_H

#include <jansson.h>
#include <stddef.h>

typedef enum th_otlp_mode {
    TH_OTLP_OK = 0, /* answer 200 {} */
    TH_OTLP_SILENT, /* accept, read, never answer */
} th_otlp_mode;

typedef struct th_otlp_rx th_otlp_rx;

/* Starts a receiver on a free port. Aborts the test on failure. */
th_otlp_rx *th_otlp_rx_start(th_otlp_mode mode);
int th_otlp_rx_port(const th_otlp_rx *rx);
/* Stops the thread and frees everything. */
void th_otlp_rx_stop(th_otlp_rx *rx);

/* Requests and spans received so far (thread-safe). */
size_t th_otlp_rx_requests(th_otlp_rx *rx);
size_t th_otlp_rx_span_count(th_otlp_rx *rx);

/*
 * A copy of every span received so far: a JSON array of the spans as sent, each with an added
 * member "service" (its resource's service.name). Returns owned: json_decref.
 */
json_t *th_otlp_rx_spans(th_otlp_rx *rx);

/* Shape violations found so far, and the first one's description ("" when none). */
size_t th_otlp_rx_violations(th_otlp_rx *rx, char *first, size_t cap);

/* Validates one request body; returns 0 or -1 with a description in `why`. Pure. */
int th_otlp_validate(const json_t *body, char *why, size_t cap);

#endif
