/*
 * The demo catalogue: 36 products in 6 categories with prices (JPY) and
 * initial stock, fixed in this table so every start and every test sees the
 * same shop. product_demo_load (commands.c) creates them through the normal
 * command path, so their events reach the read model and inventory.
 */
#include "product.h"

typedef struct demo_item {
    const char *sku, *name, *category, *description;
    int64_t price, stock;
} demo_item;

static const demo_item items[] = {
    {"COF-001", "Ethiopia Yirgacheffe Beans", "coffee",
     "Light roast single-origin coffee beans with floral and citrus notes. 250 g.", 1800, 40},
    {"COF-002", "Colombia Supremo Beans", "coffee",
     "Medium roast coffee beans, chocolate and caramel, balanced body. 250 g.", 1600, 55},
    {"COF-003", "Dark Roast Espresso Blend", "coffee",
     "Dark roast espresso blend for rich crema and a bold finish. 500 g.", 2900, 30},
    {"COF-004", "Decaf House Blend", "coffee",
     "Swiss water process decaf coffee, smooth and nutty. 250 g.", 1700, 20},
    {"COF-005", "Cold Brew Coffee Pack", "coffee",
     "Coarse ground coffee in filter bags for cold brew at home. 8 bags.", 1200, 60},
    {"COF-006", "Drip Bag Coffee Sampler", "coffee",
     "Twelve single-serve drip bags from four origins.", 1500, 75},
    {"TEA-001", "Uji Matcha Ceremonial Grade", "tea",
     "Stone-ground matcha green tea from Uji, Kyoto, for whisking. 30 g.", 3200, 25},
    {"TEA-002", "Sencha Green Tea Leaves", "tea",
     "First flush sencha green tea with a fresh grassy sweetness. 100 g.", 1400, 50},
    {"TEA-003", "Hojicha Roasted Tea", "tea",
     "Roasted green tea with low caffeine and a toasty aroma. 100 g.", 1100, 45},
    {"TEA-004", "Genmaicha with Matcha", "tea",
     "Green tea blended with roasted brown rice and a dusting of matcha.", 1000, 35},
    {"TEA-005", "Darjeeling Black Tea", "tea",
     "Second flush Darjeeling black tea with a muscatel character. 100 g.", 2200, 15},
    {"TEA-006", "Jasmine Pearl Tea", "tea",
     "Hand-rolled green tea pearls scented with jasmine blossoms. 50 g.", 2600, 12},
    {"KIT-001", "Pour-Over Coffee Dripper", "kitchen",
     "Ceramic cone dripper for pour-over coffee, fits most mugs.", 2800, 18},
    {"KIT-002", "Gooseneck Kettle", "kitchen",
     "Stainless steel gooseneck kettle for precise pouring. 0.9 l.", 6800, 10},
    {"KIT-003", "Cast Iron Tea Pot", "kitchen",
     "Nambu cast iron tea pot with a stainless infuser. 0.65 l.", 9800, 8},
    {"KIT-004", "Hand Coffee Grinder", "kitchen",
     "Ceramic burr hand grinder with adjustable grind size.", 4500, 22},
    {"KIT-005", "Bamboo Matcha Whisk", "kitchen",
     "Chasen bamboo whisk with 80 prongs for frothy matcha.", 1900, 30},
    {"KIT-006", "Glass Cold Brew Bottle", "kitchen",
     "Heat-resistant glass bottle with a fine mesh filter for cold brew tea or coffee.", 2400, 26},
    {"BOK-001", "The Coffee Atlas", "books",
     "An illustrated guide to coffee growing regions, roasting and brewing.", 3600, 14},
    {"BOK-002", "The Book of Tea", "books",
     "The classic essay on tea, aesthetics and the tea ceremony.", 990, 40},
    {"BOK-003", "Home Barista Handbook", "books",
     "Espresso, milk steaming and latte art, step by step.", 2700, 16},
    {"BOK-004", "Fermentation at Home", "books",
     "Miso, kombucha, pickles and bread: a practical guide to fermentation.", 3100, 11},
    {"BOK-005", "Japanese Home Cooking", "books",
     "Everyday recipes from rice and miso soup to simmered dishes.", 3300, 19},
    {"BOK-006", "Trail Guide to the Japan Alps", "books",
     "Routes, huts and maps for hiking the Northern and Southern Alps.", 2500, 9},
    {"OUT-001", "Ultralight Camping Stove", "outdoor",
     "Folding canister stove, 70 g, boils a litre of water in four minutes.", 5400, 13},
    {"OUT-002", "Insulated Travel Mug", "outdoor",
     "Vacuum insulated mug keeps coffee hot for six hours. 350 ml.", 3000, 50},
    {"OUT-003", "Trekking Poles Pair", "outdoor",
     "Carbon fibre trekking poles with cork grips, adjustable length.", 12800, 7},
    {"OUT-004", "Headlamp 400 Lumen", "outdoor",
     "Rechargeable headlamp with red light mode for camping and hiking.", 4200, 24},
    {"OUT-005", "Merino Hiking Socks", "outdoor",
     "Cushioned merino wool socks for long hiking days.", 2200, 60},
    {"OUT-006", "Waterproof Day Pack", "outdoor",
     "Roll-top waterproof backpack, 20 l, for hiking and cycling.", 8900, 0},
    {"STA-001", "Dot Grid Notebook A5", "stationery",
     "Lay-flat notebook with dot grid pages and fountain-pen friendly paper.", 1600, 80},
    {"STA-002", "Fountain Pen Fine Nib", "stationery",
     "Steel fine nib fountain pen with a converter and two cartridges.", 5500, 12},
    {"STA-003", "Blue Black Ink Bottle", "stationery",
     "Water-based blue black ink for fountain pens. 50 ml.", 1800, 33},
    {"STA-004", "Washi Tape Set", "stationery",
     "Ten rolls of washi paper tape in seasonal patterns.", 1300, 45},
    {"STA-005", "Brass Mechanical Pencil", "stationery",
     "Solid brass mechanical pencil, 0.5 mm, ages to a warm patina.", 4800, 10},
    {"STA-006", "Letterpress Card Set", "stationery",
     "Eight letterpress cards with envelopes, printed on cotton paper.", 2100, 27},
};

size_t product_demo_count(void)
{
    return SL_ARRAY_LEN(items);
}

void product_demo_get(size_t i, product_input *out)
{
    const demo_item *d = &items[i < SL_ARRAY_LEN(items) ? i : 0];
    *out = (product_input){.sku = d->sku,
                           .name = d->name,
                           .description = d->description,
                           .category = d->category,
                           .price_amount = d->price,
                           .currency = PRODUCT_CURRENCY,
                           .stock = d->stock};
}
