/*
 * Unit tests for the metrics module: shard sums, cumulative histograms,
 * escaping and ordering of the exposition text, registration validation,
 * series limits, a `promtool check metrics` run on a realistic registry, and
 * a race between two writer threads and a scraper.
 */
#include <shoal/metrics.h>

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char *render(sl_metrics *reg)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(sl_metrics_render(reg, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    return out;
}

static void assert_contains(const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL) fail_msg("missing:\n%s\nin:\n%s", needle, text);
}

static void test_counter_sums_shards(void **state)
{
    (void)state;
    sl_metrics *reg;
    assert_int_equal(sl_metrics_new(4, &reg), 0);
    sl_metric_family *f;
    const char *labels[] = {"method"};
    assert_int_equal(sl_metrics_counter(reg, "http_requests_total", "Requests.", labels, 1, &f), 0);
    sl_series *get = sl_metric_series(f, (const char *[]){"GET"});
    sl_series *post = sl_metric_series(f, (const char *[]){"POST"});
    assert_ptr_equal(get, sl_metric_series(f, (const char *[]){"GET"})); /* same handle */
    assert_ptr_not_equal(get, post);
    for (unsigned shard = 0; shard < 4; shard++)
        sl_counter_add(get, shard, 10 + shard);
    sl_counter_inc(post, 3);
    assert_int_equal(sl_counter_value(get), 46);
    assert_int_equal(sl_counter_value(post), 1);

    char *text = render(reg);
    assert_string_equal(text, "# HELP http_requests_total Requests.\n"
                              "# TYPE http_requests_total counter\n"
                              "http_requests_total{method=\"GET\"} 46\n"
                              "http_requests_total{method=\"POST\"} 1\n");
    free(text);
    sl_metrics_free(reg);
}

static void test_histogram_cumulative(void **state)
{
    (void)state;
    sl_metrics *reg;
    assert_int_equal(sl_metrics_new(2, &reg), 0);
    sl_metric_family *f;
    const double bounds[] = {0.1, 0.5, 1};
    assert_int_equal(sl_metrics_histogram(reg, "job_seconds", "Job time.", NULL, 0, bounds, 3, &f),
                     0);
    sl_series *s = sl_metric_series(f, NULL);
    sl_histogram_observe(s, 0, 0.05);
    sl_histogram_observe(s, 1, 0.1); /* le is inclusive */
    sl_histogram_observe(s, 0, 0.3);
    sl_histogram_observe(s, 1, 0.75);
    sl_histogram_observe(s, 0, 7);
    sl_histogram_observe(s, 0, NAN); /* ignored */
    assert_int_equal(sl_histogram_count(s), 5);
    assert_true(fabs(sl_histogram_sum(s) - 8.2) < 1e-9);
    char *text = render(reg);
    assert_string_equal(text, "# HELP job_seconds Job time.\n"
                              "# TYPE job_seconds histogram\n"
                              "job_seconds_bucket{le=\"0.1\"} 2\n"
                              "job_seconds_bucket{le=\"0.5\"} 3\n"
                              "job_seconds_bucket{le=\"1\"} 4\n"
                              "job_seconds_bucket{le=\"+Inf\"} 5\n"
                              "job_seconds_sum 8.2\n"
                              "job_seconds_count 5\n");
    free(text);

    /* Default buckets, with labels. */
    const char *labels[] = {"route"};
    assert_int_equal(sl_metrics_histogram(reg, "req_seconds", "Latency.", labels, 1, NULL, 0, &f),
                     0);
    s = sl_metric_series(f, (const char *[]){"/orders"});
    sl_histogram_observe(s, 0, 0.02);
    text = render(reg);
    assert_contains(text, "req_seconds_bucket{route=\"/orders\",le=\"0.005\"} 0\n"
                          "req_seconds_bucket{route=\"/orders\",le=\"0.01\"} 0\n"
                          "req_seconds_bucket{route=\"/orders\",le=\"0.025\"} 1\n");
    assert_contains(text, "req_seconds_bucket{route=\"/orders\",le=\"10\"} 1\n"
                          "req_seconds_bucket{route=\"/orders\",le=\"+Inf\"} 1\n"
                          "req_seconds_sum{route=\"/orders\"} 0.02\n"
                          "req_seconds_count{route=\"/orders\"} 1\n");
    /* Families keep registration order. */
    assert_true(strstr(text, "job_seconds") < strstr(text, "req_seconds"));
    free(text);
    sl_metrics_free(reg);
}

static double backlog_fn(void *data)
{
    return (double)*(int *)data;
}

