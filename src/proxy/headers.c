/* Header filtering for forwarding (headers.h). */
#include "headers.h"

#include <shoal/trace.h>

#include <string.h>

static const sl_slice hop[] = {SL_SLICE_LIT("connection"),
                               SL_SLICE_LIT("keep-alive"),
                               SL_SLICE_LIT("proxy-connection"),
                               SL_SLICE_LIT("te"),
                               SL_SLICE_LIT("trailer"),
                               SL_SLICE_LIT("transfer-encoding"),
                               SL_SLICE_LIT("upgrade"),
                               SL_SLICE_LIT("proxy-authenticate"),
                               SL_SLICE_LIT("proxy-authorization")};

static int listed_in(sl_slice name, sl_slice list)
{
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && (list.ptr[i] == ' ' || list.ptr[i] == '\t' || list.ptr[i] == ','))
            i++;
        size_t start = i;
        while (i < list.len && list.ptr[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (list.ptr[end - 1] == ' ' || list.ptr[end - 1] == '\t'))
            end--;
        if (end > start && end - start == name.len) {
            char tmp[64];
            if (name.len < sizeof tmp) {
                memcpy(tmp, list.ptr + start, name.len);
                tmp[name.len] = '\0';
                if (sl_slice_case_eq(name, tmp)) return 1;
            }
        }
    }
    return 0;
}

int px_is_hop_by_hop(sl_slice name, sl_slice connection)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(hop); i++)
        if (sl_slice_case_eq_slice(name, hop[i])) return 1;
    return connection.len > 0 && listed_in(name, connection);
}

static int starts_with_ci(sl_slice s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && sl_slice_case_eq((sl_slice){s.ptr, n}, prefix);
}

void px_filter_request_headers(const sl_http_header *in, size_t n, const char *client_ip,
                               px_fwd_headers *out)
{
    SL_ASSERT(out && client_ip && (in || n == 0));
    sl_slice conn = {NULL, 0}, xff = {NULL, 0}, tp = {NULL, 0};
    sl_http_header_find(in, n, "connection", &conn);
    sl_http_header_find(in, n, "x-forwarded-for", &xff);
    /* W3C Trace Context: a valid tracestate travels on with the trace it belongs to, so only
     * beside a valid traceparent (the gateway's span joins that trace); otherwise it is dropped. */
    sl_trace_ctx tc;
    int keep_ts = sl_http_header_find(in, n, "traceparent", &tp) &&
                  sl_traceparent_parse(tp.ptr, tp.len, &tc) == 0;
    out->n = 0;
    for (size_t i = 0; i < n && out->n < PX_FWD_HEADERS_MAX - 8; i++) {
        sl_slice name = in[i].name;
        if (px_is_hop_by_hop(name, conn) || SL_SLICE_CASE_EQ_LIT(name, "host") ||
            SL_SLICE_CASE_EQ_LIT(name, "content-length") || starts_with_ci(name, "x-user-") ||
            SL_SLICE_CASE_EQ_LIT(name, "x-shoal-identity") || SL_SLICE_CASE_EQ_LIT(name, "via") ||
            starts_with_ci(name, "x-forwarded-") || SL_SLICE_CASE_EQ_LIT(name, "forwarded") ||
            SL_SLICE_CASE_EQ_LIT(name, "traceparent") ||
            (SL_SLICE_CASE_EQ_LIT(name, "tracestate") &&
             !(keep_ts && sl_tracestate_validate(in[i].value.ptr, in[i].value.len) == 0)) ||
            SL_SLICE_CASE_EQ_LIT(name, "x-request-id") ||
            SL_SLICE_CASE_EQ_LIT(name, "idempotency-key") ||
            SL_SLICE_CASE_EQ_LIT(name, "x-shoal-deadline-ms"))
            continue; /* the client call sets these itself, from verified values */
        out->h[out->n++] = in[i];
    }
    out->h[out->n++] = (sl_http_header){SL_SLICE_LIT("Via"), SL_SLICE_LIT("1.1 shoal")};
    /* The incoming list, when it leaves room, then the client's address (cut to fit). */
    size_t k = 0, ip = strlen(client_ip);
    if (xff.len > 0 && xff.len < sizeof out->xff - 64) {
        memcpy(out->xff, xff.ptr, xff.len);
        memcpy(out->xff + xff.len, ", ", 2);
        k = xff.len + 2;
    }
    if (ip > sizeof out->xff - 1 - k) ip = sizeof out->xff - 1 - k;
    memcpy(out->xff + k, client_ip, ip);
    k += ip;
    out->xff[k] = '\0';
    out->h[out->n++] = (sl_http_header){SL_SLICE_LIT("X-Forwarded-For"), {out->xff, k}};
    out->h[out->n++] = (sl_http_header){SL_SLICE_LIT("X-Forwarded-Proto"), SL_SLICE_LIT("http")};
}

size_t px_filter_response_headers(const sl_http_header *in, size_t n, sl_http_header *out,
                                  size_t cap)
{
    SL_ASSERT((in || n == 0) && (out || cap == 0));
    sl_slice conn = {NULL, 0};
    sl_http_header_find(in, n, "connection", &conn);
    size_t k = 0;
    for (size_t i = 0; i < n && k < cap; i++) {
        sl_slice name = in[i].name;
        if (px_is_hop_by_hop(name, conn) || SL_SLICE_CASE_EQ_LIT(name, "content-length") ||
            SL_SLICE_CASE_EQ_LIT(name, "date") || SL_SLICE_CASE_EQ_LIT(name, "x-request-id") ||
            SL_SLICE_CASE_EQ_LIT(name, "traceparent"))
            continue;
        out[k++] = in[i];
    }
    return k;
}
