/*
 * A raw test upstream for the gateway's end-to-end suite, run as a child
 * process (the test binary re-executes itself with "upstream PORT NAME
 * DIR"). It parses requests itself — head up to CRLFCRLF, Content-Length
 * framing only, anything else is counted as an error and closes — so it
 * counts exactly the requests that reached it, whatever a strict server
 * would have thought of them (the smuggling tests rely on this).
 *
 * Behaviour is read per request from files in DIR, so a test changes it
 * without restarting: DIR/NAME.mode ("ok", "slow", "fail", "hang"),
 * DIR/jwks.json (served at /.well-known/jwks.json), DIR/identity.key (the
 * identity key used to verify x-shoal-identity).
 *
 * Endpoints: GET /count → {"requests":N,"errors":E,"heads":[...]}; /status/NNN;
 * /slow?ms=N; /users/{id}; /orders?user_id=; /products?ids=a,b; anything
 * else → an echo of what arrived ({"n","method","target","user_id","role",
 * "identity","headers":[names],"xff","via","body_len"}).
 */
#include <shoal/clock.h>
#include <shoal/identity.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define UP_BUF 65536

typedef struct up_srv {
    uv_loop_t *loop;
    uv_tcp_t listener;
    const char *name, *dir;
    long requests, errors;
    json_t *heads; /* the last 32 request heads */
} up_srv;

typedef struct up_conn {
    uv_tcp_t tcp;
    up_srv *s;
    char buf[UP_BUF];
    size_t len;
    int busy; /* a delayed response is pending */
    int closing;
} up_conn;

typedef struct up_delay {
    uv_timer_t t;
    up_conn *c;
    char *resp;
    size_t len;
} up_delay;

static char *up_read_file(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(65536);
    size_t n = fread(b, 1, 65535, f);
    fclose(f);
    b[n] = '\0';
    while (n && (b[n - 1] == '\n' || b[n - 1] == ' '))
        b[--n] = '\0';
    if (len) *len = n;
    return b;
}

static void up_closed(uv_handle_t *h)
{
    free(h->data);
}

static void up_close(up_conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, up_closed);
}

static void up_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void up_send(up_conn *c, const char *p, size_t n)
{
    if (c->closing) return;
    uv_write_t *w = malloc(sizeof *w);
    char *copy = malloc(n);
    memcpy(copy, p, n);
    w->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, up_written) != 0) {
        free(copy);
        free(w);
    }
}

