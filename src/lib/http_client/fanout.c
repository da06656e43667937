/*
 * Fan-out: start N calls, get one callback when all are done (the gateway's
 * aggregation uses it). Each call's response lives only while its own
 * callback runs, so the fan-out copies it (headers and body in one
 * allocation per item) and keeps it until sl_http_fanout_free.
 */
#include "client_int.h"

#include <stdlib.h>
#include <string.h>

#define FANOUT_MAX 1024

typedef struct slot {
    sl_http_fanout *fo;
    sl_http_handle *call;
    bool finished;
    sl_http_result res;
    sl_http_response resp;
    char *copy; /* headers array, then names, values and body */
} slot;

struct sl_http_fanout {
    size_t n, pending;
    bool started, done;
    sl_http_fanout_cb cb;
    void *data;
    slot slots[];
};

/* Copies a response into one allocation owned by the slot. Returns 0 or SL_ENOMEM. */
static int copy_response(slot *s, const sl_http_response *r)
{
    size_t bytes = r->nheaders * sizeof(sl_http_header) + r->body.len;
    for (size_t i = 0; i < r->nheaders; i++)
        bytes += r->headers[i].name.len + r->headers[i].value.len;
    s->copy = malloc(bytes ? bytes : 1);
    if (!s->copy) return SL_ENOMEM;
    sl_http_header *h = (sl_http_header *)(void *)s->copy;
    char *p = s->copy + r->nheaders * sizeof(sl_http_header);
    for (size_t i = 0; i < r->nheaders; i++) {
        memcpy(p, r->headers[i].name.ptr, r->headers[i].name.len);
        h[i].name = (sl_slice){p, r->headers[i].name.len};
        p += r->headers[i].name.len;
        memcpy(p, r->headers[i].value.ptr, r->headers[i].value.len);
        h[i].value = (sl_slice){p, r->headers[i].value.len};
        p += r->headers[i].value.len;
    }
    if (r->body.len) memcpy(p, r->body.ptr, r->body.len);
    s->resp = *r;
    s->resp.headers = h;
    s->resp.body = (sl_slice){r->body.len ? p : "", r->body.len};
    s->res.response = &s->resp;
    return 0;
}

static void item_done(sl_http_handle *call, const sl_http_result *res, void *data)
{
    (void)call;
    slot *s = data;
    sl_http_fanout *fo = s->fo;
    s->call = NULL;
    s->finished = true;
    s->res = *res;
    if (res->response && copy_response(s, res->response) != 0) {
        s->res.response = NULL;
        s->res.error = SL_ENOMEM;
        s->res.kind = SL_HTTP_RESULT_PROTOCOL;
    }
    if (--fo->pending == 0 && fo->started) {
        fo->done = true;
        fo->cb(fo, fo->data); /* may free fo */
    }
}

int sl_http_fanout_start(const sl_http_fanout_item *items, size_t n, sl_http_fanout_cb cb,
                         void *data, sl_http_fanout **out)
{
    if (!items || n == 0 || n > FANOUT_MAX || !cb || !out) return SL_EINVAL;
    sl_http_fanout *fo = calloc(1, sizeof *fo + n * sizeof(slot));
    if (!fo) return SL_ENOMEM;
    fo->n = n;
    fo->cb = cb;
    fo->data = data;
    int first_error = 0;
    for (size_t i = 0; i < n; i++) {
        slot *s = &fo->slots[i];
        s->fo = fo;
        int rc = items[i].upstream ? sl_http_call(items[i].upstream, &items[i].request,
                                                  items[i].opts, item_done, s, &s->call)
                                   : SL_EINVAL;
        if (rc == 0) {
            fo->pending++;
            continue;
        }
        if (!first_error) first_error = rc;
        s->finished = true;
        s->res.error = rc;
        s->res.kind = rc == SL_ECLOSED ? SL_HTTP_RESULT_CANCELED : SL_HTTP_RESULT_PROTOCOL;
    }
    if (fo->pending == 0) {
        free(fo);
        return first_error;
    }
    fo->started = true; /* calls never complete synchronously, so pending > 0 here */
    *out = fo;
    return 0;
}

size_t sl_http_fanout_count(const sl_http_fanout *fo)
{
    return fo->n;
}

const sl_http_result *sl_http_fanout_result(const sl_http_fanout *fo, size_t i)
{
    if (i >= fo->n || !fo->slots[i].finished) return NULL;
    return &fo->slots[i].res;
}

void sl_http_fanout_free(sl_http_fanout *fo)
{
    if (!fo) return;
    for (size_t i = 0; i < fo->n; i++) {
        if (fo->slots[i].call) sl_http_call_cancel(fo->slots[i].call);
        free(fo->slots[i].copy);
    }
    free(fo);
}
