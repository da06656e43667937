/*
 * Encoding an outbox row's event as the CloudEvents 1.0 structured envelope
 * (JSON text) that the relay publishes as is. The bus reads it back on the
 * consumer's side (bus/envelope_decode.c).
 */
#include "outbox/envelope_encode.h"

#include <shoal/json.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing text buffer for the envelope; `oom` latches an allocation failure. */
typedef struct env_buf {
    char *p;
    size_t len, cap;
    int oom;
} env_buf;

static void env_put(env_buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Appends `,"key":"value"` with the value escaped as JSON (RFC 8259: quote, backslash and
 * control characters). Returns SL_EINVAL for a value that is not valid UTF-8. */
static int env_member(env_buf *b, const char *key, const char *v, int first)
{
    /* Plain printable ASCII, the usual value, needs neither check nor escape. */
    size_t n = 0;
    int plain = 1;
    for (unsigned char c; (c = (unsigned char)v[n]) != '\0'; n++)
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') plain = 0;
    if (!plain && !sl_utf8_valid(v, n)) return SL_EINVAL;
    env_put(b, first ? "{\"" : ",\"", 2);
    env_put(b, key, strlen(key));
    env_put(b, "\":\"", 3);
    size_t run = 0;
    for (size_t i = 0; !plain && i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        env_put(b, v + run, i - run);
        char esc[8];
        int k = c == '"'    ? snprintf(esc, sizeof esc, "\\\"")
                : c == '\\' ? snprintf(esc, sizeof esc, "\\\\")
                : c == '\n' ? snprintf(esc, sizeof esc, "\\n")
                : c == '\r' ? snprintf(esc, sizeof esc, "\\r")
                : c == '\t' ? snprintf(esc, sizeof esc, "\\t")
                            : snprintf(esc, sizeof esc, "\\u%04x", c);
        env_put(b, esc, (size_t)k);
        run = i + 1;
    }
    env_put(b, v + run, n - run);
    env_put(b, "\"", 1);
    return 0;
}

#define DATA_MAX_DEPTH (SL_JSON_DEFAULT_MAX_DEPTH - 1)
_Static_assert(SL_JSON_QUICK_MAX_DEPTH <= DATA_MAX_DEPTH, "the quick check proves too deep");

int sl__outbox_envelope_encode(const sl_outbox_event *ev, const char *id, int64_t now_wall_ns,
                               char **out, size_t *out_len)
{
    SL_ASSERT(ev != NULL && ev->source && ev->type && ev->subject && id && out && out_len);
    char time[SL_RFC3339_MAX];
    if (sl_rfc3339_format(now_wall_ns, time, sizeof time) < 0) return SL_EINVAL;
    /* Most data is plain JSON the quick check proves; sl_json_parse judges the rest. Consumers
     * read an envelope under the default depth limit and data sits one level inside it, so
     * data may nest one level less (the quick check proves no deeper than that). */
    if (ev->data_json && !sl_json_quick_valid(ev->data_json, strlen(ev->data_json))) {
        size_t n = strlen(ev->data_json);
        sl_json_limits lim = {
            .max_bytes = n ? n : 1, .max_depth = DATA_MAX_DEPTH, .allow_any_top = true};
        json_t *data = NULL;
        int rc = sl_json_parse(ev->data_json, n, &lim, &data, NULL);
        if (rc == SL_ENOMEM) return rc;
        if (rc) return SL_EINVAL;
        json_decref(data);
    }
    env_buf b = {0};
    int rc = env_member(&b, "specversion", "1.0", 1);
    if (rc == 0) rc = env_member(&b, "id", id, 0);
    if (rc == 0) rc = env_member(&b, "source", ev->source, 0);
    if (rc == 0) rc = env_member(&b, "type", ev->type, 0);
    if (rc == 0) rc = env_member(&b, "subject", ev->subject, 0);
    if (rc == 0) rc = env_member(&b, "time", time, 0);
    if (rc == 0)
        rc = env_member(&b, "datacontenttype",
                        ev->datacontenttype ? ev->datacontenttype : "application/json", 0);
    if (rc == 0 && ev->traceparent) rc = env_member(&b, "traceparent", ev->traceparent, 0);
    if (rc == 0 && ev->data_json) {
        env_put(&b, ",\"data\":", 8);
        env_put(&b, ev->data_json, strlen(ev->data_json));
    }
    env_put(&b, "}", 1);
    if (rc == 0 && b.oom) rc = SL_ENOMEM;
    if (rc != 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *out_len = b.len;
    return 0;
}
