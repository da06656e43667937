/*
 * The SMTP sender against a tiny fake SMTP server on a real socket (a
 * thread speaking RFC 5321 line by line and recording the conversation):
 * the full EHLO / MAIL / RCPT / DATA / QUIT exchange with a multi-line EHLO
 * reply and a dot-stuffed body; a refused recipient reported as a failure;
 * an unreachable server reported as unavailable. Also the composition of
 * every notification kind and the message builder.
 */
#include "harness.h"
#include "notification.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

typedef struct fake_smtp {
    int lfd, port;
    int refuse_rcpt;
    char log[16384]; /* what the client sent */
    size_t log_len;
    pthread_t th;
} fake_smtp;

static void say(int fd, const char *s)
{
    assert_int_equal(th_send(fd, s, strlen(s)), 0);
}

/* Reads one CRLF line into buf (recorded in the log); returns its length or -1 at EOF. */
static int read_line(fake_smtp *f, int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        char c;
        if (read(fd, &c, 1) != 1) return -1;
        buf[n++] = c;
        if (f->log_len + 1 < sizeof f->log) f->log[f->log_len++] = c;
        if (n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n') break;
    }
    buf[n] = '\0';
    return (int)n;
}

static void *serve(void *arg)
{
    fake_smtp *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    say(fd, "220 fake.local ESMTP ready\r\n");
    char line[2048];
    int in_data = 0;
    while (read_line(f, fd, line, sizeof line) > 0) {
        if (in_data) {
            if (strcmp(line, ".\r\n") == 0) {
                in_data = 0;
                say(fd, "250 2.0.0 queued\r\n");
            }
            continue;
        }
        if (strncmp(line, "EHLO ", 5) == 0) {
            say(fd, "250-fake.local greets you\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n");
        } else if (strncmp(line, "MAIL FROM:", 10) == 0) {
            say(fd, "250 2.1.0 ok\r\n");
        } else if (strncmp(line, "RCPT TO:", 8) == 0) {
            say(fd, f->refuse_rcpt ? "550 5.1.1 no such user\r\n" : "250 2.1.5 ok\r\n");
        } else if (strcmp(line, "DATA\r\n") == 0) {
            in_data = 1;
            say(fd, "354 go ahead\r\n");
        } else if (strcmp(line, "QUIT\r\n") == 0) {
            say(fd, "221 bye\r\n");
            break;
        } else {
            say(fd, "500 what?\r\n");
        }
    }
    close(fd);
    return NULL;
}

static void fake_start(fake_smtp *f, int refuse)
{
    memset(f, 0, sizeof *f);
    f->refuse_rcpt = refuse;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 4), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->th, NULL, serve, f), 0);
}

static void fake_stop(fake_smtp *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
    f->log[f->log_len] = '\0';
}

typedef struct result {
    int calls, status;
} result;

static void on_done(void *data, int status)
{
    result *r = data;
    r->calls++;
    r->status = status;
}

static notif_msg sample(void)
{
    notif_msg m = {.created_ms = 1795869296000};
    strcpy(m.notification_id, "0190aaaa-0000-7000-8000-000000000001");
    strcpy(m.user_id, "u-42");
    strcpy(m.kind, "order_shipped");
    strcpy(m.subject, "Your order o-1 has shipped");
    strcpy(m.body, "Line one\n.starts with a dot\nlast");
    return m;
}

static result send_one(int port, int64_t timeout_ms)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    notif_smtp_config cfg = {.host = "127.0.0.1",
                             .port = port,
                             .from = "shop@shoal.test",
                             .rcpt_domain = "users.test",
                             .timeout_ms = timeout_ms};
    notif_sender s;
    assert_int_equal(notif_smtp_sender_new(&loop, &cfg, &s), 0);
    result r = {0};
    notif_msg m = sample();
    assert_int_equal(s.send(s.ctx, &m, on_done, &r), 0);
    assert_int_equal(r.calls, 0); /* never synchronously */
    uv_run(&loop, UV_RUN_DEFAULT);
    s.close(s.ctx);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.calls, 1);
    return r;
}

