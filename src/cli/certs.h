/*
 * `shoal certs`: the mesh CA and the services' certificates under
 * <data>/mesh/ (docs/mesh.md). certs.c does the files; the decisions below
 * are pure and unit-tested (tests/cli/certs_test.c).
 */
#ifndef SHOAL_CLI_CERTS_H
#define SHOAL_CLI_CERTS_H

#include <stdbool.h>
#include <stdint.h>

#define CLI_CERTS_HOURS_DEFAULT 24
#define CLI_CERTS_HOURS_MAX     (24 * 366)
#define CLI_CERTS_CA_DAYS       365

/* `shoal certs ...` with the arguments after "certs". Returns the exit status. */
int cli_certs_main(int argc, char **argv);

/*
 * A leaf's validity window: from `now` - `backdate_h` hours to `hours` later.
 * hours 1..CLI_CERTS_HOURS_MAX, backdate_h 0..CLI_CERTS_HOURS_MAX (a window in
 * the past makes an expired certificate, for tests). Returns 0 or SL_EINVAL.
 */
int cli_certs_window(int64_t now, int64_t hours, int64_t backdate_h, int64_t *not_before,
                     int64_t *not_after);

/*
 * Whether `shoal certs renew` reissues a leaf valid [not_before, not_after]:
 * when it is in the last third of its life (or past it), or when it was
 * signed by a CA other than the current one (after `shoal certs rotate`).
 */
bool cli_certs_should_renew(int64_t now, int64_t not_before, int64_t not_after, bool by_current_ca);

/* When cli_certs_should_renew starts to hold for a leaf valid [not_before, not_after] signed by
 * the current CA: two thirds into its life. */
int64_t cli_certs_renew_at(int64_t not_before, int64_t not_after);

/*
 * How long the supervisor of `shoal up --mesh` waits before it looks at its
 * leaves again, when the earliest is due at `due` (cli_certs_renew_at) and it
 * is `now` (both in ms): the time left, at least 200 ms (never a busy loop)
 * and at most a minute (a clock change is noticed).
 */
int64_t cli_certs_next_check_ms(int64_t now_ms, int64_t due_ms);

/* The lifetime of the leaves `shoal up --mesh` issues and renews (`mesh_certs.lifetime_s`). */
#define CLI_CERTS_LIFETIME_MIN_S 3

/*
 * Issues a leaf for service `name` under `dir` valid `seconds` from now
 * (CLI_CERTS_LIFETIME_MIN_S..CLI_CERTS_HOURS_MAX hours), written atomically
 * (the key 0600, then the certificate). Returns 0, or 1 with the reason
 * printed.
 */
int cli_certs_issue(const char *dir, const char *name, int64_t seconds);

/* Reads the validity of `dir`/certs/`name`.pem and whether the current CA of
 * `dir` signed it. Returns 0, or SL_EIO when either cannot be read. */
int cli_certs_leaf_state(const char *dir, const char *name, int64_t *not_before, int64_t *not_after,
                         bool *by_current_ca);

/* Parses an hour count for --hours/--backdate ("24", "0"). Returns 0 or SL_EINVAL. */
int cli_certs_parse_hours(const char *s, int64_t *out);

#endif
