/* The test OTLP receiver (otlp_rx.h). */
#include "otlp_rx.h"

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY_MAX   (16u << 20)
#define SILENT_MAX 64

struct th_otlp_rx {
    th_otlp_mode mode;
    int lfd, port;
    int stop;
    pthread_t thread;
    pthread_mutex_t mu;
    json_t *spans;
    size_t requests, violations;
    char first[512];
    int silent[SILENT_MAX]; /* connections held open without an answer */
    size_t nsilent;
};

static int why(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static int hex_ok(const json_t *v, size_t len)
{
    const char *s = json_string_value(v);
    if (!s || strlen(s) != len) return 0;
    int nonzero = 0;
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

static int decimal_s(const char *s, unsigned long long *out)
{
    if (!s || !*s || strlen(s) > 20) return 0;
    unsigned long long n = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        n = n * 10 + (unsigned long long)(*p - '0');
    }
    *out = n;
    return 1;
}

static int decimal(const json_t *v, unsigned long long *out)
{
    return decimal_s(json_string_value(v), out);
}

static int check_attrs(const json_t *attrs, char *w, size_t cap, const char *where)
{
    if (!json_is_array(attrs)) return why(w, cap, "%s: attributes is not an array", where);
    size_t i;
    json_t *a;
    json_array_foreach(attrs, i, a)
    {
        const json_t *k = json_object_get(a, "key"), *v = json_object_get(a, "value");
        if (!json_is_string(k) || !json_string_length(k))
            return why(w, cap, "%s: attribute %zu has no key", where, i);
        if (!json_is_object(v) || json_object_size(v) != 1)
            return why(w, cap, "%s: attribute %s: value must hold one member", where,
                       json_string_value(k));
        const json_t *sv = json_object_get(v, "stringValue"), *iv = json_object_get(v, "intValue");
        unsigned long long n;
        const char *is = json_string_value(iv);
        if (!json_is_string(sv) && !(is && decimal_s(is[0] == '-' ? is + 1 : is, &n)))
            return why(w, cap, "%s: attribute %s: value is neither stringValue nor intValue", where,
                       json_string_value(k));
    }
    return 0;
}

static int check_span(const json_t *sp, char *w, size_t cap)
{
    if (!json_is_object(sp)) return why(w, cap, "a span is not an object");
    if (!hex_ok(json_object_get(sp, "traceId"), 32))
        return why(w, cap, "traceId is not 32 lowercase hex digits");
    if (!hex_ok(json_object_get(sp, "spanId"), 16))
        return why(w, cap, "spanId is not 16 lowercase hex digits");
    const json_t *p = json_object_get(sp, "parentSpanId");
    if (p && !(json_is_string(p) && (json_string_length(p) == 0 || hex_ok(p, 16))))
        return why(w, cap, "parentSpanId is not 16 lowercase hex digits");
    const char *name = json_string_value(json_object_get(sp, "name"));
    if (!name || !*name) return why(w, cap, "a span has no name");
    const json_t *kind = json_object_get(sp, "kind");
    if (!json_is_integer(kind) || json_integer_value(kind) < 1 || json_integer_value(kind) > 5)
        return why(w, cap, "%s: kind must be an integer 1..5", name);
    unsigned long long s, e;
    if (!decimal(json_object_get(sp, "startTimeUnixNano"), &s) ||
        !decimal(json_object_get(sp, "endTimeUnixNano"), &e))
        return why(w, cap, "%s: times must be decimal strings", name);
    if (e < s || s < 1000000000000000000ull) return why(w, cap, "%s: bad times", name);
    if (check_attrs(json_object_get(sp, "attributes"), w, cap, name) != 0) return -1;
    const json_t *links = json_object_get(sp, "links");
    if (links) {
        size_t i;
        json_t *l;
        if (!json_is_array(links)) return why(w, cap, "%s: links is not an array", name);
        json_array_foreach(links, i, l)
        {
            if (!hex_ok(json_object_get(l, "traceId"), 32) ||
                !hex_ok(json_object_get(l, "spanId"), 16))
                return why(w, cap, "%s: link %zu has bad ids", name, i);
        }
    }
    const json_t *st = json_object_get(sp, "status");
    if (st) {
        const json_t *code = json_object_get(st, "code");
        if (!json_is_object(st) ||
            (code && (!json_is_integer(code) || json_integer_value(code) < 0 ||
                      json_integer_value(code) > 2)))
            return why(w, cap, "%s: status code must be 0..2", name);
    }
    return 0;
}

int th_otlp_validate(const json_t *body, char *w, size_t cap)
{
    const json_t *rs = json_object_get(body, "resourceSpans");
    if (!json_is_array(rs)) return why(w, cap, "resourceSpans is not an array");
    size_t i;
    json_t *r;
    json_array_foreach(rs, i, r)
    {
        const json_t *res = json_object_get(r, "resource");
        if (!json_is_object(res)) return why(w, cap, "resourceSpans[%zu] has no resource", i);
        const json_t *attrs = json_object_get(res, "attributes");
        if (check_attrs(attrs, w, cap, "resource") != 0) return -1;
        int have_name = 0;
        size_t k;
        json_t *a;
        json_array_foreach(attrs, k, a)
        {
            if (strcmp(json_string_value(json_object_get(a, "key")), "service.name") == 0)
                have_name =
                    json_is_string(json_object_get(json_object_get(a, "value"), "stringValue"));
        }
        if (!have_name) return why(w, cap, "resource has no service.name");
        const json_t *ss = json_object_get(r, "scopeSpans");
        if (!json_is_array(ss)) return why(w, cap, "scopeSpans is not an array");
        size_t j;
        json_t *sc;
        json_array_foreach(ss, j, sc)
        {
            const json_t *scope = json_object_get(sc, "scope");
            if (scope && !json_is_object(scope)) return why(w, cap, "scope is not an object");
            const json_t *spans = json_object_get(sc, "spans");
            if (!json_is_array(spans)) return why(w, cap, "spans is not an array");
            size_t m;
            json_t *sp;
            json_array_foreach(spans, m, sp)
            {
                if (check_span(sp, w, cap) != 0) return -1;
            }
        }
    }
    return 0;
}

static void keep(th_otlp_rx *rx, const json_t *body)
{
    const json_t *rs = json_object_get(body, "resourceSpans");
    size_t i;
    json_t *r;
    json_array_foreach(rs, i, r)
    {
        const char *svc = "";
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(json_object_get(r, "resource"), "attributes"), k, a)
        {
            if (strcmp(json_string_value(json_object_get(a, "key")), "service.name") == 0)
                svc =
                    json_string_value(json_object_get(json_object_get(a, "value"), "stringValue"));
        }
        size_t j;
        json_t *sc;
        json_array_foreach(json_object_get(r, "scopeSpans"), j, sc)
        {
            size_t m;
            json_t *sp;
            json_array_foreach(json_object_get(sc, "spans"), m, sp)
            {
                json_t *copy = json_deep_copy(sp);
                json_object_set_new(copy, "service", json_string(svc));
                json_array_append_new(rx->spans, copy);
            }
        }
    }
}