static void test_gauges_escaping_order(void **state)
{
    (void)state;
    sl_metrics *reg;
    assert_int_equal(sl_metrics_new(1, &reg), 0);
    sl_metric_family *f;
    const char *labels[] = {"path", "kind"};
    assert_int_equal(
        sl_metrics_gauge(reg, "odd_values", "Help with \\ and\nnewline.", labels, 2, &f), 0);
    /* Created in reverse order: rendered sorted by label values. */
    sl_gauge_set(sl_metric_series(f, (const char *[]){"z", "a"}), 1.5);
    sl_series *q = sl_metric_series(f, (const char *[]){"a \"q\" \\ \n", NULL});
    sl_gauge_set(q, -2);
    sl_gauge_add(q, 0.25);
    assert_true(sl_gauge_value(q) == -1.75);
    sl_gauge_set(sl_metric_series(f, (const char *[]){"m", "b"}), INFINITY);

    sl_metric_family *cb;
    int backlog = 17;
    assert_int_equal(sl_metrics_gauge(reg, "outbox_backlog", "Unsent events.", NULL, 0, &cb), 0);
    sl_gauge_set_fn(sl_metric_series(cb, NULL), backlog_fn, &backlog);
    char *text = render(reg);
    assert_string_equal(text, "# HELP odd_values Help with \\\\ and\\nnewline.\n"
                              "# TYPE odd_values gauge\n"
                              "odd_values{path=\"a \\\"q\\\" \\\\ \\n\",kind=\"\"} -1.75\n"
                              "odd_values{path=\"m\",kind=\"b\"} +Inf\n"
                              "odd_values{path=\"z\",kind=\"a\"} 1.5\n"
                              "# HELP outbox_backlog Unsent events.\n"
                              "# TYPE outbox_backlog gauge\n"
                              "outbox_backlog 17\n");
    free(text);
    backlog = 3; /* evaluated at scrape time */
    text = render(reg);
    assert_contains(text, "outbox_backlog 3\n");
    free(text);
    sl_metrics_free(reg);
}

static void test_validation_and_limits(void **state)
{
    (void)state;
    sl_metrics *reg;
    assert_int_equal(sl_metrics_new(0, &reg), SL_EINVAL);
    assert_int_equal(sl_metrics_new(SL_METRICS_SHARDS_MAX + 1, &reg), SL_EINVAL);
    assert_int_equal(sl_metrics_new(1, &reg), 0);
    sl_metric_family *f;
    assert_int_equal(sl_metrics_counter(reg, "ok:name_1_total", "h", NULL, 0, &f), 0);
    assert_int_equal(sl_metrics_counter(reg, "ok:name_1_total", "h", NULL, 0, &f), SL_EEXIST);
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "caf\xc3\xa9"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad_names); i++)
        assert_int_equal(sl_metrics_counter(reg, bad_names[i], "h", NULL, 0, &f), SL_EINVAL);
    assert_int_equal(sl_metrics_counter(reg, "x", NULL, NULL, 0, &f), SL_EINVAL);
    const char *bad_labels[][2] = {{"a:b", "c"}, {"__x", "c"}, {"a", "a"}, {"9a", "c"}, {"a", ""}};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad_labels); i++)
        assert_int_equal(sl_metrics_gauge(reg, "g", "h", bad_labels[i], 2, &f), SL_EINVAL);
    const char *le[] = {"le"};
    assert_int_equal(sl_metrics_histogram(reg, "h", "h", le, 1, NULL, 0, &f), SL_EINVAL);
    assert_int_equal(sl_metrics_gauge(reg, "g_le", "h", le, 1, &f), 0); /* fine on a gauge */
    const char *nine[9] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    assert_int_equal(sl_metrics_gauge(reg, "g9", "h", nine, 9, &f), SL_EINVAL);
    assert_int_equal(sl_metrics_gauge(reg, "g8", "h", nine, 8, &f), 0);
    const double unsorted[] = {1, 0.5}, inf[] = {1, INFINITY};
    assert_int_equal(sl_metrics_histogram(reg, "h1", "h", NULL, 0, unsorted, 2, &f), SL_EINVAL);
    assert_int_equal(sl_metrics_histogram(reg, "h2", "h", NULL, 0, inf, 2, &f), SL_EINVAL);
    assert_int_equal(sl_metrics_histogram(reg, "h3", "h", NULL, 0, unsorted, 0, &f), SL_EINVAL);

    /* Series limit: beyond it, a shared overflow series that is counted and rendered. */
    sl_metrics_set_series_limit(reg, 3);
    const char *ul[] = {"user"};
    assert_int_equal(sl_metrics_counter(reg, "per_user_total", "h", ul, 1, &f), 0);
    sl_series *s[5];
    char name[5][8];
    for (int i = 0; i < 5; i++) {
        snprintf(name[i], sizeof name[i], "u%d", i);
        s[i] = sl_metric_series(f, (const char *[]){name[i]});
        assert_non_null(s[i]);
        sl_counter_inc(s[i], 0);
    }
    assert_ptr_equal(s[3], s[4]);
    assert_ptr_equal(s[0], sl_metric_series(f, (const char *[]){"u0"})); /* existing: found */
    assert_int_equal(sl_metric_family_overflows(f), 2);
    char *text = render(reg);
    assert_contains(text, "per_user_total{user=\"__overflow__\"} 2\n"
                          "per_user_total{user=\"u0\"} 1\n");
    free(text);
    sl_metrics_free(reg);
}

