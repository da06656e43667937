/*
 * Loads YAML into a jansson tree with libyaml's event API (yaml_parser_parse). The
 * conversion is iterative over an explicit stack of open containers bounded
 * by SL_CONFIG_MAX_DEPTH, records every node's position in the side table,
 * and rejects what a configuration never needs but an attacker could use:
 * aliases, tags, duplicate keys, complex keys, several documents.
 */
#include "config/config_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* An open mapping or sequence. */
typedef struct frame {
    json_t *c;         /* borrowed: owned by its parent, or the root */
    int32_t node;      /* its side-table node */
    bool is_map;       /* mapping (expects key, value, key, ...) or sequence */
    char *key;         /* mapping only: the pending key (owned), NULL when a key is expected */
    size_t key_len;    /* length of `key` */
    size_t next_index; /* sequence only: index of the next element */
} frame;

typedef struct loader {
    sl_config *cfg;
    const char *name;
    char *err;
    frame stack[SL_CONFIG_MAX_DEPTH];
    int top; /* index of the innermost open container, -1 when none */
    int documents;
} loader;

static int fail(loader *L, yaml_mark_t m, int code, const char *fmt, ...) SL_PRINTF(4, 5);

static int fail(loader *L, yaml_mark_t m, int code, const char *fmt, ...)
{
    if (!L->err) return code;
    char msg[SL_CONFIG_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl__config_errf(L->err, "%s:%zu:%zu: %s", L->name, m.line + 1, m.column + 1, msg);
    return code;
}

/*
 * Attaches a new value (takes ownership of `v`, even on failure) to the innermost open
 * container under its pending key or next index, or makes it the root. Returns its node.
 */
static int attach(loader *L, json_t *v, yaml_mark_t m, int32_t *node)
{
    uint32_t line = (uint32_t)m.line + 1, col = (uint32_t)m.column + 1;
    if (L->top < 0) {
        if (!json_is_object(v)) {
            json_decref(v);
            return fail(L, m, SL_ECONFIG, "the top level must be a mapping");
        }
        L->cfg->root = v;
        *node = sl__config_node_add(L->cfg, -1, NULL, 0, 0, line, col, 0);
        return *node < 0 ? *node : 0;
    }
    frame *f = &L->stack[L->top];
    if (f->is_map) {
        if (json_object_setn_new(f->c, f->key, f->key_len, v) != 0) return SL_ENOMEM;
        *node = sl__config_node_add(L->cfg, f->node, f->key, f->key_len, 0, line, col, 0);
        free(f->key);
        f->key = NULL;
    } else {
        if (json_array_append_new(f->c, v) != 0) return SL_ENOMEM;
        *node = sl__config_node_add(L->cfg, f->node, NULL, 0, f->next_index++, line, col, 0);
    }
    return *node < 0 ? *node : 0;
}

/* A scalar where a mapping expects a key: check it and keep it until its value arrives. */
static int take_key(loader *L, frame *f, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(s, '\0', len) || !sl_utf8_valid(s, len))
        return fail(L, ev->start_mark, SL_ECONFIG, "keys must be valid UTF-8 without NUL");
    if (json_object_getn(f->c, s, len))
        return fail(L, ev->start_mark, SL_ECONFIG, "duplicate key '%.*s'",
                    (int)(len > 100 ? 100 : len), s);
    f->key = malloc(len + 1);
    if (!f->key) return SL_ENOMEM;
    memcpy(f->key, s, len);
    f->key[len] = '\0';
    f->key_len = len;
    return 0;
}

static int on_scalar(loader *L, const yaml_event_t *ev)
{
    if (L->top >= 0 && L->stack[L->top].is_map && !L->stack[L->top].key)
        return take_key(L, &L->stack[L->top], ev);
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *why = NULL;
    json_t *v = NULL;
    int rc = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? sl__config_scalar(s, len, &v, &why)
                                                              : sl__config_string(s, len, &v, &why);
    if (rc == SL_ECONFIG) return fail(L, ev->start_mark, rc, "%s", why);
    if (rc != 0) return rc;
    /* An empty document ("" or "---") is an empty configuration. */
    if (L->top < 0 && json_is_null(v)) v = json_object();
    if (!v) return SL_ENOMEM;
    int32_t node;
    return attach(L, v, ev->start_mark, &node);
}

static int on_start(loader *L, const yaml_event_t *ev, bool is_map)
{
    if (L->top >= 0 && L->stack[L->top].is_map && !L->stack[L->top].key)
        return fail(L, ev->start_mark, SL_ECONFIG, "keys must be scalars");
    if (L->top + 1 >= SL_CONFIG_MAX_DEPTH)
        return fail(L, ev->start_mark, SL_ELIMIT, "nesting deeper than %d levels",
                    SL_CONFIG_MAX_DEPTH);
    json_t *c = is_map ? json_object() : json_array();
    if (!c) return SL_ENOMEM;
    int32_t node;
    int rc = attach(L, c, ev->start_mark, &node);
    if (rc != 0) return rc;
    L->stack[++L->top] = (frame){.c = c, .node = node, .is_map = is_map};
    return 0;
}

