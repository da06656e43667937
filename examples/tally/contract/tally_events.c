/* The decoder of the tally's events (tally_events.h): the one reading of their payloads. */
#include "tally_events.h"

#include <shoal/service.h>

#include <string.h>

int tally_name_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > TALLY_NAME_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return 0;
    }
    return 1;
}

int tally_incremented_decode(const json_t *data, tally_incremented *out, char *reason, size_t cap)
{
    SL_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    const sl_json_field fields[] = {
        {.name = "command_id", .kind = SL_JSON_STRING, .out = &out->command_id},
        {.name = "counter",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .out = &out->counter},
        {.name = "amount",
         .kind = SL_JSON_INT,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = TALLY_AMOUNT_MAX,
         .out = &out->amount},
    };
    if (sl_json_read(data, fields, SL_ARRAY_LEN(fields), 0, &errs) != 0)
        return sl_event_refuse(reason, cap, TALLY_EV_INCREMENTED, &errs);
    if (!tally_name_valid(out->counter, strlen(out->counter))) {
        sl_json_errors_add(&errs, "counter", "must be 1-%d characters of a-z, 0-9, - and _",
                           TALLY_NAME_MAX);
        return sl_event_refuse(reason, cap, TALLY_EV_INCREMENTED, &errs);
    }
    return 0;
}
