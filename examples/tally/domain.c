/*
 * The tally's pure rules (tally.h): what an increment may be, and the
 * representations the API answers with. No I/O, no database.
 */
#include "tally.h"

int tally_read_increment(const json_t *body, int64_t *amount, sl_json_errors *errs)
{
    const sl_json_field fields[] = {{.name = "amount",
                                     .kind = SL_JSON_INT,
                                     .flags = SL_JSON_REQUIRED,
                                     .min = 1,
                                     .max = TALLY_AMOUNT_MAX,
                                     .out = amount}};
    return sl_json_read(body, fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, errs);
}

json_t *tally_command_json(const char *command_id, const char *counter, int64_t amount)
{
    return json_pack("{s:s, s:s, s:I}", "command_id", command_id, "counter", counter, "amount",
                     (json_int_t)amount);
}

json_t *tally_view_json(const char *counter, int64_t total, int64_t events)
{
    return json_pack("{s:s, s:I, s:I}", "counter", counter, "total", (json_int_t)total, "events",
                     (json_int_t)events);
}
