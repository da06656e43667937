/*
 * Traces in the `shoal` command: the topology's telemetry settings that `shoal up` applies
 * (telemetry.c), the waterfall of one trace (waterfall.c, pure: unit-tested alone) and
 * `shoal trace` (trace.c), which reads the local receiver's JSON API
 * (docs/observability.md, "Local trace view").
 */
#ifndef SHOAL_CLI_TRACE_H
#define SHOAL_CLI_TRACE_H

#include <shoal/common.h>

#include <jansson.h>
#include <limits.h>
#include <stddef.h>

typedef struct sl_config sl_config;

#define CLI_TELEMETRY_ENV_MAX 6

/* What `shoal up` does with spans, from the topology's `telemetry:` block. */
typedef struct cli_telemetry {
    char endpoint[256]; /* SHOAL_TELEMETRY__OTLP_ENDPOINT of every process; "" = no export */
    int receiver_port;  /* the local receiver (shoal-traces) to start; 0 = none */
    /* The receiver's environment: key/value pairs. */
    const char *receiver_env_key[CLI_TELEMETRY_ENV_MAX];
    char receiver_env_val[CLI_TELEMETRY_ENV_MAX][PATH_MAX + 16];
    size_t nreceiver_env;
} cli_telemetry;

/*
 * Reads `telemetry:` of the topology (borrowed):
 *   absent                         no export and no receiver;
 *   otlp_endpoint: URL (non-empty) every process exports there; no receiver is started;
 *   otherwise                      the local receiver on 127.0.0.1:receiver.port (4318), its
 *                                  store <data_dir>/traces.db bounded by receiver.max_spans
 *                                  and receiver.max_age_s, and every process exports to it.
 * Returns 0, or SL_ECONFIG with the reason printed on stderr.
 */
int cli_telemetry_read(const sl_config *cfg, const char *data_dir, cli_telemetry *out);

/*
 * Renders one trace as the API gives it ({"trace_id", "spans":[...]}, borrowed) as an
 * indented waterfall: one line per span, children under their parent in start order, with
 * service, name, duration, a bar of `width` columns scaled to the trace and the status; spans
 * whose parent is not in the trace are shown as roots. Returns 0 and *out (owned, free()), or
 * SL_EINVAL for a document of another shape, SL_ENOMEM. Pure.
 */
int cli_waterfall(const json_t *trace, int width, char **out);

/* Formats a duration in nanoseconds as "850us", "12.3ms", "1.25s" into buf. Pure. */
void cli_trace_duration(int64_t ns, char *buf, size_t cap);

/* `shoal trace`: argv holds the arguments after the subcommand. Returns the exit status:
 * 0 shown, 1 nothing found, 2 a usage error or the receiver unreachable. */
int cli_trace_main(int argc, char **argv);

#endif
