/*
 * NATS in mesh mode, on a real nats-server with TLS: the configuration
 * `shoal up` writes from the real service definitions (bin/shoal-defs.json),
 * certificates made by `shoal certs`, and libshoal's bus connecting with a
 * service's certificate as its user.
 *
 * - a service's user publishes its own context's events over TLS and another
 *   service's user consumes them through its durable consumer;
 * - publishing outside the permissions fails sl_bus_open at start (the probe
 *   names the subject and the user), and a publish made anyway fails rather
 *   than vanishing;
 * - a client without a certificate, with one of another CA, or not trusting
 *   the mesh CA cannot connect;
 * - real services (shoal-user and shoal-payment) start with the generated
 *   permissions and pass shop.user.registered.v1 from one to the other;
 * - a bus.password_file that others may read stops a service at start;
 * - the dead-letter admin of a consumer lists the dead letters of a topic it
 *   consumes (its scan consumer is granted), twice in a row; its redrive,
 *   which would publish another context's event, is refused.
 */
#include "harness.h"
#include "nats_mesh.h"

#include <shoal/bus.h>
#include <shoal/common.h>

#include <certs.h>
#include <nats/nats.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-nats-mesh-XXXXXX";
static char mesh[600], other[600], conf[700], url[64];
static int nats_port;
static pid_t nats, user_pid, pay_pid; /* stopped by the teardown if a test failed first */

static void path_of(char *out, size_t cap, const char *base, const char *name, const char *ext)
{
    snprintf(out, cap, "%s/certs/%s.%s", base, name, ext);
}

/* Runs the loop until done(arg) or `ms` pass. Returns done(arg). */
static int run_until(uv_loop_t *loop, int (*done)(void *), void *arg, int ms)
{
    for (int waited = 0; waited < ms; waited += 10) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (done(arg)) return 1;
        usleep(10000);
    }
    return done(arg);
}

static int bus_ready(void *b)
{
    return sl_bus_ready(b);
}

typedef struct client {
    char ca[700], cert[700], key[700];
    sl_bus *bus;
} client;

/* Opens a bus as service `name` (its mesh certificate). Returns sl_bus_open's code. */
static int open_as(uv_loop_t *loop, const char *name, const char *const *contexts, size_t nctx,
                   const char *const *publish, client *c, char *err, size_t errlen)
{
    snprintf(c->ca, sizeof c->ca, "%s/bundle.pem", mesh);
    path_of(c->cert, sizeof c->cert, mesh, name, "pem");
    path_of(c->key, sizeof c->key, mesh, name, "key");
    sl_bus_options o = {.url = url,
                        .name = name,
                        .contexts = contexts,
                        .n_contexts = nctx,
                        .partitions = 2,
                        .publish_timeout_ms = 1500,
                        .lag_poll_ms = -1,
                        .tls_ca_file = c->ca,
                        .tls_server_name = "nats",
                        .tls_cert_file = c->cert,
                        .tls_key_file = c->key,
                        .publish_contexts = publish};
    return sl_bus_open(loop, &o, &c->bus, err, errlen);
}

static void closed(sl_bus *b, void *d)
{
    (void)b;
    *(int *)d = 1;
}

static int flag_set(void *f)
{
    return *(int *)f != 0;
}

static void close_bus(uv_loop_t *loop, sl_bus *b)
{
    int done = 0;
    sl_bus_close(b, closed, &done);
    assert_true(run_until(loop, flag_set, &done, 15000));
}

typedef struct got {
    int n;
    char id[64];
} got;

static void on_msg(void *data, const sl_bus_msg *m, sl_bus_reply *r)
{
    got *g = data;
    (void)r;
    g->n++;
    snprintf(g->id, sizeof g->id, "%s", m->id);
}

static int got_one(void *g)
{
    return ((got *)g)->n > 0;
}

typedef struct pubres {
    int done, status;
} pubres;

static void on_pub(void *data, int status)
{
    pubres *p = data;
    p->done = 1;
    p->status = status;
}

