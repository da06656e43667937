/*
 * Unit tests for the gateway's static files (static.h): the pure path
 * resolver (every refusal), content types, If-None-Match matching, and the
 * loader and lookup over a real directory tree made here (hidden names,
 * symbolic links, unknown types, limits, the longest prefix, redirects), and
 * the configuration entries (gwconfig.c).
 */
#include "gwconfig.h"
#include "static.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static sl_slice S(const char *s)
{
    return (sl_slice){s, strlen(s)};
}

static int resolve(const char *path, const char *prefix, char *out)
{
    return px_static_resolve(S(path), prefix, out, PX_STATIC_PATH_MAX);
}

static void test_resolve_accepts(void **state)
{
    (void)state;
    char out[PX_STATIC_PATH_MAX];
    assert_int_equal(resolve("/", "/", out), 10);
    assert_string_equal(out, "index.html");
    assert_true(resolve("/css/app.css", "/", out) > 0);
    assert_string_equal(out, "css/app.css");
    assert_true(resolve("/ops/", "/ops/", out) > 0);
    assert_string_equal(out, "index.html");
    assert_true(resolve("/ops/js/a.mjs", "/ops/", out) > 0);
    assert_string_equal(out, "js/a.mjs");
    assert_true(resolve("/img/", "/", out) > 0);
    assert_string_equal(out, "img/index.html");
    assert_true(resolve("/a%20b.txt", "/", out) > 0); /* other escapes are decoded */
    assert_string_equal(out, "a b.txt");
    assert_true(resolve("/v1.2/app.js", "/", out) > 0); /* a dot inside a name is fine */
    assert_string_equal(out, "v1.2/app.js");
}

static void test_resolve_refuses(void **state)
{
    (void)state;
    char out[PX_STATIC_PATH_MAX];
    assert_int_equal(resolve("/shop/x", "/ops/", out), SL_ENOTFOUND);
    assert_int_equal(resolve("/ops", "/ops/", out), SL_ENOTFOUND);
    static const char *const bad[] = {
        "/..",
        "/../etc/passwd",
        "/a/../b",
        "/a/./b",
        "/.git/config",
        "/.env",
        "//etc/passwd",
        "/a//b",
        "/%2e%2e/x",
        "/%2E%2e/x",
        "/.%2e/x",
        "/a%2fb",
        "/a%2Fb",
        "/a%5cb",
        "/a\\b",
        "/a%00b",
        "/a%0ab",
        "/a%7fb",
        "/%",
        "/%2",
        "/%zz",
        "/a%5C..%5Cb",
        "/css/%2e",
        "/x/..%2f",
        "/a\x01"
        "b",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        int rc = resolve(bad[i], "/", out);
        if (rc != SL_EINVAL) fprintf(stderr, "%s: %d\n", bad[i], rc);
        assert_int_equal(rc, SL_EINVAL);
    }
    /* a NUL byte in the raw path */
    assert_int_equal(px_static_resolve((sl_slice){"/a\0b", 4}, "/", out, sizeof out), SL_EINVAL);
    /* bounded */
    char longp[PX_STATIC_PATH_MAX + 10];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(resolve(longp, "/", out), SL_ELIMIT);
    char small[8];
    assert_int_equal(px_static_resolve(S("/"), "/", small, sizeof small), SL_ELIMIT);
}

