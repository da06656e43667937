/*
 * The waterfall of one trace (trace.h): spans in, text out. Pure: no I/O, no clock.
 *
 *   trace 0af7651916cd43dd8448eb211c80319c: 3 spans, 50.0ms, error
 *     SERVICE       SPAN                                   DURATION  TIMELINE      STATUS
 *     gateway       POST /api/v1/orders                      50.0ms  |##########|
 *     order           POST /orders                           39.0ms  | ######## |  error: boom
 */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPANS_MAX   100000 /* more than the receiver keeps of one trace in practice */
#define DEPTH_MAX   16     /* deeper spans are drawn at this indentation */
#define NAME_COLS   44     /* indentation + span name */
#define SERVICE_COL 14

typedef struct node {
    const char *id, *parent, *service, *name, *status, *message, *kind;
    int64_t start, end;
    size_t first_child, last_child, next_sibling; /* indices + 1; 0 = none */
    int shown;
} node;

void cli_trace_duration(int64_t ns, char *buf, size_t cap)
{
    if (ns < 0) ns = 0;
    if (ns < 1000)
        snprintf(buf, cap, "%lldns", (long long)ns);
    else if (ns < 1000000)
        snprintf(buf, cap, "%lldus", (long long)(ns / 1000));
    else if (ns < 1000000000)
        snprintf(buf, cap, "%.1fms", (double)ns / 1e6);
    else
        snprintf(buf, cap, "%.2fs", (double)ns / 1e9);
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Bytes of s that fit in `cols` columns (one per UTF-8 character), cut on a boundary. */
static size_t fit(const char *s, size_t cols, size_t *used)
{
    size_t i = 0, c = 0;
    while (s[i] && c < cols) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        c++;
    }
    *used = c;
    return i;
}

/* Appends child to parent's children; callers add them in start order (then id). */
static void link_child(node *n, size_t parent, size_t child)
{
    if (n[parent].last_child)
        n[n[parent].last_child - 1].next_sibling = child + 1;
    else
        n[parent].first_child = child + 1;
    n[parent].last_child = child + 1;
}

