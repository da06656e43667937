/*
 * A minimal SMTP sender (RFC 5321) over libuv: one connection per message,
 * the conversation greeting → EHLO → MAIL FROM → RCPT TO → DATA → message
 * → QUIT, each reply checked (multi-line replies "250-…" read to their last
 * line), the whole conversation bounded by a timeout. No TLS, no AUTH: it
 * is meant for a local relay (configured by notification.smtp.host/port/from).
 * The message is RFC 5322 text with CRLF lines and dot-stuffing (§4.5.2).
 * Loop thread only.
 */
#include "notification.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPLY_MAX 4096

typedef struct smtp_sender {
    uv_loop_t *loop;
    char host[256], from[256], rcpt_domain[256], helo[256];
    int port;
    int64_t timeout_ms;
} smtp_sender;

enum { ST_GREETING, ST_EHLO, ST_MAIL, ST_RCPT, ST_DATA, ST_BODY, ST_QUIT };

typedef struct smtp_conv {
    smtp_sender *s;
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_timer_t timer;
    int state;
    int status;   /* result reported to done: 0 once the message was accepted */
    int accepted; /* the server took the message (250 after the data) */
    int finishing;
    int open_handles; /* tcp, timer and the pending name lookup */
    char rbuf[REPLY_MAX];
    size_t rlen;
    char cmd[600];
    char *msg;
    size_t msg_len;
    char rcpt[NOTIF_USER_ID_MAX + 300];
    notif_sent_cb done;
    void *done_data;
} smtp_conv;

/* ---- the message ------------------------------------------------------------------------- */

/* Appends src, turning "\n" into CRLF, dropping bare CR and dot-stuffing lines. */
static size_t put_text(char *out, const char *src, int *line_start)
{
    size_t n = 0;
    for (const char *p = src; *p; p++) {
        if (*p == '\r') continue;
        if (*line_start && *p == '.') out[n++] = '.';
        *line_start = 0;
        if (*p == '\n') {
            out[n++] = '\r';
            out[n++] = '\n';
            *line_start = 1;
        } else {
            out[n++] = *p;
        }
    }
    return n;
}

char *notif_smtp_message(const notif_smtp_config *cfg, const notif_msg *m, size_t *len)
{
    char head[1400], date[64];
    time_t t = (time_t)(m->created_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(head, sizeof head,
             "From: %s\nTo: %s@%s\nSubject: %s\nDate: %s\nMessage-ID: <%s@shoal>\n"
             "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n",
             cfg->from, m->user_id, cfg->rcpt_domain, m->subject, date, m->notification_id);
    /* Worst case every byte doubles (dot or CRLF), plus the terminator. */
    size_t cap = 2 * (strlen(head) + strlen(m->body)) + 16;
    char *out = malloc(cap);
    if (!out) return NULL;
    int ls = 1;
    size_t n = put_text(out, head, &ls);
    n += put_text(out + n, m->body, &ls);
    if (!ls) {
        out[n++] = '\r';
        out[n++] = '\n';
    }
    memcpy(out + n, ".\r\n", 4);
    n += 3;
    if (len) *len = n;
    return out;
}

/* ---- the conversation -------------------------------------------------------------------- */

/* Drops one of the conversation's pending handles/requests; the last one reports and frees. */
static void release(smtp_conv *c)
{
    if (--c->open_handles > 0) return;
    c->done(c->done_data, c->status);
    free(c->msg);
    free(c);
}

static void conv_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void finish(smtp_conv *c, int status)
{
    if (c->finishing) return;
    c->finishing = 1;
    c->status = c->accepted ? 0 : status;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conv_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conv_handle_closed);
}

/* A write request owning a copy of its bytes: a reply can arrive (and the next command be
 * written) before the previous write's callback ran. */
typedef struct wreq {
    uv_write_t w;
    smtp_conv *c;
    char data[];
} wreq;

static void on_written(uv_write_t *w, int status)
{
    wreq *r = (wreq *)w;
    /* Cancelled writes complete before the handle's close callback, so r->c is alive. */
    if (status != 0) finish(r->c, SL_EIO);
    free(r);
}

static void send_bytes(smtp_conv *c, const char *p, size_t n)
{
    wreq *r = malloc(sizeof *r + n);
    if (!r) {
        finish(c, SL_ENOMEM);
        return;
    }
    r->c = c;
    memcpy(r->data, p, n);
    uv_buf_t b = uv_buf_init(r->data, (unsigned)n);
    if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(r);
        finish(c, SL_EIO);
    }
}

static void send_cmd(smtp_conv *c, int next_state, const char *fmt, const char *arg)
{
    int n = snprintf(c->cmd, sizeof c->cmd, fmt, arg);
    c->state = next_state;
    if (n < 0 || (size_t)n >= sizeof c->cmd) {
        finish(c, SL_EINVAL);
        return;
    }
    send_bytes(c, c->cmd, (size_t)n);
}

