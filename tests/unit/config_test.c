/* Unit tests for the config module: YAML typing, located errors, rejected constructs, env. */
#include <shoal/config.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static sl_config *load_ok(const char *text)
{
    sl_config *cfg = NULL;
    char err[SL_CONFIG_ERR_MAX];
    int rc = sl_config_load_string("t.yaml", text, strlen(text), &cfg, err);
    if (rc != 0) fail_msg("load failed (%d): %s", rc, err);
    return cfg;
}

/* Loads `text`, expects failure `code` and returns the message in `err`. */
static void load_fail(const char *text, int code, char *err)
{
    sl_config *cfg = (sl_config *)1;
    assert_int_equal(sl_config_load_string("t.yaml", text, strlen(text), &cfg, err), code);
    assert_null(cfg);
}

static void test_scalar_types(void **state)
{
    (void)state;
    sl_config *cfg = load_ok("a: 42\nb: -7\nc: 3.5\nd: true\ne: ~\nf: null\ng: \"42\"\n"
                             "h: 'true'\ni: hello world\nj: 1e3\nk: yes\nl: +5\nm: 0x1F\nn:\n"
                             "o: .5\np: 1.2.3\nq: -x\nr: \"\"\ns: FALSE\nt: 9223372036854775807\n");
    json_t *r = sl_config_root(cfg);
    assert_int_equal(json_integer_value(json_object_get(r, "a")), 42);
    assert_int_equal(json_integer_value(json_object_get(r, "b")), -7);
    assert_true(json_is_real(json_object_get(r, "c")));
    assert_true(json_real_value(json_object_get(r, "c")) == 3.5);
    assert_true(json_is_true(json_object_get(r, "d")));
    assert_true(json_is_null(json_object_get(r, "e")));
    assert_true(json_is_null(json_object_get(r, "f")));
    assert_string_equal(json_string_value(json_object_get(r, "g")), "42");
    assert_string_equal(json_string_value(json_object_get(r, "h")), "true");
    assert_string_equal(json_string_value(json_object_get(r, "i")), "hello world");
    assert_true(json_real_value(json_object_get(r, "j")) == 1000.0);
    assert_string_equal(json_string_value(json_object_get(r, "k")), "yes");
    assert_int_equal(json_integer_value(json_object_get(r, "l")), 5);
    assert_string_equal(json_string_value(json_object_get(r, "m")), "0x1F");
    assert_true(json_is_null(json_object_get(r, "n")));
    assert_true(json_real_value(json_object_get(r, "o")) == 0.5);
    assert_string_equal(json_string_value(json_object_get(r, "p")), "1.2.3");
    assert_string_equal(json_string_value(json_object_get(r, "q")), "-x");
    assert_string_equal(json_string_value(json_object_get(r, "r")), "");
    assert_true(json_is_false(json_object_get(r, "s")));
    assert_int_equal(json_integer_value(json_object_get(r, "t")), INT64_MAX);
    sl_config_free(cfg);

    char err[SL_CONFIG_ERR_MAX];
    load_fail("a: 9223372036854775808\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:1:4: integer out of range");
    load_fail("a:\n  b: 1e999\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:2:6: number out of range");
    load_fail("a: \"x\\0y\"\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:1:4: strings must not contain NUL characters");
}

static const char sample[] = "http:\n"               /* 1 */
                             "  port: 70000\n"       /* 2 */
                             "  host: \"0.0.0.0\"\n" /* 3 */
                             "  maxConns: 10\n"      /* 4 */
                             "listeners:\n"          /* 5 */
                             "  - name: public\n"    /* 6 */
                             "    port: 8080\n"      /* 7 */
                             "  - name: admin\n"     /* 8 */
                             "    port: 99999\n";    /* 9 */