static int pub_done(void *p)
{
    return ((pubres *)p)->done;
}

static int publish_one(uv_loop_t *loop, sl_bus *b, const char *topic, const char *id)
{
    char env[512];
    int n = snprintf(env, sizeof env,
                     "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/test\",\"type\":\"%s\","
                     "\"subject\":\"o-1\",\"datacontenttype\":\"application/json\",\"data\":{}}",
                     id, topic);
    sl_bus_out m = {
        .topic = topic, .id = id, .subject = "o-1", .envelope = env, .envelope_len = (size_t)n};
    pubres r = {0};
    int rc = sl_bus_publish(b, &m, 1, on_pub, &r);
    if (rc != 0) return rc;
    assert_true(run_until(loop, pub_done, &r, 20000));
    return r.status;
}

/* Order's and notification's buses, each as its own NATS user, both ready, and notification
 * subscribed to order.confirmed with `cb` (the two tests below start the same way). */
static void open_pair(uv_loop_t *loop, client *ord, client *ntf, sl_bus_handler_cb cb, got *g,
                      sl_bus_sub **sub)
{
    char err[512] = {0};
    const char *const order_ctx[] = {"order", "product"};
    const char *const order_pub[] = {"order", NULL};
    assert_int_equal(open_as(loop, "order", order_ctx, 2, order_pub, ord, err, sizeof err), 0);
    const char *const ntf_ctx[] = {"order", "payment"};
    assert_int_equal(open_as(loop, "notification", ntf_ctx, 2, NULL, ntf, err, sizeof err), 0);
    assert_true(run_until(loop, bus_ready, ord->bus, 15000));
    assert_true(run_until(loop, bus_ready, ntf->bus, 15000));
    assert_int_equal(sl_bus_subscribe(ntf->bus, "shop.order.confirmed.v1",
                                      "notification-shop-order-confirmed-v1", NULL, cb, g, sub),
                     0);
}

/* Order's user publishes its event; notification's user consumes it with its own durable. */
static void test_own_subjects(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    client ord, ntf;
    got g = {0};
    sl_bus_sub *sub;
    open_pair(&loop, &ord, &ntf, on_msg, &g, &sub);
    assert_int_equal(publish_one(&loop, ord.bus, "shop.order.confirmed.v1", "evt-mesh-1"), 0);
    assert_true(run_until(&loop, got_one, &g, 20000));
    assert_string_equal(g.id, "evt-mesh-1");
    sl_bus_unsubscribe(sub);
    close_bus(&loop, ntf.bus);
    close_bus(&loop, ord.bus);
    uv_loop_close(&loop);
}

static void on_reject(void *data, const sl_bus_msg *m, sl_bus_reply *r)
{
    got *g = data;
    g->n++;
    snprintf(g->id, sizeof g->id, "%s", m->id);
    r->verdict = SL_BUS_REJECT;
    snprintf(r->reason, sizeof r->reason, "poison for the test");
}

typedef struct listed {
    int done, status;
    size_t n, found;
} listed;

static void on_list(void *data, int status, const sl_bus_dead *items, size_t n)
{
    listed *l = data;
    l->done = 1;
    l->status = status;
    l->n = n;
    l->found = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i].id, "evt-dlq-1") == 0 &&
            strcmp(items[i].reason, "poison for the test") == 0)
            l->found++;
}

static int list_done(void *l)
{
    return ((listed *)l)->done;
}

static listed list_dlq(uv_loop_t *loop, sl_bus *b, const char *topic)
{
    listed l = {0};
    assert_int_equal(sl_bus_dlq_list(b, topic, 100, on_list, &l), 0);
    assert_true(run_until(loop, list_done, &l, 20000));
    return l;
}

static void on_redrive(void *data, int status, size_t count)
{
    pubres *p = data;
    (void)count;
    p->done = 1;
    p->status = status;
}

/* Notification's dead-letter admin reads the dead letters of a topic it consumes with its
 * own user: the scan's consumer (fixed name, filtered on the .dlq subject) is granted. */