static int cmp_start(const void *a, const void *b, void *ctx)
{
    const node *n = ctx;
    const node *x = &n[*(const size_t *)a], *y = &n[*(const size_t *)b];
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp_id(const void *a, const void *b, void *ctx)
{
    const node *n = ctx;
    return strcmp(n[*(const size_t *)a].id, n[*(const size_t *)b].id);
}

static void line(FILE *f, const node *s, int depth, int64_t t0, int64_t total, int width)
{
    size_t used;
    size_t sb = fit(s->service, SERVICE_COL, &used);
    fprintf(f, "  %.*s%*s ", (int)sb, s->service, (int)(SERVICE_COL - used), "");
    int indent = (depth > DEPTH_MAX ? DEPTH_MAX : depth) * 2;
    size_t nb = fit(s->name, (size_t)(NAME_COLS - indent), &used);
    fprintf(f, "%*s%.*s%*s", indent, "", (int)nb, s->name, (int)(NAME_COLS - indent - (int)used),
            "");
    char d[32];
    cli_trace_duration(s->end - s->start, d, sizeof d);
    fprintf(f, " %9s  |", d);
    double scale = (double)width / (double)total;
    int c0 = (int)((double)(s->start - t0) * scale);
    int c1 = (int)((double)(s->end - t0) * scale + 0.999);
    if (c0 >= width) c0 = width - 1;
    if (c1 <= c0) c1 = c0 + 1;
    if (c1 > width) c1 = width;
    for (int c = 0; c < width; c++)
        fputc(c >= c0 && c < c1 ? '#' : ' ', f);
    fputc('|', f);
    if (strcmp(s->status, "error") == 0)
        fprintf(f, "  error%s%s", s->message[0] ? ": " : "", s->message);
    else if (strcmp(s->status, "ok") == 0)
        fputs("  ok", f);
    if (strcmp(s->kind, "producer") == 0 || strcmp(s->kind, "consumer") == 0)
        fprintf(f, "  (%s)", s->kind);
    fputc('\n', f);
}

/* Depth-first from `root`, with an explicit stack (no recursion on input depth). */
static int walk(FILE *f, node *n, size_t count, size_t root, int64_t t0, int64_t total, int width)
{
    size_t *stack = malloc(count * sizeof *stack);
    int *depth = malloc(count * sizeof *depth);
    if (!stack || !depth) {
        free(stack);
        free(depth);
        return SL_ENOMEM;
    }
    size_t top = 0;
    stack[top] = root;
    depth[top++] = 0;
    while (top > 0) {
        top--;
        size_t i = stack[top];
        int d = depth[top];
        if (n[i].shown) continue;
        n[i].shown = 1;
        line(f, &n[i], d, t0, total, width);
        /* Push children in reverse so the earliest is drawn first. */
        size_t kids = 0;
        for (size_t c = n[i].first_child; c; c = n[c - 1].next_sibling)
            kids++;
        if (top + kids > count) kids = count - top;
        size_t at = top + kids, k = 0;
        for (size_t c = n[i].first_child; c && k < kids; c = n[c - 1].next_sibling, k++) {
            stack[at - 1 - k] = c - 1;
            depth[at - 1 - k] = d + 1;
        }
        top = at;
    }
    free(stack);
    free(depth);
    return 0;
}

int cli_waterfall(const json_t *trace, int width, char **out)
{
    SL_ASSERT(out != NULL);
    *out = NULL;
    const json_t *spans = json_object_get(trace, "spans");
    if (!json_is_object(trace) || !json_is_array(spans) || json_array_size(spans) > SPANS_MAX)
        return SL_EINVAL;
    if (width < 10) width = 10;
    if (width > 200) width = 200;
    size_t count = json_array_size(spans);
    node *n = calloc(count ? count : 1, sizeof *n);
    size_t *order = malloc((count ? count : 1) * sizeof *order);
    if (!n || !order) {
        free(n);
        free(order);
        return SL_ENOMEM;
    }
    int64_t t0 = INT64_MAX, t1 = INT64_MIN;
    int error = 0;
    for (size_t i = 0; i < count; i++) {
        const json_t *s = json_array_get(spans, i);
        const json_t *st = json_object_get(s, "start_ns"), *en = json_object_get(s, "end_ns");
        if (!json_is_object(s) || !json_is_string(json_object_get(s, "span_id")) ||
            !json_is_integer(st) || !json_is_integer(en)) {
            free(n);
            free(order);
            return SL_EINVAL;
        }
        n[i] = (node){.id = str(s, "span_id"),
                      .parent = str(s, "parent_span_id"),
                      .service = str(s, "service"),
                      .name = str(s, "name"),
                      .status = str(s, "status"),
                      .message = str(s, "status_message"),
                      .kind = str(s, "kind"),
                      .start = (int64_t)json_integer_value(st),
                      .end = (int64_t)json_integer_value(en)};
        if (n[i].end < n[i].start) n[i].end = n[i].start;
        if (n[i].start < t0) t0 = n[i].start;
        if (n[i].end > t1) t1 = n[i].end;
        if (strcmp(n[i].status, "error") == 0) error = 1;
        order[i] = i;
    }
    /* Start order for drawing; parents found by id in a sorted index. */
    qsort_r(order, count, sizeof *order, cmp_start, n);
    size_t *byid = malloc((count ? count : 1) * sizeof *byid);
    if (!byid) {
        free(n);
        free(order);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < count; i++)
        byid[i] = i;
    qsort_r(byid, count, sizeof *byid, cmp_id, n);
    int *is_child = calloc(count ? count : 1, sizeof *is_child);
    if (!is_child) {
        free(n);
        free(order);
        free(byid);
        return SL_ENOMEM;
    }
    for (size_t k = 0; k < count; k++) {
        size_t i = order[k];
        if (!n[i].parent[0] || strcmp(n[i].parent, n[i].id) == 0) continue;
        size_t lo = 0, hi = count;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(n[byid[mid]].id, n[i].parent) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < count && strcmp(n[byid[lo]].id, n[i].parent) == 0) {
            link_child(n, byid[lo], i);
            is_child[i] = 1;
        }
    }
    free(byid);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        free(n);
        free(order);
        free(is_child);
        return SL_ENOMEM;
    }
    int64_t total = count ? t1 - t0 : 0;
    char d[32];
    cli_trace_duration(total, d, sizeof d);
    fprintf(f, "trace %s: %zu span%s, %s%s\n", str(trace, "trace_id"), count, count == 1 ? "" : "s",
            d, error ? ", error" : "");
    fprintf(f, "  %-*s %-*s %9s  %-*s  %s\n", SERVICE_COL, "SERVICE", NAME_COLS, "SPAN", "DURATION",
            width + 2, "TIMELINE", "STATUS");
    if (total <= 0) total = 1;
    int rc = 0;
    /* Roots first (in start order), then whatever a broken parent chain left unshown. */
    for (int pass = 0; pass < 2 && rc == 0; pass++)
        for (size_t k = 0; k < count && rc == 0; k++) {
            size_t i = order[k];
            if (!n[i].shown && (pass == 1 || !is_child[i]))
                rc = walk(f, n, count, i, t0, total, width);
        }
    fclose(f);
    free(n);
    free(order);
    free(is_child);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return buf ? 0 : SL_ENOMEM;
}