static char *up_response(int status, const char *ctype, const char *body, size_t *len,
                         const char *extra)
{
    size_t bl = strlen(body);
    char *r = malloc(bl + 512);
    int n =
        snprintf(r, bl + 512, "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                 status, ctype, bl, extra ? extra : "");
    memcpy(r + n, body, bl);
    *len = (size_t)n + bl;
    return r;
}

static void up_delay_closed(uv_handle_t *h)
{
    up_delay *d = h->data;
    free(d->resp);
    free(d);
}

static void up_process(up_conn *c);

static void up_delay_fire(uv_timer_t *t)
{
    up_delay *d = t->data;
    up_conn *c = d->c;
    up_send(c, d->resp, d->len);
    c->busy = 0;
    uv_close((uv_handle_t *)&d->t, up_delay_closed);
    up_process(c);
}

static const char *up_header(sl_http_header *h, size_t n, const char *name, char *out, size_t cap)
{
    sl_slice v;
    if (!sl_http_header_find(h, n, name, &v)) return NULL;
    snprintf(out, cap, "%.*s", (int)v.len, v.ptr);
    return out;
}

/* Builds the answer to one request; returns the delay in ms (0: now, -1: never). */
static int up_answer(up_srv *s, const char *method, const char *target, sl_http_header *h,
                     size_t nh, const char *body, size_t body_len, char **resp, size_t *rlen)
{
    char modename[64];
    snprintf(modename, sizeof modename, "%s.mode", s->name);
    char *mode = up_read_file(s->dir, modename, NULL);
    int delay = 0;
    if (mode && strcmp(mode, "slow") == 0) delay = 3000;
    if (mode && strcmp(mode, "hang") == 0) delay = -1;
    int fail = mode && strcmp(mode, "fail") == 0;
    free(mode);
    char path[2048];
    snprintf(path, sizeof path, "%s", target);
    char *q = strchr(path, '?');
    const char *query = "";
    if (q) {
        *q = '\0';
        query = q + 1;
    }
    if (strcmp(path, "/count") == 0) {
        json_t *o = json_pack("{s:I,s:I,s:O}", "requests", (json_int_t)s->requests, "errors",
                              (json_int_t)s->errors, "heads", s->heads);
        char *b = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        *resp = up_response(200, "application/json", b, rlen, NULL);
        free(b);
        return 0;
    }
    if (fail) {
        *resp = up_response(500, "application/problem+json", "{\"status\":500}", rlen, NULL);
        return delay;
    }
    if (strcmp(path, "/.well-known/jwks.json") == 0) {
        char *j = up_read_file(s->dir, "jwks.json", NULL);
        *resp = up_response(j ? 200 : 404, "application/json", j ? j : "{}", rlen, NULL);
        free(j);
        return delay;
    }
    if (strncmp(path, "/status/", 8) == 0) {
        int st = atoi(path + 8);
        *resp = up_response(st, "application/json", "{\"status\":\"set\"}", rlen,
                            st == 503 ? "Retry-After: 1\r\n" : NULL);
        return delay;
    }
    if (strcmp(path, "/slow") == 0) {
        const char *ms = strstr(query, "ms=");
        *resp = up_response(200, "application/json", "{\"slow\":true}", rlen, NULL);
        return ms ? atoi(ms + 3) : 1000;
    }
    /* The caller's identity as the services see it. */
    char uid[128] = "", role[64] = "", xff[256] = "", via[128] = "";
    const char *identity = "none";
    size_t klen = 0;
    char *keyhex = up_read_file(s->dir, "identity.key", &klen);
    if (keyhex) {
        free(keyhex);
        char kpath[1024], kerr[256];
        snprintf(kpath, sizeof kpath, "%s/identity.key", s->dir);
        static sl_identity_keyring ring; /* this upstream's loop thread only */
        sl_identity id;
        if (sl_identity_keyring_load(kpath, &ring, kerr) == 0) {
            /* Verified as the service named like this upstream (the gateway's cluster). */
            sl_slice ik = {NULL, 0};
            (void)sl_http_header_find(h, nh, "idempotency-key", &ik);
            sl_identity_msg m = {.callee = s->name,
                                 .method = sl_http_method_parse((sl_slice){method, strlen(method)}),
                                 .target = {target, strlen(target)},
                                 .idempotency_key = ik,
                                 .body = body,
                                 .body_len = body_len};
            int rc = sl_identity_verify(&ring, h, nh, &m, sl_clock_wall_ms(sl_clock_system()),
                                        SL_IDENTITY_WINDOW_MS, NULL, &id);
            identity = rc == 0 ? "ok" : rc == SL_ENOTFOUND ? "none" : "forged";
        }
    }
    up_header(h, nh, "x-user-id", uid, sizeof uid);
    up_header(h, nh, "x-user-role", role, sizeof role);
    up_header(h, nh, "x-forwarded-for", xff, sizeof xff);
    up_header(h, nh, "via", via, sizeof via);
    if (strncmp(path, "/users/", 7) == 0 && !strchr(path + 7, '/')) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "user_id", path + 7, "name", "Test User",
                              "seen_user", uid, "identity", identity);
        char *b = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (strcmp(path + 7, "missing") == 0) {
            *resp = up_response(404, "application/problem+json", "{\"status\":404}", rlen, NULL);
            free(b);
            return delay;
        }
        int forbidden = strcmp(identity, "ok") != 0 ||
                        (strcmp(uid, path + 7) != 0 && strcmp(role, "admin") != 0);
        if (forbidden)
            *resp = up_response(403, "application/problem+json",
                                "{\"status\":403,\"title\":\"Forbidden\"}", rlen, NULL);
        else
            *resp = up_response(200, "application/json", b, rlen, NULL);
        free(b);
        return delay;
    }
    if (strcmp(path, "/orders") == 0) {
        char b[1024];
        snprintf(
            b, sizeof b,
            "{\"items\":[{\"order_id\":\"o1\",\"identity\":\"%s\",\"items\":[{\"product_id\":"
            "\"p1\",\"qty\":1,"
            "\"unit_price\":100},{\"product_id\":\"p9\",\"qty\":2,\"unit_price\":5}]},"
            "{\"order_id\":\"o2\",\"items\":[{\"product_id\":\"p2\",\"qty\":1,\"unit_price\":7},"
            "{\"product_id\":\"p1\",\"qty\":3,\"unit_price\":100}]}],\"page\":1,\"per_page\":100,"
            "\"total\":2,\"query\":\"%s\"}",
            identity, query);
        *resp = up_response(200, "application/json", b, rlen, NULL);
        return delay;
    }
    if (strcmp(path, "/products") == 0) {
        json_t *items = json_array();
        const char *ids = strstr(query, "ids=");
        char list[1024] = "";
        if (ids) snprintf(list, sizeof list, "%s", ids + 4);
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
            if (strcmp(tok, "p9") != 0)
                json_array_append_new(items,
                                      json_pack("{s:s,s:s}", "product_id", tok, "name", tok));
        json_t *o = json_pack("{s:o,s:s}", "items", items, "identity", identity);
        char *b = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        *resp = up_response(200, "application/json", b, rlen, NULL);
        free(b);
        return delay;
    }
    json_t *names = json_array();
    for (size_t i = 0; i < nh; i++)
        json_array_append_new(names, json_stringn(h[i].name.ptr, h[i].name.len));
    json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:I}", "upstream", s->name, "n",
                          (json_int_t)s->requests, "method", method, "target", target, "user_id",
                          uid, "role", role, "identity", identity, "headers", names, "xff", xff,
                          "via", via, "body_len", (json_int_t)body_len);
    char *b = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    *resp = up_response(200, "application/json", b, rlen, NULL);
    free(b);
    return delay;
}