static void test_dlq_admin(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    client ord, ntf;
    got g = {0};
    sl_bus_sub *sub;
    open_pair(&loop, &ord, &ntf, on_reject, &g, &sub);
    assert_int_equal(publish_one(&loop, ord.bus, "shop.order.confirmed.v1", "evt-dlq-1"), 0);
    assert_true(run_until(&loop, got_one, &g, 20000));
    listed l = {0};
    for (int i = 0; i < 30 && !l.found && l.status == 0; i++) /* written after the reply */
        l = list_dlq(&loop, ntf.bus, "shop.order.confirmed.v1");
    if (l.status != 0) fail_msg("dead-letter list refused: %s", sl_strerror(l.status));
    assert_int_equal(l.found, 1);
    /* Again: the scan's consumer was deleted and starts from the first dead letter. */
    listed again = list_dlq(&loop, ntf.bus, "shop.order.confirmed.v1");
    assert_int_equal(again.status, 0);
    assert_int_equal(again.n, l.n);
    assert_int_equal(again.found, 1);
    /* Redrive republishes order's event: not granted to notification, so it fails and the
     * dead letter stays. */
    pubres rd = {0};
    assert_int_equal(sl_bus_dlq_redrive(ntf.bus, "shop.order.confirmed.v1", 0, on_redrive, &rd), 0);
    assert_true(run_until(&loop, pub_done, &rd, 20000));
    assert_int_not_equal(rd.status, 0);
    listed after = list_dlq(&loop, ntf.bus, "shop.order.confirmed.v1");
    assert_int_equal(after.found, 1);
    sl_bus_unsubscribe(sub);
    close_bus(&loop, ntf.bus);
    close_bus(&loop, ord.bus);
    uv_loop_close(&loop);
}

/* Notification may not publish order's events: refused at open, and failing if tried. */
static void test_outside_permissions(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[512] = {0};
    client c;
    const char *const ctx[] = {"order"};
    const char *const pub[] = {"order", NULL};
    assert_int_equal(open_as(&loop, "notification", ctx, 1, pub, &c, err, sizeof err), SL_ECONFIG);
    print_message("refused: %s\n", err);
    assert_non_null(strstr(err, "shop.order.>"));
    assert_non_null(strstr(err, "notification.pem"));
    assert_non_null(strstr(err, "Permissions Violation"));

    /* Without the check, a publish is not lost silently: it fails. */
    assert_int_equal(open_as(&loop, "notification", ctx, 1, NULL, &c, err, sizeof err), 0);
    assert_true(run_until(&loop, bus_ready, c.bus, 15000));
    int st = publish_one(&loop, c.bus, "shop.order.confirmed.v1", "evt-forged-1");
    assert_int_not_equal(st, 0);
    close_bus(&loop, c.bus);
    uv_loop_close(&loop);
}

/* A raw nats.c connection attempt: returns its status. */
static natsStatus try_connect(const char *ca, const char *cert, const char *key)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    assert_int_equal(natsOptions_Create(&o), NATS_OK);
    natsOptions_SetURL(o, url);
    natsOptions_SetMaxReconnect(o, 0);
    natsOptions_SetTimeout(o, 3000);
    natsOptions_SetSecure(o, true);
    natsOptions_SetExpectedHostname(o, "nats");
    if (ca) assert_int_equal(natsOptions_LoadCATrustedCertificates(o, ca), NATS_OK);
    if (cert) assert_int_equal(natsOptions_LoadCertificatesChain(o, cert, key), NATS_OK);
    natsStatus s = natsConnection_Connect(&nc, o);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return s;
}

