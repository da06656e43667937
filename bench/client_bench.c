/*
 * bench_client: closed-loop load from the libshoal HTTP client to one
 * upstream, for bench/client.sh. Keeps CONNS calls in flight (GET PATH on
 * 127.0.0.1:PORT) for SECONDS on one loop and prints one line:
 *   <mode> <completed> <req/s> <errors>
 * Mode "full" runs every call through the policy stack (deadline, bulkhead,
 * breaker, retry budget, metrics); "off" is the same client with
 * policies = false (pool, parser and timeouts only).
 *
 *   bench_client full 8081 50 10 /hello
 */
#include <shoal/http_client.h>
#include <shoal/metrics.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct bench {
    sl_upstream *up;
    sl_http_request req;
    uint64_t done, errors;
    int stopping;
    int in_flight;
} bench;

static void fire(bench *b);

static void on_done(sl_http_handle *call, const sl_http_result *r, void *data)
{
    (void)call;
    bench *b = data;
    b->in_flight--;
    if (r->kind == SL_HTTP_RESULT_OK && r->response->status == 200)
        b->done++;
    else
        b->errors++;
    if (!b->stopping) fire(b);
}

static void fire(bench *b)
{
    if (sl_http_call(b->up, &b->req, NULL, on_done, b, NULL) != 0) {
        b->errors++;
        return;
    }
    b->in_flight++;
}

static void on_stop(uv_timer_t *t)
{
    bench *b = t->data;
    b->stopping = 1;
    uv_close((uv_handle_t *)t, NULL);
}

static void closed(void *data)
{
    (void)data;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s full|off PORT CONNS SECONDS PATH\n", argv[0]);
        return 2;
    }
    int full = strcmp(argv[1], "full") == 0;
    int conns = atoi(argv[3]), secs = atoi(argv[4]);
    if (conns < 1 || conns > 10000 || secs < 1) return 2;
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%s", argv[2]);
    const char *eps[] = {ep};
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_metrics *metrics = NULL;
    if (sl_metrics_new(1, &metrics) != 0) return 1;
    sl_upstream_config cfg;
    sl_upstream_config_default(&cfg);
    cfg.name = "bench";
    cfg.endpoints = eps;
    cfg.nendpoints = 1;
    cfg.max_connections = (uint32_t)conns;
    cfg.max_idle = (uint32_t)conns;
    cfg.policies = full;
    cfg.bulkhead.max_concurrent = (uint32_t)conns;
    sl_upstream_env env = {.loop = &loop, .metrics = full ? metrics : NULL};
    bench b = {.req = {.method = SL_HTTP_GET, .target = {argv[5], strlen(argv[5])}}};
    int rc = sl_upstream_new(&cfg, &env, &b.up);
    if (rc != 0) {
        fprintf(stderr, "sl_upstream_new: %s\n", sl_strerror(rc));
        return 1;
    }
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    stop.data = &b;
    uv_timer_start(&stop, on_stop, (uint64_t)secs * 1000, 0);
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < conns; i++)
        fire(&b);
    while (!b.stopping)
        uv_run(&loop, UV_RUN_ONCE);
    double elapsed = (double)(uv_hrtime() - t0) / 1e9;
    uint64_t done = b.done;
    while (b.in_flight > 0)
        uv_run(&loop, UV_RUN_ONCE);
    sl_upstream_close(b.up, closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    sl_metrics_free(metrics);
    printf("%s %llu %.0f %llu\n", argv[1], (unsigned long long)done, (double)done / elapsed,
           (unsigned long long)b.errors);
    return 0;
}
