/*
 * The pure part of `shoal graph` (src/cli/graph_model.c): cycles, hops, fan-out and shared
 * databases on hand-built graphs; database keys; what the topology, the gateway's
 * configuration, the service definitions and traces add; the text and dot renderings.
 */
#include "graph.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static cli_graph *new_graph(void)
{
    cli_graph *g = NULL;
    assert_int_equal(cli_graph_new(&g), 0);
    return g;
}

static void sync_edge(cli_graph *g, const char *a, const char *b)
{
    assert_int_equal(cli_graph_add_edge(g, a, b, CLI_EDGE_SYNC, "t", 1, 0), 0);
}

/* The violations of g under the default rules, joined by newlines (a static buffer). */
static const char *check(const cli_graph *g)
{
    static char out[4096];
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    cli_violation v[16];
    size_t n = 99;
    assert_int_equal(cli_graph_check(g, &r, v, 16, &n), 0);
    out[0] = '\0';
    for (size_t i = 0; i < n && i < 16; i++) {
        strcat(out, v[i].text);
        strcat(out, "\n");
    }
    return out;
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (!j) fail_msg("bad test JSON: %s (line %d)", e.text, e.line);
    return j;
}

static void test_cycles(void **state)
{
    (void)state;
    cli_graph *g = new_graph();
    sync_edge(g, "gateway", "order");
    sync_edge(g, "order", "inventory");
    sync_edge(g, "order", "payment");
    assert_string_equal(check(g), "");
    /* Events back do not make a cycle: only synchronous calls count. */
    assert_int_equal(cli_graph_add_edge(g, "inventory", "order", CLI_EDGE_ASYNC, "e", 1, 0), 0);
    assert_string_equal(check(g), "");
    sync_edge(g, "inventory", "order");
    assert_string_equal(check(g), "cycle: inventory -> order -> inventory\n");
    /* A longer cycle is named from its first service by name, once. */
    cli_graph_free(g);
    g = new_graph();
    sync_edge(g, "gateway", "x");
    sync_edge(g, "x", "c");
    sync_edge(g, "c", "b");
    sync_edge(g, "b", "x");
    sync_edge(g, "d", "d"); /* a service calling itself */
    assert_string_equal(check(g), "cycle: b -> x -> c -> b\ncycle: d -> d\n");
    cli_graph_free(g);
}

static void test_hops(void **state)
{
    (void)state;
    cli_graph *g = new_graph();
    sync_edge(g, "gateway", "a");
    sync_edge(g, "a", "b");
    sync_edge(g, "b", "c");
    sync_edge(g, "gateway", "z");
    assert_string_equal(check(g), ""); /* gateway -> a -> b -> c: 3 hops */
    sync_edge(g, "c", "d");
    assert_string_equal(check(g), "path of 4 hops: gateway -> a -> b -> c -> d\n");
    /* Asynchronous edges do not lengthen a request. */
    cli_graph_free(g);
    g = new_graph();
    sync_edge(g, "gateway", "a");
    sync_edge(g, "a", "b");
    assert_int_equal(cli_graph_add_edge(g, "b", "c", CLI_EDGE_ASYNC, "e", 1, 0), 0);
    sync_edge(g, "c", "d");
    sync_edge(g, "d", "e");
    assert_string_equal(check(g), "");
    /* Tighter rules. */
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    r.max_hops = 1;
    cli_violation v[4];
    size_t n = 0;
    assert_int_equal(cli_graph_check(g, &r, v, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].text, "path of 2 hops: gateway -> a -> b");
    assert_int_equal(v[0].rule, CLI_RULE_HOPS);
    cli_graph_free(g);
    /* Without a gateway, paths start where nobody calls. */
    g = new_graph();
    sync_edge(g, "p", "q");
    sync_edge(g, "q", "r");
    sync_edge(g, "r", "s");
    sync_edge(g, "s", "t");
    sync_edge(g, "u", "r");
    assert_string_equal(check(g), "path of 4 hops: p -> q -> r -> s -> t\n");
    cli_graph_free(g);
    /* With a cycle, the path is measured without the edge that closes it. */
    g = new_graph();
    sync_edge(g, "gateway", "a");
    sync_edge(g, "a", "b");
    sync_edge(g, "b", "a");
    assert_string_equal(check(g), "cycle: a -> b -> a\n");
    cli_graph_free(g);
}

