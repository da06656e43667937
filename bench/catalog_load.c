/*
 * bench_catalog_load URL N: fills the catalogue read model of a fresh
 * shoal-product database with N deterministic products, straight into
 * catalog_view through the service's store code (store_view_load, one
 * transaction; the full-text index follows through its triggers / generated
 * column), bypassing commands and events for speed. Prints one product id
 * (for the by-id benchmark) on stdout.
 */
#include "product.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const sl_migration_set sl_migrations_product;

static const char *const adjectives[] = {"Classic", "Compact",  "Deluxe",  "Everyday", "Folding",
                                         "Golden",  "Handmade", "Heavy",   "Light",    "Mini",
                                         "Modern",  "Natural",  "Organic", "Pocket",   "Premium",
                                         "Quiet",   "Rustic",   "Simple",  "Smart",    "Soft",
                                         "Sturdy",  "Travel",   "Vintage", "Warm",     "Wooden"};
static const char *const nouns[] = {
    "Kettle", "Lantern", "Notebook", "Mug",    "Teapot", "Grinder", "Backpack", "Pen",
    "Stove",  "Bottle",  "Blanket",  "Lamp",   "Bowl",   "Knife",   "Jacket",   "Scarf",
    "Tent",   "Candle",  "Basket",   "Pillow", "Tray",   "Clock",   "Cup",      "Whisk"};
static const char *const categories[] = {"coffee", "tea",     "kitchen",
                                         "books",  "outdoor", "stationery"};

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_catalog_load DB_URL N\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    if (n < 1 || n > 10000000) {
        fprintf(stderr, "N must be 1..10000000\n");
        return 2;
    }
    char err[256];
    sl_db *db;
    if (sl_db_open(argv[1], NULL, &db, err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }
    int rc = sl_db_migrate(db, sl_db_lib_migrations(), NULL);
    if (rc == 0) rc = sl_db_migrate(db, &sl_migrations_product, NULL);
    if (rc == 0) rc = sl_db_begin(db);
    char first[SL_DB_UUID_STR] = "";
    for (long i = 0; rc == 0 && i < n; i++) {
        char id[SL_DB_UUID_STR], sku[32], name[128], desc[256];
        /* Ids: UUIDv7-shaped, deterministic. */
        snprintf(id, sizeof id, "01900000-0000-7000-8000-%012d", (int)i);
        snprintf(sku, sizeof sku, "SKU-%07ld", i);
        const char *adj = adjectives[i % SL_ARRAY_LEN(adjectives)];
        const char *noun = nouns[(i / 7) % SL_ARRAY_LEN(nouns)];
        snprintf(name, sizeof name, "%s %s %ld", adj, noun, i);
        snprintf(desc, sizeof desc, "A %s %s for home and travel, model %ld. Pairs well with a %s.",
                 adj, noun, i % 997, nouns[(i / 3) % SL_ARRAY_LEN(nouns)]);
        product_row r = {.product_id = id,
                         .sku = sku,
                         .name = name,
                         .description = desc,
                         .category = categories[i % SL_ARRAY_LEN(categories)],
                         .price_amount = 100 + (i * 37) % 20000,
                         .currency = "JPY",
                         .available = i % 50,
                         .version = 1};
        rc = store_view_load(db, &r);
        if (i == n / 2) memcpy(first, id, sizeof id);
    }
    if (rc == 0) rc = sl_db_commit(db);
    if (rc != 0) {
        fprintf(stderr, "load: %s: %s\n", sl_errname(rc), sl_db_errmsg(db));
        sl_db_close(db);
        return 1;
    }
    printf("%s\n", first);
    sl_db_close(db);
    return 0;
}
