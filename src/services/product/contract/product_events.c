/*
 * The decoder of the product events (product_events.h): one reading of the
 * payloads for the product service's catalogue projection and for every
 * replica of names and prices kept by other services.
 */
#include "product_events.h"

#include <shoal/db.h>
#include <shoal/id.h>
#include <shoal/service.h>

#include <string.h>

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int product_id_valid(const char *s, size_t len)
{
    if (s == NULL || len != SL_DB_UUID_STR - 1) return 0;
    for (size_t i = 0; i < len; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i])) return 0;
    }
    return 1;
}

int product_id_text_valid(const char *s, size_t len)
{
    return sl_id_text_valid(s, len, PRODUCT_ID_MAX);
}

int product_event_decode(const char *type, const json_t *data, product_event_reader reader,
                         product_event_view *out, char *reason, size_t reason_cap)
{
    SL_ASSERT(out != NULL);
    SL_ASSERT(reader == PRODUCT_READ_CATALOG || reader == PRODUCT_READ_REPLICA);
    memset(out, 0, sizeof *out);
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int created = type && strcmp(type, PRODUCT_EV_CREATED) == 0;
    int updated = type && strcmp(type, PRODUCT_EV_UPDATED) == 0;
    int priced = type && strcmp(type, PRODUCT_EV_PRICE_CHANGED) == 0;
    if (!created && !updated && !priced) {
        sl_json_errors_add(&errs, "type", "is not a product event");
        return sl_event_refuse(reason, reason_cap, type ? type : "event", &errs);
    }
    if (!json_is_object(data)) return sl_event_refuse(reason, reason_cap, type, NULL);
    int catalog = reader == PRODUCT_READ_CATALOG;
    /* Catalogue: texts are required where the event defines them; replica: only the name. */
    unsigned text = catalog && !priced ? SL_JSON_REQUIRED : SL_JSON_NULLABLE;
    json_t *price = NULL;
    sl_json_field f[7];
    size_t n = 0;
    f[n++] = (sl_json_field){.name = "product_id",
                             .kind = SL_JSON_STRING,
                             .flags = SL_JSON_REQUIRED,
                             .min = 1,
                             .max = PRODUCT_ID_MAX,
                             .max_bytes = PRODUCT_ID_MAX,
                             .out = &out->product_id};
    if (catalog) {
        f[n++] = (sl_json_field){.name = "version",
                                 .kind = SL_JSON_INT,
                                 .flags = SL_JSON_REQUIRED,
                                 .min = 1,
                                 .max = INT64_MAX,
                                 .out = &out->version};
        f[n++] = (sl_json_field){.name = "sku",
                                 .kind = SL_JSON_STRING,
                                 .flags = created ? SL_JSON_REQUIRED : 0,
                                 .min = 1,
                                 .max = PRODUCT_SKU_MAX,
                                 .out = &out->sku};
        f[n++] = (sl_json_field){.name = "description",
                                 .kind = SL_JSON_STRING,
                                 .flags = text,
                                 .max = PRODUCT_DESC_MAX,
                                 .out = &out->description};
        f[n++] = (sl_json_field){.name = "category",
                                 .kind = SL_JSON_STRING,
                                 .flags = text,
                                 .min = 1,
                                 .max = PRODUCT_CATEGORY_MAX,
                                 .out = &out->category};
    }
    if (catalog || !priced)
        f[n++] = (sl_json_field){.name = "name",
                                 .kind = SL_JSON_STRING,
                                 .flags = text,
                                 .min = 1,
                                 .max = PRODUCT_NAME_MAX,
                                 .max_bytes = PRODUCT_NAME_MAX * 4,
                                 .out = &out->name};
    /* The catalogue orders prices by version and takes them from created and price_changed
     * only; a replica also takes the price an update carries. */
    const char *price_field = priced ? "new_price" : "price";
    if (priced || created || !catalog)
        f[n++] = (sl_json_field){.name = price_field,
                                 .kind = SL_JSON_OBJECT,
                                 .flags = priced || (created && catalog) ? SL_JSON_REQUIRED
                                                                         : SL_JSON_NULLABLE,
                                 .out = &price};
    SL_ASSERT(n <= SL_ARRAY_LEN(f));
    if (sl_json_read(data, f, n, 0, &errs) != 0 ||
        (price && sl_json_read_money(price, price_field, 1, PRODUCT_PRICE_MAX, &out->price_amount,
                                     out->currency, &errs) != 0))
        return sl_event_refuse(reason, reason_cap, type, &errs);
    out->has_price = price != NULL;
    size_t idlen = strlen(out->product_id);
    if (catalog ? !product_id_valid(out->product_id, idlen)
                : !product_id_text_valid(out->product_id, idlen)) {
        sl_json_errors_add(&errs, "product_id", "is not a valid id");
        return sl_event_refuse(reason, reason_cap, type, &errs);
    }
    if (updated) out->sku = NULL; /* identity members never change after creation */
    return 0;
}
