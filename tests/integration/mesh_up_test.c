/*
 * `shoal up` in mesh mode (`mesh: true`), over real processes: nats-server,
 * shoal-hello and shoal-tally (which `calls: [hello]`), each behind a
 * shoal-proxy sidecar with certificates from `shoal certs`. Checked: the
 * files under data/mesh are owner-only; tally's outbound listener reaches
 * hello through both sidecars with mTLS; hello's public port speaks only TLS
 * and hello itself listens on loopback; `shoal status` sees every process
 * ready; the leaves live 6 s (`mesh_certs.lifetime_s`) and the supervisor
 * renews them while calls flow through both sidecars: none fails, and the
 * certificate hello's sidecar serves in a new handshake changes serial and
 * expiry and still verifies after the first one expired; `shoal down` stops
 * them all. The mesh ports are fixed (mesh.h):
 * 20032 is tally's outbound listener to hello, 21000 hello's sidecar admin.
 */
#include "harness.h"

#include <shoal/tls.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <time.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-mesh-XXXXXX", cfg[600];
static pid_t pid;
static int hello_port;

/* The permission bits of <dir>/data/mesh<rel>, or -1. */
static int mode_of(const char *rel)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/data/mesh%s", dir, rel);
    return stat(p, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

static int get(int port, const char *path, th_response *r)
{
    char raw[256];
    int n =
        snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    return th_roundtrip(port, raw, (size_t)n, r, 5000);
}

/* A TLS 1.3 handshake with hello's sidecar on `port` as tally (its leaf, trusting the mesh
 * bundle): the certificate it serves, and whether it verified. Returns 0 or -1. */
static int served_cert(int port, sl_tls_cert_info *info, long *verify)
{
    char ca[600], cert[600], key[600];
    snprintf(ca, sizeof ca, "%s/data/mesh/bundle.pem", dir);
    snprintf(cert, sizeof cert, "%s/data/mesh/certs/tally.pem", dir);
    snprintf(key, sizeof key, "%s/data/mesh/certs/tally.key", dir);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc = -1, fd = -1;
    SSL *ssl = NULL;
    BIO *mem = NULL;
    X509 *peer = NULL;
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        goto out;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the result is read below */
    fd = th_connect(port);
    if (fd < 0 || !(ssl = SSL_new(ctx)) || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1)
        goto out;
    *verify = SSL_get_verify_result(ssl);
    peer = SSL_get1_peer_certificate(ssl);
    mem = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long len = 0;
    if (peer && mem && PEM_write_bio_X509(mem, peer) == 1 &&
        (len = BIO_get_mem_data(mem, &pem)) > 0 && sl_tls_pki_inspect(pem, (size_t)len, info) == 0)
        rc = 0;
out:
    ERR_clear_error();
    X509_free(peer);
    BIO_free(mem);
    if (ssl) SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0) close(fd);
    return rc;
}

/* served_cert, tried again when it ran between the renewal's two renames (the key new, the
 * certificate not yet). */
static int served_cert_retry(int port, sl_tls_cert_info *info, long *verify)
{
    for (int i = 0; i < 5; i++, usleep(50000))
        if (served_cert(port, info, verify) == 0) return 0;
    return -1;
}

/* The leaves are renewed (6 s, so at 4 s) while calls flow: none fails; the served certificate
 * changes and still verifies once the first one expired. */
static void check_renewal(void)
{
    sl_tls_cert_info first, now;
    long verify = -1;
    assert_int_equal(served_cert_retry(hello_port, &first, &verify), 0);
    assert_int_equal(verify, X509_V_OK);
    if (first.not_after - first.not_before != 6)
        fail_msg("served %s..%lld..%lld", first.serial, (long long)first.not_before,
                 (long long)first.not_after);
    int calls = 0, renewed = 0;
    /* Bounded: the first leaf expires within 6 s; three lifetimes at most. */
    for (time_t end = time(NULL) + 18; time(NULL) < end; calls++) {
        th_response r;
        int st = get(20032, "/hello", &r);
        if (st > 0) th_response_free(&r);
        if (st != 200) fail_msg("call %d through the sidecars during renewal: %d", calls, st);
        if (calls % 10 == 0) {
            assert_int_equal(served_cert_retry(hello_port, &now, &verify), 0);
            assert_int_equal(verify, X509_V_OK);
            if (strcmp(now.serial, first.serial) != 0) renewed = 1;
            /* renewed, and the first leaf has expired: new handshakes get the new one */
            if (renewed && time(NULL) > first.not_after) break;
        }
        usleep(20000);
    }
    assert_true(renewed);
    assert_true(time(NULL) > first.not_after);
    assert_true(now.not_after > first.not_after);
    assert_string_equal(now.san, "spiffe://shoal.local/svc/hello");
    char log[700];
    snprintf(log, sizeof log, "grep -q 'hello-sidecar.*renewed; reloading' %s/up.log", dir);
    assert_int_equal(system(log), 0);
}

