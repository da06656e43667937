/*
 * RFC 9457 problem details: builds the `application/problem+json` body that
 * every Shoal HTTP error carries, with an `errors` extension member listing
 * each invalid field, and the RFC 9110 reason phrases used as default titles.
 */
#include <shoal/json.h>

#include <string.h>

#define SL_HTTP_STATUS_MAP(X)                                                                      \
    X(400, "Bad Request")                                                                          \
    X(401, "Unauthorized")                                                                         \
    X(402, "Payment Required")                                                                     \
    X(403, "Forbidden")                                                                            \
    X(404, "Not Found")                                                                            \
    X(405, "Method Not Allowed")                                                                   \
    X(406, "Not Acceptable")                                                                       \
    X(408, "Request Timeout")                                                                      \
    X(409, "Conflict")                                                                             \
    X(410, "Gone")                                                                                 \
    X(411, "Length Required")                                                                      \
    X(412, "Precondition Failed")                                                                  \
    X(413, "Content Too Large")                                                                    \
    X(414, "URI Too Long")                                                                         \
    X(415, "Unsupported Media Type")                                                               \
    X(416, "Range Not Satisfiable")                                                                \
    X(417, "Expectation Failed")                                                                   \
    X(421, "Misdirected Request")                                                                  \
    X(422, "Unprocessable Content")                                                                \
    X(425, "Too Early")                                                                            \
    X(426, "Upgrade Required")                                                                     \
    X(428, "Precondition Required")                                                                \
    X(429, "Too Many Requests")                                                                    \
    X(431, "Request Header Fields Too Large")                                                      \
    X(500, "Internal Server Error")                                                                \
    X(501, "Not Implemented")                                                                      \
    X(502, "Bad Gateway")                                                                          \
    X(503, "Service Unavailable")                                                                  \
    X(504, "Gateway Timeout")                                                                      \
    X(505, "HTTP Version Not Supported")

const char *sl_problem_title(int status)
{
    switch (status) {
#define SL_STATUS_CASE_(code, text)                                                                \
    case code:                                                                                     \
        return text;
        SL_HTTP_STATUS_MAP(SL_STATUS_CASE_)
#undef SL_STATUS_CASE_
    default:
        return NULL;
    }
}

/* Sets `key` to the string `s`; text that is not valid UTF-8 becomes "" instead of failing. */
static int set_string(json_t *o, const char *key, const char *s)
{
    json_t *v = json_string(s);
    if (!v) v = json_string("");
    return json_object_set_new(o, key, v);
}

static int add_errors(json_t *o, const sl_json_errors *errs)
{
    json_t *arr = json_array();
    if (json_object_set_new(o, "errors", arr) != 0) return SL_ENOMEM;
    for (size_t i = 0; i < errs->count; i++) {
        json_t *e = json_object();
        if (json_array_append_new(arr, e) != 0) return SL_ENOMEM;
        if (set_string(e, "field", errs->items[i].field) != 0) return SL_ENOMEM;
        if (set_string(e, "message", errs->items[i].message) != 0) return SL_ENOMEM;
    }
    if (errs->dropped > 0 &&
        json_object_set_new(o, "errors_dropped", json_integer((json_int_t)errs->dropped)) != 0)
        return SL_ENOMEM;
    return 0;
}

char *sl_problem_body_ex(const sl_problem *p, size_t *len)
{
    char *body = NULL;
    json_t *o = json_object();
    if (!o) goto out;
    const char *title = p->title ? p->title : sl_problem_title(p->status);
    if (set_string(o, "type", p->type ? p->type : "about:blank") != 0) goto out;
    if (title && set_string(o, "title", title) != 0) goto out;
    if (json_object_set_new(o, "status", json_integer(p->status)) != 0) goto out;
    if (p->detail && set_string(o, "detail", p->detail) != 0) goto out;
    if (p->instance && set_string(o, "instance", p->instance) != 0) goto out;
    if (p->errs && sl_json_errors_total(p->errs) > 0 && add_errors(o, p->errs) != 0) goto out;
    body = sl_json_dump(o, len);
out:
    json_decref(o);
    if (!body && len) *len = 0;
    return body;
}

char *sl_problem_body(int status, const char *title, const char *detail, const sl_json_errors *errs,
                      size_t *len)
{
    sl_problem p = {.status = status, .title = title, .detail = detail, .errs = errs};
    return sl_problem_body_ex(&p, len);
}
