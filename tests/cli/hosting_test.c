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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
