/*
 * `shoal load` against a small HTTP server in this process that plays the gateway's catalogue
 * routes with known, fixed delays, over real sockets. Checks what the report says against what
 * the server counted: requests per operation (exact), the open-loop schedule (exact arrivals),
 * percentiles that respect the delays the server imposed (lower bounds the delays make
 * certain, never an upper bound on time), latency measured from the intended send time (a
 * stalled server shows in the arrivals queued behind it), 503s with Retry-After counted, and
 * the setup failures' exit statuses.
 */
#include "harness.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the fake gateway: one thread, poll(), requests answered in arrival order ---------------- */

enum { K_SETUP, K_LIST, K_SEARCH, K_PRODUCT, K_OTHER, K_COUNT };

typedef struct fake {
    int lfd, port;
    pthread_t thread;
    atomic_int stop;
    /* behaviour */
    int search_delay_ms; /* every search */
    int list_slow_ms;    /* every 10th list request */
    int stall_at;        /* the stall_at-th measured request (1-based) stalls ... */
    int stall_ms;        /* ... this long, holding every other connection too */
    int list_503;        /* list requests answer 503 with Retry-After: 1 */
    /* counts */
    atomic_int count[K_COUNT];
    atomic_int served; /* measured requests (not the setup listing) */
    atomic_int answered_503;
} fake;

typedef struct conn {
    int fd;
    char buf[8192];
    size_t len;
} conn;

static void sleep_ms(int ms)
{
    if (ms > 0) usleep((useconds_t)ms * 1000);
}

static void reply(int fd, int status, const char *extra, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n%sContent-Length: "
                     "%zu\r\n\r\n",
                     status, extra, strlen(body));
    if (th_send(fd, head, (size_t)n) != 0 || th_send(fd, body, strlen(body)) != 0) return;
}

static void handle(fake *f, int fd, const char *target)
{
    int k;
    if (strstr(target, "per_page=100"))
        k = K_SETUP;
    else if (strncmp(target, "/api/v1/products?", 17) == 0)
        k = strstr(target, "q=") ? K_SEARCH : K_LIST;
    else if (strncmp(target, "/api/v1/products/", 17) == 0)
        k = K_PRODUCT;
    else
        k = K_OTHER;
    atomic_fetch_add(&f->count[k], 1);
    if (k == K_SETUP) {
        reply(fd, 200, "",
              "{\"items\":[{\"product_id\":\"p-1\",\"name\":\"Green tea\"},{\"product_id\":"
              "\"p-2\",\"name\":\"Coffee beans\"}],\"page\":1,\"per_page\":100,\"total\":2}");
        return;
    }
    int n = atomic_fetch_add(&f->served, 1) + 1;
    if (f->stall_at && n == f->stall_at) sleep_ms(f->stall_ms);
    if (k == K_SEARCH) sleep_ms(f->search_delay_ms);
    if (k == K_LIST && f->list_503) {
        atomic_fetch_add(&f->answered_503, 1);
        reply(fd, 503, "Retry-After: 1\r\n",
              "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503}");
        return;
    }
    if (k == K_LIST && f->list_slow_ms && atomic_load(&f->count[K_LIST]) % 10 == 0)
        sleep_ms(f->list_slow_ms);
    if (k == K_OTHER) {
        reply(fd, 404, "", "{\"status\":404}");
        return;
    }
    reply(fd, 200, "",
          k == K_PRODUCT ? "{\"product_id\":\"p-1\",\"available\":5}"
                         : "{\"items\":[],\"page\":1,\"per_page\":20,\"total\":0}");
}

/* Answers every complete request in c->buf (GETs: no body). Returns -1 to close. */
static int serve_buffer(fake *f, conn *c)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return c->len == sizeof c->buf ? -1 : 0;
        size_t used = (size_t)(end - c->buf) + 4;
        char target[1024] = "";
        if (sscanf(c->buf, "%*s %1023s", target) != 1) return -1;
        handle(f, c->fd, target);
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
}

