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
 * POSTs `len` bytes of JSON to `ep` and reads the answer's status line, all
 * within `timeout_ms`. Returns 0 and *status, SL_ETIMEDOUT, SL_EUNAVAIL
 * (cannot connect), SL_EIO or SL_EPARSE (no usable answer). Blocking: the
 * exporter thread only.
 */
int sl__otlp_post(const sl_otlp_endpoint *ep, const char *body, size_t len, uint32_t timeout_ms,
                  int *status);

/* The encoder's checked writer alone (sl_otlp_enc_span uses it only near the body's bound);
 * the same bytes and results as sl_otlp_enc_span. For tests and the fuzz target. */
SL_API int sl__otlp_enc_span_checked(sl_otlp_enc *e, const sl_span_data *span) SL_MUST_CHECK;

#endif
