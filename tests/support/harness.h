/*
 * Test support for suites that drive real processes over real sockets:
 * free ports, spawning and stopping binaries from build/bin, raw TCP
 * connections, and an HTTP response reader built on http-parser (so framing
 * is checked the same strict way the server checks requests).
 */
#ifndef SHOAL_TEST_HARNESS_H
#define SHOAL_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

/* Returns a TCP port on 127.0.0.1 that was free a moment ago and that this process has not
 * been given before. */
int th_free_port(void);

/* Path of a built binary: $SHOAL_BIN_DIR/<name> (static buffer). */
const char *th_bin(const char *name);

/*
 * Starts `argv` (argv[0] resolved with th_bin) with extra environment
 * entries `env` (NULL-terminated "K=V" list, may be NULL). Its stderr and
 * stdout go to `log_path` when given. Returns the pid; aborts the test on
 * failure.
 */
pid_t th_spawn(char *const argv[], char *const env[], const char *log_path);

/* Waits until 127.0.0.1:port accepts a connection; returns 0, or -1 after timeout_ms. */
int th_wait_port(int port, int timeout_ms);

/* Sends `sig` to pid and waits for it up to timeout_ms; returns its wait status or -1. */
int th_stop(pid_t pid, int sig, int timeout_ms);

/* Returns 1 when pid is still running. */
int th_alive(pid_t pid);

/* Connects to 127.0.0.1:port; returns the fd or -1. */
int th_connect(int port);

/* Writes all of buf; returns 0 or -1. */
int th_send(int fd, const void *buf, size_t len);

#define TH_MAX_HEADERS 64

typedef struct th_response {
    int status;
    int complete; /* a whole response was parsed */
    int closed;   /* the server closed the connection (EOF) */
    int keep_alive;
    char headers[TH_MAX_HEADERS][2][256];
    int nheaders;
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
} th_response;

/*
 * Reads one response from fd within timeout_ms. Bytes after the response
 * stay buffered in `rb` for the next call (pipelining). Returns 0 when a
 * complete response was read, -1 on timeout, parse error or EOF first.
 */
typedef struct th_reader {
    int fd;
    char buf[256 * 1024];
    size_t len;
    int eof;
} th_reader;

void th_reader_init(th_reader *rb, int fd);
int th_read_response(th_reader *rb, th_response *res, int timeout_ms);
void th_response_free(th_response *res);

/* Value of a response header (case-insensitive), or NULL. */
const char *th_header(const th_response *res, const char *name);

/* Waits for EOF on fd (the server closed); returns 1 if closed within timeout_ms. */
int th_wait_closed(int fd, int timeout_ms);

/* One request on a new connection: sends raw, reads one response. Returns status or -1. */
int th_roundtrip(int port, const char *raw, size_t len, th_response *res, int timeout_ms);

/* Runs `shoal certs ARGS` (printf-style), its output appended to <logdir>/cli.log. Returns its
 * exit status (0: success); on failure the command is printed to stderr. */
int th_certs(const char *logdir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* GET /metrics on port (plain HTTP) and the value of the sample line `series` (name with its
 * labels exactly as written); 0 when no line matches. Returns the HTTP status (200) or -1. */
int th_metric(int port, const char *series, double *value);

#endif