/* Writes `text` to a file and runs `promtool check metrics` with it on stdin. */
static void promtool_check(const char *text)
{
    char path[] = "/tmp/shoal-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(path);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        fail_msg("promtool not found: install the Debian package 'prometheus' (scripts/deps.sh)");
    if (status != 0 || n > 0)
        fail_msg("promtool check metrics failed (status %d):\n%s\non:\n%s", status, out, text);
}

static void test_proc_stat_parse(void **state)
{
    (void)state;
    /* A command name may hold spaces and parentheses: fields count from the last ')'. */
    static const char line[] =
        "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1200 0 3 0 250 75 0 0 20 0 5 0 123456 "
        "987654321 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
    sl_proc_stat st;
    assert_int_equal(sl_metrics_proc_stat_parse(line, sizeof line - 1, &st), 0);
    assert_int_equal(st.utime_ticks, 250);
    assert_int_equal(st.stime_ticks, 75);
    assert_int_equal(st.vsize_bytes, 987654321);
    assert_int_equal(st.rss_pages, 2048);
    /* Negative values where the kernel writes them (tty -1, nice -5). */
    static const char neg[] = "7 (x) R 1 7 7 0 -1 0 0 0 0 0 9 8 0 0 20 -5 1 0 1 100 3\n";
    assert_int_equal(sl_metrics_proc_stat_parse(neg, sizeof neg - 1, &st), 0);
    assert_int_equal(st.utime_ticks, 9);
    assert_int_equal(st.rss_pages, 3);
    /* Refused: cut short, no name, a letter where a number belongs, an overflowing number. */
    static const char *const bad[] = {
        "7 (x) R 1 7 7 0 -1 0 0 0 0 0 9 8 0 0 20 0 1 0 1 100",
        "7 x R 1 7 7 0 -1 0 0 0 0 0 9 8 0 0 20 0 1 0 1 100 3",
        "7 (x) R 1 7 7 0 -1 0 0 0 0 0 z 8 0 0 20 0 1 0 1 100 3",
        "7 (x) R 1 7 7 0 -1 0 0 0 0 0 99999999999999999999 8 0 0 20 0 1 0 1 100 3",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sl_metrics_proc_stat_parse(bad[i], strlen(bad[i]), &st), SL_EPARSE);
    /* The process's own line parses. */
    FILE *f = fopen("/proc/self/stat", "r");
    assert_non_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(sl_metrics_proc_stat_parse(buf, n, &st), 0);
    assert_true(st.vsize_bytes > 0 && st.rss_pages > 0);
}

