/*
 * The audit join (audit.h; docs/gateway.md, "Audit"). Knows no service by
 * name: the parts and the cross checks come from configuration.
 */
#include "audit.h"

#include <shoal/audit.h>
#include <shoal/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add(json_t *out, json_t *check, int *all_ok)
{
    if (!check) return SL_ENOMEM;
    *all_ok &= json_is_true(json_object_get(check, "ok"));
    return json_array_append_new(out, check) == 0 ? 0 : SL_ENOMEM;
}

/* Why part `name` has no answer: its warning's reason, or "no answer". */
static const char *reason_of(const json_t *doc, const char *name)
{
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(doc, "warnings"), i, w)
    {
        const char *part = json_string_value(json_object_get(w, "part"));
        const char *why = json_string_value(json_object_get(w, "reason"));
        if (part && why && strcmp(part, name) == 0) return why;
    }
    return "no answer";
}

/* Copies the checks of one part's answer, prefixed; a malformed answer is one failed check. */
static int join_part(json_t *out, const char *part, const json_t *answer, const json_t *doc,
                     int *all_ok)
{
    char name[160];
    snprintf(name, sizeof name, "%s.audit", part);
    if (json_is_null(answer) || !answer)
        return add(out,
                   sl_audit_check_new(name, false, NULL, "the service did not answer: %s",
                                      reason_of(doc, part)),
                   all_ok);
    const json_t *checks = json_object_get(answer, "checks");
    if (!json_is_array(checks))
        return add(out, sl_audit_check_new(name, false, NULL, "the answer has no checks"), all_ok);
    if (json_array_size(checks) > PX_AUDIT_CHECKS_MAX)
        return add(out,
                   sl_audit_check_new(name, false,
                                      json_integer((json_int_t)json_array_size(checks)),
                                      "more than %d checks", PX_AUDIT_CHECKS_MAX),
                   all_ok);
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c)
    {
        const char *cn = json_string_value(json_object_get(c, "name"));
        const json_t *ok = json_object_get(c, "ok");
        const char *detail = json_string_value(json_object_get(c, "detail"));
        int rc;
        if (!cn || strlen(cn) > 63 || !json_is_boolean(ok)) {
            rc = add(out,
                     sl_audit_check_new(name, false, NULL,
                                        "check %zu is malformed (needs a name "
                                        "of at most 63 bytes and a boolean ok)",
                                        i),
                     all_ok);
        } else {
            char full[160];
            snprintf(full, sizeof full, "%s.%s", part, cn);
            json_t *v = json_object_get(c, "value");
            rc = add(out,
                     sl_audit_check_new(full, json_is_true(ok), v ? json_deep_copy(v) : NULL, "%s",
                                        detail ? detail : ""),
                     all_ok);
        }
        if (rc != 0) return rc;
    }
    return 0;
}

static const json_t *find_check(const json_t *checks, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c)
    {
        const char *cn = json_string_value(json_object_get(c, "name"));
        if (cn && strcmp(cn, name) == 0) return c;
    }
    return NULL;
}

/* Short JSON text of `v` for a detail (cut at cap). */
static void brief(const json_t *v, char *buf, size_t cap)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
    snprintf(buf, cap, "%s", s ? s : "null");
    free(s);
}

static int cross_check(json_t *out, const px_audit_cross *x, int *all_ok)
{
    const json_t *a = find_check(out, x->equal[0]), *b = find_check(out, x->equal[1]);
    if (!a || !b)
        return add(out,
                   sl_audit_check_new(x->name, false, NULL, "%s is missing",
                                      !a ? x->equal[0] : x->equal[1]),
                   all_ok);
    const json_t *va = json_object_get(a, "value"), *vb = json_object_get(b, "value");
    if (va && vb && !json_is_null(va) && json_equal(va, vb))
        return add(out,
                   sl_audit_check_new(x->name, true, json_deep_copy(va), "%s equals %s",
                                      x->equal[0], x->equal[1]),
                   all_ok);
    char sa[200], sb[200];
    brief(va, sa, sizeof sa);
    brief(vb, sb, sizeof sb);
    return add(out,
               sl_audit_check_new(x->name, false,
                                  json_pack("{s:O?,s:O?}", x->equal[0], va, x->equal[1], vb),
                                  "%s %s != %s %s", x->equal[0], sa, x->equal[1], sb),
               all_ok);
}

json_t *px_audit_join(const px_aggregate_cfg *a, const px_audit_cfg *au, const json_t *doc)
{
    SL_ASSERT(a && au && doc);
    json_t *checks = json_array();
    if (!checks) return NULL;
    int all_ok = 1, rc = 0;
    for (size_t i = 0; rc == 0 && i < a->nparts; i++) {
        const px_part_cfg *p = &a->parts[i];
        if (p->target) continue;
        rc = join_part(checks, p->name, json_object_get(doc, p->name), doc, &all_ok);
    }
    for (size_t i = 0; rc == 0 && i < au->ncross; i++)
        rc = cross_check(checks, &au->cross[i], &all_ok);
    if (rc != 0) {
        json_decref(checks);
        return NULL;
    }
    return json_pack("{s:b,s:o}", "ok", all_ok, "checks", checks);
}
