/* Unit tests for the host plumbing shared by the service host and the gateway (serve.h). */
#include <shoal/clock.h>
#include <shoal/serve.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define S(lit) ((sl_slice){(lit), sizeof(lit) - 1})

static void test_request_id_valid(void **state)
{
    (void)state;
    assert_true(sl_serve_request_id_valid(S("abc-DEF_0.9:x")));
    assert_false(sl_serve_request_id_valid(S("")));
    assert_false(sl_serve_request_id_valid(S("a b")));
    assert_false(sl_serve_request_id_valid(S("a\r\nb")));
    assert_false(sl_serve_request_id_valid(S("caf\xc3\xa9")));
    char id[SL_SERVE_REQUEST_ID_MAX + 1];
    memset(id, 'a', sizeof id);
    assert_true(sl_serve_request_id_valid((sl_slice){id, SL_SERVE_REQUEST_ID_MAX}));
    assert_false(sl_serve_request_id_valid((sl_slice){id, SL_SERVE_REQUEST_ID_MAX + 1}));
}

typedef struct rec {
    void *first;
    char bytes[40];
} rec;

static void test_freelist_recycles_zeroed(void **state)
{
    (void)state;
    sl_serve_freelist fl;
    sl_serve_freelist_init(&fl, sizeof(rec), 2);
    rec *a = sl_serve_freelist_get(&fl), *b = sl_serve_freelist_get(&fl),
        *c = sl_serve_freelist_get(&fl);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    memset(a, 0x5a, sizeof *a);
    memset(b, 0x5a, sizeof *b);
    sl_serve_freelist_put(&fl, a);
    sl_serve_freelist_put(&fl, b);
    sl_serve_freelist_put(&fl, c); /* over max: freed */
    sl_serve_freelist_put(&fl, NULL);
    assert_int_equal(fl.n, 2);
    rec *d = sl_serve_freelist_get(&fl); /* the last one put back */
    assert_ptr_equal(d, b);
    static const rec zero;
    assert_memory_equal(d, &zero, sizeof zero);
    assert_int_equal(fl.n, 1);
    sl_serve_freelist_put(&fl, d);
    sl_serve_freelist_clear(&fl);
    assert_int_equal(fl.n, 0);
    assert_null(fl.head);
}

typedef struct fixture {
    sl_metrics *reg;
    sl_serve_families fam;
    sl_serve_worker w;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(sl_metrics_new(1, &f->reg), 0);
    assert_int_equal(sl_serve_families_register(f->reg, &f->fam), 0);
    assert_int_equal(sl_rand_seed_os(&f->w.rand), 0);
    sl_idgen_init(&f->w.idgen, sl_clock_system(), NULL, NULL);
    sl_tracer_config tc;
    sl_tracer_config_init(&tc);
    tc.service = "t";
    tc.clock = sl_clock_system();
    tc.rand = &f->w.rand;
    assert_int_equal(sl_tracer_new(&tc, &f->w.tracer), 0);
    f->w.service = "t";
    f->w.families = &f->fam;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sl_serve_worker_free(&f->w);
    sl_metrics_free(f->reg);
    free(f);
    return 0;
}

static void test_families_names(void **state)
{
    fixture *f = *state;
    sl_metrics *again = NULL;
    sl_serve_families fam;
    assert_int_equal(sl_metrics_new(1, &again), 0);
    assert_int_equal(sl_serve_families_register(again, &fam), 0);
    assert_non_null(fam.req_total);
    assert_non_null(fam.req_duration);
    assert_non_null(fam.connections);
    sl_metrics_free(again);
    (void)f;
}

static void test_begin_keeps_a_valid_request_id_and_joins_the_trace(void **state)
{
    fixture *f = *state;
    static const char tp[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    sl_http_header h[] = {{S("x-request-id"), S("req-42")}, {S("traceparent"), S(tp)}};
    sl_http_req req;
    memset(&req, 0, sizeof req);
    req.headers = h;
    req.nheaders = 2;
    sl_span *span = NULL;
    sl_serve_begin(&f->w, &req, "GET /x", &span);
    assert_non_null(span);
    assert_string_equal(req.request_id, "req-42");
    assert_memory_equal(req.traceparent, "00-0af7651916cd43dd8448eb211c80319c-", 36);
    sl_span_end(span);
}

static void test_begin_makes_an_id_for_an_invalid_one(void **state)
{
    fixture *f = *state;
    sl_http_header h[] = {{S("x-request-id"), S("no spaces allowed")}};
    sl_http_req req;
    memset(&req, 0, sizeof req);
    req.headers = h;
    req.nheaders = 1;
    sl_span *span = NULL;
    sl_serve_begin(&f->w, &req, "HTTP unrouted", &span);
    assert_int_equal(strlen(req.request_id), 36); /* a UUIDv7 */
    assert_int_equal(req.traceparent[0], '0');
    sl_span_end(span);
}

static void test_finish_counts_and_ends_the_span(void **state)
{
    fixture *f = *state;
    sl_http_req req;
    memset(&req, 0, sizeof req);
    req.method = SL_HTTP_GET;
    req.method_token = S("GET");
    req.path = S("/x");
    sl_span *span = NULL;
    sl_serve_begin(&f->w, &req, "GET /x", &span);
    sl_serve_outcome o = {.route = "/x"};
    sl_serve_finish(&f->w, &req, 200, 2, &span, &o);
    assert_null(span);
    sl_span *none = NULL;
    sl_serve_finish(&f->w, &req, 200, 2, &none, &o); /* no span: counted all the same */
    req.method = SL_HTTP_OTHER;
    req.method_token = S("");
    sl_serve_finish(&f->w, &req, 1000, 0, &none, &o); /* out of range: 599 */
    req.method = SL_HTTP_GET;
    req.method_token = S("GET");
    sl_serve_outcome unrouted = {.route = NULL};
    sl_serve_finish(&f->w, &req, 404, 0, &none, &unrouted); /* no route: "unmatched" */
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sl_metrics_render(f->reg, &text, &len), 0);
    assert_non_null(strstr(
        text,
        "service_requests_total{service=\"t\",method=\"GET\",route=\"/x\",status=\"200\"} 2"));
    assert_non_null(strstr(text, "route=\"/x\",status=\"599\"} 1"));
    assert_non_null(
        strstr(text, "service_requests_total{service=\"t\",method=\"GET\",route=\"unmatched\","
                     "status=\"404\"} 1"));
    assert_non_null(strstr(
        text,
        "service_request_duration_seconds_count{service=\"t\",method=\"GET\",route=\"/x\"} 2"));
    assert_non_null(strstr(text,
                           "service_request_duration_seconds_count{service=\"t\",method=\"GET\","
                           "route=\"unmatched\"} 1"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_id_valid),
        cmocka_unit_test(test_freelist_recycles_zeroed),
        cmocka_unit_test_setup_teardown(test_families_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_begin_keeps_a_valid_request_id_and_joins_the_trace,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_begin_makes_an_id_for_an_invalid_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_counts_and_ends_the_span, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