static void test_smtp_conversation(void **state)
{
    (void)state;
    fake_smtp f;
    fake_start(&f, 0);
    result r = send_one(f.port, 10000);
    fake_stop(&f);
    assert_int_equal(r.status, 0);
    const char *want[] = {
        "EHLO shoal.local\r\n",
        "MAIL FROM:<shop@shoal.test>\r\n",
        "RCPT TO:<u-42@users.test>\r\n",
        "DATA\r\n",
        "To: u-42@users.test\r\n",
        "Subject: Your order o-1 has shipped\r\n",
        "Message-ID: <0190aaaa-0000-7000-8000-000000000001@shoal>\r\n",
        "\r\nLine one\r\n..starts with a dot\r\nlast\r\n.\r\nQUIT\r\n",
    };
    const char *at = f.log;
    for (size_t i = 0; i < SL_ARRAY_LEN(want); i++) {
        const char *p = strstr(at, want[i]);
        if (!p) fail_msg("conversation lacks (in order) '%s':\n%s", want[i], f.log);
        at = p;
    }
}

static void test_smtp_refused_recipient(void **state)
{
    (void)state;
    fake_smtp f;
    fake_start(&f, 1);
    result r = send_one(f.port, 10000);
    fake_stop(&f);
    assert_int_equal(r.status, SL_EIO);
    assert_null(strstr(f.log, "DATA\r\n"));
}

static void test_smtp_unreachable(void **state)
{
    (void)state;
    int port = th_free_port(); /* nothing listens there */
    result r = send_one(port, 5000);
    assert_int_equal(r.status, SL_EUNAVAIL);
}

static void test_smtp_config_rejected(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    notif_sender s;
    notif_smtp_config bad = {
        .host = "127.0.0.1", .port = 25, .from = "a>\r\nRCPT TO:<x", .rcpt_domain = "d"};
    assert_int_equal(notif_smtp_sender_new(&loop, &bad, &s), SL_EINVAL);
    bad = (notif_smtp_config){.host = "127.0.0.1", .port = 0, .from = "a", .rcpt_domain = "d"};
    assert_int_equal(notif_smtp_sender_new(&loop, &bad, &s), SL_EINVAL);
    uv_loop_close(&loop);
}

static void test_compose_every_kind(void **state)
{
    (void)state;
    struct {
        const char *type, *data, *kind, *needle;
    } cases[] = {
        {"shop.order.created.v1",
         "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"items\":[],\"total_amount\":"
         "{\"amount\":1200,\"currency\":\"JPY\"}}",
         "order_received", "1200 JPY"},
        {"shop.order.confirmed.v1", "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"total_amount\":5}",
         "order_confirmed", "confirmed"},
        {"shop.order.cancelled.v1",
         "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"reason\":\"insufficient_funds\"}",
         "order_cancelled", "reason: insufficient_funds"},
        {"shop.order.shipped.v1", "{\"order_id\":\"o1\",\"user_id\":\"u1\"}", "order_shipped",
         "on its way"},
        {"shop.payment.refunded.v1",
         "{\"order_id\":\"o1\",\"user_id\":\"u1\",\"amount\":{\"amount\":300,\"currency\":\"JPY\"}"
         "}",
         "order_refunded", "300 JPY was refunded"},
    };
    char reason[128];
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        json_error_t e;
        json_t *d = json_loads(cases[i].data, 0, &e);
        notif_msg m;
        assert_int_equal(notif_compose(cases[i].type, d, &m, reason, sizeof reason), 0);
        assert_string_equal(m.kind, cases[i].kind);
        assert_string_equal(m.user_id, "u1");
        assert_non_null(strstr(m.body, cases[i].needle));
        assert_non_null(strstr(m.subject, "o1"));
        json_decref(d);
    }
    const char *bad[][2] = {
        {"shop.order.shipped.v1", "{\"order_id\":\"o1\"}"},
        {"shop.order.shipped.v1", "{\"order_id\":\"o1\",\"user_id\":\"../etc\"}"},
        {"shop.order.shipped.v1", "{\"order_id\":\"o1\\n\",\"user_id\":\"u1\"}"},
        {"shop.order.shipped.v1", "{\"order_id\":5,\"user_id\":\"u1\"}"},
        {"shop.order.lost.v1", "{\"order_id\":\"o1\",\"user_id\":\"u1\"}"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        json_error_t e;
        json_t *d = json_loads(bad[i][1], 0, &e);
        notif_msg m;
        assert_int_equal(notif_compose(bad[i][0], d, &m, reason, sizeof reason), SL_EPARSE);
        assert_true(reason[0] != '\0');
        json_decref(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smtp_conversation),  cmocka_unit_test(test_smtp_refused_recipient),
        cmocka_unit_test(test_smtp_unreachable),   cmocka_unit_test(test_smtp_config_rejected),
        cmocka_unit_test(test_compose_every_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
