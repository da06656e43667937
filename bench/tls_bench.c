/*
 * bench_tls: plain HTTP against mTLS keep-alive through the libshoal client,
 * for bench/tls.sh.
 *
 *   bench_tls serve DIR PORT           a libshoal HTTP server answering GET with "ok",
 *                                      TLS (mesh, client certificates required) when DIR
 *                                      is not "-": DIR/certs/bench-server.pem/.key and
 *                                      DIR/bundle.pem
 *   bench_tls call DIR PORT CONNS SECONDS
 *                                      keeps CONNS calls in flight for SECONDS through one
 *                                      upstream (TLS with DIR/certs/bench-client.* when DIR
 *                                      is not "-") and prints one line:
 *                                      <completed> <req/s> <p50_ms> <p99_ms> <errors> <handshakes>
 */
#include <shoal/hdr.h>
#include <shoal/http.h>
#include <shoal/http_client.h>
#include <shoal/tls.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define MAX_CALLS 4096

static void on_request(sl_http_req *req, void *data)
{
    (void)data;
    (void)sl_http_respond_body(req, 200, "text/plain", "ok", 2);
}

static void on_term(uv_signal_t *h, int sig)
{
    (void)sig;
    uv_stop(h->loop);
}

static int serve(const char *dir, int port)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_http_limits lim;
    sl_http_limits_default(&lim);
    sl_http_callbacks cbs = {.on_request = on_request};
    sl_http_server *srv;
    if (sl_http_server_new(&loop, &lim, &cbs, &srv) != 0) return 1;
    if (strcmp(dir, "-") != 0) {
        char cert[1024], key[1024], ca[1024], err[256];
        snprintf(cert, sizeof cert, "%s/certs/bench-server.pem", dir);
        snprintf(key, sizeof key, "%s/certs/bench-server.key", dir);
        snprintf(ca, sizeof ca, "%s/bundle.pem", dir);
        sl_tls_config cfg = {.server = true,
                             .cert_file = cert,
                             .key_file = key,
                             .ca_file = ca,
                             .require_client_cert = true,
                             .mesh = true};
        sl_tls_ctx *ctx;
        if (sl_tls_ctx_new(&cfg, &ctx, err, sizeof err) != 0) {
            fprintf(stderr, "bench_tls: %s\n", err);
            return 1;
        }
        sl_http_server_set_tls(srv, ctx);
        sl_tls_ctx_unref(ctx);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || sl_http_server_listen_fd(srv, fd) != 0) {
        fprintf(stderr, "bench_tls: cannot listen on %d\n", port);
        return 1;
    }
    uv_signal_t term;
    uv_signal_init(&loop, &term);
    uv_signal_start(&term, on_term, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    return 0;
}

typedef struct bench {
    sl_upstream *up;
    sl_http_request req;
    sl_hdr *hist;
    uint64_t done, errors;
    int stopping, in_flight;
} bench;

typedef struct slot {
    bench *b;
    uint64_t t0;
} slot;

static void fire(bench *b, slot *s);

static void on_done(sl_http_handle *call, const sl_http_result *r, void *data)
{
    (void)call;
    slot *s = data;
    bench *b = s->b;
    b->in_flight--;
    if (r->kind == SL_HTTP_RESULT_OK && r->response->status == 200) {
        b->done++;
        (void)sl_hdr_record(b->hist, (int64_t)((uv_hrtime() - s->t0) / 1000));
    } else {
        b->errors++;
    }
    if (!b->stopping) fire(b, s);
}

static void fire(bench *b, slot *s)
{
    s->t0 = uv_hrtime();
    if (sl_http_call(b->up, &b->req, NULL, on_done, s, NULL) != 0) {
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

static int call(const char *dir, int port, int conns, int seconds)
{
    if (conns < 1 || conns > MAX_CALLS || seconds < 1) return 2;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_tls_ctx *ctx = NULL;
    if (strcmp(dir, "-") != 0) {
        char cert[1024], key[1024], ca[1024], err[256];
        snprintf(cert, sizeof cert, "%s/certs/bench-client.pem", dir);
        snprintf(key, sizeof key, "%s/certs/bench-client.key", dir);
        snprintf(ca, sizeof ca, "%s/bundle.pem", dir);
        sl_tls_config cfg = {.cert_file = cert,
                             .key_file = key,
                             .ca_file = ca,
                             .mesh = true,
                             .expect_peer = "bench-server"};
        if (sl_tls_ctx_new(&cfg, &ctx, err, sizeof err) != 0) {
            fprintf(stderr, "bench_tls: %s\n", err);
            return 1;
        }
    }
    char ep[32];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    const char *eps[] = {ep};
    sl_upstream_config uc;
    sl_upstream_config_default(&uc);
    uc.name = "bench";
    uc.endpoints = eps;
    uc.nendpoints = 1;
    uc.policies = false;
    uc.max_connections = (uint32_t)conns;
    uc.max_idle = (uint32_t)conns;
    uc.tls = ctx;
    sl_upstream_env env = {.loop = &loop};
    static bench b;
    static slot slots[MAX_CALLS];
    if (sl_upstream_new(&uc, &env, &b.up) != 0 || sl_hdr_new(60000000, 3, &b.hist) != 0) return 1;
    b.req = (sl_http_request){.method = SL_HTTP_GET, .target = {"/", 1}};
    for (int i = 0; i < conns; i++) {
        slots[i].b = &b;
        fire(&b, &slots[i]);
    }
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    stop.data = &b;
    uv_timer_start(&stop, on_stop, (uint64_t)seconds * 1000, 0);
    uint64_t start = uv_hrtime();
    while (!b.stopping || b.in_flight > 0)
        uv_run(&loop, UV_RUN_ONCE);
    double secs = (double)(uv_hrtime() - start) / 1e9;
    uint64_t hs = sl_tls_ctx_handshakes(ctx, NULL);
    printf("%llu %.0f %.3f %.3f %llu %llu\n", (unsigned long long)b.done, (double)b.done / secs,
           (double)sl_hdr_value_at(b.hist, 50.0) / 1000.0,
           (double)sl_hdr_value_at(b.hist, 99.0) / 1000.0, (unsigned long long)b.errors,
           (unsigned long long)hs);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 4 && strcmp(argv[1], "serve") == 0) return serve(argv[2], atoi(argv[3]));
    if (argc == 6 && strcmp(argv[1], "call") == 0)
        return call(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: bench_tls serve DIR|- PORT\n"
                    "       bench_tls call DIR|- PORT CONNS SECONDS\n");
    return 2;
}