static void *serve(void *arg)
{
    fake *f = arg;
    enum { MAXC = 256 };
    static conn conns[MAXC];
    int n = 0;
    while (!atomic_load(&f->stop)) {
        struct pollfd p[MAXC + 1];
        p[0] = (struct pollfd){.fd = f->lfd, .events = POLLIN};
        for (int i = 0; i < n; i++)
            p[i + 1] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        if (poll(p, (nfds_t)n + 1, 50) <= 0) continue;
        if ((p[0].revents & POLLIN) && n < MAXC) {
            int fd = accept(f->lfd, NULL, NULL);
            if (fd >= 0) conns[n++] = (conn){.fd = fd};
        }
        for (int i = 0; i < n; i++) {
            if (!(p[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            conn *c = &conns[i];
            ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
            if (r <= 0 || (c->len += (size_t)r, serve_buffer(f, c) != 0)) {
                close(c->fd);
                conns[i] = conns[--n];
                p[i + 1] = p[n + 1];
                i--;
            }
        }
    }
    for (int i = 0; i < n; i++)
        close(conns[i].fd);
    return NULL;
}

static void fake_start(fake *f)
{
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    int one = 1;
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(listen(f->lfd, 128), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
}

static void fake_stop(fake *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    close(f->lfd);
}

/* ---- running shoal load ------------------------------------------------------------------- */

static fake *interrupt_when; /* run_load sends SIGINT once this server served ... */
static int interrupt_after;  /* ... this many requests */

/* Runs `shoal load ARGS...` with stdout and stderr in files; returns the exit status (or -1)
 * and the parsed stdout (when JSON) in *out, its stderr in err (cap bytes). */
static int run_load(char *const args[], json_t **out, char *err, size_t cap)
{
    char dir[] = "/tmp/shoal-load-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char so[64], se[64];
    snprintf(so, sizeof so, "%s/out", dir);
    snprintf(se, sizeof se, "%s/err", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[32];
        int n = 0;
        argv[n++] = (char *)th_bin("shoal");
        argv[n++] = "load";
        for (int i = 0; args[i] && n < 31; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        if (!freopen(so, "w", stdout) || !freopen(se, "w", stderr)) _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    if (interrupt_when) {
        for (int i = 0; i < 6000 && atomic_load(&interrupt_when->served) < interrupt_after; i++)
            usleep(10000);
        kill(pid, SIGINT);
        interrupt_when = NULL;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    json_error_t je;
    if (out) *out = json_load_file(so, 0, &je);
    FILE *f = fopen(se, "r");
    size_t n = f ? fread(err, 1, cap - 1, f) : 0;
    err[n] = '\0';
    if (f) fclose(f);
    unlink(so);
    unlink(se);
    rmdir(dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *op(json_t *report, const char *name)
{
    return json_object_get(json_object_get(report, "operations"), name);
}

static long long iget(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static double dget(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

/* ---- tests --------------------------------------------------------------------------------- */

static char errbuf[65536];

/* Closed loop: every request counted once, by operation, as the server saw it; the delays show
 * in the percentiles. */
static void test_closed_loop_counts_and_percentiles(void **state)
{
    (void)state;
    static fake f = {.search_delay_ms = 150, .list_slow_ms = 300};
    fake_start(&f);
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%d", f.port);
    char *args[] = {"--scenario", "browse", "--conns", "4",        "--duration", "3s", "--warmup",
                    "0",          "--json", "--quiet", "--target", target,       NULL};
    json_t *r = NULL;
    int rc = run_load(args, &r, errbuf, sizeof errbuf);
    fake_stop(&f);
    if (rc != 0 || !r) fail_msg("shoal load exited %d: %s", rc, errbuf);
    assert_string_equal(json_string_value(json_object_get(r, "mode")), "closed");
    assert_int_equal(f.count[K_SETUP], 1);
    assert_int_equal(f.count[K_OTHER], 0);
    assert_true(f.count[K_LIST] >= 10); /* enough for one slow one */
    assert_int_equal(iget(op(r, "list"), "count"), f.count[K_LIST]);
    assert_int_equal(iget(op(r, "search"), "count"), f.count[K_SEARCH]);
    assert_int_equal(iget(op(r, "product"), "count"), f.count[K_PRODUCT]);
    assert_int_equal(iget(r, "requests"), f.served);
    assert_int_equal(iget(r, "errors"), 0);
    assert_int_equal(iget(json_object_get(r, "transactions"), "browse"), f.served);
    /* Every search waited 150 ms at the server: its every percentile is at least that. */
    if (f.count[K_SEARCH] > 0) assert_true(dget(op(r, "search"), "p50_ms") >= 150);
    /* One list request in ten waited 300 ms: the tail shows it. */
    json_t *list = op(r, "list");
    assert_true(dget(list, "max_ms") >= 300);
    if (f.count[K_LIST] >= 100) assert_true(dget(list, "p99_ms") >= 300);
    assert_true(dget(list, "p50_ms") <= dget(list, "p90_ms"));
    assert_true(dget(list, "p90_ms") <= dget(list, "p99_ms"));
    assert_true(dget(list, "p99_ms") <= dget(list, "p999_ms"));
    assert_true(dget(list, "p999_ms") <= dget(list, "max_ms"));
    json_decref(r);
}

/* Open loop: exactly rate x duration arrivals, each sent or reported as not sent; a stall of the
 * (single-threaded) server delays every arrival behind it, and their latency counts from when
 * they were due, not from when they could be sent. */
static void test_open_loop_schedule_and_stall(void **state)
{
    (void)state;
    static fake f = {.stall_at = 10, .stall_ms = 1500};
    fake_start(&f);
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%d", f.port);
    char *args[] = {"--scenario", "browse", "--rate",  "40/s",     "--duration", "3s", "--warmup",
                    "0",          "--json", "--quiet", "--target", target,       NULL};
    json_t *r = NULL;
    int rc = run_load(args, &r, errbuf, sizeof errbuf);
    fake_stop(&f);
    if (rc != 0 || !r) fail_msg("shoal load exited %d: %s", rc, errbuf);
    assert_string_equal(json_string_value(json_object_get(r, "mode")), "open");
    assert_int_equal(iget(r, "scheduled"), 120);
    long long not_sent = iget(r, "not_sent");
    assert_int_equal(not_sent, 0); /* the bound (256) is far above 40/s x 1.5 s */
    assert_int_equal(iget(r, "requests"), 120);
    assert_int_equal(f.served, 120);
    assert_int_equal(iget(op(r, "list"), "count") + iget(op(r, "search"), "count") +
                         iget(op(r, "product"), "count"),
                     120);
    /* While the server stalled 1.5 s, 40/s kept arriving: about 60 requests waited, the ones
     * due early in the stall for more than 0.75 s. Measured from the intended time, more than a
     * tenth of all requests took at least 750 ms, so p90 is at least that (a generator that
     * waited for answers before sending would show one slow request). */
    json_t *all = json_object_get(r, "latency");
    assert_true(dget(all, "max_ms") >= 1500);
    assert_true(dget(all, "p90_ms") >= 750);
    json_decref(r);
}

/* 503 with Retry-After: counted per operation and as Retry-After responses. */
static void test_retry_after_counted(void **state)
{
    (void)state;
    static fake f = {.list_503 = 1};
    fake_start(&f);
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%d", f.port);
    char *args[] = {"--scenario", "browse",   "--conns", "2",      "--duration",
                    "2500ms",     "--warmup", "0",       "--json", "--quiet",
                    "--target",   target,     NULL};
    json_t *r = NULL;
    int rc = run_load(args, &r, errbuf, sizeof errbuf);
    fake_stop(&f);
    if (rc != 0 || !r) fail_msg("shoal load exited %d: %s", rc, errbuf);
    assert_true(f.answered_503 >= 1);
    json_t *list = op(r, "list");
    assert_int_equal(iget(list, "error_count"), f.answered_503);
    assert_int_equal(iget(json_object_get(list, "errors"), "503"), f.answered_503);
    assert_int_equal(iget(json_object_get(r, "retry_after"), "503"), f.answered_503);
    assert_int_equal(iget(r, "errors"), f.answered_503);
    assert_int_equal(iget(r, "requests"), f.served);
    json_decref(r);
}

/* SIGINT ends the measured window early: the run drains, reports what it did (exit 0), and
 * the counts still equal the server's. */
static void test_interrupt_reports(void **state)
{
    (void)state;
    static fake f;
    fake_start(&f);
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%d", f.port);
    char *args[] = {"--scenario", "browse", "--rate",  "50/s",     "--duration", "10m", "--warmup",
                    "0",          "--json", "--quiet", "--target", target,       NULL};
    interrupt_when = &f;
    interrupt_after = 30;
    json_t *r = NULL;
    int rc = run_load(args, &r, errbuf, sizeof errbuf);
    fake_stop(&f);
    if (rc != 0 || !r) fail_msg("shoal load exited %d: %s", rc, errbuf);
    assert_true(json_is_true(json_object_get(r, "interrupted")));
    assert_true(dget(r, "duration_s") < 600);
    assert_true(iget(r, "requests") >= 30);
    assert_int_equal(iget(r, "requests"), f.served);
    assert_int_equal(iget(r, "scheduled"), iget(r, "requests") + iget(r, "not_sent"));
    json_decref(r);
}

static void expect_exit(char *const args[], int status, const char *needle)
{
    int rc = run_load(args, NULL, errbuf, sizeof errbuf);
    if (rc != status || !strstr(errbuf, needle))
        fail_msg("exit %d (want %d), stderr without '%s': %s", rc, status, needle, errbuf);
}

static void test_setup_failures(void **state)
{
    (void)state;
    /* Bad options: exit 2, naming the option. */
    expect_exit((char *[]){"--rate", "10/s", "--conns", "2", NULL}, 2, "--conns");
    expect_exit((char *[]){"--duration", "5 minutes", NULL}, 2, "--duration");
    expect_exit((char *[]){"--mix", "browse=1,sideways=2", NULL}, 2, "sideways");
    expect_exit((char *[]){"--scenario", "shopping", NULL}, 2, "--scenario");
    expect_exit((char *[]){"--rate", "fast", NULL}, 2, "--rate");
    expect_exit((char *[]){"--users", "0", NULL}, 2, "--users");
    expect_exit((char *[]){"--frobnicate", NULL}, 2, "--frobnicate");
    /* A remote target needs --allow-remote; nothing is sent to it. */
    expect_exit((char *[]){"--target", "http://192.0.2.1:8080", NULL}, 2, "--allow-remote");
    expect_exit((char *[]){"--target", "https://127.0.0.1:8080", NULL}, 2, "--target");
    /* Nothing listening: exit 1, naming the target. */
    int port = th_free_port();
    char target[64];
    snprintf(target, sizeof target, "http://127.0.0.1:%d", port);
    expect_exit((char *[]){"--scenario", "browse", "--target", target, "--duration", "1s", NULL}, 1,
                target);
    /* The checkout scenario needs the admin credentials. */
    static fake f;
    fake_start(&f);
    snprintf(target, sizeof target, "http://127.0.0.1:%d", f.port);
    expect_exit((char *[]){"--scenario", "checkout", "--target", target, "--admin-credentials",
                           "/nonexistent/admin-credentials", NULL},
                1, "/nonexistent/admin-credentials");
    fake_stop(&f);
    assert_int_equal(f.served, 0); /* only the catalogue was read */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_loop_counts_and_percentiles),
        cmocka_unit_test(test_open_loop_schedule_and_stall),
        cmocka_unit_test(test_retry_after_counted),
        cmocka_unit_test(test_interrupt_reports),
        cmocka_unit_test(test_setup_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
