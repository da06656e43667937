/* The pure part of `shoal rollout` (rollout.h): options, metrics reading, verdicts. */
#include "rollout.h"

#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_rollout_parse_steps(const char *s, uint32_t *out, size_t cap, size_t *n)
{
    *n = 0;
    const char *p = s;
    uint32_t prev = 0;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= (long)prev || v > 100 || *n == cap) return SL_EINVAL;
        out[(*n)++] = (uint32_t)v;
        prev = (uint32_t)v;
        if (*end == ',')
            end++;
        else if (*end)
            return SL_EINVAL;
        p = end;
    }
    return *n && prev == 100 ? 0 : SL_EINVAL;
}

int cli_rollout_parse_rate(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0) return SL_EINVAL;
    if (*end == '%' && end[1] == '\0')
        v /= 100;
    else if (*end)
        return SL_EINVAL;
    if (v > 1) return SL_EINVAL;
    *out = v;
    return 0;
}

static const char usage_text[] =
    "usage: shoal rollout SERVICE --to VERSION [OPTIONS]\n"
    "  shifts SERVICE's traffic (a gateway cluster with version subsets) to VERSION step by\n"
    "  step, and rolls back on its own when VERSION is worse than the limits.\n"
    "  --steps 5,25,50,100     percent of traffic to VERSION at each step (default)\n"
    "  --interval 30s          how long each step is watched\n"
    "  --max-error-rate 1%     5xx and failed calls to VERSION above this: roll back\n"
    "  --max-p99-ms N          p99 of VERSION's calls above N ms: roll back (default: off)\n"
    "  --min-requests N        calls to VERSION needed to judge a step (default 20)\n"
    "  --blue-green            all traffic at once once VERSION's endpoints are healthy; the\n"
    "                          old version stays at weight 0 for an instant rollback\n"
    "  --from VERSION          the version traffic leaves (default: the other one)\n"
    "  --admin URL             the gateway's admin listener (default http://127.0.0.1:9901)\n";

int cli_rollout_args(int argc, char **argv, cli_rollout_opts *o, char *err)
{
    memset(o, 0, sizeof *o);
    o->admin = "http://127.0.0.1:9901";
    o->interval_ms = 30000;
    o->max_error_rate = 0.01;
    o->min_requests = 20;
    (void)cli_rollout_parse_steps("5,25,50,100", o->steps, CLI_ROLLOUT_STEPS_MAX, &o->nsteps);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 1;
        }
        if (strcmp(a, "--blue-green") == 0) {
            o->blue_green = true;
            continue;
        }
        if (a[0] != '-') {
            if (o->service) {
                snprintf(err, 256, "one SERVICE only (got %.64s and %.64s)", o->service, a);
                return 2;
            }
            o->service = a;
            continue;
        }
        if (!v) {
            snprintf(err, 256, "%.64s: unknown option or missing value", a);
            return 2;
        }
        i++;
        int bad = 0;
        if (strcmp(a, "--to") == 0)
            o->to = v;
        else if (strcmp(a, "--from") == 0)
            o->from = v;
        else if (strcmp(a, "--admin") == 0)
            o->admin = v;
        else if (strcmp(a, "--steps") == 0)
            bad = cli_rollout_parse_steps(v, o->steps, CLI_ROLLOUT_STEPS_MAX, &o->nsteps) != 0;
        else if (strcmp(a, "--interval") == 0)
            bad = cli_parse_duration(v, &o->interval_ms) != 0;
        else if (strcmp(a, "--max-error-rate") == 0)
            bad = cli_rollout_parse_rate(v, &o->max_error_rate) != 0;
        else if (strcmp(a, "--max-p99-ms") == 0 || strcmp(a, "--min-requests") == 0) {
            char *end;
            double d = strtod(v, &end);
            bad = end == v || *end || !(d >= 1 && d <= 1e7);
            if (a[2] == 'm' && a[3] == 'a')
                o->max_p99_ms = d;
            else
                o->min_requests = (uint64_t)d;
        } else {
            snprintf(err, 256, "%.64s: unknown option", a);
            return 2;
        }
        if (bad) {
            snprintf(err, 256, "%.64s: invalid value %.64s", a, v);
            return 2;
        }
    }
    if (!o->service || !o->to) {
        snprintf(err, 256, "SERVICE and --to VERSION are required");
        return 2;
    }
    if (o->from && strcmp(o->from, o->to) == 0) {
        snprintf(err, 256, "--from and --to name the same version");
        return 2;
    }
    return 0;
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* Finds label `name`'s value in `{a="x",b="y"}` (no escapes in our label values). */
static int label(const char *lb, const char *end, const char *name, const char **v, size_t *vlen)
{
    size_t nl = strlen(name);
    for (const char *p = lb; p < end;) {
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq || eq + 1 >= end || eq[1] != '"') return 0;
        const char *q = memchr(eq + 2, '"', (size_t)(end - eq - 2));
        if (!q) return 0;
        if ((size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
            *v = eq + 2;
            *vlen = (size_t)(q - eq - 2);
            return 1;
        }
        p = q + 1;
        if (p < end && *p == ',') p++;
    }
    return 0;
}

static int label_is(const char *lb, const char *end, const char *name, const char *want)
{
    const char *v;
    size_t n;
    return label(lb, end, name, &v, &n) && n == strlen(want) && memcmp(v, want, n) == 0;
}