static void up_process(up_conn *c)
{
    up_srv *s = c->s;
    while (!c->busy && !c->closing) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return;
        size_t head_len = (size_t)(end - c->buf) + 4;
        char head[UP_BUF];
        memcpy(head, c->buf, head_len);
        head[head_len] = '\0';
        /* request line */
        char method[16] = "", target[4096] = "";
        if (sscanf(head, "%15s %4095s HTTP/1.1\r\n", method, target) != 2) {
            s->errors++;
            up_close(c);
            return;
        }
        sl_http_header h[128];
        size_t nh = 0;
        long clen = 0;
        int te = 0, ncl = 0;
        char *line = strstr(head, "\r\n") + 2;
        while (line < head + head_len - 2 && nh < 128) {
            char *eol = strstr(line, "\r\n");
            char *colon = memchr(line, ':', (size_t)(eol - line));
            if (!colon) break;
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            h[nh].name = (sl_slice){line, (size_t)(colon - line)};
            h[nh].value = (sl_slice){v, (size_t)(eol - v)};
            if (sl_slice_case_eq(h[nh].name, "content-length")) {
                clen = strtol(v, NULL, 10);
                ncl++;
            }
            if (sl_slice_case_eq(h[nh].name, "transfer-encoding")) te = 1;
            nh++;
            line = eol + 2;
        }
        if (te || ncl > 1 || clen < 0 || (size_t)clen > UP_BUF - head_len) {
            s->errors++; /* the gateway never sends these: count them and give up */
            up_close(c);
            return;
        }
        if (c->len < head_len + (size_t)clen) return; /* wait for the body */
        int counted = strncmp(target, "/count", 6) != 0;
        if (counted) {
            s->requests++;
            if (json_array_size(s->heads) >= 32) json_array_remove(s->heads, 0);
            json_array_append_new(s->heads, json_stringn(head, head_len));
        }
        char *resp = NULL;
        size_t rlen = 0;
        int delay =
            up_answer(s, method, target, h, nh, c->buf + head_len, (size_t)clen, &resp, &rlen);
        memmove(c->buf, c->buf + head_len + clen, c->len - head_len - (size_t)clen);
        c->len -= head_len + (size_t)clen;
        if (delay == 0) {
            up_send(c, resp, rlen);
            free(resp);
            continue;
        }
        c->busy = 1;
        if (delay < 0) { /* hang: never answer */
            free(resp);
            return;
        }
        up_delay *d = calloc(1, sizeof *d);
        d->c = c;
        d->resp = resp;
        d->len = rlen;
        uv_timer_init(s->loop, &d->t);
        d->t.data = d;
        uv_timer_start(&d->t, up_delay_fire, (uint64_t)delay, 0);
        return;
    }
}

static void up_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    up_conn *c = h->data;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(UP_BUF - c->len));
}

static void up_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    up_conn *c = st->data;
    if (n < 0 || c->len + (size_t)n >= UP_BUF) {
        up_close(c);
        return;
    }
    c->len += (size_t)n;
    up_process(c);
}

static void up_on_conn(uv_stream_t *l, int status)
{
    if (status < 0) return;
    up_srv *s = l->data;
    up_conn *c = calloc(1, sizeof *c);
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        up_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, up_alloc, up_on_read);
}

/* Runs the upstream until killed. argv: upstream PORT NAME DIR */
static int upstream_main(int argc, char **argv)
{
    if (argc < 5) return 2;
    up_srv s = {.loop = uv_default_loop(), .name = argv[3], .dir = argv[4], .heads = json_array()};
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", atoi(argv[2]), &a);
    uv_tcp_init(s.loop, &s.listener);
    s.listener.data = &s;
    if (uv_tcp_bind(&s.listener, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&s.listener, 512, up_on_conn) != 0) {
        fprintf(stderr, "upstream %s: cannot listen on %s\n", argv[3], argv[2]);
        return 1;
    }
    uv_run(s.loop, UV_RUN_DEFAULT);
    return 0;
}
