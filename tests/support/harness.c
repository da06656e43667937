/* Implementation of the test harness (harness.h). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Ports this process handed out. The kernel's pick for port 0 may repeat a port it has just
 * released (10 picks in a row repeated one in 14 of 2,000 tries), and two services given one
 * port cannot both start: the runtime refuses a port that something already listens on. */
static int given[4096];
static size_t n_given;

int th_free_port(void)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
            perror("th_free_port");
            abort();
        }
        close(fd);
        int port = ntohs(a.sin_port), seen = 0;
        for (size_t i = 0; i < n_given && !seen; i++)
            seen = given[i] == port;
        if (seen) continue;
        if (n_given < sizeof given / sizeof given[0]) given[n_given++] = port;
        return port;
    }
    fprintf(stderr, "th_free_port: no port not handed out before\n");
    abort();
}

const char *th_bin(const char *name)
{
    static char path[4096];
    const char *dir = getenv("SHOAL_BIN_DIR");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "build/bin", name);
    return path;
}

pid_t th_spawn(char *const argv[], char *const env[], const char *log_path)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (env && env[m])
        m++;
    char **envp = calloc(n + m + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        envp[i] = environ[i];
    for (size_t i = 0; i < m; i++)
        envp[n + i] = env[i];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    /* With a log, stdout goes there too: a child a failed test left running then holds no pipe
     * of ctest's open (ctest would wait for it until the test's timeout). */
    if (log_path) {
        posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&fa, 2, 1);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s", argv[0][0] == '/' ? argv[0] : th_bin(argv[0]));
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    if (rc != 0) {
        fprintf(stderr, "spawn %s: %s\n", path, strerror(rc));
        abort();
    }
    return pid;
}

int th_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int th_wait_port(int port, int timeout_ms)
{
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        int fd = th_connect(port);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        usleep(20000);
    }
    return -1;
}

int th_alive(pid_t pid)
{
    int st;
    return waitpid(pid, &st, WNOHANG) == 0;
}

int th_stop(pid_t pid, int sig, int timeout_ms)
{
    kill(pid, sig);
    long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int th_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void th_reader_init(th_reader *rb, int fd)
{
    rb->fd = fd;
    rb->len = 0;
    rb->eof = 0;
}

typedef struct pstate {
    th_response *res;
    int in_value;
    size_t cap;
} pstate;

static int r_status(http_parser *p, const char *at, size_t len)
{
    (void)at;
    (void)len;
    ((pstate *)p->data)->res->status = (int)p->status_code;
    return 0;
}

static int r_field(http_parser *p, const char *at, size_t len)
{
    pstate *s = p->data;
    th_response *r = s->res;
    if (s->in_value || r->nheaders == 0) {
        if (r->nheaders == TH_MAX_HEADERS) return 0;
        r->nheaders++;
        r->headers[r->nheaders - 1][0][0] = r->headers[r->nheaders - 1][1][0] = 0;
    }
    s->in_value = 0;
    strncat(r->headers[r->nheaders - 1][0], at, len < 255 ? len : 255);
    return 0;
}

static int r_value(http_parser *p, const char *at, size_t len)
{
    pstate *s = p->data;
    th_response *r = s->res;
    s->in_value = 1;
    if (r->nheaders > 0) {
        char *v = r->headers[r->nheaders - 1][1];
        size_t have = strlen(v);
        if (have + len < 255) strncat(v, at, len);
    }
    return 0;
}

static int r_body(http_parser *p, const char *at, size_t len)
{
    pstate *s = p->data;
    th_response *r = s->res;
    if (r->body_len + len + 1 > s->cap) {
        s->cap = (r->body_len + len + 1) * 2;
        r->body = realloc(r->body, s->cap);
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = 0;
    return 0;
}

static int r_complete(http_parser *p)
{
    pstate *s = p->data;
    s->res->complete = 1;
    s->res->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

static int r_headers_complete(http_parser *p)
{
    (void)p;
    return 0;
}

static int read_response(th_reader *rb, th_response *res, int timeout_ms)
{
    memset(res, 0, sizeof *res);
    res->body = calloc(1, 1);
    pstate st = {.res = res, .cap = 1};
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &st;
    http_parser_settings set = {0};
    set.on_status = r_status;
    set.on_header_field = r_field;
    set.on_header_value = r_value;
    set.on_body = r_body;
    set.on_message_complete = r_complete;
    set.on_headers_complete = r_headers_complete;
    long end = now_ms() + timeout_ms;
    size_t off = 0;
    for (;;) {
        if (off < rb->len) {
            size_t n = http_parser_execute(&p, &set, rb->buf + off, rb->len - off);
            off += n;
            if (res->complete) {
                memmove(rb->buf, rb->buf + off, rb->len - off);
                rb->len -= off;
                return 0;
            }
            if (HTTP_PARSER_ERRNO(&p) != HPE_OK) return -1;
        }
        if (rb->eof) {
            /* A response delimited by close. */
            http_parser_execute(&p, &set, NULL, 0);
            res->closed = 1;
            return res->complete ? 0 : -1;
        }
        long left = end - now_ms();
        if (left <= 0) return -1;
        struct pollfd pfd = {.fd = rb->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0) continue;
        if (rb->len == sizeof rb->buf) return -1;
        ssize_t n = recv(rb->fd, rb->buf + rb->len, sizeof rb->buf - rb->len, 0);
        if (n <= 0) {
            rb->eof = 1;
            continue;
        }
        rb->len += (size_t)n;
    }
}

void th_response_free(th_response *res)
{
    free(res->body);
    res->body = NULL;
}

const char *th_header(const th_response *res, const char *name)
{
    for (int i = 0; i < res->nheaders; i++)
        if (strcasecmp(res->headers[i][0], name) == 0) return res->headers[i][1];
    return NULL;
}

int th_wait_closed(int fd, int timeout_ms)
{
    long end = now_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        long left = end - now_ms();
        if (left <= 0) return 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return 1;
    }
}

int th_roundtrip(int port, const char *raw, size_t len, th_response *res, int timeout_ms)
{
    int fd = th_connect(port);
    if (fd < 0) return -1;
    static th_reader rb;
    th_reader_init(&rb, fd);
    int rc = -1;
    if (th_send(fd, raw, len) == 0 && th_read_response(&rb, res, timeout_ms) == 0) rc = res->status;
    close(fd);
    return rc;
}

int th_read_response(th_reader *rb, th_response *res, int timeout_ms)
{
    int rc = read_response(rb, res, timeout_ms);
    if (rc != 0) th_response_free(res);
    return rc;
}

int th_certs(const char *logdir, const char *fmt, ...)
{
    char args[1024], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof args) return -1;
    n = snprintf(cmd, sizeof cmd, "%s certs %s >>%s/cli.log 2>&1", th_bin("shoal"), args, logdir);
    if (n < 0 || (size_t)n >= sizeof cmd) return -1;
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "%s: exit %d\n", cmd, rc);
    return rc;
}

int th_metric(int port, const char *series, double *value)
{
    th_response r;
    const char raw[] = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    int status = th_roundtrip(port, raw, sizeof raw - 1, &r, 10000);
    *value = 0;
    if (status < 0) return status;
    size_t len = strlen(series);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, len) == 0 && p[len] == ' ') *value = strtod(p + len + 1, NULL);
    th_response_free(&r);
    return status;
}
