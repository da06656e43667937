/*
 * PostgreSQL URLs with `sslmode=verify-full`: libshoal's db layer hands the
 * URL to libpq as it is, so its TLS parameters work. A throwaway cluster
 * (scripts/pg-fixture.sh) runs with ssl=on and a certificate from
 * `shoal certs` (CN "pg", no DNS SAN, so libpq matches the host against the
 * CN; the URL connects to 127.0.0.1 through hostaddr). Verified against the
 * right CA it connects over TLS; against another CA, or under another host
 * name, it is refused.
 */
#include <shoal/db.h>

#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[] = "/tmp/shoal-pg-tls-XXXXXX";
static char port[16];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void url_for(char *out, size_t cap, const char *host, const char *bundle)
{
    snprintf(out, cap,
             "postgresql://postgres@%s:%s/postgres?hostaddr=127.0.0.1&sslmode=verify-full"
             "&sslrootcert=%s/%s/bundle.pem",
             host, port, dir, bundle);
}

static void test_verify_full(void **state)
{
    (void)state;
    char url[1024], err[512] = {0};
    sl_db *db = NULL;
    url_for(url, sizeof url, "pg", "mesh");
    assert_int_equal(sl_db_open(url, NULL, &db, err, sizeof err), 0);
    /* The session is encrypted: the server says so. */
    sl_db_stmt *st = NULL;
    assert_int_equal(
        sl_db_prepare(db, "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &st), 0);
    assert_int_equal(sl_db_step(st), SL_DB_ROW);
    assert_int_equal(sl_db_column_int64(st, 0), 1);
    sl_db_stmt_done(st);
    sl_db_close(db);

    /* Another CA: the server's certificate does not verify. */
    url_for(url, sizeof url, "pg", "other");
    assert_int_equal(sl_db_open(url, NULL, &db, err, sizeof err), SL_EUNAVAIL);
    print_message("other CA: %s\n", err);
    assert_non_null(strstr(err, "certificate verify failed"));
    /* Another name than the certificate's. */
    url_for(url, sizeof url, "db", "mesh");
    assert_int_equal(sl_db_open(url, NULL, &db, err, sizeof err), SL_EUNAVAIL);
    print_message("wrong name: %s\n", err);
    assert_non_null(strstr(err, "does not match host name"));
}

static int setup(void **state)
{
    (void)state;
    const char *bin = getenv("SHOAL_BIN_DIR"), *src = getenv("SHOAL_SOURCE_DIR");
    if (!bin || !src || mkdtemp(dir) == NULL) return -1;
    if (sh("'%s/shoal' certs init --dir %s/mesh >/dev/null && "
           "'%s/shoal' certs issue pg --dir %s/mesh >/dev/null && "
           "'%s/shoal' certs init --dir %s/other >/dev/null",
           bin, dir, bin, dir, bin, dir) != 0)
        return -1;
    /* The server runs as postgres when we are root: it must reach and own its key. */
    if (getuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        char p[700];
        if (pw == NULL) return -1;
        snprintf(p, sizeof p, "%s/mesh/certs/pg.key", dir);
        if (chown(p, pw->pw_uid, pw->pw_gid) != 0) return -1;
        chmod(dir, 0711);
        snprintf(p, sizeof p, "%s/mesh", dir);
        chmod(p, 0711);
        snprintf(p, sizeof p, "%s/mesh/certs", dir);
        chmod(p, 0711);
    }
    if (sh("PG_FIXTURE_OPTS='-c fsync=off -c ssl=on -c ssl_cert_file=%s/mesh/certs/pg.pem "
           "-c ssl_key_file=%s/mesh/certs/pg.key' '%s/scripts/pg-fixture.sh' start %s/fixture "
           ">/dev/null",
           dir, dir, src, dir) != 0)
        return -1;
    char p[700], line[256];
    snprintf(p, sizeof p, "%s/fixture/url", dir);
    FILE *f = fopen(p, "r");
    if (f == NULL || fgets(line, sizeof line, f) == NULL) {
        if (f) fclose(f);
        return -1;
    }
    fclose(f);
    const char *c = strrchr(line, ':');
    if (c == NULL) return -1;
    snprintf(port, sizeof port, "%.*s", (int)strcspn(c + 1, "/"), c + 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *src = getenv("SHOAL_SOURCE_DIR");
    if (src) sh("'%s/scripts/pg-fixture.sh' stop %s/fixture >/dev/null", src, dir);
    return sh("rm -rf '%s'", dir) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_verify_full)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
