/*
 * A fake saga participant for shoal-order's suites and bench: a small HTTP
 * server on 127.0.0.1 (one thread accepting, one thread per connection) that
 * plays inventory (POST /reservations, /reservations/{id}/release) and
 * payment (POST /charges, /charges/{id}/refund). Per operation it succeeds,
 * refuses (409/422 with a `reason`), answers 503, never answers (timeout),
 * applies the effect and drops the connection without a reply, or applies
 * the effect and holds the reply until released. It verifies every
 * request's signed identity (role `service`, user `svc:order`, this method
 * and path) and stores one reply per idempotency key, like a real
 * participant must: a repeated key gets the stored reply and no second
 * effect, so `effects` counts what actually happened. Header-only; every
 * function locks the fake's mutex (thread-safe).
 */
#ifndef SHOAL_TESTS_ORDER_FAKE_PARTICIPANT_H
#define SHOAL_TESTS_ORDER_FAKE_PARTICIPANT_H

#include <shoal/clock.h>
#include <shoal/identity.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef enum fk_op { FK_RESERVE, FK_RELEASE, FK_CHARGE, FK_REFUND, FK_OPS } fk_op;

typedef enum fk_mode {
    FK_OK,      /* apply, answer 201 (200 for release/refund) */
    FK_REFUSE,  /* no effect, answer refuse_status with refuse_reason (stored per key) */
    FK_503,     /* no effect, answer 503 */
    FK_TIMEOUT, /* no effect, never answer (the connection stays open until the fake stops) */
    FK_DROP,    /* apply, close the connection without answering */
    FK_HOLD,    /* apply, answer once fk_release_holds() is called */
} fk_mode;

/* Idempotency keys remembered per fake; an includer may raise it (the bench does). */
#ifndef FK_KEYS_MAX
#define FK_KEYS_MAX 4096
#endif

typedef struct fk_effect {
    char key[220];
    char order_id[80];
    fk_op op;
    int status; /* stored reply status */
    int effects;
} fk_effect;

typedef struct fake {
    int port;
    int fd;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int conns; /* connection threads alive */
    int have_key;
    sl_identity_keyring keys; /* with the edges order→inventory and order→payment */
    fk_mode mode[FK_OPS];
    int refuse_status[FK_OPS];
    char refuse_reason[FK_OPS][40];
    int holds_released;
    int held; /* requests waiting in FK_HOLD */
    int requests[FK_OPS];
    int bad_identity;
    int missing_key;
    char last_tp[FK_OPS][64];  /* the last request's traceparent per operation ("" if none) */
    char last_ts[FK_OPS][600]; /* ... and its tracestate */
    size_t neff;
    fk_effect *eff; /* FK_KEYS_MAX */
} fake;

static inline void fk_set_key(fake *f, const sl_identity_keyring *k)
{
    pthread_mutex_lock(&f->mu);
    f->keys = *k;
    f->have_key = 1;
    pthread_mutex_unlock(&f->mu);
}

