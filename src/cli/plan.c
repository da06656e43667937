/*
 * The pure parts of `shoal audit` and `shoal chaos` (cli.h): durations, the
 * chaos schedule and the reading of an audit document. No I/O.
 */
#include "cli.h"

#include <shoal/rand.h>

#include <stdlib.h>
#include <string.h>

#define DAY_MS 86400000ULL

int cli_parse_duration(const char *s, int64_t *ms)
{
    if (!s || *s < '0' || *s > '9') return SL_EINVAL;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || v > DAY_MS) return SL_EINVAL;
    uint64_t mul;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return SL_EINVAL;
    uint64_t r = (uint64_t)v * mul;
    if (r < 1 || r > DAY_MS) return SL_EINVAL;
    *ms = (int64_t)r;
    return 0;
}

const char *cli_fault_name(cli_fault f)
{
    switch (f) {
    case CLI_FAULT_KILL:
        return "kill";
    case CLI_FAULT_PAUSE:
        return "pause";
    case CLI_FAULT_SLOW:
        return "slow";
    }
    return "unknown";
}

int cli_chaos_plan(uint64_t seed, int64_t duration_ms, int64_t every_ms, int ntargets, int pause,
                   int slow, cli_chaos_step *out, size_t cap, size_t *n)
{
    *n = 0;
    if (duration_ms <= 0 || every_ms < 100 || ntargets <= 0 || !out) return SL_EINVAL;
    sl_rand r;
    sl_rand_seed(&r, seed);
    cli_fault others[2];
    size_t nk = 0;
    if (pause) others[nk++] = CLI_FAULT_PAUSE;
    if (slow) others[nk++] = CLI_FAULT_SLOW;
    int64_t t = 0;
    while (*n < cap && *n < CLI_CHAOS_STEPS_MAX) {
        /* 0.5–1.5 × every: random, with `every` as the mean. */
        t += every_ms / 2 + (int64_t)sl_rand_below(&r, (uint64_t)every_ms + 1);
        if (t >= duration_ms) break;
        cli_chaos_step *s = &out[(*n)++];
        s->at_ms = t;
        s->target = (int)sl_rand_below(&r, (uint64_t)ntargets);
        /* Half of the faults are kills when pauses or slowdowns are allowed too. */
        s->fault =
            nk == 0 || sl_rand_below(&r, 2) == 0 ? CLI_FAULT_KILL : others[sl_rand_below(&r, nk)];
        s->hold_ms = 0;
        if (s->fault != CLI_FAULT_KILL) {
            s->hold_ms = 1000 + (int64_t)sl_rand_below(&r, 4001);
            if (t + s->hold_ms > duration_ms) s->hold_ms = duration_ms - t;
        }
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int cli_audit_read(const json_t *doc, int *quiet, int *ok)
{
    const json_t *checks = json_object_get(doc, "checks");
    const json_t *verdict = json_object_get(doc, "ok");
    if (!json_is_array(checks) || !json_is_boolean(verdict)) return SL_EPARSE;
    *ok = json_is_true(verdict);
    *quiet = 1;
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        if (!name) return SL_EPARSE;
        if (ends_with(name, ".audit") && !json_is_true(json_object_get(c, "ok"))) *quiet = 0;
        if (!ends_with(name, ".in_flight")) continue;
        const json_t *v = json_object_get(c, "value");
        if (!json_is_integer(v) || json_integer_value(v) != 0) *quiet = 0;
    }
    return 0;
}
