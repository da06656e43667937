/* The pure generator of mesh mode's nats-server configuration (src/cli/nats_mesh.h). */
#include "nats_mesh.h"

#include <shoal/common.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char defs_text[] =
    "{\"services\": ["
    " {\"name\": \"order\", \"publishes\": [\"order\"], \"subscriptions\": ["
    "   {\"topic\": \"shop.payment.authorized.v1\", \"group\": "
    "\"order.shop.payment.authorized.v1\"}]},"
    " {\"name\": \"notification\", \"publishes\": [], \"subscriptions\": ["
    "   {\"topic\": \"shop.order.confirmed.v1\", \"group\": \"notify_x\"}]}"
    "]}";

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) return 1;
    return 0;
}

static void test_publish_allow(void **state)
{
    (void)state;
    json_t *defs = load(defs_text);
    const json_t *order = json_array_get(json_object_get(defs, "services"), 0);
    char *allow = NULL, err[256] = {0};
    assert_int_equal(cli_nats_mesh_publish_allow(order, 2, &allow, err, sizeof err), 0);
    /* Its own context, the dead letters of what it consumes, its streams. */
    assert_true(has_line(allow, "shop.order.>"));
    assert_true(has_line(allow, "shop.payment.authorized.v1.dlq"));
    assert_true(has_line(allow, "$JS.API.STREAM.CREATE.SHOP_ORDER"));
    assert_true(has_line(allow, "$JS.API.STREAM.UPDATE.SHOP_PAYMENT"));
    /* The durables the host's group names (dots → dashes), per partition and unordered. */
    const char *d0 = "order-shop-payment-authorized-v1__shop_payment_authorized_v1__p0";
    char want[400];
    snprintf(want, sizeof want, "$JS.API.CONSUMER.CREATE.SHOP_PAYMENT.%s.%s", d0,
             "shop.payment.authorized.v1.p.0");
    assert_true(has_line(allow, want));
    snprintf(want, sizeof want, "$JS.API.CONSUMER.MSG.NEXT.SHOP_PAYMENT.%s", d0);
    assert_true(has_line(allow, want));
    snprintf(want, sizeof want, "$JS.ACK.SHOP_PAYMENT.%s.>", d0);
    assert_true(has_line(allow, want));
    assert_true(has_line(allow, "$JS.API.CONSUMER.INFO.SHOP_PAYMENT."
                                "order-shop-payment-authorized-v1__shop_payment_authorized_v1"));
    assert_true(has_line(allow,
                         "$JS.API.CONSUMER.INFO.SHOP_PAYMENT."
                         "order-shop-payment-authorized-v1__shop_payment_authorized_v1__p1"));
    /* Two partitions: no third. Nothing of another context, no wildcard API grant. */
    assert_false(has_line(allow,
                          "$JS.API.CONSUMER.INFO.SHOP_PAYMENT."
                          "order-shop-payment-authorized-v1__shop_payment_authorized_v1__p2"));
    assert_null(strstr(allow, "shop.payment.>"));
    assert_null(strstr(allow, "shop.payment.authorized.v1.p"
                              "\n")); /* may not publish the consumed events */
    assert_null(strstr(allow, "$JS.API.>"));
    assert_null(strstr(allow, "$JS.API.CONSUMER.CREATE.SHOP_PAYMENT\n"));
    /* Its dead-letter admin: one consumer of a fixed name, filtered on the topic's .dlq, and
     * no way to delete another consumer or to read the stream's messages directly. */
    const char *dc = "order__dlq__shop-payment-authorized-v1";
    snprintf(want, sizeof want, "$JS.API.CONSUMER.CREATE.SHOP_PAYMENT.%s.%s", dc,
             "shop.payment.authorized.v1.dlq");
    assert_true(has_line(allow, want));
    snprintf(want, sizeof want, "$JS.API.CONSUMER.INFO.SHOP_PAYMENT.%s", dc);
    assert_true(has_line(allow, want));
    snprintf(want, sizeof want, "$JS.API.CONSUMER.MSG.NEXT.SHOP_PAYMENT.%s", dc);
    assert_true(has_line(allow, want));
    snprintf(want, sizeof want, "$JS.API.CONSUMER.DELETE.SHOP_PAYMENT.%s", dc);
    assert_true(has_line(allow, want));
    size_t deletes = 0;
    for (const char *q = allow; (q = strstr(q, "$JS.API.CONSUMER.DELETE.")) != NULL; q++)
        deletes++;
    assert_int_equal(deletes, 1);
    assert_null(strstr(allow, "$JS.API.STREAM.MSG."));
    assert_null(strstr(allow, "$JS.API.CONSUMER.DURABLE.CREATE.SHOP_PAYMENT.order__dlq__"));
    free(allow);

    /* A consumer only: no publish of any event subject. */
    const json_t *notif = json_array_get(json_object_get(defs, "services"), 1);
    assert_int_equal(cli_nats_mesh_publish_allow(notif, 0, &allow, err, sizeof err), 0);
    for (char *p = allow; *p;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        if (strncmp(p, "shop.", 5) == 0) assert_string_equal(p, "shop.order.confirmed.v1.dlq");
        p = nl + 1;
    }
    free(allow);
    json_decref(defs);
}

