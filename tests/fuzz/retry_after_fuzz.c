/*
 * libFuzzer target for the two header parsers of the resilience policies:
 * Retry-After (delta-seconds and the three HTTP-date forms) and
 * x-shoal-deadline-ms. Both read bytes from the network. Besides memory
 * safety (ASan/UBSan), every accepted value is checked against its contract:
 * in range, and a deadline value survives a format/parse round trip.
 */
#include <shoal/deadline.h>
#include <shoal/retry.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    /* Two "now"s: 1994 (dates in the corpus are near it) and 2026 (RFC 850 century rule). */
    const int64_t nows[] = {INT64_C(784111777) * 1000000000, INT64_C(1767225600) * 1000000000 + 1};
    for (size_t i = 0; i < 2; i++) {
        int64_t d = -1;
        if (sl_retry_after_parse(s, size, nows[i], &d) == 0 &&
            (d < 0 || d > SL_RETRY_AFTER_PARSE_MAX_MS))
            abort();
    }
    int64_t ms = -1;
    if (sl_deadline_parse_header(s, size, &ms) == 0) {
        if (ms < 0 || ms > SL_DEADLINE_HEADER_MAX_MS) abort();
        sl_fake_clock fc;
        sl_fake_clock_init(&fc, 0);
        sl_deadline dl = sl_deadline_from_header(&fc.clock, ms, 0);
        char buf[SL_DEADLINE_HEADER_BUF];
        int n = sl_deadline_format_header(dl, &fc.clock, buf, sizeof buf);
        int64_t back = -1;
        if (n <= 0 || sl_deadline_parse_header(buf, (size_t)n, &back) != 0 || back != ms) abort();
    }
    return 0;
}
