/*
 * `shoal load`: the command-line options and their parsers. Pure: no I/O, no globals, so the
 * parsers can be unit-tested and fuzzed (tests/fuzz/load_args_fuzz.c).
 */
#ifndef SHOAL_CLI_LOAD_ARGS_H
#define SHOAL_CLI_LOAD_ARGS_H

#include <shoal/common.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_LOAD_DURATION_MAX_MS (24LL * 3600 * 1000) /* one day */
#define CLI_LOAD_RATE_MAX        100000.0             /* arrivals per second */
#define CLI_LOAD_CONNS_MAX       10000
#define CLI_LOAD_USERS_MAX       10000
#define CLI_LOAD_WEIGHT_MAX      1000000u
#define CLI_LOAD_HOST_MAX        253
#define CLI_LOAD_ERR_MAX         256

typedef enum { CLI_SC_CHECKOUT, CLI_SC_BROWSE, CLI_SC_MIX } cli_load_scenario;

typedef struct cli_load_opts {
    cli_load_scenario scenario;
    double rate;                      /* arrivals per second (open loop); 0 = closed loop */
    int conns;                        /* closed-loop connections (virtual users at once) */
    int64_t duration_ms;              /* measured part of the run */
    int64_t warmup_ms;                /* before it, not measured */
    char host[CLI_LOAD_HOST_MAX + 1]; /* without brackets */
    int port;
    bool ipv6;                           /* host is an IPv6 literal */
    bool loopback;                       /* host is 127.0.0.0/8, ::1 or localhost */
    char target[CLI_LOAD_HOST_MAX + 32]; /* as given, for the report */
    int users;                           /* 0 = the default for the mode */
    unsigned w_browse, w_cart, w_checkout;
    const char *admin_file; /* borrowed from argv */
    bool json, quiet, allow_remote;
} cli_load_opts;

/* Parses "250ms", "5s", "2m" or a bare number of seconds ("10") into milliseconds, 0 ..
 * CLI_LOAD_DURATION_MAX_MS. Returns 0, or SL_EINVAL with the reason in err. */
int cli_load_parse_duration(const char *s, int64_t *ms, char err[CLI_LOAD_ERR_MAX]);

/* Parses "800/s" or "800" (arrivals per second, > 0 .. CLI_LOAD_RATE_MAX, decimals allowed). */
int cli_load_parse_rate(const char *s, double *rate, char err[CLI_LOAD_ERR_MAX]);

/* Parses "browse=80,cart=15,checkout=5" (each name at most once, the others 0; at least one
 * weight above 0; each 0 .. CLI_LOAD_WEIGHT_MAX) into o->w_*. */
int cli_load_parse_mix(const char *s, cli_load_opts *o, char err[CLI_LOAD_ERR_MAX]);

/* Parses "http://HOST:PORT" (optionally one trailing "/"; HOST a name, an IPv4 address or a
 * bracketed IPv6 one; PORT 1..65535, default 80) into o->host, o->port, o->ipv6, o->loopback. */
int cli_load_parse_target(const char *s, cli_load_opts *o, char err[CLI_LOAD_ERR_MAX]);

/* Fills the defaults: checkout, closed loop with 16 connections, 60 s after a 5 s warm-up,
 * http://127.0.0.1:8080, mix browse=80,cart=15,checkout=5, data/admin-credentials. */
void cli_load_opts_default(cli_load_opts *o);

/*
 * Parses the options after `shoal load` (argv[0] is the first option). Returns 0, 1 when
 * --help was asked (usage printed by the caller), or SL_EINVAL with the reason in err (an
 * unknown option, a bad value naming the option, --rate with --conns, a remote target without
 * --allow-remote).
 */
int cli_load_parse_args(int argc, char **argv, cli_load_opts *o, char err[CLI_LOAD_ERR_MAX]);

/* The usage text. */
extern const char cli_load_usage[];

#endif /* SHOAL_CLI_LOAD_ARGS_H */