static inline void fk_mode_set(fake *f, fk_op op, fk_mode m, int status, const char *reason)
{
    pthread_mutex_lock(&f->mu);
    f->mode[op] = m;
    f->refuse_status[op] = status;
    snprintf(f->refuse_reason[op], sizeof f->refuse_reason[op], "%s", reason ? reason : "");
    if (m != FK_HOLD) f->holds_released = 0;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static inline void fk_release_holds(fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->holds_released = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Requests of `op` received so far. */
static inline int fk_requests(fake *f, fk_op op)
{
    pthread_mutex_lock(&f->mu);
    int n = f->requests[op];
    pthread_mutex_unlock(&f->mu);
    return n;
}

static inline int fk_held(fake *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->held;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Effects applied for `op` on `order_id` (over every key), and the number of distinct keys. */
static inline int fk_effects(fake *f, fk_op op, const char *order_id, int *keys)
{
    pthread_mutex_lock(&f->mu);
    int n = 0, k = 0;
    for (size_t i = 0; i < f->neff; i++) {
        if (f->eff[i].op != op || strcmp(f->eff[i].order_id, order_id) != 0) continue;
        n += f->eff[i].effects;
        k++;
    }
    pthread_mutex_unlock(&f->mu);
    if (keys) *keys = k;
    return n;
}

/* The key used for `op` on `order_id` (first one), copied into out; 0 when none. */
static inline int fk_key_of(fake *f, fk_op op, const char *order_id, char *out, size_t cap)
{
    pthread_mutex_lock(&f->mu);
    int found = 0;
    for (size_t i = 0; i < f->neff && !found; i++) {
        if (f->eff[i].op == op && strcmp(f->eff[i].order_id, order_id) == 0) {
            snprintf(out, cap, "%s", f->eff[i].key);
            found = 1;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

static inline int fk_bad_identity(fake *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->bad_identity + f->missing_key;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* The traceparent and tracestate of the last request for `op` ("" when it had none). */
static inline void fk_last_trace(fake *f, fk_op op, char tp[64], char ts[600])
{
    pthread_mutex_lock(&f->mu);
    memcpy(tp, f->last_tp[op], 64);
    memcpy(ts, f->last_ts[op], 600);
    pthread_mutex_unlock(&f->mu);
}

/* ---- the server ---------------------------------------------------------------------------- */

/* ASCII case-insensitive strstr (strcasestr is a GNU extension). */
static inline const char *fk_find(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && (hay[i] | 0x20) == (needle[i] | 0x20) &&
               ((hay[i] >= 'A' && hay[i] <= 'Z') || (hay[i] >= 'a' && hay[i] <= 'z') ||
                hay[i] == needle[i]))
            i++;
        if (i == n) return hay;
    }
    return NULL;
}

typedef struct fk_conn {
    fake *f;
    int fd;
} fk_conn;

static inline void fk_write(int fd, int status, const char *body)
{
    char head[256];
    size_t bl = strlen(body);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, status >= 400 ? "application/problem+json" : "application/json", bl);
    /* MSG_NOSIGNAL: a reply to a client that died (kill -9) must not kill the test. */
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) < 0 || send(fd, body, bl, MSG_NOSIGNAL) < 0) {
        /* the client went away; nothing to do */
    }
}

/* Reads one request (headers + Content-Length body) into buf. Returns its length or -1. */
static inline int fk_read(fake *f, int fd, char *buf, size_t cap, size_t *head_len)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, 200);
        pthread_mutex_lock(&f->mu);
        int stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop) return -1;
        if (pr <= 0) continue;
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0) return -1;
        len += (size_t)r;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) {
            if (len >= cap - 1) return -1;
            continue;
        }
        *head_len = (size_t)(end - buf) + 4;
        const char *cl = fk_find(buf, "\r\ncontent-length:");
        size_t want = cl ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
        if (*head_len + want <= len) return (int)len;
        if (*head_len + want >= cap) return -1;
    }
}

