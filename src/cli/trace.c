/*
 * shoal trace: shows traces the local receiver keeps (trace.h; docs/observability.md).
 *
 *   shoal trace [TRACE_ID | --last | --slowest N | --errors] [--order ORDER_ID]
 *               [--receiver URL] [--width N]
 *
 * TRACE_ID shows that trace; --last (the default) the newest; --slowest N lists the N slowest
 * and shows the slowest; --errors lists the newest traces with an error and shows the newest;
 * --order shows every trace with a span of that order (its checkout, saga steps and events),
 * oldest first. It reads the receiver's JSON API (default http://127.0.0.1:4318).
 */
#include "trace.h"
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT_MS 10000

static void usage(FILE *to)
{
    fprintf(to,
            "usage: shoal trace [TRACE_ID | --last | --slowest N | --errors] [--order ORDER_ID]\n"
            "                   [--receiver URL] [--width N]\n"
            "  TRACE_ID       show that trace (32 hex digits)\n"
            "  --last         show the newest trace (the default)\n"
            "  --slowest N    list the N slowest traces (1..100) and show the slowest\n"
            "  --errors       list the newest traces with an error and show the newest\n"
            "  --order ID     show the traces of an order (checkout, saga steps, events)\n"
            "  --receiver URL the trace receiver (default http://127.0.0.1:4318)\n"
            "  --width N      columns of the timeline bar (10..200, default 40)\n");
}

/* GET path from the receiver as JSON. Returns the HTTP status (with *out owned) or < 0. */
static int get_json(const char *base, const char *path, json_t **out)
{
    char *body = NULL;
    *out = NULL;
    int status = cli_http(base, "GET", path, NULL, NULL, TIMEOUT_MS, &body);
    if (status < 0) {
        fprintf(stderr,
                "shoal trace: cannot reach the trace receiver at %s (%s); is `shoal up` "
                "running with a telemetry block?\n",
                base, sl_strerror(status));
        return status;
    }
    *out = body ? json_loads(body, 0, NULL) : NULL;
    if (status != 200 && status != 404) {
        const char *detail = json_string_value(json_object_get(*out, "detail"));
        fprintf(stderr, "shoal trace: GET %s: HTTP %d %s\n", path, status, detail ? detail : "");
    }
    free(body);
    return status;
}

static int valid_hex32(const char *s)
{
    if (strlen(s) != 32) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

static int show(const char *base, const char *trace_id, int width)
{
    if (!trace_id || !valid_hex32(trace_id)) {
        fprintf(stderr, "shoal trace: the receiver listed a trace without a valid id\n");
        return 2;
    }
    char path[96];
    snprintf(path, sizeof path, "/api/traces/%s", trace_id);
    json_t *doc = NULL;
    int status = get_json(base, path, &doc);
    if (status == 404) fprintf(stderr, "shoal trace: no trace %s is stored\n", trace_id);
    if (status != 200) {
        json_decref(doc);
        return status == 404 ? 1 : 2;
    }
    char *text = NULL;
    int rc = cli_waterfall(doc, width, &text);
    json_decref(doc);
    if (rc != 0) {
        fprintf(stderr, "shoal trace: the receiver's answer has an unexpected shape\n");
        return 2;
    }
    fputs(text, stdout);
    free(text);
    return 0;
}

static void list(const json_t *traces)
{
    printf("  %-32s  %-12s %9s %6s  %s\n", "TRACE", "START (UTC)", "DURATION", "SPANS", "ROOT");
    size_t i;
    const json_t *t;
    json_array_foreach(traces, i, t)
    {
        char d[32], when[32] = "";
        cli_trace_duration((int64_t)json_integer_value(json_object_get(t, "duration_ns")), d,
                           sizeof d);
        time_t secs = (time_t)(json_integer_value(json_object_get(t, "start_ns")) / 1000000000);
        struct tm tm;
        if (gmtime_r(&secs, &tm)) strftime(when, sizeof when, "%H:%M:%S", &tm);
        const char *svc = json_string_value(json_object_get(t, "root_service"));
        const char *name = json_string_value(json_object_get(t, "root_name"));
        printf("  %-32s  %-12s %9s %6lld  %s %s%s\n",
               json_string_value(json_object_get(t, "trace_id")), when, d,
               (long long)json_integer_value(json_object_get(t, "span_count")), svc ? svc : "",
               name ? name : "", json_is_true(json_object_get(t, "error")) ? "  (error)" : "");
    }
    printf("\n");
}

/* Percent-encodes s (at most 64 bytes) for a query string. Returns 0 or SL_ELIMIT. */
static int encode(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    if (strlen(s) == 0 || strlen(s) > 64) return SL_ELIMIT;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (o + 4 > cap) return SL_ELIMIT;
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
    }
    out[o] = '\0';
    return 0;
}

int cli_trace_main(int argc, char **argv)
{
    const char *base = "http://127.0.0.1:4318", *id = NULL, *order = NULL;
    int slowest = 0, errors = 0, width = 40;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--last") == 0) {
            /* the default */
        } else if (strcmp(a, "--errors") == 0) {
            errors = 1;
        } else if (strcmp(a, "--slowest") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 100) {
                fprintf(stderr, "shoal trace: --slowest: must be an integer 1..100\n");
                return 2;
            }
            slowest = (int)n;
        } else if (strcmp(a, "--order") == 0 && i + 1 < argc) {
            order = argv[++i];
        } else if (strcmp(a, "--receiver") == 0 && i + 1 < argc) {
            base = argv[++i];
        } else if (strcmp(a, "--width") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 10 || n > 200) {
                fprintf(stderr, "shoal trace: --width: must be an integer 10..200\n");
                return 2;
            }
            width = (int)n;
        } else if (a[0] != '-' && !id) {
            id = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (id) {
        if (!valid_hex32(id)) {
            fprintf(stderr, "shoal trace: TRACE_ID: must be 32 lowercase hex digits\n");
            return 2;
        }
        return show(base, id, width);
    }
    char path[256], enc[200] = "";
    if (order && encode(order, enc, sizeof enc) != 0) {
        fprintf(stderr, "shoal trace: --order: must be 1..64 bytes\n");
        return 2;
    }
    snprintf(path, sizeof path, "/api/traces?limit=%d%s%s%s%s",
             order     ? 100
             : slowest ? slowest
             : errors  ? 10
                       : 1,
             slowest ? "&slowest=1" : "", errors ? "&errors=1" : "", order ? "&order_id=" : "",
             enc);
    json_t *doc = NULL;
    int status = get_json(base, path, &doc);
    if (status != 200) {
        json_decref(doc);
        return 2;
    }
    const json_t *traces = json_object_get(doc, "traces");
    size_t n = json_array_size(traces);
    if (n == 0) {
        fprintf(stderr, "shoal trace: no %strace%s%s stored yet\n", errors ? "failed " : "",
                order ? " of order " : "", order ? order : "");
        json_decref(doc);
        return 1;
    }
    int rc = 0;
    if (order) {
        /* Every trace of the order, oldest first (the list is newest first). */
        for (size_t i = n; i-- > 0 && rc == 0;) {
            rc = show(base,
                      json_string_value(json_object_get(json_array_get(traces, i), "trace_id")),
                      width);
            if (i > 0) printf("\n");
        }
    } else {
        if (slowest || errors) list(traces);
        rc = show(base, json_string_value(json_object_get(json_array_get(traces, 0), "trace_id")),
                  width);
    }
    json_decref(doc);
    return rc;
}