static void test_refused_clients(void **state)
{
    (void)state;
    char ca[700], cert[700], key[700], ocert[700], okey[700];
    snprintf(ca, sizeof ca, "%s/bundle.pem", mesh);
    path_of(cert, sizeof cert, mesh, "order", "pem");
    path_of(key, sizeof key, mesh, "order", "key");
    path_of(ocert, sizeof ocert, other, "order", "pem");
    path_of(okey, sizeof okey, other, "order", "key");
    /* The control: the mesh CA and order's certificate connect. */
    assert_int_equal(try_connect(ca, cert, key), NATS_OK);
    /* No client certificate; one of another CA; not trusting the mesh CA. */
    assert_int_not_equal(try_connect(ca, NULL, NULL), NATS_OK);
    assert_int_not_equal(try_connect(ca, ocert, okey), NATS_OK);
    assert_int_not_equal(try_connect(NULL, cert, key), NATS_OK);

    /* The bus says so at open, rather than retrying for ever: another CA's certificate. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    sl_bus *bus = NULL;
    char err[512] = {0};
    sl_bus_options o = {.url = url,
                        .name = "order",
                        .tls_ca_file = ca,
                        .tls_server_name = "nats",
                        .tls_cert_file = ocert,
                        .tls_key_file = okey};
    assert_int_equal(sl_bus_open(&loop, &o, &bus, err, sizeof err), SL_ECONFIG);
    print_message("other CA: %s\n", err);
    assert_non_null(strstr(err, "refuses the connection"));
    assert_null(bus);
    uv_loop_close(&loop);
}

/* ---- real services ---- */

static pid_t start_service(const char *name, int port)
{
    char p[16], bus[96], db[700], ca[720], cert[720], key[720], dd[700], log[64], up[32];
    snprintf(p, sizeof p, "%d", port);
    snprintf(bus, sizeof bus, "SHOAL_BUS__URL=%s", url);
    snprintf(db, sizeof db, "SHOAL_DB__URL=sqlite:%s/%s.db", dir, name);
    snprintf(ca, sizeof ca, "SHOAL_BUS__TLS_CA_FILE=%s/bundle.pem", mesh);
    char *srv = "SHOAL_BUS__TLS_SERVER_NAME=nats";
    snprintf(cert, sizeof cert, "SHOAL_BUS__TLS_CERT_FILE=%s/certs/%s.pem", mesh, name);
    snprintf(key, sizeof key, "SHOAL_BUS__TLS_KEY_FILE=%s/certs/%s.key", mesh, name);
    snprintf(up, sizeof up, "SHOAL_%s__DATA_DIR=", strcmp(name, "user") == 0 ? "USER" : "PAYMENT");
    snprintf(dd, sizeof dd, "%s%s", up, dir);
    snprintf(log, sizeof log, "nats_mesh.%s.log", name);
    char bin[64];
    snprintf(bin, sizeof bin, "shoal-%s", name);
    char *argv[] = {bin, "--port", p, NULL};
    char *env[] = {bus, db, ca, srv, cert, key, dd, "SHOAL_LOG__LEVEL=info", NULL};
    pid_t pid = th_spawn(argv, env, log);
    assert_int_equal(th_wait_port(port, 20000), 0);
    return pid;
}

/* The payment service's count of shop.user.registered.v1 deliveries (its /metrics). */
static double delivered(int port)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    th_response r;
    double total = 0;
    if (th_roundtrip(port, req, sizeof req - 1, &r, 5000) == 200 && r.body) {
        for (const char *l = r.body; (l = strstr(l, "bus_delivered_total{")) != NULL; l++) {
            const char *end = strchr(l, '\n');
            const char *topic = strstr(l, "shop.user.registered.v1");
            const char *sp = strchr(l, '}');
            if (topic && end && topic < end && sp && sp < end) total += strtod(sp + 1, NULL);
        }
    }
    th_response_free(&r);
    return total;
}