/* Finds header `name` in the head; copies its value. */
static inline int fk_header(const char *head, size_t head_len, const char *name, char *out,
                            size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *p = fk_find(head, pat);
    if (!p || (size_t)(p - head) > head_len) return 0;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

/* Checks the signed identity of a POST to `path` with `body`: the order service's, for this
 * participant (inventory for reservations, payment for charges), bound to what arrived. */
static inline int fk_identity_ok(fake *f, const char *head, size_t head_len, const char *path,
                                 const char *body, size_t body_len)
{
    char uid[80], role[40], proof[SL_IDENTITY_PROOF_MAX + 4];
    if (!fk_header(head, head_len, "x-user-id", uid, sizeof uid) ||
        !fk_header(head, head_len, "x-user-role", role, sizeof role) ||
        !fk_header(head, head_len, "x-shoal-identity", proof, sizeof proof))
        return 0;
    sl_http_header h[3] = {{SL_SLICE_LIT("x-user-id"), {uid, strlen(uid)}},
                           {SL_SLICE_LIT("x-user-role"), {role, strlen(role)}},
                           {SL_SLICE_LIT("x-shoal-identity"), {proof, strlen(proof)}}};
    char idem[220];
    int has_idem = fk_header(head, head_len, "idempotency-key", idem, sizeof idem);
    sl_identity_msg m = {.callee =
                             strncmp(path, "/reservations", 13) == 0 ? "inventory" : "payment",
                         .method = SL_HTTP_POST,
                         .target = {path, strlen(path)},
                         .idempotency_key = {idem, has_idem ? strlen(idem) : 0},
                         .body = body,
                         .body_len = body_len};
    sl_identity id;
    pthread_mutex_lock(&f->mu);
    int have = f->have_key;
    int rc = have ? sl_identity_verify(&f->keys, h, 3, &m, sl_clock_wall_ms(sl_clock_system()),
                                       SL_IDENTITY_WINDOW_MS, NULL, &id)
                  : SL_EUNAVAIL;
    pthread_mutex_unlock(&f->mu);
    if (rc != 0) return 0;
    return strcmp(id.role, "service") == 0 && strcmp(id.user_id, "svc:order") == 0;
}

/* Which operation and order a request is. */
static inline int fk_route(const char *path, const char *body, fk_op *op, char *oid, size_t cap)
{
    const char *p;
    if (strcmp(path, "/reservations") == 0 || strcmp(path, "/charges") == 0) {
        *op = path[1] == 'r' ? FK_RESERVE : FK_CHARGE;
        p = strstr(body, "\"order_id\":\"");
        if (!p) return -1;
        p += 12;
        size_t n = strcspn(p, "\"");
        snprintf(oid, cap, "%.*s", (int)n, p);
        return 0;
    }
    const char *pre = strncmp(path, "/reservations/", 14) == 0 ? "/reservations/"
                      : strncmp(path, "/charges/", 9) == 0     ? "/charges/"
                                                               : NULL;
    if (!pre) return -1;
    p = path + strlen(pre);
    size_t n = strcspn(p, "/");
    snprintf(oid, cap, "%.*s", (int)n, p);
    if (strcmp(p + n, "/release") == 0 && pre[1] == 'r')
        *op = FK_RELEASE;
    else if (strcmp(p + n, "/refund") == 0 && pre[1] == 'c')
        *op = FK_REFUND;
    else
        return -1;
    return 0;
}

static inline void fk_body_for(fk_op op, int status, const char *oid, const char *reason, char *out,
                               size_t cap)
{
    if (status >= 400)
        snprintf(out, cap, "{\"type\":\"about:blank\",\"status\":%d,\"reason\":\"%s\"}", status,
                 reason);
    else if (op == FK_RESERVE || op == FK_RELEASE)
        snprintf(out, cap, "{\"order_id\":\"%s\",\"status\":\"%s\"}", oid,
                 op == FK_RESERVE ? "reserved" : "released");
    else
        snprintf(out, cap, "{\"order_id\":\"%s\",\"status\":\"%s\"}", oid,
                 op == FK_CHARGE ? "charged" : "refunded");
}

/* Serves one request on `fd` under the fake's rules. */
static inline void fk_serve(fake *f, int fd)
{
    enum { CAP = 64 * 1024 };
    char *buf = malloc(CAP);
    size_t hl = 0;
    int len = buf ? fk_read(f, fd, buf, CAP, &hl) : -1;
    char path[256] = "", key[220] = "", oid[80] = "", reply[512];
    if (len < 0 || sscanf(buf, "POST %255s HTTP/1.1", path) != 1) {
        if (len >= 0) fk_write(fd, 405, "{\"status\":405}");
        free(buf);
        return;
    }
    fk_op op;
    if (fk_route(path, buf + hl, &op, oid, sizeof oid) != 0) {
        fk_write(fd, 404, "{\"status\":404}");
        free(buf);
        return;
    }
    int ident = fk_identity_ok(f, buf, hl, path, buf + hl, (size_t)len - hl);
    int has_key = fk_header(buf, hl, "idempotency-key", key, sizeof key);
    char tp[64] = "", ts[600] = "";
    (void)fk_header(buf, hl, "traceparent", tp, sizeof tp);
    (void)fk_header(buf, hl, "tracestate", ts, sizeof ts);
    free(buf);
    pthread_mutex_lock(&f->mu);
    f->requests[op]++;
    memcpy(f->last_tp[op], tp, sizeof tp);
    memcpy(f->last_ts[op], ts, sizeof ts);
    if (!ident) {
        f->bad_identity++;
        pthread_mutex_unlock(&f->mu);
        fk_write(fd, 401, "{\"status\":401,\"reason\":\"identity\"}");
        return;
    }
    if (!has_key) f->missing_key++;
    fk_effect *e = NULL;
    for (size_t i = 0; i < f->neff && has_key; i++)
        if (strcmp(f->eff[i].key, key) == 0) e = &f->eff[i];
    fk_mode m = f->mode[op];
    if (e) { /* a repeated key: the stored reply, no second effect */
        fk_body_for(op, e->status, oid, f->refuse_reason[op], reply, sizeof reply);
        int st = e->status;
        pthread_mutex_unlock(&f->mu);
        fk_write(fd, st, reply);
        return;
    }
    if (m == FK_503 || m == FK_TIMEOUT) {
        pthread_mutex_unlock(&f->mu);
        if (m == FK_503) {
            fk_write(fd, 503, "{\"status\":503}");
            return;
        }
        pthread_mutex_lock(&f->mu);
        while (!f->stop && f->mode[op] == FK_TIMEOUT)
            pthread_cond_wait(&f->cv, &f->mu);
        pthread_mutex_unlock(&f->mu);
        return; /* closed without an answer */
    }
    int status = m == FK_REFUSE                        ? f->refuse_status[op]
                 : op == FK_RESERVE || op == FK_CHARGE ? 201
                                                       : 200;
    if (f->neff < FK_KEYS_MAX) {
        e = &f->eff[f->neff++];
        memset(e, 0, sizeof *e);
        snprintf(e->key, sizeof e->key, "%s", has_key ? key : "(none)");
        snprintf(e->order_id, sizeof e->order_id, "%s", oid);
        e->op = op;
        e->status = status;
        e->effects = m == FK_REFUSE ? 0 : 1;
    }
    fk_body_for(op, status, oid, f->refuse_reason[op], reply, sizeof reply);
    if (m == FK_HOLD) {
        f->held++;
        while (!f->stop && !f->holds_released && f->mode[op] == FK_HOLD)
            pthread_cond_wait(&f->cv, &f->mu);
        f->held--;
    }
    pthread_mutex_unlock(&f->mu);
    if (m != FK_DROP) fk_write(fd, status, reply);
}

static inline void *fk_conn_main(void *arg)
{
    fk_conn *c = arg;
    fake *f = c->f;
    fk_serve(f, c->fd);
    close(c->fd);
    free(c);
    pthread_mutex_lock(&f->mu);
    f->conns--;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static inline void *fk_accept_main(void *arg)
{
    fake *f = arg;
    for (;;) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        int pr = poll(&p, 1, 100);
        pthread_mutex_lock(&f->mu);
        int stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop) break;
        if (pr <= 0) continue;
        int cfd = accept(f->fd, NULL, NULL);
        if (cfd < 0) continue;
        fk_conn *c = malloc(sizeof *c);
        c->f = f;
        c->fd = cfd;
        pthread_mutex_lock(&f->mu);
        f->conns++;
        pthread_mutex_unlock(&f->mu);
        pthread_t t;
        if (pthread_create(&t, NULL, fk_conn_main, c) != 0) {
            close(cfd);
            free(c);
            pthread_mutex_lock(&f->mu);
            f->conns--;
            pthread_mutex_unlock(&f->mu);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

/* Starts a fake on a free port (f->port). Returns 0 or -1. */
static inline int fk_start(fake *f)
{
    memset(f, 0, sizeof *f);
    f->eff = calloc(FK_KEYS_MAX, sizeof *f->eff);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    for (int i = 0; i < FK_OPS; i++)
        f->refuse_status[i] = 409;
    f->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(f->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (!f->eff || bind(f->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(f->fd, 512) != 0 ||
        getsockname(f->fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    f->port = ntohs(a.sin_port);
    return pthread_create(&f->thr, NULL, fk_accept_main, f) == 0 ? 0 : -1;
}

/* Stops the fake: connection threads answer or give up, then everything is freed. */
static inline void fk_stop(fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thr, NULL);
    pthread_mutex_lock(&f->mu);
    while (f->conns > 0)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    close(f->fd);
    free(f->eff);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
}

#endif
