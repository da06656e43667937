/*
 * libFuzzer target for the trace receiver's OTLP JSON decoder (src/traces/otlp_json.c): the
 * bodies of POST /v1/traces. Besides memory safety, every accepted batch must respect the
 * receiver's bounds: at most TRACES_SPANS_MAX spans, ids of the right length in lowercase hex,
 * end not before start, bounded strings, attributes and links.
 */
#include "traces.h"

#include <shoal/json.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lower_hex(const char *s, size_t n)
{
    if (strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *root = NULL;
    if (sl_json_parse((const char *)data, size, NULL, &root, NULL) != 0) return 0;
    traces_batch b = {0};
    char field[TRACES_FIELD_MAX], msg[TRACES_MSG_MAX];
    int rc = traces_decode(root, &b, field, msg);
    json_decref(root);
    if (rc == 0) {
        if (b.n > TRACES_SPANS_MAX) abort();
        for (size_t i = 0; i < b.n; i++) {
            const traces_span *s = &b.spans[i];
            if (!lower_hex(s->trace_id, 32) || !lower_hex(s->span_id, 16) ||
                (s->parent_span_id[0] && !lower_hex(s->parent_span_id, 16)))
                abort();
            if (s->end_ns < s->start_ns || s->kind < 0 || s->kind > 5 || s->status < 0 ||
                s->status > 2)
                abort();
            if (strlen(s->name) > TRACES_NAME_MAX || strlen(s->service) > TRACES_SERVICE_MAX ||
                strlen(s->status_message) > TRACES_STATUS_MSG_MAX)
                abort();
            if (json_object_size(s->attributes) > TRACES_ATTRS_MAX ||
                json_array_size(s->links) > TRACES_LINKS_MAX)
                abort();
        }
    } else if (rc != SL_EINVAL && rc != SL_ELIMIT && rc != SL_ENOMEM) {
        abort();
    } else if (rc != SL_ENOMEM && (field[0] == '\0' && msg[0] == '\0')) {
        abort(); /* a refusal always says what is wrong */
    }
    traces_batch_free(&b);
    return 0;
}
