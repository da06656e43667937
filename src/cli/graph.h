/*
 * `shoal graph`: the service dependency graph and the rules it must keep
 * (docs/observability.md, "Dependency graph"). graph_model.c is the pure part,
 * unit-tested alone: the graph, what the static sources (the topology, the
 * gateway's configuration, the service definitions) and collected traces add
 * to it, the checks, and the text and Graphviz renderings. graph.c does the
 * I/O: files, the trace receiver's JSON API, the command line.
 *
 * Edges: a synchronous edge A -> B is an HTTP call from A to B (a gateway
 * route or aggregate, a service's `calls:`, a client span of A answered by a
 * server span of B); an asynchronous edge A -> B is an event of A consumed by
 * B (a subscription to a context A publishes, a consumer span of B linked to
 * or parented by a producer span of A). Each edge counts its declarations
 * (static sources) and the calls or deliveries seen in traces.
 */
#ifndef SHOAL_CLI_GRAPH_H
#define SHOAL_CLI_GRAPH_H

#include <shoal/common.h>
#include <shoal/json.h>

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_GRAPH_NODES_MAX  64   /* services in one graph */
#define CLI_GRAPH_EDGES_MAX  1024 /* edges (kind, from, to) */
#define CLI_GRAPH_NAME_MAX   128  /* bytes of a service name, NUL included */
#define CLI_GRAPH_LABEL_MAX  96   /* bytes of an edge or fan-out label, NUL included */
#define CLI_GRAPH_LABELS_MAX 8    /* labels kept per edge (further ones are counted) */
#define CLI_GRAPH_DB_MAX     256  /* bytes of a database key, NUL included */

/* Limits on a trace document (--spans FILE or the receiver's answers). */
#define CLI_GRAPH_TRACES_MAX 10000  /* traces */
#define CLI_GRAPH_SPANS_MAX  200000 /* spans over all traces */
#define CLI_GRAPH_ID_MAX     64     /* bytes of a trace or span id */
#define CLI_GRAPH_LINKS_MAX  128    /* links of one span */

/* The default rules. */
#define CLI_GRAPH_DEFAULT_MAX_HOPS   3
#define CLI_GRAPH_DEFAULT_MAX_FANOUT 4
#define CLI_GRAPH_ENTRY              "gateway"

typedef enum cli_edge_kind { CLI_EDGE_SYNC, CLI_EDGE_ASYNC } cli_edge_kind;

typedef struct cli_graph cli_graph;

/* Returns 0 with *out (returns owned, free with cli_graph_free) or SL_ENOMEM. */
int cli_graph_new(cli_graph **out);
void cli_graph_free(cli_graph *g);

/* Adds the service `name` (1 .. CLI_GRAPH_NAME_MAX - 1 bytes) if it is new. Returns 0,
 * SL_EINVAL (empty or too long a name) or SL_ELIMIT (more than CLI_GRAPH_NODES_MAX). */
int cli_graph_add_node(cli_graph *g, const char *name);

/* Returns 1 when the graph has the service `name`. */
int cli_graph_has_node(const cli_graph *g, const char *name);

/*
 * Adds to the edge from -> to of `kind` (both services added if new): `declared` declarations
 * and `seen` observations, and the label (NULL: none; cut to CLI_GRAPH_LABEL_MAX - 1 bytes; kept
 * once) that says where it comes from (a route, a topic). Returns 0, SL_EINVAL or SL_ELIMIT.
 */
int cli_graph_add_edge(cli_graph *g, const char *from, const char *to, cli_edge_kind kind,
                       const char *label, uint64_t declared, uint64_t seen);

/* Sets the database of `service` (added if new): a key from cli_graph_db_key. Returns 0,
 * SL_EINVAL or SL_ELIMIT. */
int cli_graph_set_db(cli_graph *g, const char *service, const char *db);

/*
 * Records one request (or delivery) of `service`, named `where` (a route, a span name), that
 * called the `n` services `callees` (duplicates are counted once). The graph keeps, per
 * service, the request with the most distinct callees. Returns 0, SL_EINVAL or SL_ELIMIT.
 */
int cli_graph_add_request(cli_graph *g, const char *service, const char *where,
                          const char *const *callees, size_t n);

/*
 * The key under which two database URLs name the same database, without credentials (never a
 * password): "sqlite:<path>" with the path normalised lexically ("./", "//", "x/.."), or
 * "postgresql://<host>:<port>/<database>" (default port 5432; the database defaults to the
 * user) with "?search_path=<s>" when the URL's options select a schema. SQLite in memory is
 * nobody's shared database: *key = "". Writes at most `cap` bytes. Returns 0 or SL_EINVAL (a
 * URL sl_db_open would refuse, one this reader cannot read, or a key that does not fit).
 */
int cli_graph_db_key(const char *url, char *key, size_t cap);

/* ---- static sources (pure: they read trees loaded by the caller) -------------------------- */

/*
 * The topology (config/local.yaml's tree): every service; each service's database (`db_url`,
 * else SHOAL_DB__URL in its `env`, else "sqlite:<data_dir>/<name>.db", as `shoal up` sets
 * them); each `calls:` entry as a declared synchronous edge, and the calls as one request
 * (a service may call all of them while it answers). Errors go to `errs` with the field's
 * path ("services[3].calls[0]"). Returns 0, SL_EINVAL or SL_ELIMIT.
 */
int cli_graph_load_topology(cli_graph *g, const json_t *topology, sl_json_errors *errs);