static void test_up_mesh(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    /* Ports below 55535: the services move to port + 10000. */
    int nats = th_free_port(), hello = 0, tally = 0;
    while (!hello || hello > 55535)
        hello = th_free_port();
    while (!tally || tally > 55535)
        tally = th_free_port();
    snprintf(cfg, sizeof cfg, "%s/local.yaml", dir);
    FILE *f = fopen(cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "data_dir: %s/data\nmesh: true\nmesh_certs: {lifetime_s: 6}\nnats:\n  port: %d\n"
            "services:\n"
            "  - {name: hello, port: %d, env: {SHOAL_LOG__LEVEL: warn}}\n"
            "  - {name: tally, port: %d, calls: [hello], env: {SHOAL_LOG__LEVEL: warn}}\n",
            dir, nats, hello, tally);
    fclose(f);
    hello_port = hello;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec %s up --config %s > %s/up.log 2>&1", th_bin("shoal"), cfg, dir);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    pid = th_spawn(sh, NULL, NULL);
    const int ports[] = {hello, tally, hello + 10000, tally + 10000, 20032, 21000};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        if (th_wait_port(ports[i], 20000) != 0) fail_msg("port %d (logs in %s)", ports[i], dir);

    assert_int_equal(mode_of(""), 0700);
    assert_int_equal(mode_of("/ca.key"), 0600);
    assert_int_equal(mode_of("/certs/hello.key"), 0600);
    assert_int_equal(mode_of("/sidecars/tally.yaml"), 0600);

    th_response r;
    /* tally → its sidecar → hello's sidecar (mTLS, policy: tally may call hello) → hello */
    int st = -1;
    for (int i = 0; i < 100 && st != 200; i++, usleep(50000))
        st = get(20032, "/hello", &r) == 200 ? 200 : -1;
    assert_int_equal(st, 200);
    assert_non_null(strstr(r.body, "hello"));
    th_response_free(&r);
    assert_int_equal(get(hello, "/hello", &r), -1); /* the public port speaks TLS only */
    assert_int_equal(get(21000, "/metrics", &r), 200);
    assert_non_null(strstr(r.body, "service_requests_total{service=\"hello-sidecar\","
                                   "method=\"GET\",route=\"inbound\",status=\"200\"}"));
    th_response_free(&r);

    char status[2048];
    snprintf(status, sizeof status, "%s status --config %s > %s/status.out", th_bin("shoal"), cfg,
             dir);
    /* tally is ready once its bus consumer runs: give it a moment */
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++, usleep(100000))
        rc = system(status);
    assert_int_equal(rc, 0);

    check_renewal();

    char down[2048];
    snprintf(down, sizeof down, "%s down --config %s > /dev/null", th_bin("shoal"), cfg);
    assert_int_equal(system(down), 0);
    int ws = th_stop(pid, 0, 30000);
    pid = 0;
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        assert_true(th_connect(ports[i]) < 0);
}

/* After a failure too: the shop is stopped (its ports are fixed) and its directory removed. */
static int teardown(void **state)
{
    (void)state;
    char cmd[2048];
    if (pid > 0 && th_alive(pid)) {
        snprintf(cmd, sizeof cmd, "%s down --config %s > /dev/null 2>&1", th_bin("shoal"), cfg);
        if (system(cmd) != 0 || th_stop(pid, 0, 30000) == -1) th_stop(pid, SIGKILL, 5000);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return strcmp(dir + strlen(dir) - 6, "XXXXXX") == 0 || system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_up_mesh, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
