/*
 * libFuzzer target for the saga state codec (sl_saga_state_from_json): the `state` column of
 * saga_instances is read back as outside input. Every accepted state must survive a
 * serialise/parse round trip unchanged, and the engine must take every driver-made event
 * (RESUME, TIMER, WAKE, ABORT, START) on it without crashing, at a time before and after its
 * deadline.
 */
#include <shoal/saga.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_saga_step_def steps[4];
    static const char *const names[] = {"open", "reserve", "charge", "confirm"};
    for (int i = 0; i < 4; i++) {
        memset(&steps[i], 0, sizeof steps[i]);
        steps[i].name = names[i];
        sl_retry_config_default(&steps[i].retry);
        steps[i].timeout_ms = 1000;
    }
    const sl_saga_def def = {.type = "checkout",
                             .steps = steps,
                             .n_steps = 4,
                             .pivot = 2,
                             .deadline_ms = 5000,
                             .pivot_compensable = true};
    sl_saga_state st;
    memset(&st, 0, sizeof st);
    memcpy(st.id, "f1", 3);
    if (sl_saga_state_from_json(&st, &def, (const char *)data, size) != 0) return 0;
    char *json = NULL;
    if (sl_saga_state_to_json(&st, &json) != 0) abort();
    sl_saga_state back;
    memset(&back, 0, sizeof back);
    memcpy(back.id, "f1", 3);
    if (sl_saga_state_from_json(&back, &def, json, strlen(json)) != 0) abort();
    free(json);
    if (memcmp(&back, &st, sizeof st) != 0) abort();
    const sl_saga_event_kind kinds[] = {SL_SAGA_EV_RESUME, SL_SAGA_EV_TIMER, SL_SAGA_EV_WAKE,
                                        SL_SAGA_EV_ABORT, SL_SAGA_EV_START};
    const int64_t times[] = {0, st.deadline_at_ms, INT64_C(1) << 50};
    sl_rand r;
    sl_rand_seed(&r, 1);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (size_t t = 0; t < 3; t++) {
            sl_saga_state s = st;
            sl_saga_output out;
            sl_saga_event ev = {.kind = kinds[k]};
            int rc = sl_saga_apply(&def, &s, &ev, times[t], &r, &out);
            if (rc != 0 && rc != SL_SAGA_IGNORED && rc != SL_ESTATE) abort();
            if (rc != 0 && memcmp(&s, &st, sizeof s) != 0) abort();
        }
    }
    return 0;
}
