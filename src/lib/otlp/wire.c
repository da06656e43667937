/*
 * The exporter's HTTP side (otlp.h, otlp_int.h): the endpoint and status-line
 * parsers (pure), and one blocking HTTP/1.1 POST over a plain TCP socket with
 * a single deadline for connect, send and answer. The connection is kept for
 * the next request when the collector allows it (HTTP/1.1, a Content-Length,
 * no "Connection: close"). It runs on the exporter thread only, never on a
 * loop thread.
 */
#include "otlp_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
}

int sl_otlp_endpoint_parse(const char *url, size_t len, sl_otlp_endpoint *out)
{
    SL_ASSERT(out);
    if (!url || len < 8 || strncmp(url, "http://", 7) != 0) return SL_EPARSE;
    size_t i = 7, h0, h1;
    if (url[i] == '[') { /* an IPv6 literal */
        h0 = ++i;
        while (i < len && url[i] != ']' &&
               ((url[i] >= '0' && url[i] <= '9') || (url[i] >= 'a' && url[i] <= 'f') ||
                (url[i] >= 'A' && url[i] <= 'F') || url[i] == ':' || url[i] == '.'))
            i++;
        if (i >= len || url[i] != ']') return SL_EPARSE;
        h1 = i++;
    } else {
        h0 = i;
        while (i < len && host_char(url[i]))
            i++;
        h1 = i;
    }
    if (h1 == h0 || h1 - h0 > SL_OTLP_HOST_MAX) return SL_EPARSE;
    int port = 4318;
    if (i < len && url[i] == ':') {
        i++;
        size_t p0 = i;
        long v = 0;
        while (i < len && url[i] >= '0' && url[i] <= '9' && i - p0 < 6)
            v = v * 10 + (url[i++] - '0');
        if (i == p0 || v < 1 || v > 65535) return SL_EPARSE;
        port = (int)v;
    }
    size_t p0 = i;
    if (i < len && url[i] != '/') return SL_EPARSE;
    for (; i < len; i++)
        if (url[i] <= ' ' || url[i] > '~' || url[i] == '?' || url[i] == '#') return SL_EPARSE;
    size_t plen = len - p0;
    if (plen > SL_OTLP_PATH_MAX) return SL_EPARSE;
    memcpy(out->host, url + h0, h1 - h0);
    out->host[h1 - h0] = '\0';
    out->port = port;
    if (plen <= 1) {
        snprintf(out->path, sizeof out->path, "/v1/traces");
    } else {
        memcpy(out->path, url + p0, plen);
        out->path[plen] = '\0';
    }
    return 0;
}

int sl_otlp_response_status(const char *buf, size_t len, int *status)
{
    SL_ASSERT(status);
    static const char pre[] = "HTTP/1.";
    size_t n = len < 7 ? len : 7;
    if (memcmp(buf, pre, n) != 0) return SL_EPARSE;
    if (len < 13) return SL_EAGAIN; /* "HTTP/1.x NNN " */
    if (buf[7] < '0' || buf[7] > '9' || buf[8] != ' ') return SL_EPARSE;
    int v = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') return SL_EPARSE;
        v = v * 10 + (buf[i] - '0');
    }
    if (v < 100 || v > 599 || (buf[12] != ' ' && buf[12] != '\r')) return SL_EPARSE;
    *status = v;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for `events` on fd until the deadline: 0, SL_ETIMEDOUT or SL_EIO. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return SL_ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r > 0) return (p.revents & (POLLERR | POLLNVAL)) && !(p.revents & events) ? SL_EIO : 0;
        if (r == 0) return SL_ETIMEDOUT;
        if (errno != EINTR) return SL_EIO;
    }
}

static int connect_to(const sl_otlp_endpoint *ep, int64_t deadline, int *out)
{
    char port[8];
    snprintf(port, sizeof port, "%d", ep->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(ep->host, port, &hints, &res) != 0 || !res) return SL_EUNAVAIL;
    int rc = SL_EUNAVAIL;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
            int w = wait_fd(fd, POLLOUT, deadline);
            int err = 0;
            socklen_t el = sizeof err;
            if (w == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0) {
                *out = fd;
                rc = 0;
                break;
            }
            rc = w == SL_ETIMEDOUT ? SL_ETIMEDOUT : SL_EUNAVAIL;
        }
        close(fd);
        if (rc == SL_ETIMEDOUT) break;
    }
    freeaddrinfo(res);
    return rc;
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc != 0) return rc;
            continue;
        }
        return SL_EIO;
    }
    return 0;
}