/* Reads one request (headers and Content-Length body) from fd; returns the body or NULL. */
static char *read_request(int fd, size_t *blen)
{
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap + 1);
    size_t hend = 0, clen = 0;
    for (;;) {
        if (hend && len >= hend + clen) break;
        if (len == cap) {
            if (cap >= BODY_MAX) goto fail;
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) goto fail;
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r <= 0) goto fail;
        len += (size_t)r;
        buf[len] = '\0';
        if (!hend) {
            char *e = strstr(buf, "\r\n\r\n");
            if (!e) continue;
            hend = (size_t)(e - buf) + 4;
            if (strncmp(buf, "POST /v1/traces HTTP/1.1\r\n", 26) != 0) goto fail;
            for (char *h = strstr(buf, "\r\n") + 2; h < e; h = strstr(h, "\r\n") + 2) {
                if (strncasecmp(h, "content-length:", 15) == 0) clen = strtoul(h + 15, NULL, 10);
                if (strncasecmp(h, "content-type:", 13) == 0 && !strstr(h, "application/json"))
                    goto fail;
            }
            if (clen == 0 || clen > BODY_MAX) goto fail;
        }
    }
    memmove(buf, buf + hend, clen);
    buf[clen] = '\0';
    *blen = clen;
    return buf;
