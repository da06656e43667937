/*
 * libFuzzer target for `shoal rollout`'s reader of the gateway's /metrics
 * (cli_rollout_sample_parse, src/cli/rollout_plan.c): the text comes over the
 * network. The input is read as two documents (split at the first NUL, or
 * the same one twice) for one subset; besides memory safety, the window
 * between them is checked: buckets ascending, counts finite and non-negative, an error rate in
 * [0, 1], a p99 that is finite or -1 (no call).
 */
#include "rollout.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const cli_rollout_sample *a, const cli_rollout_sample *b)
{
    cli_rollout_window w;
    cli_rollout_window_of(a, b, &w);
    if (!isfinite(w.requests) || w.requests < 0 || !isfinite(w.errors) || w.errors < 0) abort();
    if (!(w.error_rate >= 0 && w.error_rate <= 1)) abort();
    if (!(w.p99_ms == -1 || (isfinite(w.p99_ms) && w.p99_ms >= 0))) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *t = (const char *)data;
    const char *nul = memchr(t, '\0', size);
    size_t la = nul ? (size_t)(nul - t) : size;
    const char *b = nul ? nul + 1 : t;
    size_t lb = nul ? size - la - 1 : size;
    cli_rollout_sample s1, s2;
    cli_rollout_sample_parse(t, la, "hello", "v2", &s1);
    cli_rollout_sample_parse(b, lb, "hello", "v2", &s2);
    if (s1.nbuckets > CLI_ROLLOUT_BUCKETS_MAX || s1.errors > s1.requests) abort();
    for (size_t i = 0; i < s1.nbuckets; i++)
        if (!(s1.le[i] >= 0) || (i && !(s1.le[i] > s1.le[i - 1]))) abort();
    check(&s1, &s2);
    check(&s2, &s1);
    return 0;
}
