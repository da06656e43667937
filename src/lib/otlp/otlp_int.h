/*
 * Internals shared by the otlp module's files:
 *   encode.c    the OTLP/JSON encoder (pure): a fast writer and a checked one
 *   wire.c      the endpoint and status-line parsers (pure) and the blocking POST
 *   exporter.c  the exporter thread: drain, batch, send, count
 */
#ifndef SHOAL_OTLP_INT_H
#define SHOAL_OTLP_INT_H

#include <shoal/otlp.h>

/*
 * POSTs `len` bytes of JSON to `ep` and reads the answer's head (its body is read off and
 * dropped), all within `timeout_ms`. `*fd` is the connection kept from the previous request
 * (-1: none); it is reused, or replaced once when the collector had closed it, and left open
 * (or -1) for the next. Returns 0 and *status, SL_ETIMEDOUT, SL_EUNAVAIL (cannot connect),
 * SL_EIO or SL_EPARSE (no usable answer). Blocking: the exporter thread only.
 */
int sl__otlp_post(const sl_otlp_endpoint *ep, int *fd, const char *body, size_t len,
                  uint32_t timeout_ms, int *status);

/* Closes a kept connection (-1: nothing) and sets it to -1. */
void sl__otlp_close(int *fd);

/* The head of a collector's answer. */
typedef struct sl__otlp_head {
    int status;
    size_t head_len; /* through the blank line */
    size_t body_len; /* Content-Length (0 when absent) */
    int keep;        /* HTTP/1.1 with a Content-Length and no "Connection: close" */
} sl__otlp_head;

/*
 * Parses the head of an HTTP/1.x answer from its first `len` bytes. Returns 0 and *out,
 * SL_EAGAIN (the head is not complete yet) or SL_EPARSE (a bad status line or Content-Length).
 * Pure; fuzzed.
 */
SL_API int sl__otlp_response_head(const char *buf, size_t len, sl__otlp_head *out) SL_MUST_CHECK;

/* The encoder's checked writer alone (sl_otlp_enc_span uses it only near the body's bound);
 * the same bytes and results as sl_otlp_enc_span. For tests and the fuzz target. */
SL_API int sl__otlp_enc_span_checked(sl_otlp_enc *e, const sl_span_data *span) SL_MUST_CHECK;

#endif
