/*
 * JSON codec of a saga instance's state (the `state` column of
 * saga_instances, and the "serialised copy" of the simulation test). Reading
 * treats the text as outside input: every field is type- and range-checked
 * against the definition, nothing is asserted. Pure (jansson only).
 */
#include "saga/saga_int.h"

#include <shoal/json.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends the escaped `s` (sl_json_escape: the bytes jansson writes for sanitised UTF-8). */
static void put_text(char *buf, size_t cap, size_t *pos, const char *s)
{
    size_t need = sl_json_escape(s, strlen(s), buf + *pos, cap - *pos);
    *pos += need < cap - *pos ? need : cap - *pos - 1;
}

/*
 * Written directly: the state is saved at every event of every saga, and building it through
 * json_pack and json_dumps cost about as much as the rest of the save. The text is the same,
 * byte for byte, as jansson's compact dump of the object with these keys in this order (the
 * unit test checks it); reasons are sanitised UTF-8 (sl__saga_text_copy).
 */
int sl_saga_state_to_json(const sl_saga_state *st, char **out)
{
    *out = NULL;
    uint32_t n = st->n_steps <= SL_SAGA_STEPS_MAX ? st->n_steps : SL_SAGA_STEPS_MAX;
    size_t cap = 512 + (size_t)n * 16 + sl_json_escape(st->reason, strlen(st->reason), NULL, 0) +
                 sl_json_escape(st->stuck_reason, strlen(st->stuck_reason), NULL, 0);
    char *buf = malloc(cap);
    if (buf == NULL) return SL_ENOMEM;
    const char *phase = sl__saga_phase_name(st->phase) ? sl__saga_phase_name(st->phase) : "none";
    int k = snprintf(buf, cap,
                     "{\"status\":\"%s\",\"stuck_from\":\"%s\",\"step\":%" PRIu32
                     ",\"call\":\"%s\",\"phase\":\"%s\",\"attempt\":%" PRIu32
                     ",\"bound_base\":%" PRIu32 ",\"first_attempt_ms\":%" PRId64
                     ",\"wake_at_ms\":%" PRId64 ",\"prev_delay_ms\":%" PRId64 ",\"steps\":[",
                     sl_saga_status_name(st->status), sl_saga_status_name(st->stuck_from), st->step,
                     sl_saga_call_name(st->call), phase, st->attempt, st->bound_base,
                     st->first_attempt_ms, st->wake_at_ms, st->prev_delay_ms);
    if (k < 0 || (size_t)k >= cap) {
        free(buf);
        return SL_ENOMEM;
    }
    size_t pos = (size_t)k;
    for (uint32_t i = 0; i < n; i++) {
        const char *name = sl_saga_step_status_name((sl_saga_step_status)st->step_status[i]);
        k = snprintf(buf + pos, cap - pos, "%s\"%s\"", i ? "," : "", name);
        if (k < 0 || (size_t)k >= cap - pos) {
            free(buf);
            return SL_ENOMEM;
        }
        pos += (size_t)k;
    }
    k = snprintf(buf + pos, cap - pos,
                 "],\"attempts_total\":%" PRIu32 ",\"history_seq\":%" PRIu32 ",\"reason\":\"",
                 st->attempts_total, st->history_seq);
    if (k < 0 || (size_t)k >= cap - pos) {
        free(buf);
        return SL_ENOMEM;
    }
    pos += (size_t)k;
    put_text(buf, cap, &pos, st->reason);
    k = snprintf(buf + pos, cap - pos, "\",\"stuck_reason\":\"");
    pos += k > 0 ? (size_t)k : 0;
    put_text(buf, cap, &pos, st->stuck_reason);
    if (st->deadline_at_ms > 0)
        k = snprintf(buf + pos, cap - pos, "\",\"deadline_at_ms\":%" PRId64 "}",
                     st->deadline_at_ms);
    else
        k = snprintf(buf + pos, cap - pos, "\"}");
    if (k < 0 || (size_t)k >= cap - pos) {
        free(buf);
        return SL_ENOMEM;
    }
    *out = buf;
    return 0;
}

/* Reads an integer member within [lo, hi]. */
static int get_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x)) return SL_EPARSE;
    json_int_t i = json_integer_value(x);
    if (i < lo || i > hi) return SL_EPARSE;
    *v = (int64_t)i;
    return 0;
}

static const char *get_str(json_t *o, const char *key)
{
    json_t *x = json_object_get(o, key);
    return json_is_string(x) ? json_string_value(x) : NULL;
}