static void one_line(const char *l, size_t n, const char *cluster, const char *version,
                     cli_rollout_sample *out)
{
    static const char req[] = "gateway_subset_requests_total{",
                      bucket[] = "gateway_subset_request_duration_seconds_bucket{";
    int is_req = n > sizeof req && memcmp(l, req, sizeof req - 1) == 0;
    int is_bucket = n > sizeof bucket && memcmp(l, bucket, sizeof bucket - 1) == 0;
    if (!is_req && !is_bucket) return;
    const char *lb = l + (is_req ? sizeof req : sizeof bucket) - 1;
    const char *close = memchr(lb, '}', n - (size_t)(lb - l));
    if (!close || (size_t)(close - l) + 2 > n) return;
    if (!label_is(lb, close, "cluster", cluster) || !label_is(lb, close, "version", version))
        return;
    char num[64];
    size_t vl = n - (size_t)(close + 2 - l);
    if (vl == 0 || vl >= sizeof num) return;
    memcpy(num, close + 2, vl);
    num[vl] = '\0';
    char *end;
    double value = strtod(num, &end);
    if (end == num || !isfinite(value) || value < 0 || value > 1e15) return; /* a bound */
    const char *v;
    size_t vlen;
    if (is_req) {
        if (!label(lb, close, "class", &v, &vlen)) return;
        out->requests += value;
        if ((vlen == 3 && memcmp(v, "5xx", 3) == 0) || (vlen == 5 && memcmp(v, "error", 5) == 0))
            out->errors += value;
        return;
    }
    if (!label(lb, close, "le", &v, &vlen) || vlen >= sizeof num ||
        out->nbuckets == CLI_ROLLOUT_BUCKETS_MAX)
        return;
    memcpy(num, v, vlen);
    num[vlen] = '\0';
    double le = strtod(num, &end);
    /* one series' buckets: ascending, non-negative (anything else is not the gateway's) */
    if (end == num || *end || !(le >= 0) || (out->nbuckets && !(le > out->le[out->nbuckets - 1])))
        return;
    out->le[out->nbuckets] = le;
    out->count[out->nbuckets++] = value;
}

void cli_rollout_sample_parse(const char *text, size_t len, const char *cluster,
                              const char *version, cli_rollout_sample *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        one_line(text + i, e - i, cluster, version, out);
        i = e + 1;
    }
}

void cli_rollout_window_of(const cli_rollout_sample *before, const cli_rollout_sample *after,
                           cli_rollout_window *out)
{
    out->requests = after->requests - before->requests;
    out->errors = after->errors - before->errors;
    if (out->requests < 0 || out->errors < 0) { /* the gateway restarted: its counters did too */
        out->requests = after->requests;
        out->errors = after->errors;
        before = NULL;
    }
    if (out->errors > out->requests) out->errors = out->requests; /* inconsistent scrapes */
    out->error_rate = out->requests > 0 ? out->errors / out->requests : 0;
    out->p99_ms = -1;
    double total = 0, d[CLI_ROLLOUT_BUCKETS_MAX];
    for (size_t k = 0; k < after->nbuckets; k++) {
        double b = 0;
        if (before)
            for (size_t j = 0; j < before->nbuckets; j++)
                if (before->le[j] == after->le[k]) b = before->count[j];
        d[k] = after->count[k] - b;
        if (d[k] < 0) d[k] = 0;
        if (isinf(after->le[k])) total = d[k];
    }
    if (total <= 0) return;
    /* the bucket holding the 99th percentile, linear within it; +Inf reports its lower bound */
    double rank = 0.99 * total, lo = 0, below = 0;
    for (size_t k = 0; k < after->nbuckets; k++) {
        if (d[k] >= rank) {
            double hi = after->le[k];
            if (isinf(hi)) {
                out->p99_ms = lo * 1000;
            } else {
                double in = d[k] - below;
                out->p99_ms = (lo + (hi - lo) * (in > 0 ? (rank - below) / in : 1)) * 1000;
            }
            return;
        }
        lo = after->le[k];
        below = d[k];
    }
}

cli_rollout_verdict cli_rollout_judge(const cli_rollout_opts *o, const cli_rollout_window *nw,
                                      const cli_rollout_window *ow, char *why)
{
    char olds[96];
    if (ow->requests > 0)
        snprintf(olds, sizeof olds, "old: %.0f calls, %.2f%% errors, p99 %.1f ms", ow->requests,
                 ow->error_rate * 100, ow->p99_ms);
    else
        snprintf(olds, sizeof olds, "old: no calls");
    /* Too few calls to judge, unless their errors already pass the limit at min_requests. */
    if (nw->requests < (double)o->min_requests &&
        nw->errors <= o->max_error_rate * (double)o->min_requests) {
        snprintf(why, 256, "new: %.0f calls, fewer than %llu to judge; %s", nw->requests,
                 (unsigned long long)o->min_requests, olds);
        return CLI_ROLLOUT_WAIT;
    }
    snprintf(why, 256, "new: %.0f calls, %.2f%% errors, p99 %.1f ms; %s", nw->requests,
             nw->error_rate * 100, nw->p99_ms, olds);
    if (nw->error_rate > o->max_error_rate) {
        size_t n = strlen(why);
        snprintf(why + n, 256 - n, " (error rate above %.2f%%)", o->max_error_rate * 100);
        return CLI_ROLLOUT_ROLLBACK;
    }
    if (o->max_p99_ms > 0 && nw->p99_ms > o->max_p99_ms) {
        size_t n = strlen(why);
        snprintf(why + n, 256 - n, " (p99 above %.0f ms)", o->max_p99_ms);
        return CLI_ROLLOUT_ROLLBACK;
    }
    return CLI_ROLLOUT_PROCEED;
}
