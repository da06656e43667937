/*
 * The outcome of one call attempt, as the HTTP client reports it to the
 * resilience policies (circuit breaker, retry). A small shared vocabulary so
 * that the breaker's failure classifier and the retry policy's "retryable?"
 * rule read the same facts: did we connect, did it time out, did the
 * connection break after the request left, or which status came back.
 *
 * Pure module (src/lib/resilience): no I/O.
 */
#ifndef SHOAL_OUTCOME_H
#define SHOAL_OUTCOME_H

#include <shoal/common.h>

/*
 * Kinds of outcome, with printable names (X-macro so names never drift):
 * - RESPONSE: a complete HTTP response arrived; `status` holds its code.
 * - CONNECT_ERROR: no connection could be made (refused, unreachable, TLS
 *   handshake failed): no byte of the request reached the upstream.
 * - TIMEOUT: the per-try timeout or the deadline fired before a response.
 * - IO_ERROR: the connection broke after (part of) the request was sent, so
 *   the upstream may have acted on it.
 */
#define SL_OUTCOME_KIND_MAP(X)                                                                     \
    X(RESPONSE, "response")                                                                        \
    X(CONNECT_ERROR, "connect_error")                                                              \
    X(TIMEOUT, "timeout")                                                                          \
    X(IO_ERROR, "io_error")

typedef enum sl_outcome_kind {
#define SL_OUTCOME_ENUM_(name, text) SL_OUTCOME_##name,
    SL_OUTCOME_KIND_MAP(SL_OUTCOME_ENUM_)
#undef SL_OUTCOME_ENUM_
        SL_OUTCOME_KIND_COUNT
} sl_outcome_kind;

/* One attempt's outcome. `status` is meaningful only for SL_OUTCOME_RESPONSE. */
typedef struct sl_outcome {
    sl_outcome_kind kind;
    int status;
} sl_outcome;

/* Returns the static name of `kind` ("connect_error"), or "unknown" for a value outside the map. */
SL_API const char *sl_outcome_kind_name(sl_outcome_kind kind);

/* Convenience constructors. */
static inline sl_outcome sl_outcome_response(int status)
{
    return (sl_outcome){SL_OUTCOME_RESPONSE, status};
}
static inline sl_outcome sl_outcome_of(sl_outcome_kind kind)
{
    return (sl_outcome){kind, 0};
}

#endif /* SHOAL_OUTCOME_H */
