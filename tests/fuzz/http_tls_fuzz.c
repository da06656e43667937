/*
 * Differential fuzz target for the TLS-record-to-HTTP path: the input is
 * sent as plaintext through a TLS 1.3 client engine (a mesh client
 * certificate) to a fresh server that speaks TLS on a socketpair, then in
 * one write to a plain server; the two must answer byte for byte the same
 * (the echo handler of http_exchange.h; Date lines cut). The TLS side ends
 * with close_notify and a half-close, the plain side with the half-close.
 * Certificates are made once, in memory, into a scratch directory.
 */
#include "http_exchange.h"

#include <shoal/tls.h>

#include <errno.h>
#include <stdint.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sl_tls_ctx *sctx, *cctx;
static char scratch[64];

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", scratch);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", scratch);
    sl_tls_ctx_unref(sctx);
    sl_tls_ctx_unref(cctx);
}

static void put(const char *name, const char *text, char *path_out)
{
    snprintf(path_out, 128, "%s/%s", scratch, name);
    FILE *f = fopen(path_out, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) abort();
}

static void init_once(void)
{
    if (sctx) return;
    snprintf(scratch, sizeof scratch, "/tmp/shoal-tls-fuzz-XXXXXX");
    if (!mkdtemp(scratch)) abort();
    int64_t now = (int64_t)time(NULL);
    char *ca, *cakey, *sc, *sk, *cc, *ck;
    if (sl_tls_pki_make_ca("fuzz CA", now - 60, now + 86400, &ca, &cakey) != 0 ||
        sl_tls_pki_issue(ca, cakey, "inventory", now - 60, now + 86400, &sc, &sk, NULL) != 0 ||
        sl_tls_pki_issue(ca, cakey, "order", now - 60, now + 86400, &cc, &ck, NULL) != 0)
        abort();
    char pca[128], psc[128], psk[128], pcc[128], pck[128];
    put("ca.pem", ca, pca);
    put("s.pem", sc, psc);
    put("s.key", sk, psk);
    put("c.pem", cc, pcc);
    put("c.key", ck, pck);
    free(ca);
    free(cakey);
    free(sc);
    free(sk);
    free(cc);
    free(ck);
    sl_tls_config s = {.server = true,
                       .cert_file = psc,
                       .key_file = psk,
                       .ca_file = pca,
                       .require_client_cert = true,
                       .mesh = true};
    sl_tls_config c = {.cert_file = pcc,
                       .key_file = pck,
                       .ca_file = pca,
                       .mesh = true,
                       .expect_peer = "inventory"};
    if (sl_tls_ctx_new(&s, &sctx, NULL, 0) != 0 || sl_tls_ctx_new(&c, &cctx, NULL, 0) != 0) abort();
    atexit(cleanup);
}

typedef struct outq {
    char *p;
    size_t len, off, cap;
} outq;

/* Moves the engine's output into `q`, then sends what the socket takes. */
static void pump_out(sl_tls_conn *cl, outq *q, int fd)
{
    size_t n = sl_tls_conn_out_pending(cl);
    if (n) {
        if (q->len + n > q->cap) {
            q->cap = (q->len + n) * 2;
            q->p = realloc(q->p, q->cap);
            if (!q->p) abort();
        }
        q->len += sl_tls_conn_out(cl, q->p + q->len, n);
    }
    while (q->off < q->len) {
        ssize_t k = send(fd, q->p + q->off, q->len - q->off, MSG_NOSIGNAL);
        if (k <= 0) break;
        q->off += (size_t)k;
    }
}

static char *tls_exchange(const char *raw, size_t len_in, size_t *out_len)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_http_limits lim;
    sl_http_limits_default(&lim);
    lim.max_headers = 8;
    lim.max_header_bytes = 1024;
    sl_http_callbacks cbs = {.on_request = on_request};
    sl_http_server *srv;
    if (sl_http_server_new(&loop, &lim, &cbs, &srv) != 0) abort();
    sl_http_server_set_tls(srv, sctx);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) abort();
    if (sl__http_server_adopt(srv, sv[0]) != 0) abort();
    sl_tls_conn *cl;
    if (sl_tls_conn_new(cctx, &cl) != 0) abort();
    outq q = {0};
    size_t cap = 1 << 20, len = 0;
    char *got = malloc(cap);
    char rbuf[16384];
    bool sent = false, half_closed = false, server_closed = false;
    if (sl_tls_conn_handshake(cl) == SL_EIO) abort();
    for (int i = 0; i < 2000 && !server_closed; i++) {
        pump_out(cl, &q, sv[1]);
        if (sent && !half_closed && q.off == q.len) {
            shutdown(sv[1], SHUT_WR);
            half_closed = true;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t k;
        while ((k = recv(sv[1], rbuf, sizeof rbuf, 0)) > 0)
            if (sl_tls_conn_feed(cl, rbuf, (size_t)k) != 0) abort();
        if (k == 0) server_closed = true;
        int hs = sl_tls_conn_handshake(cl);
        if (hs == SL_EIO) abort(); /* the certificates are good: the handshake must succeed */
        if (hs == 0 && !sent) {
            if (len_in && sl_tls_conn_write(cl, raw, len_in) != 0) abort();
            sl_tls_conn_shutdown(cl);
            sent = true;
        }
        size_t n = 0;
        while (hs == 0 && len < cap - 1 && sl_tls_conn_read(cl, got + len, cap - len - 1, &n) == 0)
            len += n;
    }
    sl_tls_conn_free(cl);
    free(q.p);
    close(sv[1]);
    sl_http_server_close(srv, NULL, NULL);
    for (int i = 0; uv_loop_close(&loop) == UV_EBUSY; i++) {
        if (i == 1000) abort();
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    got[len] = '\0';
    *out_len = cut_dates(got, len);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    init_once();
    size_t taken = 0, la = 0, lb = 0;
    char *a = tls_exchange((const char *)data, size, &la);
    char *b = exchange((const char *)data, size, true, &taken, &lb);
    if (la != lb || memcmp(a, b, la) != 0) {
        fprintf(stderr, "TLS answered %zu bytes:\n%.*s\nplain answered %zu bytes:\n%.*s\n", la,
                (int)la, a, lb, (int)lb, b);
        abort();
    }
    free(a);
    free(b);
    return 0;
}
