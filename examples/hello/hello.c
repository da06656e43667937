/*
 * shoal-hello: the smallest Shoal service, and the chassis' documentation by
 * example. It shows a synchronous handler (GET /hello), a validated JSON body
 * (POST /echo), and an asynchronous handler that answers from a timer
 * (GET /slow?ms=N), which also shows how a handler notices that the client
 * has gone, and how it stops at the caller's deadline (sl_req_deadline).
 *
 *   build/bin/shoal-hello --port 8081
 *   curl localhost:8081/hello
 *   curl -d '{"text":"hi"}' localhost:8081/echo
 *
 * SHOAL_HELLO_FAIL=1 in its environment makes GET /hello answer 500: a
 * deliberately broken version for rollout tests (docs/mesh.md).
 * GET /caller shows who is calling: the end user's signed identity when the
 * request carries one, and in mesh mode the caller service its sidecar
 * vouches for (docs/mesh.md).
 */
#include <shoal/identity.h>
#include <shoal/json.h>
#include <shoal/service.h>

#include <stdlib.h>
#include <string.h>

static int failing; /* SHOAL_HELLO_FAIL: set before the workers start, read-only after */

static void hello(sl_http_req *req, sl_svc_worker *w)
{
    (void)w;
    if (failing) {
        sl_http_respond_problem(req, 500, "this instance fails on purpose (SHOAL_HELLO_FAIL)");
        return;
    }
    static const char body[] = "{\"message\":\"hello\"}";
    sl_respond_json(req, 200, body, sizeof body - 1);
}

static void echo(sl_http_req *req, sl_svc_worker *w)
{
    (void)w;
    json_t *doc;
    if (sl_req_json_body(req, &doc) != 0) return; /* already answered with a problem */
    const char *text = NULL;
    const sl_json_field fields[] = {
        {.name = "text",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .max = 1000,
         .out = &text},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (sl_json_read(doc, fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, &errs) != 0) {
        sl_respond_invalid(req, &errs);
        json_decref(doc);
        return;
    }
    sl_respond_owned(req, 200, json_pack("{s:s}", "text", text)); /* text borrows from doc */
    json_decref(doc);
}

/* Who is calling: a request without identity headers is answered too (user null). */
static void caller(sl_http_req *req, sl_svc_worker *w)
{
    (void)w;
    sl_identity id;
    int rc = sl_req_identity(req, &id);
    if (rc != 0 && rc != SL_ENOTFOUND && rc != SL_EUNAVAIL) {
        (void)sl_req_require_identity(req, 0, &id); /* answers 401, 403 or 503 */
        return;
    }
    int have = rc == 0;
    sl_respond_owned(req, 200,
                     json_pack("{s:s?,s:s?,s:s?,s:s?}", "peer", sl_req_peer_service(req), "signer",
                               have ? id.caller : NULL, "user", have ? id.user_id : NULL, "role",
                               have ? id.role : NULL));
}

/* An asynchronous handler: the answer comes from a timer callback on the same loop. */
typedef struct slow_call {
    uv_timer_t timer;
    sl_http_req *req;
    int status;
} slow_call;

static void slow_closed(uv_handle_t *h)
{
    free(h->data);
}

static void slow_fire(uv_timer_t *t)
{
    slow_call *sc = t->data;
    static const char body[] = "{\"message\":\"slept\"}";
    /* A cancelled request (client gone) is only released by this call. */
    if (sc->status == 504)
        sl_respond_problem_ex(sc->req, 504, "the caller's deadline passed first", NULL);
    else
        sl_respond_json(sc->req, 200, body, sizeof body - 1);
    uv_close((uv_handle_t *)&sc->timer, slow_closed);
}

static void slow(sl_http_req *req, sl_svc_worker *w)
{
    sl_slice v;
    long ms = 100;
    if (sl_http_query_param(req->query, "ms", &v)) {
        char buf[16] = {0};
        memcpy(buf, v.ptr, v.len < 15 ? v.len : 15);
        char *end;
        ms = strtol(buf, &end, 10);
        if (v.len == 0 || *end != '\0' || ms < 0 || ms > 60000) {
            sl_respond_field(req, 400, "ms", "must be an integer between 0 and 60000",
                             "the query is invalid");
            return;
        }
    }
    slow_call *sc = malloc(sizeof *sc);
    if (!sc) {
        sl_http_respond_problem(req, 503, "out of memory");
        return;
    }
    /* Never sleep past the caller's deadline: answer 504 when it comes first. */
    int64_t left = sl_deadline_remaining_ms(sl_req_deadline(req), sl_clock_system());
    sc->status = 200;
    if (left < ms) {
        ms = (long)left;
        sc->status = 504;
    }
    sc->req = req;
    uv_timer_init(sl_svc_worker_loop(w), &sc->timer);
    sc->timer.data = sc;
    uv_timer_start(&sc->timer, slow_fire, (uint64_t)ms, 0);
}

static const sl_route_def routes[] = {
    {SL_HTTP_GET, "/hello", hello, 0},
    {SL_HTTP_POST, "/echo", echo, 16 * 1024},
    {SL_HTTP_GET, "/slow", slow, 0},
    {SL_HTTP_GET, "/caller", caller, 0},
};

static const sl_service_def hello_service = {
    .name = "hello",
    .default_port = 8081,
    .routes = routes,
    .nroutes = SL_ARRAY_LEN(routes),
};

int main(int argc, char **argv)
{
    const char *fail = getenv("SHOAL_HELLO_FAIL");
    failing = fail && *fail && strcmp(fail, "0") != 0;
    return sl_service_main(&hello_service, argc, argv);
}
