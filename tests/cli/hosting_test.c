/*
 * The topology's `hosting:` block (src/cli/hosting.c): groups read in order,
 * and every malformed group refused with an error naming the field.
 */
#include "cli.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *const services =
    "\"services\": [{\"name\": \"user\"}, {\"name\": \"product\"}, {\"name\": \"order\"}, "
    "{\"name\": \"payment\"}, {\"name\": \"gateway\"}]";

/* Reads `hosting` (a JSON value, NULL: absent) next to the services above. */
static int read_hosting(const char *hosting, cli_hosting_group *g, size_t *n, char *err)
{
    char text[2048];
    snprintf(text, sizeof text, "{%s%s%s}", services, hosting ? ", \"hosting\": " : "",
             hosting ? hosting : "");
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    err[0] = '\0';
    int rc = cli_hosting_read(root, g, CLI_HOSTING_GROUPS_MAX, n, err, 256);
    json_decref(root);
    return rc;
}

static void test_groups(void **state)
{
    (void)state;
    cli_hosting_group g[CLI_HOSTING_GROUPS_MAX];
    size_t n = 99;
    char err[256];
    assert_int_equal(read_hosting(NULL, g, &n, err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(read_hosting("[{\"name\": \"shop\", \"services\": [\"user\", \"product\"]}, "
                                  "{\"name\": \"money-2\", \"services\": [\"payment\"]}]",
                                  g, &n, err),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(g[0].name, "shop");
    assert_int_equal(g[0].n, 2);
    assert_string_equal(g[0].members[1], "product");
    assert_string_equal(g[1].name, "money-2");
    assert_int_equal(cli_hosting_group_of(g, n, "payment"), 1);
    assert_int_equal(cli_hosting_group_of(g, n, "user"), 0);
    assert_int_equal(cli_hosting_group_of(g, n, "order"), -1);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *hosting, *field;
    } bad[] = {
        {"{\"name\": \"shop\"}", "hosting:"},
        {"[{\"services\": [\"user\"]}]", "hosting[0].name"},
        {"[{\"name\": \"Shop\", \"services\": [\"user\"]}]", "hosting[0].name"},
        {"[{\"name\": \"a-name-that-is-far-too-long-for-it\", \"services\": [\"user\"]}]",
         "hosting[0].name"},
        {"[{\"name\": \"order\", \"services\": [\"user\"]}]", "hosting[0].name"},
        {"[{\"name\": \"gateway\", \"services\": [\"user\"]}]", "hosting[0].name"},
        {"[{\"name\": \"a\", \"services\": [\"user\"]}, {\"name\": \"a\", \"services\": "
         "[\"order\"]}]",
         "hosting[1].name"},
        {"[{\"name\": \"shop\", \"services\": []}]", "hosting[0].services"},
        {"[{\"name\": \"shop\", \"services\": \"user\"}]", "hosting[0].services"},
        {"[{\"name\": \"shop\", \"services\": [\"user\", \"cart\"]}]", "hosting[0].services[1]"},
        {"[{\"name\": \"shop\", \"services\": [\"gateway\"]}]", "hosting[0].services[0]"},
        {"[{\"name\": \"shop\", \"services\": [\"user\", 7]}]", "hosting[0].services[1]"},
        {"[{\"name\": \"shop\", \"services\": [\"user\", \"user\"]}]", "hosting[0].services[1]"},
        {"[{\"name\": \"a\", \"services\": [\"user\"]}, {\"name\": \"b\", \"services\": "
         "[\"user\"]}]",
         "hosting[1].services[0]"},
        {"[{\"name\": \"shop\", \"services\": [\"user\"], \"bus\": \"kafka\"}]", "hosting[0].bus"},
        {"[{\"name\": \"shop\", \"services\": [\"user\"], \"bus\": 1}]", "hosting[0].bus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cli_hosting_group g[CLI_HOSTING_GROUPS_MAX];
        size_t n = 0;
        char err[256];
        assert_int_equal(read_hosting(bad[i].hosting, g, &n, err), SL_EINVAL);
        if (strncmp(err, bad[i].field, strlen(bad[i].field)) != 0)
            fail_msg("case %zu: '%s' does not start with '%s'", i, err, bad[i].field);
    }
}

/* Decides the buses of `hosting` next to the services above, with `defs` (JSON, NULL: none). */
static int buses(const char *hosting, const char *defs, cli_hosting_group *g, size_t *n,
                 int *need_nats, char *err)
{
    assert_int_equal(read_hosting(hosting, g, n, err), 0);
    char text[2048];
    snprintf(text, sizeof text, "{%s}", services);
    json_t *root = json_loads(text, 0, NULL);
    json_t *d = defs ? json_loads(defs, 0, NULL) : NULL;
    assert_non_null(root);
    int rc = cli_hosting_buses(root, d, g, *n, need_nats, err, 256);
    json_decref(root);
    json_decref(d);
    return rc;
}

/* payment publishes nothing and consumes nothing; order publishes; user consumes; product is
 * not listed (so it counts as using the bus). */
static const char *const defs =
    "{\"services\": [{\"name\": \"user\", \"subscriptions\": [{\"topic\": \"x\"}], "
    "\"publishes\": []}, {\"name\": \"order\", \"subscriptions\": [], \"publishes\": "
    "[\"order\"]}, {\"name\": \"payment\", \"subscriptions\": [], \"publishes\": []}]}";

static void test_bus(void **state)
{
    (void)state;
    cli_hosting_group g[CLI_HOSTING_GROUPS_MAX];
    size_t n = 0;
    int nats = -1;
    char err[256];
    /* Every service in one group: auto is the in-process bus, and nothing needs NATS. */
    assert_int_equal(buses("[{\"name\": \"shop\", \"services\": [\"user\", \"product\", "
                           "\"order\", \"payment\"]}]",
                           NULL, g, &n, &nats, err),
                     0);
    assert_int_equal(g[0].bus, CLI_BUS_AUTO);
    assert_int_equal(g[0].inproc, 1);
    assert_int_equal(nats, 0);
    /* ... unless the group says nats. */
    assert_int_equal(buses("[{\"name\": \"shop\", \"services\": [\"user\", \"product\", "
                           "\"order\", \"payment\"], \"bus\": \"nats\"}]",
                           NULL, g, &n, &nats, err),
                     0);
    assert_int_equal(g[0].inproc, 0);
    assert_int_equal(nats, 1);
    /* payment outside: without definitions it counts as a bus user, so NATS... */
    const char *mixed = "[{\"name\": \"shop\", \"services\": [\"user\", \"product\", "
                        "\"order\"]}]";
    assert_int_equal(buses(mixed, NULL, g, &n, &nats, err), 0);
    assert_int_equal(g[0].inproc, 0);
    assert_int_equal(nats, 1);
    /* ... with them it uses no events: the in-process bus, no NATS. */
    assert_int_equal(buses(mixed, defs, g, &n, &nats, err), 0);
    assert_int_equal(g[0].inproc, 1);
    assert_int_equal(nats, 0);
    /* order outside publishes: auto falls back to NATS, and inproc is refused. */
    const char *no_order = "[{\"name\": \"shop\", \"services\": [\"user\", \"product\", "
                           "\"payment\"]}]";
    assert_int_equal(buses(no_order, defs, g, &n, &nats, err), 0);
    assert_int_equal(g[0].inproc, 0);
    assert_int_equal(nats, 1);
    assert_int_equal(buses("[{\"name\": \"shop\", \"services\": [\"user\", \"product\"], "
                           "\"bus\": \"inproc\"}]",
                           defs, g, &n, &nats, err),
                     SL_EINVAL);
    assert_non_null(strstr(err, "hosting[0].bus"));
    assert_non_null(strstr(err, "order"));
    /* Two groups that exchange events: both on NATS. */
    assert_int_equal(buses("[{\"name\": \"a\", \"services\": [\"user\", \"product\"]}, "
                           "{\"name\": \"b\", \"services\": [\"order\", \"payment\"]}]",
                           defs, g, &n, &nats, err),
                     0);
    assert_int_equal(g[0].inproc + g[1].inproc, 0);
    assert_int_equal(nats, 1);
    assert_int_equal(cli_service_uses_bus(NULL, "gateway"), 0);
    assert_int_equal(cli_service_uses_bus(NULL, "order"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
