/*
 * The sidecar's authorization policy (policy.c): which caller service may
 * call which routes of the service behind the sidecar. Pure: it parses the
 * `sidecar.allow` list of the configuration (a JSON tree) and decides one
 * call (caller identity × route class × method × path); the sidecar
 * (sidecar.c) does the I/O around it.
 *
 * A route's class comes from its path alone: `admin` (/admin and below),
 * `ops` (/healthz, /readyz, /metrics) and `public` (everything else). A call
 * is allowed when one rule names its caller (or "*": any mesh identity), its
 * class, its method (or any) and a path prefix it is under (or any). No rule,
 * no call.
 */
#ifndef SHOAL_PROXY_POLICY_H
#define SHOAL_PROXY_POLICY_H

#include <shoal/http_types.h>
#include <shoal/json.h>
#include <shoal/tls.h>

#include <stdbool.h>
#include <stddef.h>

#define PX_POLICY_RULES_MAX 64
#define PX_POLICY_PATHS_MAX 16
#define PX_POLICY_PATH_MAX  256
#define PX_POLICY_ERR_MAX   256

/* Route classes, as a bit mask in a rule. */
#define PX_CLASS_PUBLIC 1u
#define PX_CLASS_ADMIN  2u
#define PX_CLASS_OPS    4u

typedef struct px_policy_rule {
    char caller[SL_TLS_NAME_MAX + 1]; /* a service name, or "*" */
    unsigned classes;                 /* PX_CLASS_* bits, never 0 */
    unsigned methods;                 /* (1u << sl_http_method) bits; 0 = any */
    char *paths[PX_POLICY_PATHS_MAX]; /* owned prefixes ("/products"); none = any */
    size_t npaths;
} px_policy_rule;

typedef struct px_policy {
    px_policy_rule rules[PX_POLICY_RULES_MAX];
    size_t n;
} px_policy;

/* Why px_policy_decide refused (or PX_POLICY_ALLOW). */
typedef enum px_policy_verdict {
    PX_POLICY_ALLOW = 0,
    PX_POLICY_NO_IDENTITY, /* the caller has no mesh identity (a plain connection) */
    PX_POLICY_BAD_PATH,    /* a path whose class cannot be told: dot segments, encoded '/' or '.' */
    PX_POLICY_NO_RULE,     /* no rule allows this caller this call */
} px_policy_verdict;

/*
 * Parses `allow` (borrowed; a JSON array of rule objects, or NULL: no rule)
 * into `out`. Each rule: `caller` (required: a service name of the identity
 * alphabet, or "*"), `routes` (required, non-empty: "public", "admin",
 * "ops"), `methods` (optional: method tokens), `paths` (optional: prefixes
 * starting with '/'). Unknown members are errors. Returns 0, or SL_ECONFIG
 * with one message naming the member ("allow[2].routes: ...") in `err`
 * (PX_POLICY_ERR_MAX bytes); SL_ELIMIT beyond the maxima above; SL_ENOMEM.
 * On failure `out` holds nothing to free.
 */
int px_policy_parse(const json_t *allow, px_policy *out, char *err) SL_MUST_CHECK;

/* Frees the strings `p` owns (a zeroed or parsed policy). */
void px_policy_free(px_policy *p);

/* The class of `path` (no query), or 0 when it has dot or empty segments, a cut escape or an
 * encoded '/', '.', '\'. */
unsigned px_policy_class(sl_slice path);

/*
 * Decides one call: `caller` (NULL: no identity) calling `method` on `path`
 * (no query). Returns PX_POLICY_ALLOW or the reason of the refusal.
 */
px_policy_verdict px_policy_decide(const px_policy *p, const char *caller, sl_http_method method,
                                   sl_slice path);

/* The label of `v` ("no_rule"...), static storage. */
const char *px_policy_verdict_name(px_policy_verdict v);

#endif
