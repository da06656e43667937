/*
 * deploy/prometheus against the shop it watches and against promtool:
 *   - the scrape configuration names exactly the processes of config/local.yaml, each at the
 *     port `shoal up` gives it (the gateway at its admin listener from config/gateway.yaml), so
 *     the committed file cannot drift from the topology unnoticed;
 *   - `promtool check config` (which also checks the rule files it names), `promtool check
 *     rules` and `promtool test rules` (each alert firing and staying silent) pass.
 * promtool comes from Debian's prometheus package (scripts/deps.sh).
 */
#include <shoal/config.h>

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

static const char *src_dir(void)
{
    const char *s = getenv("SHOAL_SOURCE_DIR");
    return s ? s : ".";
}

static sl_config *load(const char *rel)
{
    char path[1024], err[SL_CONFIG_ERR_MAX];
    snprintf(path, sizeof path, "%s/%s", src_dir(), rel);
    sl_config *cfg = NULL;
    if (sl_config_load_file(path, &cfg, err) != 0) fail_msg("%s: %s", path, err);
    return cfg;
}

/* The single target of job `name` in the scrape configuration, or NULL. */
static const char *job_target(json_t *jobs, const char *name, size_t *count)
{
    size_t i;
    json_t *job;
    const char *target = NULL;
    *count = 0;
    json_array_foreach(jobs, i, job)
    {
        const char *jn = json_string_value(json_object_get(job, "job_name"));
        if (!jn || strcmp(jn, name) != 0) continue;
        (*count)++;
        json_t *sc = json_object_get(job, "static_configs");
        assert_int_equal(json_array_size(sc), 1);
        json_t *targets = json_object_get(json_array_get(sc, 0), "targets");
        assert_int_equal(json_array_size(targets), 1);
        target = json_string_value(json_array_get(targets, 0));
    }
    return target;
}

static void test_scrape_config_matches_topology(void **state)
{
    (void)state;
    sl_config *local = load("config/local.yaml");
    sl_config *gw = load("config/gateway.yaml");
    sl_config *prom = load("deploy/prometheus/prometheus.yml");
    json_t *jobs = json_object_get(sl_config_root(prom), "scrape_configs");
    assert_true(json_is_array(jobs));
    json_t *svcs = json_object_get(sl_config_root(local), "services");
    assert_true(json_array_size(svcs) > 0);
    size_t i;
    json_t *svc;
    json_array_foreach(svcs, i, svc)
    {
        const char *name = json_string_value(json_object_get(svc, "name"));
        assert_non_null(name);
        char want[300];
        if (strcmp(name, "gateway") == 0) {
            const char *host = NULL;
            int64_t port = 0;
            char err[SL_CONFIG_ERR_MAX];
            assert_int_equal(sl_config_get_string(gw, "admin.host", "127.0.0.1", &host, err), 0);
            assert_int_equal(sl_config_get_int(gw, "admin.port", 0, 1, 65535, &port, err), 0);
            snprintf(want, sizeof want, "%s:%lld", host, (long long)port);
        } else {
            snprintf(want, sizeof want, "127.0.0.1:%lld",
                     (long long)json_integer_value(json_object_get(svc, "port")));
        }
        size_t n = 0;
        const char *got = job_target(jobs, name, &n);
        if (n != 1 || !got || strcmp(got, want) != 0)
            fail_msg("deploy/prometheus/prometheus.yml: job %s should scrape %s (found %zu job(s), "
                     "target %s)",
                     name, want, n, got ? got : "none");
    }
    /* And nothing else: every job is a process of the topology. */
    assert_int_equal(json_array_size(jobs), json_array_size(svcs));
    sl_config_free(prom);
    sl_config_free(gw);
    sl_config_free(local);
}

/* Runs `promtool <args>` in deploy/prometheus; fails the test with its output unless it passes. */
static void promtool(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s/deploy/prometheus' && promtool %s 2>&1", src_dir(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    if (st != 0) fail_msg("promtool %s failed (status %d):\n%s", args, st, out);
}

static void test_promtool_check_config(void **state)
{
    (void)state;
    promtool("check config prometheus.yml");
}

static void test_promtool_check_rules(void **state)
{
    (void)state;
    promtool("check rules rules/recording.yml rules/alerts.yml");
}

static void test_promtool_test_rules(void **state)
{
    (void)state;
    promtool("test rules tests/alerts_test.yml tests/slow_burn_test.yml");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_config_matches_topology),
        cmocka_unit_test(test_promtool_check_config),
        cmocka_unit_test(test_promtool_check_rules),
        cmocka_unit_test(test_promtool_test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