static void test_fanout(void **state)
{
    (void)state;
    cli_graph *g = new_graph();
    const char *four[] = {"d", "a", "c", "b", "a"};
    assert_int_equal(cli_graph_add_request(g, "gateway", "route r", four, 5), 0);
    assert_string_equal(check(g), "");
    const char *five[] = {"e", "d", "c", "b", "a"};
    assert_int_equal(cli_graph_add_request(g, "gateway", "route wide", five, 5), 0);
    const char *two[] = {"a", "b"};
    assert_int_equal(cli_graph_add_request(g, "gateway", "route narrow", two, 2), 0);
    assert_string_equal(check(g), "fan-out of 5: gateway (route wide) -> a, b, c, d, e\n");
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    r.max_fanout = 5;
    cli_violation v[1];
    size_t n = 9;
    assert_int_equal(cli_graph_check(g, &r, v, 1, &n), 0);
    assert_int_equal(n, 0);
    cli_graph_free(g);
}

static void test_db_keys(void **state)
{
    (void)state;
    char k[CLI_GRAPH_DB_MAX];
    static const char *const same[][2] = {
        {"sqlite:data/order.db", "sqlite:data/./order.db"},
        {"sqlite:data/order.db", "sqlite:data//x/../order.db"},
        {"sqlite:///var/db/a.db", "sqlite:/var/db/a.db"},
        {"postgresql://shoal@DB.example:5432/shop", "postgres://other:secret@db.example/shop"},
        {"postgresql://u@h/shop?options=-csearch_path%3Dorder",
         "postgresql://h:5432/shop?options=-c%20search_path=order"},
        {"postgresql://alice@h", "postgresql://h:5432/alice"},
        {"postgresql://x@h/ignored?dbname=real&port=6000", "postgresql://h:6000/real"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(same); i++) {
        char k2[CLI_GRAPH_DB_MAX];
        assert_int_equal(cli_graph_db_key(same[i][0], k, sizeof k), 0);
        assert_int_equal(cli_graph_db_key(same[i][1], k2, sizeof k2), 0);
        assert_string_equal(k, k2);
    }
    assert_int_equal(
        cli_graph_db_key("postgres://u:hunter2@h:1/d?options=-csearch_path%3Ds", k, sizeof k), 0);
    assert_string_equal(k, "postgresql://h:1/d?search_path=s");
    assert_int_equal(cli_graph_db_key("sqlite:./a/../../b.db", k, sizeof k), 0);
    assert_string_equal(k, "sqlite:../b.db");
    assert_int_equal(cli_graph_db_key("sqlite::memory:", k, sizeof k), 0);
    assert_string_equal(k, ""); /* each process its own */
    /* Different databases, schemas or files differ. */
    char k2[CLI_GRAPH_DB_MAX];
    assert_int_equal(cli_graph_db_key("postgresql://h/a?options=-csearch_path%3Dx", k, sizeof k),
                     0);
    assert_int_equal(cli_graph_db_key("postgresql://h/a?options=-csearch_path%3Dy", k2, sizeof k2),
                     0);
    assert_string_not_equal(k, k2);
    const char *bad[] = {"",
                         "sqlite:",
                         "mysql://root:pw@h/x",
                         "data/x.db",
                         "postgresql://h/%zz",
                         "postgresql://[::1/x"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        assert_int_equal(cli_graph_db_key(bad[i], k, sizeof k), SL_EINVAL);
    assert_int_equal(cli_graph_db_key("sqlite:a-rather-long-name.db", k, 12), SL_EINVAL);
}

static void test_shared_db(void **state)
{
    (void)state;
    cli_graph *g = new_graph();
    assert_int_equal(cli_graph_set_db(g, "order", "sqlite:data/order.db"), 0);
    assert_int_equal(cli_graph_set_db(g, "payment", "sqlite:data/payment.db"), 0);
    assert_int_equal(cli_graph_set_db(g, "cart", ""), 0);
    assert_int_equal(cli_graph_set_db(g, "notification", ""), 0);
    assert_string_equal(check(g), "");
    assert_int_equal(cli_graph_set_db(g, "payment", "sqlite:data/order.db"), 0);
    assert_int_equal(cli_graph_set_db(g, "audit", "sqlite:data/order.db"), 0);
    assert_string_equal(check(g),
                        "shared database: audit, order, payment use sqlite:data/order.db\n");
    cli_graph_free(g);
}

static void test_topology(void **state)
{
    (void)state;
    json_t *t = parse("{\"data_dir\": \"d\", \"services\": ["
                      " {\"name\": \"a\", \"calls\": [\"b\", \"c\"]},"
                      " {\"name\": \"b\", \"db_url\": \"sqlite:d/./a.db\"},"
                      " {\"name\": \"c\", \"db_url\": \"sqlite:d/c.db\","
                      "  \"env\": {\"SHOAL_DB__URL\": \"sqlite:d/x.db\"}},"
                      " {\"name\": \"gateway\", \"config\": \"g.yaml\"}]}");
    cli_graph *g = new_graph();
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(cli_graph_load_topology(g, t, &errs), 0);
    assert_string_equal(check(g), "shared database: a, b use sqlite:d/a.db\n");
    char *text = NULL;
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    assert_int_equal(cli_graph_text(g, &r, &text), 0);
    assert_non_null(strstr(text, "  c              sqlite:d/x.db\n")); /* env wins */
    assert_null(strstr(text, "gateway        sqlite"));                /* no database */
    assert_non_null(strstr(text, "  a               2  calls -> b, c\n"));
    free(text);
    cli_graph_free(g);
    json_decref(t);

    /* Errors name the field. */
    t = parse("{\"services\": [{\"name\": \"a\", \"calls\": [\"b\", 7]}, {\"port\": 1},"
              " {\"name\": \"c\", \"db_url\": \"oracle\"}]}");
    g = new_graph();
    sl_json_errors_init(&errs);
    assert_int_equal(cli_graph_load_topology(g, t, &errs), SL_EINVAL);
    assert_int_equal(errs.count, 3);
    assert_string_equal(errs.items[0].field, "services[0].calls[1]");
    assert_string_equal(errs.items[1].field, "services[1].name");
    assert_string_equal(errs.items[2].field, "services[2].db_url");
    cli_graph_free(g);
    json_decref(t);
    t = parse("{\"services\": []}");
    g = new_graph();
    sl_json_errors_init(&errs);
    assert_int_equal(cli_graph_load_topology(g, t, &errs), SL_EINVAL);
    assert_string_equal(errs.items[0].field, "services");
    cli_graph_free(g);
    json_decref(t);
}

static void test_gateway(void **state)
{
    (void)state;
    json_t *c = parse("{\"auth\": {\"jwks\": {\"cluster\": \"user\"}},"
                      " \"clusters\": {\"pay\": {\"endpoints\": [\"127.0.0.1:1\"]}},"
                      " \"aggregates\": {\"ag\": {\"parts\": [{\"cluster\": \"user\"},"
                      "  {\"cluster\": \"order\"}], \"enrich\": [{\"cluster\": \"product\"}]}},"
                      " \"routes\": [{\"name\": \"orders\", \"cluster\": \"order\"},"
                      "  {\"name\": \"composed\", \"aggregate\": \"ag\"},"
                      "  {\"name\": \"ops\", \"handler\": \"admin_dlq\"}]}");
    cli_graph *g = new_graph();
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(cli_graph_load_gateway(g, "gateway", c, &errs), 0);
    char *text = NULL;
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    assert_int_equal(cli_graph_text(g, &r, &text), 0);
    assert_non_null(strstr(text, "gateway -> order             sync         2      0  orders, "
                                 "composed\n"));
    assert_non_null(strstr(text, "gateway -> user              sync         2      0  composed, "
                                 "jwks\n"));
    assert_non_null(strstr(text, "gateway         3  route composed -> order, product, user\n"));
    /* A cluster no route uses: the identity policy still lets the gateway call it. */
    assert_non_null(strstr(text, "gateway -> pay               sync         1      0  cluster\n"));
    free(text);
    r.max_fanout = 2;
    cli_violation v[2];
    size_t n = 0;
    assert_int_equal(cli_graph_check(g, &r, v, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].text,
                        "fan-out of 3: gateway (route composed) -> order, product, user");
    cli_graph_free(g);
    json_decref(c);

    c = parse("{\"routes\": [{\"name\": \"x\", \"aggregate\": \"missing\"}]}");
    g = new_graph();
    sl_json_errors_init(&errs);
    assert_int_equal(cli_graph_load_gateway(g, "gateway", c, &errs), SL_EINVAL);
    assert_string_equal(errs.items[0].field, "routes[0].aggregate");
    cli_graph_free(g);
    json_decref(c);
}

static void test_defs(void **state)
{
    (void)state;
    json_t *d =
        parse("{\"services\": ["
              " {\"name\": \"order\", \"publishes\": [\"order\"], \"database\": true,"
              "  \"subscriptions\": [{\"topic\": \"shop.product.created.v1\"}]},"
              " {\"name\": \"product\", \"publishes\": [\"product\"], \"database\": true},"
              " {\"name\": \"mail\", \"database\": false, \"subscriptions\": ["
              "  {\"topic\": \"shop.order.created.v1\"}, {\"topic\": \"shop.ghost.x.v1\"}]},"
              " {\"name\": \"elsewhere\", \"subscriptions\": ["
              "  {\"topic\": \"shop.order.created.v1\"}]}]}");
    cli_graph *g = new_graph();
    assert_int_equal(cli_graph_add_node(g, "order"), 0);
    assert_int_equal(cli_graph_add_node(g, "product"), 0);
    assert_int_equal(cli_graph_set_db(g, "mail", "sqlite:x.db"), 0);
    assert_int_equal(cli_graph_set_db(g, "order", "sqlite:x.db"), 0);
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    size_t unmatched = 0;
    assert_int_equal(cli_graph_load_defs(g, d, 1, &unmatched, &errs), 0);
    assert_int_equal(unmatched, 1);
    /* mail has no database of its own: nothing shared. */
    assert_string_equal(check(g), "");
    assert_false(cli_graph_has_node(g, "elsewhere")); /* not in the topology */
    char *text = NULL;
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    assert_int_equal(cli_graph_text(g, &r, &text), 0);
    assert_non_null(strstr(text, "order -> mail                async        1      0  "
                                 "shop.order.created.v1\n"));
    assert_non_null(strstr(text, "product -> order             async        1      0  "
                                 "shop.product.created.v1\n"));
    free(text);
    cli_graph_free(g);
    json_decref(d);

    d = parse("{\"services\": [{\"name\": \"a\", \"subscriptions\": [{\"topic\": 3}],"
              " \"publishes\": [\"\"]}]}");
    g = new_graph();
    sl_json_errors_init(&errs);
    assert_int_equal(cli_graph_load_defs(g, d, 0, NULL, &errs), SL_EINVAL);
    assert_int_equal(errs.count, 2);
    assert_string_equal(errs.items[0].field, "services[0].subscriptions[0].topic");
    assert_string_equal(errs.items[1].field, "services[0].publishes[0]");
    cli_graph_free(g);
    json_decref(d);
}

/* A server span of `svc` under `parent` (may be NULL) and a client span under it to `peer`. */
#define SPAN(id, parent, svc, kind)                                                                \
    "{\"span_id\": \"" id "\", \"parent_span_id\": " parent ", \"service\": \"" svc                \
    "\", \"name\": \"" id "\", \"kind\": \"" kind "\"}"

static void test_traces(void **state)
{
    (void)state;
    /* gateway -> a -> b -> c -> d in one trace; the last call known only by peer.service. */
    json_t *t = parse(
        "[{\"trace_id\": \"t1\", \"spans\": [" SPAN("g", "null", "gateway", "server") "," SPAN("g1", "\"g\"", "gateway", "client") "," SPAN("a", "\"g1\"", "a", "server") "," SPAN("ai", "\"a\"", "a", "internal") "," SPAN(
            "a1", "\"ai\"", "a",
            "client") "," SPAN("b", "\"a1\"", "b",
                               "server") "," SPAN("b1", "\"b\"", "b",
                                                  "client") "," SPAN("c", "\"b1\"", "c",
                                                                     "server") ","
                                                                               "{\"span_id\": "
                                                                               "\"c1\", "
                                                                               "\"parent_span_id\":"
                                                                               " \"c\", "
                                                                               "\"service\": \"c\","
                                                                               " \"name\": \"GET "
                                                                               "/d\", \"kind\": "
                                                                               "\"client\","
                                                                               " \"attributes\": "
                                                                               "{\"peer.service\": "
                                                                               "\"d\"}}," SPAN("c2", "\"c\"", "c", "client") "," SPAN("p", "\"a\"", "a", "producer") "," SPAN(
                                                                                   "k3", "\"b1\"",
                                                                                   "mail",
                                                                                   "consumer") "]},"
                                                                                               "{\""
                                                                                               "tra"
                                                                                               "ce_"
                                                                                               "id"
                                                                                               "\":"
                                                                                               " \""
                                                                                               "t2"
                                                                                               "\","
                                                                                               " \""
                                                                                               "spa"
                                                                                               "ns"
                                                                                               "\":"
                                                                                               " ["
                                                                                               "{\""
                                                                                               "spa"
                                                                                               "n_"
                                                                                               "id"
                                                                                               "\":"
                                                                                               " \""
                                                                                               "k\""
                                                                                               ", "
                                                                                               "\"s"
                                                                                               "erv"
                                                                                               "ice"
                                                                                               "\":"
                                                                                               " \""
                                                                                               "mai"
                                                                                               "l\""
                                                                                               ", "
                                                                                               "\"n"
                                                                                               "ame"
                                                                                               "\":"
                                                                                               " \""
                                                                                               "del"
                                                                                               "ive"
                                                                                               "r\""
                                                                                               ","
                                                                                               " \""
                                                                                               "kin"
                                                                                               "d\""
                                                                                               ": "
                                                                                               "\"c"
                                                                                               "ons"
                                                                                               "ume"
                                                                                               "r\""
                                                                                               ", "
                                                                                               "\"a"
                                                                                               "ttr"
                                                                                               "ibu"
                                                                                               "tes"
                                                                                               "\":"
                                                                                               " {"
                                                                                               "\"m"
                                                                                               "ess"
                                                                                               "agi"
                                                                                               "ng."
                                                                                               "des"
                                                                                               "tin"
                                                                                               "ati"
                                                                                               "on."
                                                                                               "nam"
                                                                                               "e\""
                                                                                               ":"
                                                                                               " \""
                                                                                               "sho"
                                                                                               "p."
                                                                                               "a."
                                                                                               "x."
                                                                                               "v1"
                                                                                               "\"}"
                                                                                               ", "
                                                                                               "\"l"
                                                                                               "ink"
                                                                                               "s\""
                                                                                               ": "
                                                                                               "[{"
                                                                                               "\"t"
                                                                                               "rac"
                                                                                               "e_"
                                                                                               "id"
                                                                                               "\":"
                                                                                               " \""
                                                                                               "t1"
                                                                                               "\","
                                                                                               " \""
                                                                                               "spa"
                                                                                               "n_"
                                                                                               "id"
                                                                                               "\":"
                                                                                               " \""
                                                                                               "p\""
                                                                                               "}]}"
                                                                                               "," SPAN("k2", "\"p\"", "mail", "consumer") "," SPAN(
                                                                                                   "loop",
                                                                                                   "\"loop\"",
                                                                                                   "x",
                                                                                                   "client") "]}]");
    cli_graph *g = new_graph();
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    cli_graph_trace_stats st;
    assert_int_equal(cli_graph_load_traces(g, t, &st, &errs), 0);
    assert_int_equal(st.traces, 2);
    assert_int_equal(st.spans, 15);
    assert_int_equal(st.unresolved_calls, 2); /* c2 and loop */
    assert_int_equal(st.unresolved_links, 1); /* k2: its parent is in another trace */
    assert_string_equal(check(g), "path of 4 hops: gateway -> a -> b -> c -> d\n");
    char *text = NULL;
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    assert_int_equal(cli_graph_text(g, &r, &text), 0);
    assert_non_null(strstr(text, "a -> b                       sync         0      1  b\n"));
    assert_non_null(strstr(text, "c -> d                       sync         0      1  GET /d\n"));
    assert_non_null(strstr(text, "a -> mail                    async        0      1  "
                                 "shop.a.x.v1\n"));
    /* k3 runs under b's span: the event was written in b. */
    assert_non_null(strstr(text, "b -> mail                    async        0      1  k3\n"));
    /* a's request called b through an internal span: a fan-out of 1 under server span "a". */
    assert_non_null(strstr(text, "  a               1  a -> b\n"));
    free(text);
    cli_graph_free(g);
    json_decref(t);

    /* Fan-out: five services from one server span. */
    t = parse("[{\"trace_id\": \"t\", \"spans\": [" SPAN(
        "s", "null", "gateway",
        "server") ","
                  "{\"span_id\": \"1\", \"parent_span_id\": \"s\", \"service\": \"gateway\","
                  " \"name\": \"c\", \"kind\": \"client\", \"attributes\": {\"peer.service\": "
                  "\"a\"}},"
                  "{\"span_id\": \"2\", \"parent_span_id\": \"s\", \"service\": \"gateway\","
                  " \"name\": \"c\", \"kind\": \"client\", \"attributes\": {\"peer.service\": "
                  "\"b\"}},"
                  "{\"span_id\": \"3\", \"parent_span_id\": \"s\", \"service\": \"gateway\","
                  " \"name\": \"c\", \"kind\": \"client\", \"attributes\": {\"peer.service\": "
                  "\"c\"}},"
                  "{\"span_id\": \"4\", \"parent_span_id\": \"s\", \"service\": \"gateway\","
                  " \"name\": \"c\", \"kind\": \"client\", \"attributes\": {\"peer.service\": "
                  "\"d\"}},"
                  "{\"span_id\": \"5\", \"parent_span_id\": \"s\", \"service\": \"gateway\","
                  " \"name\": \"c\", \"kind\": \"client\", \"attributes\": {\"peer.service\": "
                  "\"e\"}},"
                  "{\"span_id\": \"6\", \"parent_span_id\": \"s\", \"service\": \"gateway\","
                  " \"name\": \"c\", \"kind\": \"client\", \"attributes\": {\"peer.service\": "
                  "\"a\"}}"
                  "]}]");
    g = new_graph();
    assert_int_equal(cli_graph_load_traces(g, t, NULL, &errs), 0);
    assert_string_equal(check(g), "fan-out of 5: gateway (s) -> a, b, c, d, e\n");
    cli_graph_free(g);
    json_decref(t);
}

/* Mesh mode: the sidecars' spans (`<name>-sidecar`) are hops, not services: the graph shows
 * gateway -> order -> inventory as without the mesh. */
static void test_traces_sidecars(void **state)
{
    (void)state;
    json_t *t = parse(
        "[{\"trace_id\": \"t\", \"spans\": [" SPAN("g", "null", "gateway", "server") "," SPAN("gc", "\"g\"", "gateway", "client") "," SPAN(
            "gs", "\"gc\"", "gateway-sidecar",
            "server") "," SPAN("gsc", "\"gs\"",
                               "gateway-"
                               "sidecar",
                               "client") "," SPAN("os", "\"gsc\"", "order-sidecar",
                                                  "server") "," SPAN("osc", "\"os\"",
                                                                     "order-sidecar",
                                                                     "client") "," SPAN("o",
                                                                                        "\"osc\"",
                                                                                        "order",
                                                                                        "server") "," SPAN("oc",
                                                                                                           "\"o\"",
                                                                                                           "order",
                                                                                                           "client") "," SPAN("is",
                                                                                                                              "\"oc\"",
                                                                                                                              "inventory-sidecar",
                                                                                                                              "server") "," SPAN("i",
                                                                                                                                                 "\"is\"",
                                                                                                                                                 "inventory",
                                                                                                                                                 "server") "]}]");
    cli_graph *g = new_graph();
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    cli_graph_trace_stats st;
    assert_int_equal(cli_graph_load_traces(g, t, &st, &errs), 0);
    assert_int_equal(st.spans, 5); /* the sidecars' five are not counted */
    assert_int_equal(st.unresolved_calls, 0);
    char *text = NULL;
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    assert_int_equal(cli_graph_text(g, &r, &text), 0);
    assert_non_null(strstr(text, "gateway -> order "));
    assert_non_null(strstr(text, "order -> inventory "));
    assert_null(strstr(text, "sidecar"));
    free(text);
    cli_graph_free(g);
    json_decref(t);
}

static void test_traces_invalid(void **state)
{
    (void)state;
    static const char *const docs[][2] = {
        {"{}", ""},
        {"[{\"spans\": []}]", "[0].trace_id"},
        {"[{\"trace_id\": \"t\", \"spans\": [{\"span_id\": \"1\", \"service\": \"a\","
         " \"kind\": \"sideways\"}]}]",
         "[0].spans[0].kind"},
        {"[{\"trace_id\": \"t\", \"spans\": [{\"span_id\": \"1\", \"kind\": \"server\"}]}]",
         "[0].spans[0].service"},
        {"[{\"trace_id\": \"t\", \"spans\": [{\"span_id\": \"1\", \"service\": \"a\","
         " \"kind\": \"consumer\", \"links\": [{\"span_id\": \"2\"}]}]}]",
         "[0].spans[0].links[0].trace_id"},
        {"[{\"trace_id\": \"t\", \"spans\": [{\"span_id\": \"1\", \"service\":"
         " \"a-name-that-is-far-too-long-for-a-service-of-this-shop-to-carry-really-a-name-that-is-"
         "far-too-long-for-a-service-of-this-shop-to-carry-really\","
         " \"kind\": \"server\"}]}]",
         "[0].spans[0].service"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(docs); i++) {
        json_t *t = parse(docs[i][0]);
        cli_graph *g = new_graph();
        sl_json_errors errs;
        sl_json_errors_init(&errs);
        assert_int_equal(cli_graph_load_traces(g, t, NULL, &errs), SL_EINVAL);
        assert_true(errs.count >= 1);
        assert_string_equal(errs.items[0].field, docs[i][1]);
        /* Nothing was added. */
        char *text = NULL;
        cli_graph_rules r;
        cli_graph_rules_init(&r);
        assert_int_equal(cli_graph_text(g, &r, &text), 0);
        assert_non_null(strstr(text, "services (0):"));
        free(text);
        cli_graph_free(g);
        json_decref(t);
    }
}

static void test_limits(void **state)
{
    (void)state;
    cli_graph *g = new_graph();
    char name[16];
    for (int i = 0; i < CLI_GRAPH_NODES_MAX; i++) {
        snprintf(name, sizeof name, "s%d", i);
        assert_int_equal(cli_graph_add_node(g, name), 0);
    }
    assert_int_equal(cli_graph_add_node(g, "one-more"), SL_ELIMIT);
    assert_int_equal(cli_graph_add_node(g, ""), SL_EINVAL);
    char longname[CLI_GRAPH_NAME_MAX + 1];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(cli_graph_add_node(g, longname), SL_EINVAL);
    /* Labels: a few kept, the rest counted. */
    for (int i = 0; i < CLI_GRAPH_LABELS_MAX + 3; i++) {
        snprintf(name, sizeof name, "r%d", i);
        assert_int_equal(cli_graph_add_edge(g, "s0", "s1", CLI_EDGE_SYNC, name, 1, 0), 0);
    }
    char *text = NULL;
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    assert_int_equal(cli_graph_text(g, &r, &text), 0);
    assert_non_null(strstr(text, "r7, +3 more\n"));
    free(text);
    cli_graph_free(g);
}

static void test_dot(void **state)
{
    (void)state;
    cli_graph *g = new_graph();
    sync_edge(g, "gateway", "a");
    sync_edge(g, "a", "b");
    sync_edge(g, "b", "a");
    assert_int_equal(cli_graph_add_edge(g, "a", "q\"x", CLI_EDGE_ASYNC, "topic", 1, 2), 0);
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    char *dot = NULL;
    assert_int_equal(cli_graph_dot(g, &r, &dot), 0);
    assert_string_equal(dot,
                        "digraph shoal {\n"
                        "  rankdir=LR;\n"
                        "  node [shape=box, fontname=\"sans-serif\"];\n"
                        "  edge [fontname=\"sans-serif\", fontsize=10];\n"
                        "  \"a\";\n"
                        "  \"b\";\n"
                        "  \"gateway\" [shape=oval];\n"
                        "  \"q\\\"x\";\n"
                        "  \"a\" -> \"b\" [label=\"\", tooltip=\"t\", color=red];\n"
                        "  \"b\" -> \"a\" [label=\"\", tooltip=\"t\", color=red];\n"
                        "  \"gateway\" -> \"a\" [label=\"\", tooltip=\"t\"];\n"
                        "  \"a\" -> \"q\\\"x\" [label=\"2\", tooltip=\"topic\", style=dashed];\n"
                        "}\n");
    free(dot);
    cli_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cycles),
        cmocka_unit_test(test_hops),
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_db_keys),
        cmocka_unit_test(test_shared_db),
        cmocka_unit_test(test_topology),
        cmocka_unit_test(test_gateway),
        cmocka_unit_test(test_defs),
        cmocka_unit_test(test_traces),
        cmocka_unit_test(test_traces_sidecars),
        cmocka_unit_test(test_traces_invalid),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_dot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