/* The value of header `name` (lowercase, with the colon) in the head's lines, or NULL. */
static const char *head_field(const char *buf, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(buf, '\n', len), *end = buf + len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) break;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

int sl__otlp_response_head(const char *buf, size_t len, sl__otlp_head *out)
{
    SL_ASSERT(buf && out);
    int rc = sl_otlp_response_status(buf, len, &out->status);
    if (rc != 0) return rc;
    const char *e = NULL;
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            e = buf + i + 1;
            break;
        }
    if (!e) return SL_EAGAIN;
    out->head_len = (size_t)(e - buf);
    out->body_len = 0;
    /* Kept open only for an HTTP/1.1 answer with a plain Content-Length and no "close". */
    out->keep = buf[7] == '1';
    size_t vl = 0;
    const char *v = head_field(buf, out->head_len, "connection:", &vl);
    if (v && vl == 5 && strncasecmp(v, "close", 5) == 0) out->keep = 0;
    if (head_field(buf, out->head_len, "transfer-encoding:", &vl)) out->keep = 0;
    v = head_field(buf, out->head_len, "content-length:", &vl);
    if (!v) {
        out->keep = 0;
        return 0;
    }
    if (vl == 0 || vl > 9) return SL_EPARSE;
    size_t n = 0;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9') return SL_EPARSE;
        n = n * 10 + (size_t)(v[i] - '0');
    }
    out->body_len = n;
    return 0;
}

/* Acknowledges what arrives at once: a collector that writes its answer's head and body
 * separately (with Nagle's algorithm on its side) would otherwise wait for our delayed ACK
 * before sending the body, and a kept connection would stall ~40 ms per request. The flag
 * does not stay set, so it is renewed before each read. */
static void quick_ack(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

/* One request on `fd` and its answer. *sent_any tells whether any answer byte arrived (a
 * reused connection the collector closed gives none: the caller may try a new one). */
static int exchange(int fd, const char *head, size_t hn, const char *body, size_t len,
                    int64_t deadline, int *status, int *keep, int *got_any)
{
    *got_any = 0;
    *keep = 0;
    int rc = send_all(fd, head, hn, deadline);
    if (rc == 0) rc = send_all(fd, body, len, deadline);
    char resp[1024];
    size_t got = 0;
    sl__otlp_head h;
    while (rc == 0) {
        quick_ack(fd);
        ssize_t r = recv(fd, resp + got, sizeof resp - got, 0);
        if (r > 0) {
            *got_any = 1;
            got += (size_t)r;
            rc = sl__otlp_response_head(resp, got, &h);
            if (rc != SL_EAGAIN) break;
            rc = got == sizeof resp ? SL_EPARSE : 0;
            continue;
        }
        if (r == 0) {
            rc = SL_EIO; /* closed before a complete head */
            break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            rc = wait_fd(fd, POLLIN, deadline);
            continue;
        }
        rc = SL_EIO;
    }
    if (rc != 0) return rc;
    *status = h.status;
    /* The answer's body is read off and dropped, so the connection can carry the next one;
     * a large one is not worth it: the connection closes instead. */
    size_t left = got - h.head_len >= h.body_len ? 0 : h.body_len - (got - h.head_len);
    if (!h.keep || got - h.head_len > h.body_len || left > sizeof resp * 64) return 0;
    while (left > 0) {
        quick_ack(fd);
        ssize_t r = recv(fd, resp, left < sizeof resp ? left : sizeof resp, 0);
        if (r > 0) {
            left -= (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
            wait_fd(fd, POLLIN, deadline) == 0)
            continue;
        return 0; /* the status is known; only the connection is lost */
    }
    *keep = 1;
    return 0;
}

void sl__otlp_close(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

int sl__otlp_post(const sl_otlp_endpoint *ep, int *fd, const char *body, size_t len,
                  uint32_t timeout_ms, int *status)
{
    int64_t deadline = now_ms() + timeout_ms;
    char head[640];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      ep->path, ep->host, ep->port, len);
    if (hn <= 0 || (size_t)hn >= sizeof head) return SL_ELIMIT;
    /* A kept connection first; when the collector closed it meanwhile (no answer byte), one
     * new connection. */
    for (int fresh = *fd < 0;; fresh = 1) {
        if (*fd < 0) {
            int rc = connect_to(ep, deadline, fd);
            if (rc != 0) return rc;
        }
        int keep = 0, got_any = 0;
        int rc = exchange(*fd, head, (size_t)hn, body, len, deadline, status, &keep, &got_any);
        if (rc != 0 || !keep) sl__otlp_close(fd);
        if (rc == 0 || fresh || got_any || rc == SL_ETIMEDOUT) return rc;
    }
}
