/*
 * A small blocking HTTP/1.1 client for the `shoal` command (cli.h): one
 * request per connection (Connection: close), the answer read to the end.
 * Enough for an operator's tool talking to the local gateway; the services
 * use the asynchronous client of libshoal.
 */
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESPONSE_MAX (16u << 20) /* an audit answer is a few KiB; a bound all the same */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "http://host:port" → host, port. */
static int parse_base(const char *base, char *host, size_t cap, char *port, size_t pcap)
{
    if (strncmp(base, "http://", 7) != 0) return SL_EINVAL;
    const char *h = base + 7, *colon = strchr(h, ':'), *slash = strchr(h, '/');
    const char *end = slash ? slash : h + strlen(h);
    if (colon && colon < end) {
        if ((size_t)(colon - h) >= cap || (size_t)(end - colon - 1) >= pcap || end == colon + 1)
            return SL_EINVAL;
        memcpy(host, h, (size_t)(colon - h));
        host[colon - h] = '\0';
        memcpy(port, colon + 1, (size_t)(end - colon - 1));
        port[end - colon - 1] = '\0';
    } else {
        if ((size_t)(end - h) >= cap) return SL_EINVAL;
        memcpy(host, h, (size_t)(end - h));
        host[end - h] = '\0';
        snprintf(port, pcap, "80");
    }
    return host[0] ? 0 : SL_EINVAL;
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
    int64_t left = deadline - mono_ms();
    if (left <= 0) return SL_ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = ev};
    int n = poll(&p, 1, (int)left);
    return n > 0 ? 0 : n == 0 ? SL_ETIMEDOUT : SL_EIO;
}

int cli_http(const char *base, const char *method, const char *path, const char *token,
             const char *body, int timeout_ms, char **resp)
{
    SL_ASSERT(base && method && path && resp);
    *resp = NULL;
    char host[256], port[16];
    if (parse_base(base, host, sizeof host, port, sizeof port) != 0) return SL_EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) return SL_EUNAVAIL;
    int64_t deadline = mono_ms() + timeout_ms;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? SL_EIO : 0;
    if (rc == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) rc = SL_EUNAVAIL;
    freeaddrinfo(ai);
    size_t blen = body ? strlen(body) : 0;
    char *req = NULL;
    int n = 0;
    if (rc == 0) {
        size_t cap = blen + 8192 + (token ? strlen(token) : 0);
        req = malloc(cap);
        if (!req)
            rc = SL_ENOMEM;
        else
            n = snprintf(req, cap,
                         "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nAccept: "
                         "application/json\r\n%s%s%s%sContent-Length: %zu\r\n\r\n%s",
                         method, path, host, token ? "Authorization: Bearer " : "",
                         token ? token : "", token ? "\r\n" : "",
                         body ? "Content-Type: application/json\r\n" : "", blen, body ? body : "");
    }
    for (int off = 0; rc == 0 && off < n;) {
        if ((rc = wait_fd(fd, POLLOUT, deadline)) != 0) break;
        ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0)
            rc = SL_EIO;
        else
            off += (int)w;
    }
    free(req);
    size_t len = 0, cap = 0;
    char *buf = NULL;
    while (rc == 0) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            if (cap > RESPONSE_MAX) {
                rc = SL_ELIMIT;
                break;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = SL_ENOMEM;
                break;
            }
            buf = nb;
        }
        if ((rc = wait_fd(fd, POLLIN, deadline)) != 0) break;
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = SL_EIO;
        if (r <= 0) break;
        len += (size_t)r;
    }
    if (fd >= 0) close(fd);
    int status = 0;
    char *sep = NULL;
    if (rc == 0 && buf) {
        buf[len] = '\0';
        sep = strstr(buf, "\r\n\r\n");
        if (!sep || sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 599)
            rc = SL_EPARSE;
    } else if (rc == 0) {
        rc = SL_EPARSE;
    }
    if (rc == 0) {
        /* Connection: close and a Content-Length (chunked answers are not used here). */
        size_t hl = (size_t)(sep + 4 - buf);
        memmove(buf, sep + 4, len - hl + 1);
        *resp = buf;
        return status;
    }
    free(buf);
    return rc;
}