fail:
    free(buf);
    return NULL;
}

static void serve_one(th_otlp_rx *rx, int fd)
{
    size_t blen = 0;
    char *body = read_request(fd, &blen);
    pthread_mutex_lock(&rx->mu);
    rx->requests++;
    char w[512] = "";
    json_error_t jerr;
    json_t *doc = body ? json_loadb(body, blen, 0, &jerr) : NULL;
    if (!doc)
        snprintf(w, sizeof w, "request is not a POST /v1/traces with a JSON body");
    else if (th_otlp_validate(doc, w, sizeof w) == 0)
        keep(rx, doc);
    if (w[0] && rx->violations++ == 0) snprintf(rx->first, sizeof rx->first, "%s", w);
    pthread_mutex_unlock(&rx->mu);
    json_decref(doc);
    free(body);
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
    if (rx->mode == TH_OTLP_OK) {
        (void)!write(fd, ok, sizeof ok - 1);
        close(fd);
    } else if (rx->nsilent < SILENT_MAX) {
        rx->silent[rx->nsilent++] = fd; /* held open, never answered */
    } else {
        close(fd);
    }
}

static void *run(void *arg)
{
    th_otlp_rx *rx = arg;
    for (;;) {
        pthread_mutex_lock(&rx->mu);
        int stop = rx->stop;
        pthread_mutex_unlock(&rx->mu);
        if (stop) break;
        struct pollfd p = {.fd = rx->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int fd = accept(rx->lfd, NULL, NULL);
        if (fd >= 0) serve_one(rx, fd);
    }
    return NULL;
}

th_otlp_rx *th_otlp_rx_start(th_otlp_mode mode)
{
    th_otlp_rx *rx = calloc(1, sizeof *rx);
    if (!rx) abort();
    rx->mode = mode;
    rx->spans = json_array();
    pthread_mutex_init(&rx->mu, NULL);
    rx->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(rx->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (rx->lfd < 0 || bind(rx->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(rx->lfd, 64) != 0) {
        perror("otlp receiver");
        abort();
    }
    socklen_t al = sizeof a;
    getsockname(rx->lfd, (struct sockaddr *)&a, &al);
    rx->port = ntohs(a.sin_port);
    if (pthread_create(&rx->thread, NULL, run, rx) != 0) abort();
    return rx;
}

int th_otlp_rx_port(const th_otlp_rx *rx)
{
    return rx->port;
}

void th_otlp_rx_stop(th_otlp_rx *rx)
{
    if (!rx) return;
    pthread_mutex_lock(&rx->mu);
    rx->stop = 1;
    pthread_mutex_unlock(&rx->mu);
    pthread_join(rx->thread, NULL);
    close(rx->lfd);
    for (size_t i = 0; i < rx->nsilent; i++)
        close(rx->silent[i]);
    json_decref(rx->spans);
    pthread_mutex_destroy(&rx->mu);
    free(rx);
}

size_t th_otlp_rx_requests(th_otlp_rx *rx)
{
    pthread_mutex_lock(&rx->mu);
    size_t n = rx->requests;
    pthread_mutex_unlock(&rx->mu);
    return n;
}

size_t th_otlp_rx_span_count(th_otlp_rx *rx)
{
    pthread_mutex_lock(&rx->mu);
    size_t n = json_array_size(rx->spans);
    pthread_mutex_unlock(&rx->mu);
    return n;
}

json_t *th_otlp_rx_spans(th_otlp_rx *rx)
{
    pthread_mutex_lock(&rx->mu);
    json_t *c = json_deep_copy(rx->spans);
    pthread_mutex_unlock(&rx->mu);
    return c;
}

size_t th_otlp_rx_violations(th_otlp_rx *rx, char *first, size_t cap)
{
    pthread_mutex_lock(&rx->mu);
    size_t n = rx->violations;
    if (first && cap) snprintf(first, cap, "%s", rx->first);
    pthread_mutex_unlock(&rx->mu);
    return n;
}
