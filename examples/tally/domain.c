/* The tally's pure rules (tally.h): what a counter name and an increment may be. No I/O. */
#include "tally.h"

#include <string.h>

int tally_counter_name(sl_slice name, char out[TALLY_NAME_MAX + 1])
{
    out[0] = '\0';
    if (!tally_name_valid(name.ptr, name.len)) return SL_EINVAL;
    memcpy(out, name.ptr, name.len);
    out[name.len] = '\0';
    return 0;
}

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
