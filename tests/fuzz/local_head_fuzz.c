/*
 * libFuzzer target for in-process requests (http.h, sl_http_local_request):
 * the input is split at the first empty line into a request head and a body,
 * run through callbacks that route on nothing and answer at once. Checks
 * that a refused head ran no callback, that an accepted one was answered
 * exactly once (the handler at most once: a body over the limit is refused
 * before it), and that the parsed target and headers are well-formed.
 */
#include <shoal/http.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
    int requests, responses, done;
} seen;

static void on_request(sl_http_req *req, void *data)
{
    seen *s = data;
    s->requests++;
    if (req->target.len == 0 || req->target.ptr[0] != '/') abort();
    if (req->path.len > req->target.len) abort();
    for (size_t i = 0; i < req->nheaders; i++) {
        if (req->headers[i].name.len == 0) abort();
        if (memchr(req->headers[i].name.ptr, '\n', req->headers[i].name.len)) abort();
        if (memchr(req->headers[i].value.ptr, '\n', req->headers[i].value.len)) abort();
    }
    sl_http_header h = {{"X-Len", 5}, {"1", 1}};
    sl_http_respond(req, 200, &h, 1, req->body.ptr, req->body.len);
}

static void on_response(sl_http_req *req, int status, size_t len, void *data)
{
    (void)req, (void)status, (void)len;
    ((seen *)data)->responses++;
}

static void done(void *data, int status, const sl_http_header *h, size_t n, const void *body,
                 size_t len)
{
    (void)h, (void)n, (void)body, (void)len;
    if (status != 200 && status != 413) abort();
    ((seen *)data)->done++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t head_len = size;
    for (size_t i = 0; i + 3 < size; i++)
        if (memcmp(s + i, "\r\n\r\n", 4) == 0) {
            head_len = i + 4;
            break;
        }
    seen st = {0};
    sl_http_callbacks cbs = {.on_request = on_request, .on_response = on_response, .data = &st};
    sl_http_local *l = NULL;
    int rc = sl_http_local_request(&cbs, 1024, s, head_len, s + head_len, size - head_len, done,
                                   &st, &l);
    if (rc != 0) {
        if (st.requests || st.responses || st.done) abort();
        return 0;
    }
    if (st.responses != 1 || st.done != 1) abort();
    if (st.requests > 1) abort();
    return 0;
}
