/*
 * libFuzzer target for what `shoal graph` reads from outside (src/cli/graph_model.c): a trace
 * document (--spans FILE, the receiver's answers), a topology, a gateway configuration and
 * service definitions as JSON trees (the input, or what follows its first line), and a
 * database URL (the first line). Besides memory safety: whatever loaded leaves a graph that
 * the checks and both renderings accept, and a database key fits its buffer.
 */
#include "graph.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void render(cli_graph *g)
{
    cli_graph_rules r;
    cli_graph_rules_init(&r);
    cli_violation v[4];
    size_t n = 0;
    char *text = NULL, *dot = NULL;
    if (cli_graph_check(g, &r, v, 4, &n) != 0 || cli_graph_text(g, &r, &text) != 0 ||
        cli_graph_dot(g, &r, &dot) != 0)
        abort();
    if (!text || !dot || strncmp(dot, "digraph shoal {", 15) != 0) abort();
    free(text);
    free(dot);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first line as a database URL. */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ul = nl ? (size_t)(nl - data) : size;
    char *url = malloc(ul + 1);
    if (!url) abort();
    memcpy(url, data, ul);
    url[ul] = '\0';
    char key[CLI_GRAPH_DB_MAX];
    if (strlen(url) == ul && cli_graph_db_key(url, key, sizeof key) == 0 &&
        strlen(key) >= sizeof key)
        abort();
    free(url);

    sl_json_limits lim = {.max_bytes = 1 << 20, .max_depth = 16, .allow_any_top = true};
    json_t *doc = NULL;
    /* The whole input as JSON, else what follows the first line. */
    if (sl_json_parse((const char *)data, size, &lim, &doc, NULL) != 0 &&
        (!nl || sl_json_parse((const char *)nl + 1, size - ul - 1, &lim, &doc, NULL) != 0))
        return 0;
    cli_graph *g = NULL;
    if (cli_graph_new(&g) != 0) abort();
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (json_is_array(doc)) {
        (void)cli_graph_load_traces(g, doc, NULL, &errs);
    } else {
        (void)cli_graph_load_topology(g, doc, &errs);
        (void)cli_graph_load_gateway(g, "gateway", doc, &errs);
        size_t unmatched = 0;
        (void)cli_graph_load_defs(g, doc, 0, &unmatched, &errs);
    }
    render(g);
    cli_graph_free(g);
    json_decref(doc);
    return 0;
}