/* One complete reply with `code`: check it against the state, move on. */
static void on_reply(smtp_conv *c, int code)
{
    switch (c->state) {
    case ST_GREETING:
        if (code != 220) break;
        send_cmd(c, ST_EHLO, "EHLO %s\r\n", c->s->helo);
        return;
    case ST_EHLO:
        if (code != 250) break;
        send_cmd(c, ST_MAIL, "MAIL FROM:<%s>\r\n", c->s->from);
        return;
    case ST_MAIL:
        if (code != 250) break;
        send_cmd(c, ST_RCPT, "RCPT TO:<%s>\r\n", c->rcpt);
        return;
    case ST_RCPT:
        if (code != 250 && code != 251) break;
        send_cmd(c, ST_DATA, "%s", "DATA\r\n");
        return;
    case ST_DATA:
        if (code != 354) break;
        c->state = ST_BODY;
        send_bytes(c, c->msg, c->msg_len);
        return;
    case ST_BODY:
        if (code != 250) break;
        c->accepted = 1; /* delivered, whatever happens to QUIT */
        send_cmd(c, ST_QUIT, "%s", "QUIT\r\n");
        return;
    case ST_QUIT:
        finish(c, 0);
        return;
    }
    finish(c, SL_EIO); /* an unexpected reply: try again later */
}

/* Splits the buffer into lines; a line "NNN-" continues a reply, "NNN " ends it. */
static void parse_replies(smtp_conv *c)
{
    size_t start = 0;
    for (size_t i = 0; i < c->rlen && !c->finishing; i++) {
        if (c->rbuf[i] != '\n') continue;
        const char *line = c->rbuf + start;
        size_t len = i - start;
        start = i + 1;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
            line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-')) {
            finish(c, SL_EPARSE);
            return;
        }
        if (len > 3 && line[3] == '-') continue;
        on_reply(c, (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0'));
    }
    memmove(c->rbuf, c->rbuf + start, c->rlen - start);
    c->rlen -= start;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    smtp_conv *c = h->data;
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(sizeof c->rbuf - c->rlen));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    smtp_conv *c = st->data;
    if (n < 0) {
        finish(c, SL_EIO); /* EOF or error: accepted messages still count */
        return;
    }
    c->rlen += (size_t)n;
    parse_replies(c);
    if (!c->finishing && c->rlen == sizeof c->rbuf) finish(c, SL_ELIMIT); /* line too long */
}

static void on_connect(uv_connect_t *req, int status)
{
    smtp_conv *c = req->data;
    if (status != 0 || uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        finish(c, SL_EUNAVAIL);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    smtp_conv *c = g->data;
    c->conn.data = c;
    if (!c->finishing &&
        (status != 0 || !ai || uv_tcp_connect(&c->conn, &c->tcp, ai->ai_addr, on_connect) != 0))
        finish(c, SL_EUNAVAIL);
    uv_freeaddrinfo(ai);
    release(c);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, SL_ETIMEDOUT);
}

static int smtp_send(void *ctx, const notif_msg *m, notif_sent_cb done, void *done_data)
{
    smtp_sender *s = ctx;
    smtp_conv *c = calloc(1, sizeof *c);
    if (!c) return SL_ENOMEM;
    notif_smtp_config cfg = {.from = s->from, .rcpt_domain = s->rcpt_domain};
    c->msg = notif_smtp_message(&cfg, m, &c->msg_len);
    if (!c->msg) {
        free(c);
        return SL_ENOMEM;
    }
    c->s = s;
    c->done = done;
    c->done_data = done_data;
    snprintf(c->rcpt, sizeof c->rcpt, "%s@%s", m->user_id, s->rcpt_domain);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c->gai.data = c;
    c->open_handles = 3;
    uv_timer_start(&c->timer, on_timeout, (uint64_t)s->timeout_ms, 0);
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (uv_getaddrinfo(s->loop, &c->gai, on_resolved, s->host, port, &hints) != 0) {
        c->open_handles--;      /* no lookup pending */
        finish(c, SL_EUNAVAIL); /* done runs from the close callbacks, after we return */
    }
    return 0;
}

static void smtp_close(void *ctx)
{
    free(ctx);
}

int notif_smtp_sender_new(uv_loop_t *loop, const notif_smtp_config *cfg, notif_sender *out)
{
    if (!loop || !cfg || !cfg->host || !cfg->from || !cfg->rcpt_domain || cfg->port <= 0 ||
        cfg->port > 65535 || strlen(cfg->host) >= 256 || strlen(cfg->from) >= 256 ||
        strlen(cfg->rcpt_domain) >= 256 || strpbrk(cfg->from, "<>\r\n ") ||
        strpbrk(cfg->rcpt_domain, "<>\r\n @"))
        return SL_EINVAL;
    smtp_sender *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->loop = loop;
    s->port = cfg->port;
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    snprintf(s->host, sizeof s->host, "%s", cfg->host);
    snprintf(s->from, sizeof s->from, "%s", cfg->from);
    snprintf(s->rcpt_domain, sizeof s->rcpt_domain, "%s", cfg->rcpt_domain);
    snprintf(s->helo, sizeof s->helo, "%s",
             cfg->helo && !strpbrk(cfg->helo, "\r\n ") ? cfg->helo : "shoal.local");
    *out = (notif_sender){.send = smtp_send, .close = smtp_close, .ctx = s};
    return 0;
}
