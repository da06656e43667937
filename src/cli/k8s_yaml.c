/*
 * A JSON tree as block-style YAML (k8s.h): what `shoal deploy k8s` writes its manifests with.
 * Mappings keep their insertion order, so the same tree always gives the same bytes (the
 * drift check compares files byte for byte). Strings that a YAML reader could take for
 * something else (numbers, booleans, null, anything with punctuation) are written as JSON
 * double-quoted strings, which YAML reads back unchanged; strings with line breaks become
 * literal blocks (`|`), which is how configuration files sit inside ConfigMaps.
 */
#include "k8s.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define YAML_DEPTH_MAX 64 /* the trees are built by k8s.c or read by the bounded config loader */

typedef struct ybuf {
    char *p;
    size_t len, cap;
    int failed;
} ybuf;

static void put(ybuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(ybuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void pad(ybuf *b, int n)
{
    for (int i = 0; i < n; i++)
        put(b, " ", 1);
}

/* Whether `s` reads back as the same string when written without quotes. */
static int plain_ok(const char *s)
{
    static const char *const words[] = {"true", "false", "yes", "no", "on",
                                        "off",  "null",  "y",   "n",  NULL};
    if (!s[0]) return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '/' ||
          s[0] == '_'))
        return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '.' || *c == '/' || *c == '-'))
            return 0;
    for (size_t i = 0; words[i]; i++)
        if (strcasecmp(s, words[i]) == 0) return 0;
    return 1;
}

static void scalar(ybuf *b, const json_t *v)
{
    char num[64];
    if (json_is_string(v) && plain_ok(json_string_value(v))) {
        puts_(b, json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        puts_(b, num);
    } else {
        /* A JSON scalar (quoted string, real, boolean, null) is also a YAML one. */
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        if (!s) {
            b->failed = 1;
            return;
        }
        puts_(b, s);
        free(s);
    }
}

/* Whether `s` has line breaks and reads back unchanged from a literal block: no leading space
 * (it would need an indentation indicator) and at most one final line break (clipped). */
static int literal_ok(const char *s)
{
    size_t n = strlen(s);
    if (!strchr(s, '\n') || s[0] == ' ' || s[0] == '\n') return 0;
    if (n >= 2 && s[n - 1] == '\n' && s[n - 2] == '\n') return 0;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 && *c != '\n') return 0;
    return 1;
}

/* A string with line breaks as a literal block under a key at `indent`. */
static void literal(ybuf *b, const char *s, int indent)
{
    size_t n = strlen(s);
    puts_(b, n && s[n - 1] == '\n' ? " |\n" : " |-\n");
    const char *line = s;
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len) {
            pad(b, indent + 2);
            put(b, line, len);
        }
        put(b, "\n", 1);
        if (!nl) break;
        line = nl + 1;
    }
}

static void map(ybuf *b, const json_t *v, int indent, int inline_first, int depth);
static void seq(ybuf *b, const json_t *v, int indent, int depth);

/* The value of a key (or of a scalar sequence item) after its ':' or '-'. */
static void value(ybuf *b, const json_t *v, int indent, int depth)
{
    if (depth > YAML_DEPTH_MAX) {
        b->failed = 1;
        return;
    }
    if (json_is_object(v) && json_object_size(v) > 0) {
        puts_(b, "\n");
        map(b, v, indent + 2, 0, depth + 1);
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        puts_(b, "\n");
        seq(b, v, indent + 2, depth + 1);
    } else if (json_is_object(v)) {
        puts_(b, " {}\n");
    } else if (json_is_array(v)) {
        puts_(b, " []\n");
    } else if (json_is_string(v) && literal_ok(json_string_value(v))) {
        literal(b, json_string_value(v), indent);
    } else {
        puts_(b, " ");
        scalar(b, v);
        puts_(b, "\n");
    }
}

static void map(ybuf *b, const json_t *v, int indent, int inline_first, int depth)
{
    const char *k;
    json_t *item;
    int first = 1;
    json_object_foreach((json_t *)v, k, item)
    {
        if (!(first && inline_first)) pad(b, indent);
        first = 0;
        json_t *key = json_string(k);
        if (!key) {
            b->failed = 1;
            return;
        }
        scalar(b, key);
        json_decref(key);
        puts_(b, ":");
        value(b, item, indent, depth);
    }
}

static void seq(ybuf *b, const json_t *v, int indent, int depth)
{
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        pad(b, indent);
        puts_(b, "-");
        if (json_is_object(item) && json_object_size(item) > 0) {
            puts_(b, " ");
            map(b, item, indent + 2, 1, depth + 1);
        } else {
            value(b, item, indent, depth + 1);
        }
    }
}

int cli_k8s_yaml(const json_t *docs, char **out)
{
    SL_ASSERT(json_is_array(docs) && out != NULL);
    ybuf b = {0};
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        if (i > 0) puts_(&b, "---\n");
        if (json_is_object(doc) && json_object_size(doc) > 0)
            map(&b, doc, 0, 0, 0);
        else
            b.failed = 1;
    }
    if (b.failed || !b.p) {
        free(b.p);
        return SL_ENOMEM;
    }
    *out = b.p;
    return 0;
}