static void test_real_services(void **state)
{
    (void)state;
    int uport = th_free_port(), pport = th_free_port();
    pid_t user = user_pid = start_service("user", uport);
    pid_t pay = pay_pid = start_service("payment", pport);
    static const char body[] = "{\"email\":\"mesh@example.com\",\"password\":\"correct horse 1\","
                               "\"name\":\"Mesh\"}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /register HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     sizeof body - 1, body);
    th_response r;
    /* Password hashing is slow under the sanitizers: a generous bound. */
    int st = th_roundtrip(uport, req, (size_t)n, &r, 30000);
    print_message("register: %d %s\n", st, r.body ? r.body : "");
    th_response_free(&r);
    assert_int_equal(st, 201);
    double d = 0;
    for (int i = 0; i < 300 && (d = delivered(pport)) < 1; i++)
        usleep(100000);
    assert_true(d >= 1);
    user_pid = pay_pid = 0;
    assert_int_equal(th_stop(user, SIGTERM, 10000), 0);
    assert_int_equal(th_stop(pay, SIGTERM, 10000), 0);
}

/* A password file others may read is refused at start, naming the key; the password is
 * never written to the log. */
static void test_password_file_mode(void **state)
{
    (void)state;
    char pw[700], bus[96], user[64], file[760], db[700];
    snprintf(pw, sizeof pw, "%s/bus.password", dir);
    FILE *f = fopen(pw, "w");
    assert_non_null(f);
    fputs("not-to-be-logged-4711\n", f);
    fclose(f);
    assert_int_equal(chmod(pw, 0644), 0);
    snprintf(bus, sizeof bus, "SHOAL_BUS__URL=%s", url);
    snprintf(user, sizeof user, "SHOAL_BUS__USER=payment");
    snprintf(file, sizeof file, "SHOAL_BUS__PASSWORD_FILE=%s", pw);
    snprintf(db, sizeof db, "SHOAL_DB__URL=sqlite:%s/pwcheck.db", dir);
    char p[16];
    snprintf(p, sizeof p, "%d", th_free_port());
    char *argv[] = {"shoal-payment", "--port", p, NULL};
    char *env[] = {bus, user, file, db, NULL};
    pid_t pid = th_spawn(argv, env, "nats_mesh.pwcheck.log");
    int status = 0;
    pid_t w = 0;
    for (int i = 0; i < 200 && (w = waitpid(pid, &status, WNOHANG)) == 0; i++)
        usleep(50000);
    if (w == 0) th_stop(pid, SIGKILL, 5000);
    assert_int_equal(w, pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    f = fopen("nats_mesh.pwcheck.log", "r");
    assert_non_null(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "bus.password_file"));
    assert_non_null(strstr(buf, "0600"));
    assert_null(strstr(buf, "not-to-be-logged-4711"));
}

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL) return -1;
    snprintf(mesh, sizeof mesh, "%s/mesh", dir);
    snprintf(other, sizeof other, "%s/other", dir);
    nats_port = th_free_port();
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", nats_port);
    const char *bin = getenv("SHOAL_BIN_DIR");
    const char *const services[] = {"order", "notification", "user", "payment", NULL};
    if (cli_nats_mesh_up(dir, bin ? bin : "build/bin", nats_port, services, conf, sizeof conf) != 0)
        return -1;
    struct stat st;
    if (stat(conf, &st) != 0 || (st.st_mode & 0777) != 0600) return -1;
    /* Another CA with a certificate for the same name. */
    char *init[] = {"init", "--dir", other, NULL};
    char *iss[] = {"issue", "order", "--dir", other, NULL};
    if (cli_certs_main(3, init) != 0 || cli_certs_main(4, iss) != 0) return -1;
    char *argv[] = {"/usr/sbin/nats-server", "-c", conf, NULL};
    nats = th_spawn(argv, NULL, "nats_mesh.nats.log");
    return th_wait_port(nats_port, 15000);
}

static int teardown(void **state)
{
    (void)state;
    if (user_pid > 0) th_stop(user_pid, SIGKILL, 10000);
    if (pay_pid > 0) th_stop(pay_pid, SIGKILL, 10000);
    if (nats > 0) th_stop(nats, SIGTERM, 10000);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_subjects),        cmocka_unit_test(test_dlq_admin),
        cmocka_unit_test(test_outside_permissions), cmocka_unit_test(test_refused_clients),
        cmocka_unit_test(test_real_services),       cmocka_unit_test(test_password_file_mode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
