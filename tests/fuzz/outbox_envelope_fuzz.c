/*
 * libFuzzer target for the outbox's CloudEvents envelope writer: the input
 * is split at NUL bytes into subject, type, source, traceparent and data.
 * Whenever the writer accepts them, the envelope must parse with the
 * consumers' parser and give back every attribute byte for byte, and the
 * data as the same JSON value.
 */
#include "outbox/envelope_encode.h"

#include <shoal/json.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *str_of(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    if (buf == NULL) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *part[5] = {"s", "t", "/src", NULL, NULL};
    char *p = buf, *end = buf + size;
    for (int i = 0; i < 5 && p <= end; i++) {
        part[i] = p;
        p += strlen(p) + 1;
    }
    sl_outbox_event ev = {.source = part[2],
                          .type = part[1],
                          .subject = part[0],
                          .traceparent = part[3],
                          .data_json = part[4]};
    char *env = NULL;
    size_t len = 0;
    if (sl__outbox_envelope_encode(&ev, "id-1", 1795869296000000000, &env, &len) == 0) {
        if (strlen(env) != len) abort();
        json_t *root = NULL;
        if (sl_json_parse(env, len, NULL, &root, NULL) != 0) abort();
        if (strcmp(str_of(root, "subject"), ev.subject) != 0 ||
            strcmp(str_of(root, "type"), ev.type) != 0 ||
            strcmp(str_of(root, "source"), ev.source) != 0 ||
            strcmp(str_of(root, "id"), "id-1") != 0 ||
            (ev.traceparent && strcmp(str_of(root, "traceparent"), ev.traceparent) != 0))
            abort();
        if (ev.data_json) {
            json_t *want = json_loads(ev.data_json, JSON_DECODE_ANY, NULL);
            if (want == NULL || !json_equal(want, json_object_get(root, "data"))) abort();
            json_decref(want);
        }
        json_decref(root);
        free(env);
    }
    free(buf);
    return 0;
}
