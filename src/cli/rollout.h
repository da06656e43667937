/*
 * `shoal rollout` (rollout.c drives a running gateway; rollout_plan.c is the
 * pure part, unit-tested alone): the options, the reading of the gateway's
 * per-subset metrics, and the verdict after each step.
 */
#ifndef SHOAL_CLI_ROLLOUT_H
#define SHOAL_CLI_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_ROLLOUT_STEPS_MAX   20
#define CLI_ROLLOUT_BUCKETS_MAX 32

typedef struct cli_rollout_opts {
    const char *service; /* the cluster */
    const char *to;      /* the new version */
    const char *from;    /* the old version; NULL: the other subset with the most weight */
    const char *admin;   /* the gateway's admin listener, "http://127.0.0.1:9901" */
    uint32_t steps[CLI_ROLLOUT_STEPS_MAX]; /* percent of traffic to the new version, last 100 */
    size_t nsteps;
    int64_t interval_ms;
    double max_error_rate; /* 0..1 */
    double max_p99_ms;     /* 0: not checked */
    uint64_t min_requests; /* a window with fewer calls to the new version is not judged */
    bool blue_green;
} cli_rollout_opts;

/*
 * Parses the arguments after `shoal rollout`. Returns 0, 1 when --help was asked, or 2 with a
 * message naming the option in `err` (256 bytes).
 */
int cli_rollout_args(int argc, char **argv, cli_rollout_opts *o, char *err);

/* "5,25,50,100": strictly increasing percents 1..100 ending at 100. Returns 0 or SL_EINVAL. */
int cli_rollout_parse_steps(const char *s, uint32_t *out, size_t cap, size_t *n);
/* "1%", "0.5%" or "0.01" (a fraction) → 0..1. Returns 0 or SL_EINVAL. */
int cli_rollout_parse_rate(const char *s, double *out);

/* One subset's counters at one moment, from the gateway's /metrics. */
typedef struct cli_rollout_sample {
    double requests, errors; /* errors: 5xx answers and failed calls */
    double le[CLI_ROLLOUT_BUCKETS_MAX], count[CLI_ROLLOUT_BUCKETS_MAX]; /* cumulative buckets */
    size_t nbuckets;
} cli_rollout_sample;

/* Reads the series of (cluster, version) from a Prometheus text document. Missing series: 0. */
void cli_rollout_sample_parse(const char *text, size_t len, const char *cluster,
                              const char *version, cli_rollout_sample *out);

/* What happened between two samples. p99_ms < 0: no call in the window. */
typedef struct cli_rollout_window {
    double requests, errors, error_rate, p99_ms;
} cli_rollout_window;

void cli_rollout_window_of(const cli_rollout_sample *before, const cli_rollout_sample *after,
                           cli_rollout_window *out);

typedef enum cli_rollout_verdict {
    CLI_ROLLOUT_PROCEED,  /* within the limits */
    CLI_ROLLOUT_WAIT,     /* too few calls to judge: another interval */
    CLI_ROLLOUT_ROLLBACK, /* worse than a limit */
} cli_rollout_verdict;

/*
 * Judges the new version's window against the limits (the old one's is shown beside it in
 * `why`, 256 bytes: one line saying what was measured and why).
 */
cli_rollout_verdict cli_rollout_judge(const cli_rollout_opts *o, const cli_rollout_window *nw,
                                      const cli_rollout_window *ow, char *why);

/* The `shoal rollout` command. Exit status: 0 done, 1 rolled back, 2 usage or gateway error. */
int cli_rollout_main(int argc, char **argv);

#endif
