/*
 * What the files of the `shoal` command share besides shoal.c: the pid table
 * that `shoal up` keeps and `shoal chaos` reads (pids.c), the pure parts of
 * the audit and of chaos (plan.c: unit-tested alone), a small blocking HTTP
 * client for the gateway (http.c), and the subcommands (audit.c, chaos.c).
 */
#ifndef SHOAL_CLI_H
#define SHOAL_CLI_H

#include <shoal/common.h>

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the pid table (pids.c) --------------------------------------------------------------- */

#define CLI_PIDS_MAX 32
#define CLI_NAME_MAX 32

typedef struct cli_pid {
    char name[CLI_NAME_MAX];
    int pid;
} cli_pid;

/*
 * Writes <data_dir>/pids (owner-only, replaced atomically): one "name pid" line per running
 * process of `shoal up`, whose own pid heads the file as "supervisor <pid>". Returns 0 or
 * SL_EIO.
 */
int cli_pids_write(const char *data_dir, int supervisor, const cli_pid *p, size_t n);

/*
 * Reads the table: *supervisor and up to `cap` processes. Refuses a file that is not the
 * caller's or is readable by others. Returns 0, SL_ENOTFOUND (no table: the shop is not
 * running), SL_EPARSE or SL_EIO.
 */
int cli_pids_read(const char *data_dir, int *supervisor, cli_pid *out, size_t cap, size_t *n);

/* Returns 1 when `pid` is alive and its parent is `parent` (/proc/<pid>/stat). */
int cli_pid_is_child(int pid, int parent);

/* ---- pure parts (plan.c) ------------------------------------------------------------------ */

/* Parses a duration: "90", "90s", "500ms", "5m", "1h" (no unit: seconds). Returns 0 with
 * *ms, or SL_EINVAL. Bounded to 1 ms .. 24 h. */
int cli_parse_duration(const char *s, int64_t *ms);

typedef enum cli_fault { CLI_FAULT_KILL, CLI_FAULT_PAUSE, CLI_FAULT_SLOW } cli_fault;

/* Returns "kill", "pause" or "slow". */
const char *cli_fault_name(cli_fault f);

typedef struct cli_chaos_step {
    int64_t at_ms;   /* since the start of the round */
    int target;      /* index into the round's targets */
    cli_fault fault; /* what is done to it */
    int64_t hold_ms; /* pause / slow: how long before it runs freely again */
} cli_chaos_step;

#define CLI_CHAOS_STEPS_MAX 10000

/*
 * The schedule of a chaos round, deterministic in `seed`: faults at random intervals of
 * 0.5–1.5 × `every_ms` over `duration_ms`, each on a random one of `ntargets` targets; a kill,
 * or with `pause` / `slow` allowed, half of the time a pause or a slowdown (SIGSTOP/SIGCONT)
 * held 1–5 s but never past the round's end.
 * Writes at most `cap` steps. Returns 0 with *n, or SL_EINVAL.
 */
int cli_chaos_plan(uint64_t seed, int64_t duration_ms, int64_t every_ms, int ntargets, int pause,
                   int slow, cli_chaos_step *out, size_t cap, size_t *n);

/*
 * Reads an audit document ({ok, checks: [{name, ok, value, detail}]}): *quiet is 1 when every
 * check named "*.in_flight" has the value 0 (no saga running, no event waiting, no live
 * reservation) and every service answered (no failed "*.audit" check), *ok the document's
 * verdict. Returns 0, or SL_EPARSE for a document without
 * that shape.
 */
int cli_audit_read(const json_t *doc, int *quiet, int *ok);

/* ---- HTTP to the gateway (http.c) -------------------------------------------------------- */

/*
 * One blocking request to `base` ("http://host:port") with an optional bearer token and JSON
 * body. Returns the status with *body (owned, NUL-terminated; free with free()) or a negative
 * SL_E* code (connection refused, timeout after `timeout_ms`, malformed answer).
 */
int cli_http(const char *base, const char *method, const char *path, const char *token,
             const char *body, int timeout_ms, char **resp);

/* ---- subcommands -------------------------------------------------------------------------- */

/* `shoal audit` and `shoal chaos`: argv holds the arguments after the subcommand (with
 * --config FILE among them). Return the exit status: audit 0 clean, 1 a violation, 2 an
 * error; chaos the audit's after the round. */
int cli_audit_main(int argc, char **argv);
int cli_chaos_main(int argc, char **argv);

/* The topology's data directory and gateway port (0: none) from `config` into data_dir
 * (cap bytes). Returns 0 or SL_ECONFIG (the reason printed). */
int cli_topology(const char *config, char *data_dir, size_t cap, int *gateway_port);

/* ---- hosting (hosting.c): the topology's `hosting:` block, pure ----------------------------- */

#define CLI_HOSTING_GROUPS_MAX  8
#define CLI_HOSTING_MEMBERS_MAX 16

/* A group's `bus:` key: how its services' events travel. */
typedef enum cli_hosting_bus {
    CLI_BUS_AUTO = 0, /* inproc when no service outside the group publishes or consumes events */
    CLI_BUS_NATS,
    CLI_BUS_INPROC,
} cli_hosting_bus;

/* One shoal-shop process of `shoal up`: its name and the services it hosts, in order. */
typedef struct cli_hosting_group {
    char name[CLI_NAME_MAX];
    char members[CLI_HOSTING_MEMBERS_MAX][CLI_NAME_MAX];
    size_t n;
    cli_hosting_bus bus; /* as configured */
    int inproc;          /* as decided by cli_hosting_buses: 1 on the in-process bus */
} cli_hosting_group;

/*
 * Reads `hosting:` of the topology `root` (borrowed) into out (cap groups): none when absent.
 * Each group needs a process name no service uses and 1..CLI_HOSTING_MEMBERS_MAX services of
 * the topology (not the gateway), each in at most one group. Returns 0 with *n set, or
 * SL_EINVAL with err (errcap bytes) naming the field.
 */
int cli_hosting_read(const json_t *root, cli_hosting_group *out, size_t cap, size_t *n, char *err,
                     size_t errcap);

/* The index of the group hosting `service`, or -1 (its own process). */
int cli_hosting_group_of(const cli_hosting_group *g, size_t n, const char *service);

/*
 * Decides each group's bus (g[i].inproc) from its `bus:` key: `inproc`, or `auto` when no
 * service of the topology `root` outside the group publishes or consumes events, per `defs`
 * (the service definitions as bin/shoal-defs.json holds them; NULL, or a service it does not
 * list, counts as using the bus; the gateway never does). *need_nats (may be NULL) gets 1 when
 * some service that uses the bus is not in an in-process group. Returns 0, or SL_EINVAL with
 * err naming the field when a group says `inproc` but a service outside it uses the bus.
 */
int cli_hosting_buses(const json_t *root, const json_t *defs, cli_hosting_group *g, size_t n,
                      int *need_nats, char *err, size_t errcap);

/* 1 when service `name` publishes or consumes events per `defs` (see cli_hosting_buses). */
int cli_service_uses_bus(const json_t *defs, const char *name);

#endif
