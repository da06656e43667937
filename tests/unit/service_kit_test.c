/* Unit tests for the service kit's pure helpers (include/shoal/service.h). */
#include <shoal/identity.h>
#include <shoal/service.h>

#include <errno.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_event_refuse_names_first_error(void **state)
{
    (void)state;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_errors_add(&errs, "price", "must be %s", "positive");
    sl_json_errors_add(&errs, "name", "is missing");
    char reason[64];
    assert_int_equal(sl_event_refuse(reason, sizeof reason, "price_changed", &errs), SL_EPARSE);
    assert_string_equal(reason, "price_changed: price must be positive");
}

static void test_event_refuse_without_errors(void **state)
{
    (void)state;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    char reason[64];
    assert_int_equal(sl_event_refuse(reason, sizeof reason, "created", &errs), SL_EPARSE);
    assert_string_equal(reason, "created: data is missing or invalid");
    assert_int_equal(sl_event_refuse(reason, sizeof reason, "created", NULL), SL_EPARSE);
    assert_string_equal(reason, "created: data is missing or invalid");
}

static void test_event_refuse_bounded(void **state)
{
    (void)state;
    char reason[8];
    memset(reason, 'x', sizeof reason);
    assert_int_equal(sl_event_refuse(reason, sizeof reason, "a-long-event-name", NULL), SL_EPARSE);
    assert_int_equal(strlen(reason), sizeof reason - 1);
    assert_int_equal(sl_event_refuse(NULL, 0, "x", NULL), SL_EPARSE);
}

/* ---- sl_svc_problem ----------------------------------------------------------------------------
 */

static void test_problem_members_in_order(void **state)
{
    (void)state;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_errors_add(&errs, "items[0].qty", "must be positive");
    json_t *doc = sl_svc_problem(409, "insufficient_stock", "not enough stock", &errs);
    assert_non_null(doc);
    char *text = sl_json_dump(doc, NULL);
    /* The members of sl_problem_body, then `reason`: one object, built once. */
    assert_string_equal(text, "{\"type\":\"about:blank\",\"title\":\"Conflict\",\"status\":409,"
                              "\"detail\":\"not enough stock\",\"errors\":[{\"field\":"
                              "\"items[0].qty\",\"message\":\"must be positive\"}],"
                              "\"reason\":\"insufficient_stock\"}");
    free(text);
    json_decref(doc);
}

static void test_problem_matches_problem_body(void **state)
{
    (void)state;
    /* Without a reason the document is byte for byte sl_problem_body's. */
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_errors_add(&errs, "a", "x");
    sl_json_errors_add(&errs, "b", "y");
    const int statuses[] = {400, 404, 422, 503, 599};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        for (int with = 0; with < 2; with++) {
            json_t *doc = sl_svc_problem(statuses[i], NULL, with ? "d" : NULL, with ? &errs : NULL);
            char *a = sl_json_dump(doc, NULL);
            char *b =
                sl_problem_body(statuses[i], NULL, with ? "d" : NULL, with ? &errs : NULL, NULL);
            assert_string_equal(a, b);
            free(a);
            free(b);
            json_decref(doc);
        }
    }
}

static void test_problem_bad_utf8_and_dropped(void **state)
{
    (void)state;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    for (int i = 0; i < SL_JSON_ERRORS_MAX + 2; i++)
        sl_json_errors_add(&errs, "f", "m");
    json_t *doc = sl_svc_problem(400, "r\xff", "d\xfe", &errs);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "detail")), "");
    assert_string_equal(json_string_value(json_object_get(doc, "reason")), "");
    assert_int_equal(json_array_size(json_object_get(doc, "errors")), SL_JSON_ERRORS_MAX);
    assert_int_equal(json_integer_value(json_object_get(doc, "errors_dropped")), 2);
    json_decref(doc);
}

static void test_idem_mismatch_problem(void **state)
{
    (void)state;
    json_t *doc = sl_svc_idem_mismatch();
    assert_int_equal(json_integer_value(json_object_get(doc, "status")), 422);
    assert_string_equal(json_string_value(json_object_get(doc, "reason")),
                        "idempotency_key_reused");
    assert_string_equal(json_string_value(json_object_get(doc, "detail")),
                        "this Idempotency-Key was used with another request");
    json_decref(doc);
}

/* ---- sl_svc_db_transient ------------------------------------------------------------------------
 */

static void test_db_transient(void **state)
{
    (void)state;
    const int yes[] = {SL_EBUSY, SL_EUNAVAIL, SL_ETIMEDOUT,  SL_EAGAIN,
                       SL_EIO,   SL_ECLOSED,  -ECONNREFUSED, -ECONNRESET,
                       -EPIPE,   -ENOTCONN,   -ECONNABORTED, -ETIMEDOUT};
    const int no[] = {0,         SL_EINVAL, SL_ENOMEM, SL_ECONFLICT, SL_ENOTFOUND,
                      SL_EPARSE, SL_ELIMIT, SL_ESTATE, -ENOENT};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_int_equal(sl_svc_db_transient(yes[i]), 1);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_int_equal(sl_svc_db_transient(no[i]), 0);
}