static void test_located_errors(void **state)
{
    (void)state;
    sl_config *cfg = load_ok(sample);
    int64_t port = 0;
    const char *host = NULL;
    sl_json_field http[] = {
        {.name = "port", .kind = SL_JSON_INT, .min = 1, .max = 65535, .out = &port},
        {.name = "host", .kind = SL_JSON_STRING, .out = &host},
        {.name = "tls", .kind = SL_JSON_OBJECT, .flags = SL_JSON_REQUIRED},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(
        sl_config_read(cfg, "http", http, SL_ARRAY_LEN(http), SL_JSON_REJECT_UNKNOWN, &errs),
        SL_EINVAL);
    assert_int_equal(errs.count, 3);
    assert_string_equal(errs.items[0].field, "http.port");
    assert_string_equal(errs.items[0].message, "t.yaml:2:9: http.port: must be at most 65535");
    assert_string_equal(errs.items[1].message, "t.yaml:2:3: http.tls: is required");
    assert_string_equal(errs.items[2].message, "t.yaml:4:13: http.maxConns: is not allowed");
    assert_string_equal(host, "0.0.0.0");

    sl_json_field listener[] = {
        {.name = "name", .kind = SL_JSON_STRING, .flags = SL_JSON_REQUIRED},
        {.name = "port", .kind = SL_JSON_INT, .min = 1, .max = 65535},
    };
    sl_json_errors_init(&errs);
    assert_int_equal(sl_config_read(cfg, "listeners[0]", listener, 2, 0, &errs), 0);
    assert_int_equal(sl_config_read(cfg, "listeners[1]", listener, 2, 0, &errs), SL_EINVAL);
    assert_string_equal(errs.items[0].message,
                        "t.yaml:9:11: listeners[1].port: must be at most 65535");
    /* A missing section is an empty object: its required fields are reported at the root. */
    sl_json_errors_init(&errs);
    assert_int_equal(sl_config_read(cfg, "metrics", listener, 2, 0, &errs), SL_EINVAL);
    assert_string_equal(errs.items[0].message, "t.yaml:1:1: metrics.name: is required");
    /* A section of the wrong type. */
    sl_json_errors_init(&errs);
    assert_int_equal(sl_config_read(cfg, "listeners", listener, 2, 0, &errs), SL_EINVAL);
    assert_string_equal(errs.items[0].message, "t.yaml:6:3: listeners: must be an object");

    char loc[64];
    assert_int_equal(sl_config_locate(cfg, "listeners[1].name", loc, sizeof loc), 0);
    assert_string_equal(loc, "t.yaml:8:11");
    assert_int_equal(sl_config_locate(cfg, "http.nothing.deeper", loc, sizeof loc), 0);
    assert_string_equal(loc, "t.yaml:2:3");
    sl_config_free(cfg);
}

static void test_getters(void **state)
{
    (void)state;
    sl_config *cfg = load_ok(sample);
    char err[SL_CONFIG_ERR_MAX];
    int64_t i;
    assert_int_equal(sl_config_get_int(cfg, "listeners[0].port", 1, 1, 65535, &i, err), 0);
    assert_int_equal(i, 8080);
    assert_int_equal(sl_config_get_int(cfg, "http.absent", 7, 1, 10, &i, err), 0);
    assert_int_equal(i, 7);
    assert_int_equal(sl_config_get_int(cfg, "http.port", 80, 1, 65535, &i, err), SL_EINVAL);
    assert_int_equal(i, 80);
    assert_string_equal(err, "t.yaml:2:9: http.port: must be at most 65535");
    assert_int_equal(sl_config_get_int(cfg, "http.host", 80, 1, 65535, &i, err), SL_EINVAL);
    assert_string_equal(err, "t.yaml:3:9: http.host: must be an integer");
    const char *s;
    assert_int_equal(sl_config_get_string(cfg, "listeners[1].name", "x", &s, err), 0);
    assert_string_equal(s, "admin");
    assert_int_equal(sl_config_get_string(cfg, "http.port", "x", &s, err), SL_EINVAL);
    assert_string_equal(err, "t.yaml:2:9: http.port: must be a string");
    bool b;
    assert_int_equal(sl_config_get_bool(cfg, "http.debug", true, &b, err), 0);
    assert_true(b);
    assert_int_equal(sl_config_get_bool(cfg, "http.host", true, &b, err), SL_EINVAL);
    double d;
    assert_int_equal(sl_config_get_number(cfg, "http.maxConns", 0, &d, err), 0);
    assert_true(d == 10.0);
    /* A malformed path is just absent. */
    assert_int_equal(sl_config_get_int(cfg, "http..port", 3, 0, 9, &i, err), 0);
    assert_int_equal(i, 3);
    sl_config_free(cfg);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    char err[SL_CONFIG_ERR_MAX];
    load_fail("a: 1\nb: [1, 2\nc: 3\n", SL_EPARSE, err);
    assert_string_equal(err, "t.yaml:3:2: did not find expected ',' or ']' "
                             "(while parsing a flow sequence at 2:4)");
    load_fail("a: 1\n  b: 2\n", SL_EPARSE, err);
    assert_string_equal(err, "t.yaml:2:4: mapping values are not allowed in this context");
    load_fail("a: \"unterminated\n", SL_EPARSE, err);
    assert_non_null(strstr(err, "t.yaml:2:1: found unexpected end of stream"));
    load_fail("a: \xC3\x28\n", SL_EPARSE, err);
    assert_non_null(strstr(err, "t.yaml: invalid"));
}

static void test_rejected(void **state)
{
    (void)state;
    char err[SL_CONFIG_ERR_MAX];
    load_fail("a: &x 1\nb: *x\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:1:4: anchors are not allowed");
    load_fail("a: 1\nb: *x\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:2:4: aliases are not allowed");
    load_fail("a: 1\nb: 2\na: 3\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:3:1: duplicate key 'a'");
    load_fail("a:\n  x: 1\n  'x': 2\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:3:3: duplicate key 'x'");
    load_fail("? [a]\n: 1\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:1:3: keys must be scalars");
    load_fail("a: 1\n---\nb: 2\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:2:1: only one YAML document is allowed");
    load_fail("- a\n- b\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:1:1: the top level must be a mapping");
    load_fail("a: !!str 5\n", SL_ECONFIG, err);
    assert_string_equal(err, "t.yaml:1:4: tags are not allowed");

    /* Depth: the root mapping is level 1, so 31 brackets make 32 levels (accepted). */
    char text[200];
    snprintf(text, sizeof text, "a: %.*s%.*s\n", 31, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 31,
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    sl_config_free(load_ok(text));
    snprintf(text, sizeof text, "a: %.*s%.*s\n", 32, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 32,
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    load_fail(text, SL_ELIMIT, err);
    assert_string_equal(err, "t.yaml:1:35: nesting deeper than 32 levels");
    /* 100,000 open brackets: stops at level 33, no recursion anywhere. */
    size_t n = 100000;
    char *bomb = malloc(n + 4);
    memcpy(bomb, "a: ", 3);
    memset(bomb + 3, '[', n);
    bomb[n + 3] = '\0';
    load_fail(bomb, SL_ELIMIT, err);
    free(bomb);
    /* Size limit. */
    char *big = malloc(SL_CONFIG_MAX_BYTES + 1);
    memset(big, ' ', SL_CONFIG_MAX_BYTES + 1);
    sl_config *cfg = NULL;
    assert_int_equal(sl_config_load_string("big.yaml", big, SL_CONFIG_MAX_BYTES + 1, &cfg, err),
                     SL_ELIMIT);
    free(big);

    /* Empty inputs are empty configurations. */
    cfg = load_ok("");
    assert_int_equal(json_object_size(sl_config_root(cfg)), 0);
    sl_config_free(cfg);
    cfg = load_ok("---\n# only a comment\n");
    assert_true(json_is_object(sl_config_root(cfg)));
    sl_config_free(cfg);
}

static void test_env_overrides(void **state)
{
    (void)state;
    sl_config *cfg = load_ok(sample);
    char *envp[] = {
        "PATH=/usr/bin",
        "SHOAL_HTTP__PORT=8081",
        "shoal_http__host=lower-case-prefix-ignored",
        "SHOAL_Http__Host=example.org",
        "SHOAL_HTTP__MAXCONNS=5",
        "SHOAL_HTTP__TLS__CERT=/etc/cert.pem",
        "SHOAL_HTTP__TLS__VERIFY=false",
        "SHOAL_LISTENERS__1__PORT=9000",
        "SHOAL_METRICS__ENABLED=true",
        "SHOAL_UNKNOWN__X=1",
        "SHOAL_CONFIG=/tmp/other.yaml",
        "SHOAL_BIN_DIR=/tmp/bin",
        "SHOAL_SOURCE_DIR=/tmp/src",
        "SHOAL_HTTP__RATIO=0.25",
        "SHOAL_HTTP__EMPTY=",
        NULL,
    };
    const char *const sections[] = {"metrics", NULL};
    char err[SL_CONFIG_ERR_MAX] = "";
    assert_int_equal(sl_config_apply_env(cfg, envp, sections, err), 0);
    json_t *r = sl_config_root(cfg);
    json_t *http = json_object_get(r, "http");
    assert_int_equal(json_integer_value(json_object_get(http, "port")), 8081);
    assert_string_equal(json_string_value(json_object_get(http, "host")), "example.org");
    assert_int_equal(json_integer_value(json_object_get(http, "maxConns")), 5);
    assert_null(json_object_get(http, "maxconns"));
    json_t *tls = json_object_get(http, "tls");
    assert_string_equal(json_string_value(json_object_get(tls, "cert")), "/etc/cert.pem");
    assert_true(json_is_false(json_object_get(tls, "verify")));
    assert_true(json_real_value(json_object_get(http, "ratio")) == 0.25);
    assert_true(json_is_null(json_object_get(http, "empty")));
    int64_t port;
    assert_int_equal(sl_config_get_int(cfg, "listeners[1].port", 0, 1, 65535, &port, err), 0);
    assert_int_equal(port, 9000);
    assert_true(json_is_true(json_object_get(json_object_get(r, "metrics"), "enabled")));
    assert_null(json_object_get(r, "unknown"));
    assert_null(json_object_get(r, "config"));
    assert_null(json_object_get(r, "bin_dir"));

    char loc[128];
    assert_int_equal(sl_config_locate(cfg, "http.tls.cert", loc, sizeof loc), 0);
    assert_string_equal(loc, "env SHOAL_HTTP__TLS__CERT");
    assert_int_equal(sl_config_locate(cfg, "http.tls", loc, sizeof loc), 0);
    assert_string_equal(loc, "env SHOAL_HTTP__TLS__CERT");
    assert_int_equal(sl_config_locate(cfg, "http.host", loc, sizeof loc), 0);
    assert_string_equal(loc, "env SHOAL_Http__Host");
    assert_int_equal(sl_config_locate(cfg, "listeners[1].name", loc, sizeof loc), 0);
    assert_string_equal(loc, "t.yaml:8:11");
    sl_config_free(cfg);
}

static void test_env_errors(void **state)
{
    (void)state;
    sl_config *cfg = load_ok(sample);
    char err[SL_CONFIG_ERR_MAX];
    char *too_big[] = {"SHOAL_HTTP__PORT=70000", NULL};
    assert_int_equal(sl_config_apply_env(cfg, too_big, NULL, err), 0);
    sl_json_field http[] = {{.name = "port", .kind = SL_JSON_INT, .min = 1, .max = 65535}};
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_config_read(cfg, "http", http, 1, 0, &errs), SL_EINVAL);
    assert_string_equal(errs.items[0].message,
                        "env SHOAL_HTTP__PORT: http.port: must be at most 65535");
    int64_t port;
    assert_int_equal(sl_config_get_int(cfg, "http.port", 80, 1, 65535, &port, err), SL_EINVAL);
    assert_string_equal(err, "env SHOAL_HTTP__PORT: http.port: must be at most 65535");

    char *through_scalar[] = {"SHOAL_HTTP__PORT__X=1", NULL};
    assert_int_equal(sl_config_apply_env(cfg, through_scalar, NULL, err), SL_ECONFIG);
    assert_string_equal(err, "env SHOAL_HTTP__PORT__X: http.port: is not an object");
    char *empty_seg[] = {"SHOAL_HTTP____X=1", NULL};
    assert_int_equal(sl_config_apply_env(cfg, empty_seg, NULL, err), SL_ECONFIG);
    assert_string_equal(err, "env SHOAL_HTTP____X: empty name segment");
    char *bad_index[] = {"SHOAL_LISTENERS__5__PORT=1", NULL};
    assert_int_equal(sl_config_apply_env(cfg, bad_index, NULL, err), SL_ECONFIG);
    assert_string_equal(err, "env SHOAL_LISTENERS__5__PORT: listeners: no element 5");
    char *overflow[] = {"SHOAL_HTTP__PORT=123456789012345678901234", NULL};
    assert_int_equal(sl_config_apply_env(cfg, overflow, NULL, err), SL_ECONFIG);
    assert_string_equal(err, "env SHOAL_HTTP__PORT: http.port: integer out of range");

    /* Replacing a whole subtree: its old positions are forgotten. */
    char *replace[] = {"SHOAL_LISTENERS=none", NULL};
    assert_int_equal(sl_config_apply_env(cfg, replace, NULL, err), 0);
    char loc[128];
    assert_int_equal(sl_config_locate(cfg, "listeners[1].port", loc, sizeof loc), 0);
    assert_string_equal(loc, "env SHOAL_LISTENERS");
    sl_config_free(cfg);
}

static void test_files_and_args(void **state)
{
    (void)state;
    char path[] = "/tmp/shoal-config-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "db:\n  url: sqlite:data/x.db\n  pool: [1, 2\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    sl_config *cfg;
    char err[SL_CONFIG_ERR_MAX], want[SL_CONFIG_ERR_MAX];
    assert_int_equal(sl_config_load_file(path, &cfg, err), SL_EPARSE);
    snprintf(want, sizeof want, "%s:4:1: did not find expected ',' or ']'", path);
    assert_memory_equal(err, want, strlen(want));
    unlink(path);
    assert_int_equal(sl_config_load_file(path, &cfg, err), SL_EIO);
    assert_non_null(strstr(err, "cannot open"));

    char *a1[] = {"prog", "--config", "a.yaml", NULL};
    assert_string_equal(sl_config_path_from_args(3, a1), "a.yaml");
    char *a2[] = {"prog", "-v", "--config=b.yaml", "--config", "c.yaml", NULL};
    assert_string_equal(sl_config_path_from_args(5, a2), "c.yaml");
    char *a3[] = {"prog", "--", "--config=d.yaml", NULL};
    unsetenv("SHOAL_CONFIG");
    assert_null(sl_config_path_from_args(3, a3));
    setenv("SHOAL_CONFIG", "env.yaml", 1);
    assert_string_equal(sl_config_path_from_args(3, a3), "env.yaml");
    assert_string_equal(sl_config_path_from_args(3, a1), "a.yaml");
    unsetenv("SHOAL_CONFIG");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_types), cmocka_unit_test(test_located_errors),
        cmocka_unit_test(test_getters),      cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_rejected),     cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_errors),   cmocka_unit_test(test_files_and_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
