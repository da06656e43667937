/* `shoal graph` over a test's OTLP spans (graph_check.h). */
#include "graph_check.h"

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* One OTLP span as a receiver trace object's span. Returns owned. */
static json_t *span_of(const json_t *sp)
{
    static const char *const kinds[] = {"internal", "internal", "server",
                                        "client",   "producer", "consumer"};
    json_int_t k = json_integer_value(json_object_get(sp, "kind"));
    json_t *attrs = json_object(), *links = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(sp, "attributes"), i, a)
    {
        const json_t *v = json_object_get(json_object_get(a, "value"), "stringValue");
        if (json_is_string(v)) json_object_set(attrs, str(a, "key"), (json_t *)v);
    }
    json_array_foreach(json_object_get(sp, "links"), i, a) json_array_append_new(
        links, json_pack("{s:s, s:s}", "trace_id", str(a, "traceId"), "span_id", str(a, "spanId")));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "span_id", str(sp, "spanId"),
                     "parent_span_id", str(sp, "parentSpanId"), "service", str(sp, "service"),
                     "name", str(sp, "name"), "kind", kinds[k >= 1 && k <= 5 ? k : 0], "attributes",
                     attrs, "links", links);
}

int th_graph_check_spans(const json_t *spans, const char *dir, const char *args, char *out,
                         size_t cap)
{
    json_t *byid = json_object(), *traces = json_array();
    size_t i;
    json_t *sp;
    json_array_foreach(spans, i, sp)
    {
        const char *tid = str(sp, "traceId");
        json_t *t = json_object_get(byid, tid);
        if (!t) {
            t = json_pack("{s:s, s:[]}", "trace_id", tid, "spans");
            json_object_set_new(byid, tid, t);
            json_array_append(traces, t);
        }
        json_array_append_new(json_object_get(t, "spans"), span_of(sp));
    }
    char file[512], cmd[2048];
    snprintf(file, sizeof file, "%s/graph-spans.json", dir);
    int rc = json_dump_file(traces, file, JSON_COMPACT);
    json_decref(traces);
    json_decref(byid);
    if (rc != 0) return -1;
    snprintf(cmd, sizeof cmd, "cd %s && %s graph %s --spans %s > %s/graph.out 2>&1", dir,
             th_bin("shoal"), args, file, dir);
    int st = system(cmd);
    snprintf(file, sizeof file, "%s/graph.out", dir);
    FILE *f = fopen(file, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
