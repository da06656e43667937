/*
 * libFuzzer target for the W3C Trace Context parsers: the input is split at
 * the first newline into a traceparent and a tracestate value. Checks that a
 * parsed traceparent re-formats to a value that parses to the same context,
 * and that an accepted tracestate is within our bounds.
 */
#include <shoal/trace.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *nl = memchr(s, '\n', size);
    size_t tp_len = nl ? (size_t)(nl - s) : size;
    const char *ts = nl ? nl + 1 : s + size;
    size_t ts_len = size - tp_len - (nl ? 1 : 0);

    sl_trace_ctx c;
    if (sl_traceparent_parse(s, tp_len, &c) == 0) {
        if (!sl_trace_ctx_is_valid(&c)) abort();
        char out[SL_TRACEPARENT_MAX];
        if (sl_traceparent_format(&c, out) != SL_TRACEPARENT_LEN) abort();
        sl_trace_ctx again;
        if (sl_traceparent_parse(out, SL_TRACEPARENT_LEN, &again) != 0) abort();
        if (memcmp(&again, &c, sizeof c) != 0) abort();
    }
    sl_tracestate st;
    if (sl_tracestate_set(&st, ts, ts_len) == 0) {
        if (st.len != ts_len || st.len > SL_TRACESTATE_MAX_BYTES) abort();
    } else if (st.len != 0) {
        abort();
    }
    /* The whole input as one tracestate too (exercises long and odd inputs). */
    (void)!sl_tracestate_validate(s, size);
    return 0;
}
