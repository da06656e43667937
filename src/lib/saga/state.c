/*
 * JSON codec of a saga instance's state (the `state` column of
 * saga_instances, and the "serialised copy" of the simulation test). Reading
 * treats the text as outside input: every field is type- and range-checked
 * against the definition, nothing is asserted. Pure (jansson only).
 */
#include "saga/saga_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int sl_saga_state_to_json(const sl_saga_state *st, char **out)
{
    *out = NULL;
    json_t *steps = json_array();
    if (steps == NULL) return SL_ENOMEM;
    uint32_t n = st->n_steps <= SL_SAGA_STEPS_MAX ? st->n_steps : SL_SAGA_STEPS_MAX;
    for (uint32_t i = 0; i < n; i++) {
        const char *name = sl_saga_step_status_name((sl_saga_step_status)st->step_status[i]);
        if (json_array_append_new(steps, json_string(name)) != 0) {
            json_decref(steps);
            return SL_ENOMEM;
        }
    }
    /* Reasons are sanitised UTF-8 by construction (sl__saga_text_copy), so json_string accepts
     * them; json_pack fails (NULL) only on allocation failure. */
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:s, s:s}", "status",
        sl_saga_status_name(st->status), "stuck_from", sl_saga_status_name(st->stuck_from), "step",
        (json_int_t)st->step, "call", sl_saga_call_name(st->call), "phase",
        sl__saga_phase_name(st->phase) ? sl__saga_phase_name(st->phase) : "none", "attempt",
        (json_int_t)st->attempt, "bound_base", (json_int_t)st->bound_base, "first_attempt_ms",
        (json_int_t)st->first_attempt_ms, "wake_at_ms", (json_int_t)st->wake_at_ms, "prev_delay_ms",
        (json_int_t)st->prev_delay_ms, "steps", steps, "attempts_total",
        (json_int_t)st->attempts_total, "history_seq", (json_int_t)st->history_seq, "reason",
        st->reason, "stuck_reason", st->stuck_reason);
    if (o == NULL) return SL_ENOMEM;
    if (st->deadline_at_ms > 0 &&
        json_object_set_new(o, "deadline_at_ms", json_integer((json_int_t)st->deadline_at_ms)) !=
            0) {
        json_decref(o);
        return SL_ENOMEM;
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL) return SL_ENOMEM;
    *out = text;
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
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
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