/* ---- request helpers on a request built by hand (the paths that do not answer) -----------------
 */

static int short_id(const char *s, size_t len)
{
    return len > 0 && len <= 8 && s[0] != '-';
}

static void test_path_id_copies_a_valid_id(void **state)
{
    (void)state;
    sl_http_req req;
    memset(&req, 0, sizeof req);
    req.params.n = 1;
    req.params.p[0].name = "order_id";
    req.params.p[0].value = (sl_slice){"o-123xyz", 5};
    char out[9];
    memset(out, 'x', sizeof out);
    assert_int_equal(sl_req_path_id(&req, "order_id", "order", short_id, out, sizeof out), 0);
    assert_string_equal(out, "o-123");
}

static void test_idem_read(void **state)
{
    (void)state;
    sl_http_header hs[2] = {{SL_SLICE_LIT("content-type"), SL_SLICE_LIT("application/json")}};
    sl_http_req req;
    memset(&req, 0, sizeof req);
    req.headers = hs;
    req.nheaders = 1;
    sl_req_idem k;
    /* No header: nothing to do, every later step a no-op. */
    assert_int_equal(sl_req_idem_read(&req, &k, "user:%s", "u-1"), 0);
    assert_int_equal(k.has, 0);
    assert_string_equal(k.scope, "user:u-1");
    /* A valid key is copied with its scope. */
    hs[1] = (sl_http_header){SL_SLICE_LIT("Idempotency-Key"), SL_SLICE_LIT("order-key-1")};
    req.nheaders = 2;
    assert_int_equal(sl_req_idem_read(&req, &k, "saga"), 0);
    assert_int_equal(k.has, 1);
    assert_string_equal(k.key, "order-key-1");
    assert_string_equal(k.scope, "saga");
}

/* ---- sl_identity_headers
 * ------------------------------------------------------------------------- */

static void test_identity_headers_verify(void **state)
{
    (void)state;
    sl_identity_key master;
    memset(master.k, 7, sizeof master.k);
    sl_identity_keyring ring = {.n = 1};
    assert_int_equal(sl_identity_edge_derive(&master, "order", "inventory", "service", &ring.e[0]),
                     0);
    char proof[SL_IDENTITY_PROOF_MAX];
    sl_http_header h[SL_IDENTITY_NHEADERS];
    sl_identity_msg m = {.callee = "inventory",
                         .method = SL_HTTP_POST,
                         .target = SL_SLICE_LIT("/reservations"),
                         .body = "{}",
                         .body_len = 2};
    assert_int_equal(sl_identity_headers(&ring.e[0], "svc:order", "service", &m, 1000, proof, h),
                     0);
    assert_true(sl_slice_eq(h[0].name, "x-user-id") && sl_slice_eq(h[0].value, "svc:order"));
    assert_true(sl_slice_eq(h[1].name, "x-user-role") && sl_slice_eq(h[1].value, "service"));
    assert_true(sl_slice_eq(h[2].name, "x-shoal-identity") && sl_slice_eq(h[2].value, proof));
    sl_identity id;
    assert_int_equal(sl_identity_verify(&ring, h, SL_IDENTITY_NHEADERS, &m, 1500, 10000, NULL, &id),
                     0);
    assert_string_equal(id.user_id, "svc:order");
    assert_string_equal(id.role, "service");
    assert_string_equal(id.caller, "order");
    /* Another method does not verify. */
    m.method = SL_HTTP_GET;
    assert_int_equal(sl_identity_verify(&ring, h, SL_IDENTITY_NHEADERS, &m, 1500, 10000, NULL, &id),
                     SL_EINVAL);
    /* A bad id fails and leaves the headers alone. */
    memset(h, 0, sizeof h);
    assert_int_equal(sl_identity_headers(&ring.e[0], "bad id", "service", &m, 1000, proof, h),
                     SL_EINVAL);
    assert_null(h[0].name.ptr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_refuse_names_first_error),
        cmocka_unit_test(test_event_refuse_without_errors),
        cmocka_unit_test(test_event_refuse_bounded),
        cmocka_unit_test(test_problem_members_in_order),
        cmocka_unit_test(test_problem_matches_problem_body),
        cmocka_unit_test(test_problem_bad_utf8_and_dropped),
        cmocka_unit_test(test_idem_mismatch_problem),
        cmocka_unit_test(test_db_transient),
        cmocka_unit_test(test_path_id_copies_a_valid_id),
        cmocka_unit_test(test_idem_read),
        cmocka_unit_test(test_identity_headers_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