static int read_enums(json_t *o, sl_saga_state *st)
{
    const char *call = get_str(o, "call");
    if (call == NULL) return SL_EPARSE;
    if (strcmp(call, "action") == 0)
        st->call = SL_SAGA_ACTION;
    else if (strcmp(call, "compensation") == 0)
        st->call = SL_SAGA_COMPENSATION;
    else
        return SL_EPARSE;
    if (sl_saga_status_parse(get_str(o, "status"), &st->status) != 0) return SL_EPARSE;
    if (sl_saga_status_parse(get_str(o, "stuck_from"), &st->stuck_from) != 0) return SL_EPARSE;
    if (st->stuck_from != SL_SAGA_RUNNING && st->stuck_from != SL_SAGA_COMPENSATING)
        return SL_EPARSE;
    if (sl__saga_phase_parse(get_str(o, "phase"), &st->phase) != 0) return SL_EPARSE;
    return 0;
}

static int read_text(json_t *o, const char *key, char *dst, size_t cap)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_string(x)) return SL_EPARSE;
    sl__saga_text_copy(dst, cap, json_string_value(x), json_string_length(x));
    return 0;
}

static int read_state(json_t *o, sl_saga_state *st, const sl_saga_def *def)
{
    int64_t v;
    if (read_enums(o, st) != 0) return SL_EPARSE;
    if (get_int(o, "step", 0, (int64_t)def->n_steps - 1, &v) != 0) return SL_EPARSE;
    st->step = (uint32_t)v;
    if (get_int(o, "attempt", 0, UINT32_MAX, &v) != 0) return SL_EPARSE;
    st->attempt = (uint32_t)v;
    if (get_int(o, "bound_base", 0, st->attempt, &v) != 0) return SL_EPARSE;
    st->bound_base = (uint32_t)v;
    if (get_int(o, "first_attempt_ms", 0, INT64_MAX / 4, &st->first_attempt_ms) != 0)
        return SL_EPARSE;
    if (get_int(o, "wake_at_ms", 0, INT64_MAX / 4, &st->wake_at_ms) != 0) return SL_EPARSE;
    /* Optional: states written before deadlines existed have none. */
    if (json_object_get(o, "deadline_at_ms") != NULL &&
        get_int(o, "deadline_at_ms", 0, INT64_MAX / 4, &st->deadline_at_ms) != 0)
        return SL_EPARSE;
    if (get_int(o, "prev_delay_ms", 0, SL_RETRY_LIMIT_CAP_MS, &st->prev_delay_ms) != 0)
        return SL_EPARSE;
    if (get_int(o, "attempts_total", 0, UINT32_MAX, &v) != 0) return SL_EPARSE;
    st->attempts_total = (uint32_t)v;
    if (get_int(o, "history_seq", 0, UINT32_MAX, &v) != 0) return SL_EPARSE;
    st->history_seq = (uint32_t)v;
    json_t *steps = json_object_get(o, "steps");
    if (!json_is_array(steps) || json_array_size(steps) != def->n_steps) return SL_EPARSE;
    for (size_t i = 0; i < def->n_steps; i++) {
        json_t *x = json_array_get(steps, i);
        sl_saga_step_status ss;
        if (!json_is_string(x) || sl__saga_step_status_parse(json_string_value(x), &ss) != 0)
            return SL_EPARSE;
        st->step_status[i] = (uint8_t)ss;
    }
    st->n_steps = (uint32_t)def->n_steps;
    if (read_text(o, "reason", st->reason, sizeof st->reason) != 0) return SL_EPARSE;
    if (read_text(o, "stuck_reason", st->stuck_reason, sizeof st->stuck_reason) != 0)
        return SL_EPARSE;
    return 0;
}

int sl_saga_state_from_json(sl_saga_state *st, const sl_saga_def *def, const char *json, size_t len)
{
    char id[SL_SAGA_ID_MAX + 1];
    uint64_t version = st->version;
    memcpy(id, st->id, sizeof id);
    json_error_t err;
    /* Bounded input: states are a few hundred bytes; refuse anything absurd before parsing. */
    if (json == NULL || len > 64 * 1024) return SL_EPARSE;
    /* The quick loader first (it builds what json_loadb would, at a fifth of the cost; states
     * are read at every event); jansson decides whatever it cannot prove. */
    json_t *o = NULL;
    if (!sl_json_quick_load(json, len, &o)) o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(o)) {
        json_decref(o);
        return SL_EPARSE;
    }
    sl_saga_state tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = read_state(o, &tmp, def);
    json_decref(o);
    if (rc != 0) return rc;
    memcpy(tmp.id, id, sizeof id);
    tmp.id[SL_SAGA_ID_MAX] = '\0';
    tmp.version = version;
    *st = tmp;
    return 0;
}
