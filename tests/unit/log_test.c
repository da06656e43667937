/*
 * Unit tests for the log module: every emitted line is parsed back with
 * jansson, so the tests prove the output is valid JSON with the right members,
 * including escapes, invalid UTF-8 and truncated lines.
 */
#include <shoal/log.h>

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct capture {
    char lines[8][SL_LOG_LINE_MAX + 1];
    size_t lens[8];
    size_t n;
} capture;

static void capture_sink(void *data, const char *line, size_t len)
{
    capture *c = data;
    assert_true(len <= SL_LOG_LINE_MAX);
    assert_int_equal(line[len - 1], '\n');
    assert_null(memchr(line, '\n', len - 1)); /* exactly one line */
    size_t i = c->n++ % SL_ARRAY_LEN(c->lines);
    memcpy(c->lines[i], line, len);
    c->lines[i][len] = '\0';
    c->lens[i] = len;
}

/* Parses line `i` (must be valid JSON) and returns the object (owned: json_decref). */
static json_t *parse_line(const capture *c, size_t i)
{
    json_error_t err;
    json_t *j = json_loadb(c->lines[i], c->lens[i], JSON_REJECT_DUPLICATES, &err);
    if (j == NULL) fail_msg("invalid JSON (%s): %s", err.text, c->lines[i]);
    assert_true(json_is_object(j));
    return j;
}

static const char *str_member(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_string(v)) fail_msg("member %s missing or not a string", key);
    return json_string_value(v);
}

#define T0_NS ((int64_t)1795869296789 * 1000000) /* 2026-11-28T12:34:56.789Z */

static sl_logger *make_logger(capture *cap, sl_fake_clock *fc, sl_log_level level)
{
    sl_fake_clock_init(fc, T0_NS);
    sl_logger *lg = NULL;
    assert_int_equal(sl_logger_new("order", level, capture_sink, cap, &fc->clock, &lg), 0);
    return lg;
}

