/*
 * In-process attempts (http_client.h, sl_http_local_register): a per-thread
 * registry of the ports whose server runs on this thread, and the attempt
 * that hands the request to that server's callbacks instead of a connection.
 * The response comes back as the status, headers and body the handler gave;
 * it is framed once and read by the same strict response reader as bytes
 * from a socket, so a caller cannot tell the two apart but by the absence
 * of a connection. The attempt's head (sl__http_head_build) is written here for both kinds
 * of attempt; this file names nothing of client.c (the attempt ends through up->hooks).
 */
#include "client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCAL_PORTS_MAX 64

typedef struct local_entry {
    int port;
    const sl_http_callbacks *cbs;
    size_t body_max;
} local_entry;

/* This thread's servers (the loop threads of a multi-service host each have their own). */
static _Thread_local local_entry local_reg[LOCAL_PORTS_MAX];
static _Thread_local size_t local_n;

int sl_http_local_register(int port, const sl_http_callbacks *cbs, size_t body_max)
{
    SL_ASSERT(cbs != NULL && cbs->on_request != NULL);
    for (size_t i = 0; i < local_n; i++)
        if (local_reg[i].port == port) return SL_EEXIST;
    if (local_n == LOCAL_PORTS_MAX) return SL_ELIMIT;
    local_reg[local_n++] = (local_entry){port, cbs, body_max};
    return 0;
}

void sl_http_local_unregister(int port)
{
    for (size_t i = 0; i < local_n; i++)
        if (local_reg[i].port == port) {
            local_reg[i] = local_reg[--local_n];
            return;
        }
}

static const local_entry *local_find(const endpoint *ep)
{
    if (local_n == 0) return NULL;
    if (strcmp(ep->host, "127.0.0.1") != 0 && strcmp(ep->host, "::1") != 0 &&
        strcmp(ep->host, "localhost") != 0)
        return NULL;
    for (size_t i = 0; i < local_n; i++)
        if (local_reg[i].port == ep->port) return &local_reg[i];
    return NULL;
}

/* Writes the attempt's head into call->head (the network send in client.c and the in-process
 * attempt below share it): the prepared request plus Host, traceparent (the
 * attempt's span), the caller's tracestate and the remaining deadline. Returns its length or
 * SL_ENOMEM / SL_EIO. */
int sl__http_head_build(sl_http_handle *call)
{
    sl_upstream *up = call->up;
    const char *host = up->host_header ? up->host_header : call->ep->hostport;
    char tp[SL_TRACEPARENT_MAX], dl[SL_DEADLINE_HEADER_BUF];
    const char *tpv = NULL, *dlv = NULL;
    if (call->span) {
        sl_traceparent_format(sl_span_context(call->span), tp);
        tpv = tp;
    } else if (call->has_parent) {
        sl_trace_ctx child = call->parent; /* no tracer: still a fresh span id per attempt */
        sl_span_id_new(up->rand, child.span_id);
        sl_traceparent_format(&child, tp);
        tpv = tp;
    }
    if (sl_deadline_format_header(call->deadline, up->clock, dl, sizeof dl) > 0) dlv = dl;
    size_t need = call->prep.tail_off + call->prep.tail_len + strlen(host) + 256 +
                  (call->tracestate ? strlen(call->tracestate) + 16 : 0);
    if (need > call->head_cap) {
        /* Past the room reserved in the call's block (a longer endpoint name): the heap. */
        char *h = realloc(call->head_inline ? NULL : call->head, need);
        if (!h) return SL_ENOMEM;
        call->head = h;
        call->head_cap = need;
        call->head_inline = false;
    }
    /* tracestate travels with the trace it belongs to (W3C Trace Context §3.3): only beside a
     * traceparent. */
    const char *tsv = tpv ? call->tracestate : NULL;
    int n = sl__http_head_write(&call->prep, host, tpv, tsv, dlv, call->head, call->head_cap);
    return n < 0 ? SL_EIO : n;
}

/* Framing a server adds and the reader must not see twice. */
static int framing_header(const sl_http_header *h)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection"};
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        if (h->name.len == strlen(names[i]) && strncasecmp(h->name.ptr, names[i], h->name.len) == 0)
            return 1;
    return 0;
}

static void local_done(void *data, int status, const sl_http_header *headers, size_t nheaders,
                       const void *body, size_t body_len)
{
    sl_http_handle *call = data;
    sl_upstream *up = call->up;
    call->local = NULL;
    size_t cap = 64;
    for (size_t i = 0; i < nheaders; i++)
        cap += headers[i].name.len + headers[i].value.len + 4;
    char *head = malloc(cap);
    if (!head) {
        up->hooks->attempt_end(call, sl_outcome_of(SL_OUTCOME_IO_ERROR), SL_HTTP_RESULT_IO,
                               SL_ENOMEM);
        return;
    }
    size_t n = (size_t)snprintf(head, cap, "HTTP/1.1 %d -\r\n", status);
    for (size_t i = 0; i < nheaders; i++) {
        if (framing_header(&headers[i])) continue;
        memcpy(head + n, headers[i].name.ptr, headers[i].name.len);
        n += headers[i].name.len;
        memcpy(head + n, ": ", 2);
        n += 2;
        memcpy(head + n, headers[i].value.ptr, headers[i].value.len);
        n += headers[i].value.len;
        memcpy(head + n, "\r\n", 2);
        n += 2;
    }
    int bodyless = status < 200 || status == 204 || status == 304;
    char cl[48];
    int cln = bodyless ? snprintf(cl, sizeof cl, "\r\n")
                       : snprintf(cl, sizeof cl, "Content-Length: %zu\r\n\r\n", body_len);
    size_t used = 0;
    int rc = sl__http_resp_feed(&call->resp, head, n, &used);
    if (rc == 0) rc = sl__http_resp_feed(&call->resp, cl, (size_t)cln, &used);
    if (rc == 0 && !bodyless && call->method != SL_HTTP_HEAD && body_len)
        rc = sl__http_resp_feed(&call->resp, body, body_len, &used);
    free(head);
    if (rc == 1) {
        up->hooks->response(call, false);
        return;
    }
    sl_http_result_kind kind = rc == SL_ELIMIT ? SL_HTTP_RESULT_TOO_LARGE : SL_HTTP_RESULT_PROTOCOL;
    up->hooks->attempt_end(call, sl_outcome_of(SL_OUTCOME_IO_ERROR), kind, rc < 0 ? rc : SL_EPARSE);
}

bool sl__http_local_attempt(sl_http_handle *call)
{
    const local_entry *e = local_find(call->ep);
    if (!e) return false;
    sl_upstream *up = call->up;
    int n = sl__http_head_build(call);
    if (n < 0) {
        up->hooks->attempt_end(call, sl_outcome_of(SL_OUTCOME_CONNECT_ERROR),
                               SL_HTTP_RESULT_CONNECT, n);
        return true;
    }
    sl__http_resp_reset(&call->resp, call->method == SL_HTTP_HEAD);
    up->stats.local_attempts++;
    sl__http_metrics_inc(up->m.local_attempts, &up->m);
    int rc = sl_http_local_request(e->cbs, e->body_max, call->head, (size_t)n, call->body,
                                   call->body_len, local_done, call, &call->local);
    if (rc != 0) {
        call->local = NULL;
        up->hooks->attempt_end(call, sl_outcome_of(SL_OUTCOME_IO_ERROR), SL_HTTP_RESULT_IO, rc);
    }
    return true;
}