static void test_config(void **state)
{
    (void)state;
    json_t *defs = load(defs_text);
    cli_nats_mesh_opts o = {.listen = "127.0.0.1:4333",
                            .store_dir = "/tmp/js dir",
                            .cert_file = "/m/certs/nats.pem",
                            .key_file = "/m/certs/nats.key",
                            .ca_file = "/m/bundle.pem",
                            .partitions = 1};
    char *cfg = NULL, err[256] = {0};
    assert_int_equal(cli_nats_mesh_config(defs, &o, &cfg, err, sizeof err), 0);
    assert_non_null(strstr(cfg, "listen: \"127.0.0.1:4333\"\n"));
    assert_non_null(strstr(cfg, "store_dir: \"/tmp/js dir\""));
    assert_non_null(strstr(cfg, "verify_and_map: true"));
    assert_non_null(strstr(cfg, "ca_file: \"/m/bundle.pem\""));
    assert_non_null(strstr(cfg, "user: \"spiffe://shoal.local/svc/order\""));
    assert_non_null(strstr(cfg, "user: \"spiffe://shoal.local/svc/notification\""));
    assert_non_null(strstr(cfg, "subscribe: { allow: [\"_INBOX.order.>\"] }"));
    assert_non_null(strstr(cfg, "subscribe: { allow: [\"_INBOX.notification.>\"] }"));
    /* The explicit group is kept as it is. */
    assert_non_null(strstr(cfg, "\"$JS.API.CONSUMER.MSG.NEXT.SHOP_ORDER."
                                "notify_x__shop_order_confirmed_v1__p0\""));
    free(cfg);

    /* Only the services asked for. */
    const char *const only[] = {"notification", NULL};
    o.only = only;
    assert_int_equal(cli_nats_mesh_config(defs, &o, &cfg, err, sizeof err), 0);
    assert_null(strstr(cfg, "svc/order\""));
    assert_non_null(strstr(cfg, "svc/notification\""));
    free(cfg);
    json_decref(defs);
}

static void test_refusals(void **state)
{
    (void)state;
    cli_nats_mesh_opts o = {.listen = "127.0.0.1:1",
                            .store_dir = "/s",
                            .cert_file = "/c",
                            .key_file = "/k",
                            .ca_file = "/a"};
    static const char *const bad[] = {
        "{}",
        "{\"services\": [{\"publishes\": [], \"subscriptions\": []}]}",
        "{\"services\": [{\"name\": \"Order\", \"publishes\": [], \"subscriptions\": []}]}",
        "{\"services\": [{\"name\": \"o\", \"publishes\": [\"a\\\"b\"], \"subscriptions\": []}]}",
        "{\"services\": [{\"name\": \"o\", \"publishes\": [], \"subscriptions\": "
        "[{\"topic\": \"shop.>\", \"group\": \"g\"}]}]}",
        "{\"services\": [{\"name\": \"o\", \"publishes\": [], \"subscriptions\": "
        "[{\"topic\": \"shop.a.b\", \"group\": \"g\\\" }\"}]}]}",
        "{\"services\": [{\"name\": \"o\", \"publishes\": 1, \"subscriptions\": []}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *d = load(bad[i]);
        char *cfg = NULL, err[256] = {0};
        assert_int_equal(cli_nats_mesh_config(d, &o, &cfg, err, sizeof err), SL_EPARSE);
        assert_null(cfg);
        assert_true(err[0] != '\0');
        json_decref(d);
    }
    /* A quote in a path would end the string early. */
    json_t *d = load("{\"services\": []}");
    char *cfg = NULL, err[256];
    o.ca_file = "/a\"b";
    assert_int_equal(cli_nats_mesh_config(d, &o, &cfg, err, sizeof err), SL_EPARSE);
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_allow),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
