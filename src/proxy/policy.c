/*
 * The sidecar's authorization policy (policy.h): parse the rule list, tell a
 * path's class, decide a call. Pure; no I/O.
 */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SL_TLS_NAME_MAX || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return 1;
}

static int path_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PX_POLICY_PATH_MAX || s[0] != '/') return 0;
    return px_policy_class((sl_slice){s, n}) != 0;
}

static unsigned class_of_name(const char *s)
{
    if (strcmp(s, "public") == 0) return PX_CLASS_PUBLIC;
    if (strcmp(s, "admin") == 0) return PX_CLASS_ADMIN;
    if (strcmp(s, "ops") == 0) return PX_CLASS_OPS;
    return 0;
}

/* Reads a member that must be a non-empty array of at most `max` strings. */
static const json_t *str_array(const json_t *o, const char *key, size_t max, const char **why)
{
    const json_t *a = json_object_get(o, key);
    if (!a) return NULL;
    if (!json_is_array(a) || json_array_size(a) == 0) {
        *why = "must be a non-empty list";
        return NULL;
    }
    if (json_array_size(a) > max) {
        *why = "has too many entries";
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_string(json_array_get(a, i))) {
            *why = "must hold strings";
            return NULL;
        }
    return a;
}

/* Parses rule `i` into r. Returns 0 or an SL_E code with err set. */
static int parse_rule(const json_t *o, size_t i, px_policy_rule *r, char *err)
{
    const char *why = NULL, *member = "";
    const char *k;
    json_t *v;
    if (!json_is_object(o)) {
        snprintf(err, PX_POLICY_ERR_MAX, "allow[%zu]: must be an object", i);
        return SL_ECONFIG;
    }
    json_object_foreach((json_t *)o, k, v)
    {
        if (strcmp(k, "caller") && strcmp(k, "routes") && strcmp(k, "methods") &&
            strcmp(k, "paths")) {
            snprintf(err, PX_POLICY_ERR_MAX, "allow[%zu]: unknown member '%.64s'", i, k);
            return SL_ECONFIG;
        }
    }
    const json_t *caller = json_object_get(o, "caller");
    member = "caller";
    if (!json_is_string(caller) ||
        (strcmp(json_string_value(caller), "*") != 0 && !name_ok(json_string_value(caller)))) {
        why = "must be a service name (a-z, 0-9, '-'; at most 63) or \"*\"";
        goto bad;
    }
    snprintf(r->caller, sizeof r->caller, "%s", json_string_value(caller));
    member = "routes";
    const json_t *routes = str_array(o, "routes", 3, &why);
    if (!routes) {
        if (!why) why = "is required (public, admin, ops)";
        goto bad;
    }
    for (size_t k2 = 0; k2 < json_array_size(routes); k2++) {
        unsigned c = class_of_name(json_string_value(json_array_get(routes, k2)));
        if (!c) {
            why = "must name public, admin or ops";
            goto bad;
        }
        r->classes |= c;
    }
    member = "methods";
    const json_t *methods = str_array(o, "methods", 16, &why);
    if (why) goto bad;
    for (size_t k2 = 0; methods && k2 < json_array_size(methods); k2++) {
        const char *s = json_string_value(json_array_get(methods, k2));
        sl_http_method m = sl_http_method_parse((sl_slice){s, strlen(s)});
        if (m == SL_HTTP_OTHER) {
            why = "must hold method tokens (GET, POST, ...)";
            goto bad;
        }
        r->methods |= 1u << m;
    }
    member = "paths";
    const json_t *paths = str_array(o, "paths", PX_POLICY_PATHS_MAX, &why);
    if (why) goto bad;
    for (size_t k2 = 0; paths && k2 < json_array_size(paths); k2++) {
        const char *s = json_string_value(json_array_get(paths, k2));
        if (!path_ok(s)) {
            why = "must hold paths starting with '/', without dot segments (at most 256 bytes)";
            goto bad;
        }
        if (!(r->paths[r->npaths] = strdup(s))) return SL_ENOMEM;
        r->npaths++;
    }
    return 0;
bad:
    snprintf(err, PX_POLICY_ERR_MAX, "allow[%zu].%s: %s", i, member, why);
    return SL_ECONFIG;
}

