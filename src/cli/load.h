/*
 * `shoal load`: the shop's load generator (docs/load.md). Drives the public API through the
 * gateway with libshoal's HTTP client on one libuv loop, open loop (--rate) or closed loop
 * (--conns), and reports per-operation HDR percentiles, human-readable or as one JSON document.
 */
#ifndef SHOAL_CLI_LOAD_H
#define SHOAL_CLI_LOAD_H

/* Runs `shoal load` with the options after "load" (argv[0] is the first option). Returns the
 * process exit status: 0 when the run completed (errors are counted and reported), 1 when the
 * setup failed, 2 for a bad option. */
int cli_load_main(int argc, char **argv);

#endif /* SHOAL_CLI_LOAD_H */