static void test_promtool(void **state)
{
    (void)state;
    sl_metrics *reg;
    assert_int_equal(sl_metrics_new(2, &reg), 0);
    sl_metric_family *req, *dur, *inflight, *backlog;
    const char *rl[] = {"service", "method", "status"};
    assert_int_equal(
        sl_metrics_counter(reg, "service_requests_total", "HTTP requests served.", rl, 3, &req), 0);
    const char *dl[] = {"service"};
    assert_int_equal(sl_metrics_histogram(reg, "service_request_duration_seconds",
                                          "HTTP request latency in seconds.", dl, 1, NULL, 0, &dur),
                     0);
    assert_int_equal(sl_metrics_gauge(reg, "service_requests_in_flight", "Requests being handled.",
                                      dl, 1, &inflight),
                     0);
    assert_int_equal(sl_metrics_gauge(reg, "outbox_backlog_events", "Events waiting in the outbox.",
                                      NULL, 0, &backlog),
                     0);
    int pending = 42;
    sl_gauge_set_fn(sl_metric_series(backlog, NULL), backlog_fn, &pending);
    sl_counter_add(sl_metric_series(req, (const char *[]){"order", "GET", "200"}), 0, 5);
    sl_counter_add(sl_metric_series(req, (const char *[]){"order", "POST", "201"}), 1, 2);
    sl_counter_add(sl_metric_series(req, (const char *[]){"order", "GET", "404"}), 1, 1);
    sl_series *d = sl_metric_series(dur, (const char *[]){"order"});
    for (int i = 0; i < 100; i++)
        sl_histogram_observe(d, (unsigned)i % 2, 0.001 * i);
    sl_gauge_set(sl_metric_series(inflight, (const char *[]){"weird \"svc\"\\\n"}), 3);
    sl_metrics_enable_process(reg);
    char *text = render(reg);
    /* The standard process families follow the registered ones, read from /proc. */
    assert_non_null(
        strstr(text, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total "));
    assert_non_null(strstr(text, "# TYPE process_resident_memory_bytes gauge\n"));
    assert_non_null(strstr(text, "\nprocess_virtual_memory_bytes "));
    assert_non_null(strstr(text, "\nprocess_max_fds "));
    const char *fds = strstr(text, "\nprocess_open_fds ");
    assert_non_null(fds);
    assert_true(atof(fds + strlen("\nprocess_open_fds ")) >= 3); /* stdin, stdout, stderr */
    const char *rss = strstr(text, "\nprocess_resident_memory_bytes ");
    assert_non_null(rss);
    assert_true(atof(rss + strlen("\nprocess_resident_memory_bytes ")) > 0);
    promtool_check(text);
    free(text);
    sl_metrics_free(reg);
}

/* ---- two writers and a scraper --------------------------------------------------------- */

#define ADDS 1000000

typedef struct race {
    sl_metrics *reg;
    int scrape_errors, went_backwards, renders;
    sl_series *counter;
    sl_series *hist;
    atomic_int writers_done;
    unsigned shard;
} race;

typedef struct writer_arg {
    race *r;
    unsigned shard;
} writer_arg;

static void *writer_main(void *arg)
{
    writer_arg *w = arg;
    for (int i = 0; i < ADDS; i++) {
        sl_counter_inc(w->r->counter, w->shard);
        if ((i & 63) == 0) sl_histogram_observe(w->r->hist, w->shard, 0.01);
    }
    atomic_fetch_add(&w->r->writers_done, 1);
    return NULL;
}

/* Renders and extracts the race_total sample; -1 on any failure. No cmocka assertions:
 * it also runs on the scraper thread, and cmocka's failures only work on the main one. */
static long long scrape_total(sl_metrics *reg)
{
    char *text = NULL;
    size_t len;
    if (sl_metrics_render(reg, &text, &len) != 0) return -1;
    const char *p = strstr(text, "\nrace_total ");
    long long v = p ? strtoll(p + strlen("\nrace_total "), NULL, 10) : -1;
    free(text);
    return v;
}

static void *scraper_main(void *arg)
{
    race *r = arg;
    long long last = 0;
    while (atomic_load(&r->writers_done) < 2 || r->renders < 10) {
        long long v = scrape_total(r->reg);
        if (v < 0) r->scrape_errors++;
        if (v < last) r->went_backwards++;
        last = v;
        r->renders++;
    }
    return NULL;
}

static void test_concurrent_writers_and_scraper(void **state)
{
    (void)state;
    race r = {0};
    atomic_init(&r.writers_done, 0);
    assert_int_equal(sl_metrics_new(2, &r.reg), 0);
    sl_metric_family *f, *h;
    assert_int_equal(sl_metrics_counter(r.reg, "race_total", "Race.", NULL, 0, &f), 0);
    assert_int_equal(sl_metrics_histogram(r.reg, "race_seconds", "Race.", NULL, 0, NULL, 0, &h), 0);
    r.counter = sl_metric_series(f, NULL);
    r.hist = sl_metric_series(h, NULL);
    pthread_t w[2], s;
    writer_arg wa[2] = {{&r, 0}, {&r, 1}};
    assert_int_equal(pthread_create(&s, NULL, scraper_main, &r), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&w[i], NULL, writer_main, &wa[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(w[i], NULL), 0);
    assert_int_equal(pthread_join(s, NULL), 0);
    assert_int_equal(r.scrape_errors, 0);
    assert_int_equal(r.went_backwards, 0); /* every scrape saw a consistent, growing total */
    print_message("%d renders during the race\n", r.renders);
    assert_int_equal(sl_counter_value(r.counter), 2 * ADDS);
    assert_int_equal(scrape_total(r.reg), 2 * ADDS);
    assert_int_equal(sl_histogram_count(r.hist), 2 * ((ADDS + 63) / 64));
    sl_metrics_free(r.reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_sums_shards),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_gauges_escaping_order),
        cmocka_unit_test(test_validation_and_limits),
        cmocka_unit_test(test_proc_stat_parse),
        cmocka_unit_test(test_promtool),
        cmocka_unit_test(test_concurrent_writers_and_scraper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