/* Rejects anchors and tags on any node: no aliases can refer to them, and no tag is
 * supported, so a configuration has no use for either. */
static int check_props(loader *L, const yaml_event_t *ev)
{
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor, tag = ev->data.scalar.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor, tag = ev->data.mapping_start.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ev->data.sequence_start.anchor, tag = ev->data.sequence_start.tag;
        break;
    default:
        break;
    }
    if (anchor) return fail(L, ev->start_mark, SL_ECONFIG, "anchors are not allowed");
    if (tag) return fail(L, ev->start_mark, SL_ECONFIG, "tags are not allowed");
    return 0;
}

/* Handles one event. Returns 0, 1 at the end of the stream, or a negative SL_E* code. */
static int on_event(loader *L, const yaml_event_t *ev)
{
    int rc = check_props(L, ev);
    if (rc != 0) return rc;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++L->documents > 1)
            return fail(L, ev->start_mark, SL_ECONFIG, "only one YAML document is allowed");
        return 0;
    case YAML_ALIAS_EVENT:
        return fail(L, ev->start_mark, SL_ECONFIG, "aliases are not allowed");
    case YAML_SCALAR_EVENT:
        return on_scalar(L, ev);
    case YAML_MAPPING_START_EVENT:
        return on_start(L, ev, true);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(L, ev, false);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        L->top--; /* libyaml balances start and end events */
        return 0;
    case YAML_STREAM_END_EVENT:
        return 1;
    default:
        return 0;
    }
}

static int syntax_error(loader *L, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) return SL_ENOMEM;
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_READER_ERROR) {
        sl__config_errf(L->err, "%s: %s at byte %zu", L->name, problem, p->problem_offset);
    } else if (p->context) {
        sl__config_errf(L->err, "%s:%zu:%zu: %s (%s at %zu:%zu)", L->name, p->problem_mark.line + 1,
                        p->problem_mark.column + 1, problem, p->context, p->context_mark.line + 1,
                        p->context_mark.column + 1);
    } else {
        sl__config_errf(L->err, "%s:%zu:%zu: %s", L->name, p->problem_mark.line + 1,
                        p->problem_mark.column + 1, problem);
    }
    return SL_EPARSE;
}

static int convert(loader *L, yaml_parser_t *p)
{
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev)) return syntax_error(L, p);
        int rc = on_event(L, &ev);
        yaml_event_delete(&ev);
        if (rc != 0) return rc > 0 ? 0 : rc;
    }
}

int sl_config_load_string(const char *name, const char *text, size_t len, sl_config **out,
                          char *err)
{
    *out = NULL;
    if (err) err[0] = '\0';
    if (len > SL_CONFIG_MAX_BYTES) {
        sl__config_errf(err, "%s: larger than %zu bytes", name, SL_CONFIG_MAX_BYTES);
        return SL_ELIMIT;
    }
    loader L = {.name = name, .err = err, .top = -1};
    L.cfg = sl__config_new(name);
    if (!L.cfg) return SL_ENOMEM;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        sl_config_free(L.cfg);
        return SL_ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = convert(&L, &p);
    yaml_parser_delete(&p);
    for (int i = 0; i <= L.top; i++)
        free(L.stack[i].key);
    if (rc == 0 && !L.cfg->root) {
        /* A stream without any document: an empty configuration. */
        L.cfg->root = json_object();
        if (!L.cfg->root || sl__config_node_add(L.cfg, -1, NULL, 0, 0, 1, 1, 0) < 0) rc = SL_ENOMEM;
    }
    if (rc != 0) {
        if (rc == SL_ENOMEM) sl__config_errf(err, "%s: out of memory", name);
        sl_config_free(L.cfg);
        return rc;
    }
    *out = L.cfg;
    return 0;
}

int sl_config_load_file(const char *path, sl_config **out, char *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        sl__config_errf(err, "%s: cannot open: %s", path, strerror(errno));
        return SL_EIO;
    }
    /* Read one byte past the limit to tell "exactly the limit" from "too large". */
    char *buf = malloc(SL_CONFIG_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return SL_ENOMEM;
    }
    size_t len = fread(buf, 1, SL_CONFIG_MAX_BYTES + 1, f);
    int rc = ferror(f) ? SL_EIO : 0;
    fclose(f);
    if (rc != 0)
        sl__config_errf(err, "%s: read error", path);
    else
        rc = sl_config_load_string(path, buf, len, out, err);
    free(buf);
    return rc;
}
