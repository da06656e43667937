/*
 * `shoal graph` over spans a test collected as OTLP JSON (graph_check.c): the
 * spans are rewritten as the local receiver's trace objects
 * (docs/observability.md, "Dependency graph") into a file the command reads.
 */
#ifndef SHOAL_TEST_GRAPH_CHECK_H
#define SHOAL_TEST_GRAPH_CHECK_H

#include <jansson.h>
#include <stddef.h>

/*
 * `spans` (borrowed): a JSON array of OTLP spans ({traceId, spanId, parentSpanId, name, kind
 * 1..5, attributes: [{key, value: {stringValue|intValue|...}}], links: [{traceId, spanId}]}),
 * each with a member "service". Writes them grouped by trace to `dir`/graph-spans.json, runs
 * `shoal graph ARGS --spans <that file>` in `dir` and returns its exit status, with its
 * stdout and stderr in `out` (cap bytes). Returns -1 when it cannot run it.
 */
int th_graph_check_spans(const json_t *spans, const char *dir, const char *args, char *out,
                         size_t cap);

#endif