/*
 * The gateway's configuration tree, as the process `gateway_name` of the topology: a
 * synchronous edge to the cluster of each route with `cluster:` (labelled with the route's
 * name) and to every cluster of each aggregate a route uses (parts and enrichments; the
 * route is one request with that many callees), to the JWKS cluster (label "jwks"), and to
 * every cluster of `clusters:` (label "cluster": the identity policy lets the gateway call each
 * one). A cluster is named after the service it reaches. Routes answered by the gateway itself
 * (`handler:`) count as no request: their calls are seen in traces. Returns 0, SL_EINVAL or
 * SL_ELIMIT.
 */
int cli_graph_load_gateway(cli_graph *g, const char *gateway_name, const json_t *gateway,
                           sl_json_errors *errs);

/*
 * The service definitions (shoal-defs's document, defs.h): for every subscription of a
 * service already in the graph to a topic "shop.<context>.<...>" of a context that another
 * service of the graph publishes, an asynchronous edge publisher -> subscriber labelled with
 * the topic. `only_known`: 1 to skip services that are not in the graph yet (the topology
 * names what runs), 0 to add them. Subscriptions nobody publishes are counted in
 * *unmatched (may be NULL). Returns 0, SL_EINVAL or SL_ELIMIT.
 */
int cli_graph_load_defs(cli_graph *g, const json_t *defs, int only_known, size_t *unmatched,
                        sl_json_errors *errs);

/* ---- traces -------------------------------------------------------------------------------- */

typedef struct cli_graph_trace_stats {
    size_t traces, spans;
    size_t unresolved_calls; /* client spans with neither a server child nor peer.service */
    size_t unresolved_links; /* consumer spans whose producer is not among the traces */
} cli_graph_trace_stats;

/*
 * Adds what the traces show: `traces` is a JSON array of trace objects as the receiver's
 * GET /api/traces/{trace_id} answers them, {"trace_id", "spans": [{"span_id",
 * "parent_span_id", "service", "name", "kind", "attributes", "links": [{"trace_id",
 * "span_id"}], ...}]} (other members are ignored). A client span of A whose child is a server
 * span of B (or, without one, whose attribute peer.service is B) is a call A -> B; a consumer
 * span of B whose parent or a link is a producer span of A, or any span of another service A
 * (the context the event was written in), in any of the traces, is a delivery A -> B. Each server
 * or consumer span (or root span) is one request whose callees are those of the client spans under
 * it (through internal spans). Limits: CLI_GRAPH_TRACES_MAX traces, CLI_GRAPH_SPANS_MAX spans, ids
 * of CLI_GRAPH_ID_MAX - 1 bytes, CLI_GRAPH_LINKS_MAX links per span. Errors name the field
 * ("[2].spans[7].kind") in `errs`. Returns 0 (with *stats, may be NULL), SL_EINVAL (invalid
 * document; nothing added), SL_ELIMIT or SL_ENOMEM.
 */
int cli_graph_load_traces(cli_graph *g, const json_t *traces, cli_graph_trace_stats *stats,
                          sl_json_errors *errs);

/* ---- checks and output --------------------------------------------------------------------- */

typedef struct cli_graph_rules {
    int max_hops;      /* the longest synchronous path from the entry, in hops */
    int max_fanout;    /* distinct services one request may call */
    const char *entry; /* where requests enter: "gateway" */
} cli_graph_rules;

/* Sets the defaults: 3 hops, a fan-out of 4, entry "gateway". */
void cli_graph_rules_init(cli_graph_rules *r);

typedef enum cli_rule {
    CLI_RULE_CYCLE,  /* synchronous calls form a cycle */
    CLI_RULE_HOPS,   /* a request path longer than max_hops */
    CLI_RULE_FANOUT, /* a request calls more than max_fanout services */
    CLI_RULE_SHARED_DB,
} cli_rule;

#define CLI_GRAPH_VIOLATION_MAX 512

typedef struct cli_violation {
    cli_rule rule;
    char text[CLI_GRAPH_VIOLATION_MAX]; /* "cycle: order -> inventory -> order" */
} cli_violation;

/*
 * Checks the rules; writes up to `cap` violations (the total goes to *n, which may exceed
 * cap), in a fixed order: cycles, paths, fan-out, shared databases:
 *   cycle: a -> b -> a                      (each cycle once, from its first name in order)
 *   path of 4 hops: gateway -> a -> b -> c -> d     (the longest path from each entry)
 *   fan-out of 5: gateway (route x) -> a, b, c, d, e
 *   shared database: a, b use sqlite:data/x.db
 * A path starts at the entry service; when the graph has no such service, at every service
 * that no service calls synchronously. On a cycle the path is measured without the edge
 * that closes it. Returns 0.
 */
int cli_graph_check(const cli_graph *g, const cli_graph_rules *r, cli_violation *out, size_t cap,
                    size_t *n);

/*
 * The graph as text (services, edges with kind and counts, the largest fan-out per service,
 * databases, the longest path) or Graphviz dot (synchronous edges solid, asynchronous
 * dashed; edges on a cycle or on a too-long path red). Returns 0 with *out (returns owned,
 * free with free()) or SL_ENOMEM.
 */
int cli_graph_text(const cli_graph *g, const cli_graph_rules *r, char **out);
int cli_graph_dot(const cli_graph *g, const cli_graph_rules *r, char **out);

/* ---- the subcommand (graph.c) ------------------------------------------------------------- */

/* `shoal graph`: argv holds the arguments after the subcommand. Returns the exit status: 0
 * the rules hold, 1 a violation (each printed on stderr), 2 an error. */
int cli_graph_main(int argc, char **argv);

#endif