static void test_basic_line(void **state)
{
    (void)state;
    capture cap = {0};
    sl_fake_clock fc;
    sl_logger *lg = make_logger(&cap, &fc, SL_LOG_LEVEL_INFO);

    SL_LOG_INFO(lg, NULL, "started");
    assert_int_equal(cap.n, 1);
    json_t *j = parse_line(&cap, 0);
    assert_string_equal(str_member(j, "ts"), "2026-11-28T12:34:56.789Z");
    assert_string_equal(str_member(j, "level"), "info");
    assert_string_equal(str_member(j, "service"), "order");
    assert_string_equal(str_member(j, "msg"), "started");
    assert_null(json_object_get(j, "trace_id"));
    assert_null(json_object_get(j, "truncated"));
    assert_int_equal(json_object_size(j), 4);
    /* Member order is fixed: ts, level, service, msg. */
    assert_true(strncmp(cap.lines[0], "{\"ts\":", 6) == 0);
    json_decref(j);

    sl_trace_ctx tc;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_int_equal(sl_traceparent_parse(tp, strlen(tp), &tc), 0);
    SL_LOG_WARN(lg, &tc, "order placed", SL_LOG_STR("order_id", "o-1"), SL_LOG_INT("qty", -3),
                SL_LOG_DBL("amount", 12.5), SL_LOG_BOOL("paid", true), SL_LOG_BOOL("gift", false),
                SL_LOG_INT("big", INT64_MIN), SL_LOG_DBL("nan", 0.0 / 0.0),
                SL_LOG_DBL("tenth", 0.1), SL_LOG_STR("nothing", NULL));
    j = parse_line(&cap, 1);
    assert_string_equal(str_member(j, "level"), "warn");
    assert_string_equal(str_member(j, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(str_member(j, "span_id"), "00f067aa0ba902b7");
    assert_string_equal(str_member(j, "order_id"), "o-1");
    assert_int_equal(json_integer_value(json_object_get(j, "qty")), -3);
    assert_true(json_real_value(json_object_get(j, "amount")) == 12.5);
    assert_true(json_is_true(json_object_get(j, "paid")));
    assert_true(json_is_false(json_object_get(j, "gift")));
    assert_int_equal(json_integer_value(json_object_get(j, "big")), INT64_MIN);
    assert_true(json_is_null(json_object_get(j, "nan")));
    assert_true(json_real_value(json_object_get(j, "tenth")) == 0.1);
    assert_true(json_is_null(json_object_get(j, "nothing")));
    json_decref(j);
    sl_logger_free(lg);
}

static void test_escapes(void **state)
{
    (void)state;
    capture cap = {0};
    sl_fake_clock fc;
    sl_logger *lg = make_logger(&cap, &fc, SL_LOG_LEVEL_DEBUG);
    SL_LOG_ERROR(lg, NULL, "a \"quoted\" \\ line\nnext\ttab\x01\x1f\x7f end",
                 SL_LOG_STR("utf8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                 SL_LOG_STR("bad", "a\xff"
                                   "b\xc0\xaf"
                                   "c\xed\xa0\x80"
                                   "d\xf4\x90\x80\x80"
                                   "e\xe2\x82"),
                 SL_LOG_STR("key \"q\"", "v"));
    json_t *j = parse_line(&cap, 0);
    assert_string_equal(str_member(j, "msg"), "a \"quoted\" \\ line\nnext\ttab\x01\x1f\x7f end");
    assert_string_equal(str_member(j, "utf8"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* Each invalid byte (overlong, surrogate, > U+10FFFF, truncated) becomes U+FFFD. */
    const char *r = "\xef\xbf\xbd";
    char want[128];
    snprintf(want, sizeof want, "a%sb%s%sc%s%s%sd%s%s%s%se%s%s", r, r, r, r, r, r, r, r, r, r, r,
             r);
    assert_string_equal(str_member(j, "bad"), want);
    assert_string_equal(str_member(j, "key \"q\""), "v");
    /* Control characters are \u00XX escapes in the raw line. */
    assert_non_null(strstr(cap.lines[0], "\\u0001\\u001f\\u007f"));
    json_decref(j);
    sl_logger_free(lg);

    /* The service name is escaped and bounded too. */
    sl_logger *lg2;
    char svc[100];
    memset(svc, 's', sizeof svc);
    svc[0] = '"';
    svc[99] = '\0';
    assert_int_equal(sl_logger_new(svc, SL_LOG_LEVEL_INFO, capture_sink, &cap, &fc.clock, &lg2), 0);
    SL_LOG_INFO(lg2, NULL, "x");
    j = parse_line(&cap, 1);
    assert_int_equal(strlen(str_member(j, "service")), SL_LOG_SERVICE_MAX);
    json_decref(j);
    sl_logger_free(lg2);
}

static void test_truncation(void **state)
{
    (void)state;
    capture cap = {0};
    sl_fake_clock fc;
    sl_logger *lg = make_logger(&cap, &fc, SL_LOG_LEVEL_INFO);
    sl_trace_ctx tc = {.trace_id = {1}, .span_id = {2}, .flags = 1};

    char *huge = malloc(20000);
    assert_non_null(huge);
    memset(huge, 'x', 19999);
    huge[19999] = '\0';
    /* A huge message: cut, still valid, trace ids kept, later fields dropped. */
    SL_LOG_INFO(lg, &tc, huge, SL_LOG_INT("after", 1));
    assert_true(cap.lens[0] <= SL_LOG_LINE_MAX);
    json_t *j = parse_line(&cap, 0);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_string_equal(str_member(j, "trace_id"), "01000000000000000000000000000000");
    assert_null(json_object_get(j, "after"));
    assert_true(strlen(str_member(j, "msg")) > 7000);
    json_decref(j);

    /* A huge field value is cut but the earlier fields survive. */
    SL_LOG_INFO(lg, NULL, "m", SL_LOG_INT("first", 1), SL_LOG_STR("huge", huge),
                SL_LOG_INT("last", 2));
    j = parse_line(&cap, 1);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_int_equal(json_integer_value(json_object_get(j, "first")), 1);
    assert_non_null(json_object_get(j, "huge"));
    assert_null(json_object_get(j, "last"));
    json_decref(j);
    free(huge);
    sl_logger_free(lg);
}

/* Lines of every length around the limit, with multi-byte escapes and characters that
 * may be cut anywhere: all must be valid JSON and fit. */
static void test_truncation_sweep(void **state)
{
    (void)state;
    capture cap = {0};
    sl_fake_clock fc;
    sl_logger *lg = make_logger(&cap, &fc, SL_LOG_LEVEL_INFO);
    static char v[SL_LOG_LINE_MAX + 64];
    const char *pieces[] = {"\x01", "\xe2\x82\xac", "\"", "ab", "\xff"};
    for (size_t p = 0; p < SL_ARRAY_LEN(pieces); p++) {
        for (size_t len = SL_LOG_LINE_MAX - 1400; len < SL_LOG_LINE_MAX + 40; len += 7) {
            size_t o = 0, pl = strlen(pieces[p]);
            while (o + pl < len) {
                memcpy(v + o, pieces[p], pl);
                o += pl;
            }
            v[o] = '\0';
            size_t before = cap.n;
            SL_LOG_INFO(lg, NULL, "sweep", SL_LOG_STR("v", v), SL_LOG_INT("n", 5));
            assert_int_equal(cap.n, before + 1);
            json_t *j = parse_line(&cap, before % SL_ARRAY_LEN(cap.lines));
            assert_non_null(json_object_get(j, "v"));
            json_decref(j);
        }
    }
    /* Many small fields: cut at a field boundary. */
    static char keys[2000][32];
    sl_log_field many[2000];
    for (size_t i = 0; i < SL_ARRAY_LEN(many); i++) {
        snprintf(keys[i], sizeof keys[i], "field_with_a_long_name_%zu", i);
        many[i] = SL_LOG_INT(keys[i], (int64_t)i);
    }
    size_t before = cap.n;
    sl_log_write(lg, SL_LOG_LEVEL_INFO, NULL, "many", many, SL_ARRAY_LEN(many));
    json_t *j = parse_line(&cap, before % SL_ARRAY_LEN(cap.lines));
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    sl_logger_free(lg);
}

static int evaluations;

static int64_t count_evaluation(void)
{
    return ++evaluations;
}

static void test_level_filtering(void **state)
{
    (void)state;
    capture cap = {0};
    sl_fake_clock fc;
    sl_logger *lg = make_logger(&cap, &fc, SL_LOG_LEVEL_WARN);
    SL_LOG_DEBUG(lg, NULL, "no", SL_LOG_INT("n", count_evaluation()));
    SL_LOG_INFO(lg, NULL, "no", SL_LOG_INT("n", count_evaluation()));
    assert_int_equal(cap.n, 0);
    assert_int_equal(evaluations, 0); /* fields are not even built below the level */
    SL_LOG_WARN(lg, NULL, "yes", SL_LOG_INT("n", count_evaluation()));
    SL_LOG_ERROR(lg, NULL, "yes");
    assert_int_equal(cap.n, 2);
    assert_int_equal(evaluations, 1);

    sl_logger_set_level(lg, SL_LOG_LEVEL_DEBUG);
    assert_int_equal(sl_logger_level(lg), SL_LOG_LEVEL_DEBUG);
    SL_LOG_DEBUG(lg, NULL, "now visible");
    assert_int_equal(cap.n, 3);
    json_t *j = parse_line(&cap, 2);
    assert_string_equal(str_member(j, "level"), "debug");
    json_decref(j);
    sl_logger_free(lg);

    sl_log_level lvl;
    assert_int_equal(sl_log_level_parse("warn", &lvl), 0);
    assert_int_equal(lvl, SL_LOG_LEVEL_WARN);
    assert_int_equal(sl_log_level_parse("WARNING", &lvl), 0);
    assert_int_equal(lvl, SL_LOG_LEVEL_WARN);
    assert_int_equal(sl_log_level_parse("Debug", &lvl), 0);
    assert_int_equal(lvl, SL_LOG_LEVEL_DEBUG);
    assert_int_equal(sl_log_level_parse("error", &lvl), 0);
    assert_int_equal(lvl, SL_LOG_LEVEL_ERROR);
    assert_int_equal(sl_log_level_parse("verbose", &lvl), SL_EINVAL);
    assert_int_equal(sl_log_level_parse("", &lvl), SL_EINVAL);
    assert_string_equal(sl_log_level_name(SL_LOG_LEVEL_INFO), "info");
    assert_int_equal(sl_logger_new("x", (sl_log_level)9, NULL, NULL, &fc.clock, &lg), SL_EINVAL);
}

/* The default sink writes each line to fd 2 in one piece. */
static void test_stderr_sink(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    sl_fake_clock fc;
    sl_fake_clock_init(&fc, T0_NS);
    sl_logger *lg;
    assert_int_equal(sl_logger_new("cart", SL_LOG_LEVEL_INFO, NULL, NULL, &fc.clock, &lg), 0);
    SL_LOG_INFO(lg, NULL, "to stderr", SL_LOG_INT("n", 7));
    sl_logger_free(lg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    char buf[512];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"ts\":\"2026-11-28T12:34:56.789Z\",\"level\":\"info\",\"service\":"
                             "\"cart\",\"msg\":\"to stderr\",\"n\":7}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_line),      cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_truncation),      cmocka_unit_test(test_truncation_sweep),
        cmocka_unit_test(test_level_filtering), cmocka_unit_test(test_stderr_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