static void test_types_and_etags(void **state)
{
    (void)state;
    assert_string_equal(px_static_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(px_static_content_type("a/app.css"), "text/css; charset=utf-8");
    assert_string_equal(px_static_content_type("app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(px_static_content_type("m.mjs"), "text/javascript; charset=utf-8");
    assert_string_equal(px_static_content_type("i.svg"), "image/svg+xml");
    assert_string_equal(px_static_content_type("i.png"), "image/png");
    assert_string_equal(px_static_content_type("favicon.ico"), "image/x-icon");
    assert_string_equal(px_static_content_type("d.json"), "application/json");
    assert_string_equal(px_static_content_type("f.woff2"), "font/woff2");
    assert_string_equal(px_static_content_type("r.txt"), "text/plain; charset=utf-8");
    assert_null(px_static_content_type("notes.md"));
    assert_null(px_static_content_type("Makefile"));
    assert_null(px_static_content_type("dir.html/file"));

    const char *tag = "\"1a-2b-3c\"";
    assert_true(px_static_etag_match(S("\"1a-2b-3c\""), tag));
    assert_true(px_static_etag_match(S("W/\"1a-2b-3c\""), tag));
    assert_true(px_static_etag_match(S("\"x\", \"1a-2b-3c\" "), tag));
    assert_true(px_static_etag_match(S("*"), tag));
    assert_false(px_static_etag_match(S("\"1a-2b-3d\""), tag));
    assert_false(px_static_etag_match(S("1a-2b-3c"), tag));
    assert_false(px_static_etag_match(S(""), tag));
    assert_false(px_static_etag_match(S("\"1a-2b-3c"), tag));
}

/* ---- over a real tree ------------------------------------------------------------------------ */

static char dir[] = "/tmp/shoal-static-XXXXXX";

static void put(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void mk(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir)) return -1;
    mk("shop");
    mk("shop/css");
    mk("shop/.git");
    mk("shop/sub");
    mk("ops");
    mk("outside");
    put("shop/index.html", "<!doctype html><title>shop</title>");
    put("shop/css/app.css", "body{}");
    put("shop/.git/config", "secret");
    put("shop/.env", "secret");
    put("shop/notes.md", "not served");
    put("shop/sub/index.html", "sub");
    put("ops/index.html", "ops");
    put("outside/secret.txt", "outside");
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/outside/secret.txt", dir);
    snprintf(b, sizeof b, "%s/shop/leak.txt", dir);
    if (symlink(a, b) != 0) return -1;
    snprintf(a, sizeof a, "%s/outside", dir);
    snprintf(b, sizeof b, "%s/shop/linked", dir);
    if (symlink(a, b) != 0) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static px_config *load(const char *extra, char *err)
{
    char yaml[2048], path[600];
    snprintf(yaml, sizeof yaml,
             "static:\n  - {prefix: /, root: %s/shop}\n  - {prefix: /ops/, root: %s/ops, "
             "max_age_s: 60}\n%s",
             dir, dir, extra ? extra : "");
    snprintf(path, sizeof path, "%s/gw.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(yaml, f);
    fclose(f);
    px_config *cfg = NULL;
    err[0] = '\0';
    (void)px_config_load(path, NULL, &cfg, err);
    return cfg;
}

static px_static_hit look(const px_config *cfg, const char *path, const px_static_site **site,
                          const px_static_file **file)
{
    return px_static_lookup(cfg->statics, cfg->nstatics, S(path), site, file);
}

static void test_load_and_lookup(void **state)
{
    (void)state;
    char err[PX_ERR_MAX];
    px_config *cfg = load(NULL, err);
    if (!cfg) fprintf(stderr, "%s\n", err);
    assert_non_null(cfg);
    assert_int_equal(cfg->nstatics, 2);
    assert_string_equal(cfg->static_note, "");
    const px_static_site *s;
    const px_static_file *f;
    assert_int_equal(look(cfg, "/", &s, &f), PX_STATIC_FILE);
    assert_string_equal(s->prefix, "/");
    assert_true(f->html);
    assert_int_equal(f->len, strlen("<!doctype html><title>shop</title>"));
    assert_memory_equal(f->data, "<!doctype html>", 15);
    assert_int_equal(f->etag[0], '"');
    assert_int_equal(look(cfg, "/css/app.css", &s, &f), PX_STATIC_FILE);
    assert_false(f->html);
    assert_string_equal(f->ctype, "text/css; charset=utf-8");
    /* the longest prefix owns its subtree */
    assert_int_equal(look(cfg, "/ops/", &s, &f), PX_STATIC_FILE);
    assert_string_equal(s->prefix, "/ops/");
    assert_int_equal(s->max_age_s, 60);
    assert_memory_equal(f->data, "ops", 3);
    assert_int_equal(look(cfg, "/ops/css/app.css", &s, &f), PX_STATIC_MISS);
    /* directories without their slash redirect; there is no listing */
    assert_int_equal(look(cfg, "/ops", &s, &f), PX_STATIC_REDIRECT);
    assert_int_equal(look(cfg, "/sub", &s, &f), PX_STATIC_REDIRECT);
    assert_int_equal(look(cfg, "/css", &s, &f), PX_STATIC_MISS);
    assert_int_equal(look(cfg, "/css/", &s, &f), PX_STATIC_MISS);
    /* never taken: hidden names, symbolic links (files or directories), unknown types */
    static const char *const never[] = {
        "/.git/config",
        "/.env",
        "/leak.txt",
        "/linked/secret.txt",
        "/notes.md",
        "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/sub/../index.html",
        "/css%2fapp.css",
        "/CSS/app.css",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(never); i++)
        assert_int_equal(look(cfg, never[i], &s, &f), PX_STATIC_MISS);
    px_config_free(cfg);
}

static void test_config_entries(void **state)
{
    (void)state;
    char err[PX_ERR_MAX];
    px_config *cfg = NULL;
    /* a missing root serves nothing, with a note for the log */
    assert_int_equal(
        px_config_load_string("t", "static: [{prefix: /, root: /nonexistent/x}]", NULL, &cfg, err),
        0);
    px_config_free(cfg);
    char yaml[600], path[600];
    snprintf(yaml, sizeof yaml, "static: [{prefix: /, root: %s/none}]\n", dir);
    snprintf(path, sizeof path, "%s/gw2.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(yaml, f);
    fclose(f);
    assert_int_equal(px_config_load(path, NULL, &cfg, err), 0);
    assert_true(cfg->statics[0].missing);
    assert_non_null(strstr(cfg->static_note, "does not exist"));
    px_config_free(cfg);
    static const char *const bad[] = {
        "static: [{prefix: ops/, root: web}]",
        "static: [{prefix: /ops, root: web}]",
        "static: [{prefix: //, root: web}]",
        "static: [{prefix: /a/../b/, root: web}]",
        "static: [{prefix: /api/, root: web}]",
        "static: [{prefix: /api/v1/, root: web}]",
        "static: [{prefix: /, root: a}, {prefix: /, root: b}]",
        "static: [{prefix: /}]",
        "static: [{prefix: /, root: web, listing: true}]",
        "static: [{prefix: /, root: web, max_age_s: -1}]",
        "static: {prefix: /, root: web}",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        cfg = NULL;
        int rc = px_config_load_string("t", bad[i], NULL, &cfg, err);
        if (rc == 0) fprintf(stderr, "accepted: %s\n", bad[i]);
        assert_int_not_equal(rc, 0);
        assert_null(cfg);
        assert_non_null(strstr(err, "static"));
    }
}

static void test_limits(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/shop/big.png", dir);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), PX_STATIC_FILE_MAX_BYTES + 1), 0);
    fclose(f);
    char err[PX_ERR_MAX];
    px_config *cfg = load(NULL, err);
    assert_null(cfg);
    assert_non_null(strstr(err, "big.png"));
    unlink(p);
    cfg = load(NULL, err);
    assert_non_null(cfg);
    px_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_accepts), cmocka_unit_test(test_resolve_refuses),
        cmocka_unit_test(test_types_and_etags), cmocka_unit_test(test_load_and_lookup),
        cmocka_unit_test(test_config_entries),  cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
