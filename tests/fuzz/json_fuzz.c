/*
 * libFuzzer target for the json module: sl_json_parse with default limits,
 * then sl_json_read with a fixed table over the result (and over each object
 * of its "items" array), then a problem body built from the errors.
 */
#include <shoal/json.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const kinds[] = {"standard", "express", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = NULL;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (sl_json_parse((const char *)data, size, NULL, &v, &errs) == 0) {
        const char *name = NULL, *kind = NULL;
        int64_t qty = 0;
        bool gift = false;
        double price = 0;
        json_t *addr = NULL, *items = NULL;
        sl_json_field fields[] = {
            {.name = "name",
             .kind = SL_JSON_STRING,
             .flags = SL_JSON_REQUIRED,
             .min = 1,
             .max = 10,
             .max_bytes = 20,
             .out = &name},
            {.name = "kind", .kind = SL_JSON_STRING, .allowed = kinds, .out = &kind},
            {.name = "qty", .kind = SL_JSON_INT, .min = 1, .max = 1000, .out = &qty},
            {.name = "gift", .kind = SL_JSON_BOOL, .flags = SL_JSON_NULLABLE, .out = &gift},
            {.name = "price", .kind = SL_JSON_NUMBER, .out = &price},
            {.name = "address", .kind = SL_JSON_OBJECT, .out = &addr},
            {.name = "items", .kind = SL_JSON_ARRAY, .max = 50, .out = &items},
        };
        int rc = sl_json_read(v, fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, &errs);
        if (rc == 0 && errs.count != 0) abort();
        sl_json_field item[] = {{.name = "qty", .kind = SL_JSON_INT, .flags = SL_JSON_REQUIRED}};
        for (size_t i = 0; items && i < json_array_size(items); i++) {
            char p[32];
            if (sl_json_path_index(p, sizeof p, "items", i) != 0) abort();
            if (sl_json_read_at(json_array_get(items, i), p, item, 1, 0, &errs) == 0 &&
                !json_is_object(json_array_get(items, i)))
                abort();
        }
        size_t len = 0;
        char *dump = sl_json_dump(v, &len);
        free(dump);
        json_decref(v);
    }
    size_t len;
    char *body = sl_problem_body(400, NULL, "fuzz", &errs, &len);
    if (!body) abort(); /* every error string must be valid UTF-8 */
    json_t *back = json_loadb(body, len, 0, NULL);
    if (!back) abort();
    json_decref(back);
    free(body);
    char out[64];
    (void)sl_json_escape((const char *)data, size, out, sizeof out);
    return 0;
}