int px_policy_parse(const json_t *allow, px_policy *out, char *err)
{
    SL_ASSERT(out && err);
    memset(out, 0, sizeof *out);
    if (!allow || json_is_null(allow)) return 0;
    if (!json_is_array(allow)) {
        snprintf(err, PX_POLICY_ERR_MAX, "allow: must be a list of rules");
        return SL_ECONFIG;
    }
    if (json_array_size(allow) > PX_POLICY_RULES_MAX) {
        snprintf(err, PX_POLICY_ERR_MAX, "allow: at most %d rules", PX_POLICY_RULES_MAX);
        return SL_ELIMIT;
    }
    for (size_t i = 0; i < json_array_size(allow); i++) {
        int rc = parse_rule(json_array_get(allow, i), i, &out->rules[i], err);
        out->n = i + 1; /* the rule may own paths already */
        if (rc != 0) {
            if (rc == SL_ENOMEM) snprintf(err, PX_POLICY_ERR_MAX, "out of memory");
            px_policy_free(out);
            return rc;
        }
    }
    return 0;
}

void px_policy_free(px_policy *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++)
        for (size_t k = 0; k < p->rules[i].npaths; k++)
            free(p->rules[i].paths[k]);
    memset(p, 0, sizeof *p);
}

/* 1 when path is `prefix` or below it ("/a" covers "/a" and "/a/b", not "/ab"). */
static int under(sl_slice path, const char *prefix, size_t plen)
{
    if (plen > 0 && prefix[plen - 1] == '/') plen--;
    if (path.len < plen || memcmp(path.ptr, prefix, plen) != 0) return 0;
    return path.len == plen || path.ptr[plen] == '/';
}

unsigned px_policy_class(sl_slice path)
{
    if (path.len == 0 || path.ptr[0] != '/') return 0;
    /* The service's router may decode or normalise what the policy saw: a dot segment, an empty
     * one or an encoded '/', '.' or '\' could turn "/x/../admin" or "//admin" into an admin
     * route after the check. */
    size_t seg = 1;
    for (size_t i = 1; i <= path.len; i++) {
        if (i == path.len || path.ptr[i] == '/') {
            size_t n = i - seg;
            if ((n == 0 && i < path.len) || (n == 1 && path.ptr[seg] == '.') ||
                (n == 2 && path.ptr[seg] == '.' && path.ptr[seg + 1] == '.'))
                return 0;
            seg = i + 1;
            continue;
        }
        char c = path.ptr[i];
        if (c == '\\' || c == '\0') return 0;
        if (c == '%') {
            if (i + 2 >= path.len) return 0; /* a cut escape: let nothing guess */
            char e[3] = {path.ptr[i + 1], path.ptr[i + 2], '\0'};
            if (strcasecmp(e, "2f") == 0 || strcasecmp(e, "2e") == 0 || strcasecmp(e, "5c") == 0)
                return 0;
        }
    }
    if (under(path, "/admin", 6)) return PX_CLASS_ADMIN;
    if (sl_slice_eq(path, "/healthz") || sl_slice_eq(path, "/readyz") ||
        sl_slice_eq(path, "/metrics"))
        return PX_CLASS_OPS;
    return PX_CLASS_PUBLIC;
}

static int rule_allows(const px_policy_rule *r, const char *caller, unsigned cls,
                       sl_http_method method, sl_slice path)
{
    if (strcmp(r->caller, "*") != 0 && strcmp(r->caller, caller) != 0) return 0;
    if (!(r->classes & cls)) return 0;
    if (r->methods && (method == SL_HTTP_OTHER || !(r->methods & (1u << method)))) return 0;
    if (r->npaths == 0) return 1;
    for (size_t i = 0; i < r->npaths; i++)
        if (under(path, r->paths[i], strlen(r->paths[i]))) return 1;
    return 0;
}

px_policy_verdict px_policy_decide(const px_policy *p, const char *caller, sl_http_method method,
                                   sl_slice path)
{
    SL_ASSERT(p);
    if (!caller || !caller[0]) return PX_POLICY_NO_IDENTITY;
    unsigned cls = px_policy_class(path);
    if (!cls) return PX_POLICY_BAD_PATH;
    for (size_t i = 0; i < p->n; i++)
        if (rule_allows(&p->rules[i], caller, cls, method, path)) return PX_POLICY_ALLOW;
    return PX_POLICY_NO_RULE;
}

const char *px_policy_verdict_name(px_policy_verdict v)
{
    switch (v) {
    case PX_POLICY_ALLOW:
        return "allow";
    case PX_POLICY_NO_IDENTITY:
        return "no_identity";
    case PX_POLICY_BAD_PATH:
        return "bad_path";
    case PX_POLICY_NO_RULE:
        return "no_rule";
    }
    return "unknown";
}
