/*
 * The catalogue's pure rules: what a valid product, patch and list query are,
 * how free search text becomes safe full-text terms, what the events carry and
 * how they are decoded again, and the public JSON shape of a product. No I/O:
 * unit-tested alone by tests/services/product/domain_test.c.
 */
#include "product.h"

#include <shoal/http_types.h>
#include <shoal/service.h>

#include <stdio.h>
#include <string.h>

/* ---- field checks ------------------------------------------------------------------------ */

int product_sku_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PRODUCT_SKU_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int product_category_valid(const char *s, size_t len)
{
    if (len == 0 || len > PRODUCT_CATEGORY_MAX) return 0;
    if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1])) return 0;
    for (size_t i = 0; i < len; i++) {
        if (is_lower_alnum(s[i])) continue;
        if (s[i] != '-' || s[i - 1] == '-') return 0; /* i > 0: s[0] is alphanumeric */
    }
    return 1;
}

/* product_id_valid (the UUID form of the ids the service issues): contract/product_events.c. */

/* Control characters are refused in names; descriptions may hold line breaks and tabs. */
static int text_clean(const char *s, int multiline)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (multiline && (*p == '\n' || *p == '\r' || *p == '\t')) continue;
        if (*p < 0x20 || *p == 0x7f) return 0;
    }
    return 1;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ') return 0;
    return 1;
}

/* Checks the string fields both commands share (only those present). */
static void check_texts(const char *sku, const char *name, const char *description,
                        const char *category, sl_json_errors *errs)
{
    if (sku && !product_sku_valid(sku))
        sl_json_errors_add(errs, "sku", "must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_'");
    if (name && (!text_clean(name, 0) || blank(name)))
        sl_json_errors_add(errs, "name", "must not be blank or contain control characters");
    if (description && !text_clean(description, 1))
        sl_json_errors_add(errs, "description", "must not contain control characters");
    if (category && !product_category_valid(category, strlen(category)))
        sl_json_errors_add(errs, "category",
                           "must be a lowercase slug of 1 to 50 characters (a-z, 0-9, '-')");
}

static const char *const currencies[] = {PRODUCT_CURRENCY, NULL};

/*
 * Reads `price` (already known to be present): an object {amount, currency} or a bare
 * integer amount in JPY. The table row of the caller has already type-checked it.
 */
static void read_price(const json_t *price, int64_t *amount, const char **currency,
                       sl_json_errors *errs)
{
    if (json_is_integer(price)) {
        *currency = PRODUCT_CURRENCY;
        return; /* the amount was read and range-checked by the caller's table row */
    }
    const sl_json_field f[] = {
        {.name = "amount",
         .kind = SL_JSON_INT,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = PRODUCT_PRICE_MAX,
         .out = amount},
        {.name = "currency",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .allowed = currencies,
         .out = currency},
    };
    /* Errors are counted through `errs` by the caller. */
    if (sl_json_read_at(price, "price", f, SL_ARRAY_LEN(f), SL_JSON_REJECT_UNKNOWN, errs) != 0)
        return;
}

/* The table row for `price`: its kind follows the value so both spellings are accepted. */
static sl_json_field price_row(const json_t *body, unsigned flags, int64_t *amount, json_t **obj)
{
    const json_t *v = json_object_get(body, "price");
    if (json_is_integer(v))
        return (sl_json_field){.name = "price",
                               .kind = SL_JSON_INT,
                               .flags = flags,
                               .min = 1,
                               .max = PRODUCT_PRICE_MAX,
                               .out = amount};
    return (sl_json_field){.name = "price", .kind = SL_JSON_OBJECT, .flags = flags, .out = obj};
}

int product_read_create(const json_t *body, product_input *in, sl_json_errors *errs)
{
    memset(in, 0, sizeof *in);
    in->description = "";
    in->currency = PRODUCT_CURRENCY;
    json_t *price_obj = NULL;
    size_t before = sl_json_errors_total(errs);
    const sl_json_field f[] = {
        {.name = "sku",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = PRODUCT_SKU_MAX,
         .max_bytes = PRODUCT_SKU_MAX,
         .out = &in->sku},
        {.name = "name",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = PRODUCT_NAME_MAX,
         .max_bytes = PRODUCT_NAME_MAX * 4,
         .out = &in->name},
        {.name = "description",
         .kind = SL_JSON_STRING,
         .max = PRODUCT_DESC_MAX,
         .max_bytes = PRODUCT_DESC_MAX * 4,
         .out = &in->description},
        {.name = "category",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = PRODUCT_CATEGORY_MAX,
         .max_bytes = PRODUCT_CATEGORY_MAX,
         .out = &in->category},
        price_row(body, SL_JSON_REQUIRED, &in->price_amount, &price_obj),
        {.name = "stock",
         .kind = SL_JSON_INT,
         .min = 0,
         .max = PRODUCT_STOCK_MAX,
         .out = &in->stock},
    };
    int bad = sl_json_read(body, f, SL_ARRAY_LEN(f), SL_JSON_REJECT_UNKNOWN, errs) != 0;
    (void)bad; /* every error is in `errs`; the total decides below */
    check_texts(in->sku, in->name, in->description, in->category, errs);
    if (price_obj) read_price(price_obj, &in->price_amount, &in->currency, errs);
    return sl_json_errors_total(errs) > before ? SL_EINVAL : 0;
}

int product_read_patch(const json_t *body, product_patch *p, sl_json_errors *errs)
{
    memset(p, 0, sizeof *p);
    json_t *price_obj = NULL;
    int64_t bare = 0;
    size_t before = sl_json_errors_total(errs);
    const sl_json_field f[] = {
        {.name = "name",
         .kind = SL_JSON_STRING,
         .min = 1,
         .max = PRODUCT_NAME_MAX,
         .max_bytes = PRODUCT_NAME_MAX * 4,
         .out = &p->name},
        {.name = "description",
         .kind = SL_JSON_STRING,
         .max = PRODUCT_DESC_MAX,
         .max_bytes = PRODUCT_DESC_MAX * 4,
         .out = &p->description},
        {.name = "category",
         .kind = SL_JSON_STRING,
         .min = 1,
         .max = PRODUCT_CATEGORY_MAX,
         .max_bytes = PRODUCT_CATEGORY_MAX,
         .out = &p->category},
        price_row(body, 0, &bare, &price_obj),
    };
    int bad = sl_json_read(body, f, SL_ARRAY_LEN(f), SL_JSON_REJECT_UNKNOWN, errs) != 0;
    (void)bad; /* every error is in `errs`; the total decides below */
    check_texts(NULL, p->name, p->description, p->category, errs);
    const json_t *pv = json_object_get(body, "price");
    if (json_is_integer(pv) && bare > 0) {
        p->has_price = 1;
        p->price_amount = bare;
        p->currency = PRODUCT_CURRENCY;
    } else if (price_obj) {
        size_t mark = sl_json_errors_total(errs);
        read_price(price_obj, &p->price_amount, &p->currency, errs);
        p->has_price = sl_json_errors_total(errs) == mark;
    }
    if (sl_json_errors_total(errs) == before && !p->name && !p->description && !p->category &&
        !p->has_price)
        sl_json_errors_add(errs, "",
                           "at least one of name, description, category, price is "
                           "required");
    return sl_json_errors_total(errs) > before ? SL_EINVAL : 0;
}

/* Copies `src` into `dst` (cap bytes) when it differs; returns 1 when it changed. */
static int set_text(char *dst, size_t cap, const char *src)
{
    if (!src || strcmp(dst, src) == 0) return 0;
    snprintf(dst, cap, "%s", src);
    return 1;
}

unsigned product_apply_patch(product *p, const product_patch *patch)
{
    unsigned changed = 0;
    if (set_text(p->name, sizeof p->name, patch->name)) changed |= PRODUCT_CHANGED_NAME;
    if (set_text(p->description, sizeof p->description, patch->description))
        changed |= PRODUCT_CHANGED_DESCRIPTION;
    if (set_text(p->category, sizeof p->category, patch->category))
        changed |= PRODUCT_CHANGED_CATEGORY;
    if (patch->has_price &&
        (patch->price_amount != p->price_amount || strcmp(patch->currency, p->currency) != 0)) {
        p->price_amount = patch->price_amount;
        snprintf(p->currency, sizeof p->currency, "%s", patch->currency);
        changed |= PRODUCT_CHANGED_PRICE;
    }
    return changed;
}

/* ---- search text ------------------------------------------------------------------------- */

#define TERM_MAX_BYTES 64

static int term_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

size_t product_search_terms(const char *text, size_t len, char *fts, char *plain)
{
    size_t nt = 0, fo = 0, po = 0, i = 0;
    fts[0] = plain[0] = '\0';
    /* Bytes written per term: at most TERM_MAX_BYTES + 3 (quotes, space); the input is at
     * most PRODUCT_Q_MAX * 4 bytes, which bounds both outputs within PRODUCT_FTS_MAX. */
    while (i < len && nt < PRODUCT_Q_TERMS_MAX) {
        while (i < len && !term_byte((unsigned char)text[i]))
            i++;
        size_t start = i;
        while (i < len && term_byte((unsigned char)text[i]))
            i++;
        size_t n = i - start;
        if (n == 0) break;
        if (n > TERM_MAX_BYTES) {
            n = TERM_MAX_BYTES;
            /* Cut on a UTF-8 boundary: never keep a lead byte without its continuation. */
            while (n > 0 && ((unsigned char)text[start + n] & 0xC0) == 0x80)
                n--;
            if (n == 0) continue;
        }
        if (fo + n + 4 > PRODUCT_FTS_MAX || po + n + 2 > PRODUCT_FTS_MAX) break;
        if (nt > 0) {
            fts[fo++] = ' ';
            plain[po++] = ' ';
        }
        fts[fo++] = '"';
        memcpy(fts + fo, text + start, n);
        fo += n;
        fts[fo++] = '"';
        memcpy(plain + po, text + start, n);
        po += n;
        fts[fo] = plain[po] = '\0';
        nt++;
    }
    return nt;
}

/* ---- list query -------------------------------------------------------------------------- */

#define QUERY_RAW_MAX (PRODUCT_Q_MAX * 4 * 3) /* every byte of the longest q percent-encoded */

/* Decodes query parameter `name` into buf (cap bytes). Returns 1 present, 0 absent, SL_EINVAL
 * bad (an error was recorded). */
static int param(sl_slice query, const char *name, char *buf, size_t cap, sl_json_errors *errs)
{
    sl_slice raw;
    if (!sl_http_query_param(query, name, &raw)) return 0;
    if (raw.len >= cap) {
        sl_json_errors_add(errs, name, "is too long");
        return SL_EINVAL;
    }
    int n = sl_http_pct_decode(raw, 1, buf, cap);
    if (n < 0 || !sl_utf8_valid(buf, (size_t)n)) {
        sl_json_errors_add(errs, name, "must be valid percent-encoded UTF-8");
        return SL_EINVAL;
    }
    buf[n] = '\0';
    return 1;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

/* A price bound: 0..10^12 written as plain digits. */
static int price_param(sl_slice query, const char *name, int64_t *out, sl_json_errors *errs)
{
    char buf[32];
    int r = param(query, name, buf, sizeof buf, errs);
    if (r <= 0) return r;
    size_t n = strlen(buf);
    int ok = n > 0 && n <= 13;
    int64_t v = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            ok = 0;
        else
            v = v * 10 + (buf[i] - '0');
    }
    if (!ok || v > 1000000000000LL) {
        sl_json_errors_add(errs, name, "must be an integer between 0 and 1000000000000");
        return SL_EINVAL;
    }
    *out = v;
    return 1;
}

static int parse_ids(char *list, product_query *q, sl_json_errors *errs)
{
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!product_id_valid(t, strlen(t))) {
            sl_json_errors_add(errs, "ids", "must be a comma-separated list of product ids");
            return SL_EINVAL;
        }
        int dup = 0;
        for (size_t i = 0; i < q->nids && !dup; i++)
            dup = strcmp(q->ids[i], t) == 0;
        if (dup) continue;
        if (q->nids == PRODUCT_IDS_MAX) {
            sl_json_errors_add(errs, "ids", "must list at most %d product ids", PRODUCT_IDS_MAX);
            return SL_EINVAL;
        }
        memcpy(q->ids[q->nids++], t, SL_DB_UUID_STR);
    }
    if (q->nids == 0) {
        sl_json_errors_add(errs, "ids", "must list 1 to %d product ids", PRODUCT_IDS_MAX);
        return SL_EINVAL;
    }
    return 0;
}

int product_query_parse(sl_slice query, product_query *q, sl_json_errors *errs)
{
    memset(q, 0, sizeof *q);
    q->min_price = q->max_price = -1;
    q->page = 1;
    q->per_page = 20;
    size_t before = sl_json_errors_total(errs);
    char buf[QUERY_RAW_MAX + 1];
    int r = param(query, "q", buf, sizeof buf, errs);
    int filters = 0;
    if (r > 0 && utf8_chars(buf) > PRODUCT_Q_MAX) {
        sl_json_errors_add(errs, "q", "must be at most %d characters", PRODUCT_Q_MAX);
    } else if (r > 0) {
        /* A q without any searchable word (empty, blanks, punctuation) is ignored. */
        q->nterms = product_search_terms(buf, strlen(buf), q->fts, q->plain);
        q->has_q = q->nterms > 0;
        filters++;
    }
    r = param(query, "category", buf, PRODUCT_CATEGORY_MAX * 3 + 1, errs);
    if (r > 0 && !product_category_valid(buf, strlen(buf)))
        sl_json_errors_add(errs, "category",
                           "must be a lowercase slug of 1 to 50 characters (a-z, 0-9, '-')");
    else if (r > 0)
        memcpy(q->category, buf, strlen(buf) + 1);
    filters += r > 0;
    filters += price_param(query, "min_price", &q->min_price, errs) > 0;
    filters += price_param(query, "max_price", &q->max_price, errs) > 0;
    if (q->min_price >= 0 && q->max_price >= 0 && q->min_price > q->max_price)
        sl_json_errors_add(errs, "min_price", "must not be greater than max_price");
    r = param(query, "sort", buf, 32, errs);
    if (r > 0) {
        filters++;
        if (strcmp(buf, "price") == 0)
            q->sort = PRODUCT_SORT_PRICE;
        else if (strcmp(buf, "-price") == 0)
            q->sort = PRODUCT_SORT_PRICE_DESC;
        else if (strcmp(buf, "name") == 0)
            q->sort = PRODUCT_SORT_NAME;
        else
            sl_json_errors_add(errs, "sort", "must be one of price, -price, name");
    }
    char ids[PRODUCT_IDS_MAX * (SL_DB_UUID_STR + 2) * 3];
    r = param(query, "ids", ids, sizeof ids, errs);
    if (r > 0 && filters > 0)
        sl_json_errors_add(errs, "ids", "cannot be combined with q, category, prices or sort");
    else if (r > 0)
        (void)parse_ids(ids, q, errs);
    return sl_json_errors_total(errs) > before ? SL_EINVAL : 0;
}

/* ---- JSON shapes --------------------------------------------------------------------------- */

static json_t *money(int64_t amount, const char *currency)
{
    return json_pack("{s:I,s:s}", "amount", (json_int_t)amount, "currency", currency);
}

json_t *product_row_json(const product_row *r)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:I}", "product_id", r->product_id, "sku", r->sku,
                     "name", r->name, "description", r->description, "category", r->category,
                     "price", money(r->price_amount, r->currency), "available",
                     (json_int_t)r->available);
}

json_t *product_json(const product *p, int64_t available)
{
    product_row r = {.product_id = p->id,
                     .sku = p->sku,
                     .name = p->name,
                     .description = p->description,
                     .category = p->category,
                     .price_amount = p->price_amount,
                     .currency = p->currency,
                     .available = available,
                     .version = p->version};
    return product_row_json(&r);
}

json_t *product_event_created(const product *p, int64_t initial_stock)
{
    json_t *d = product_json(p, 0);
    if (!d) return NULL;
    json_object_del(d, "available");
    if (json_object_set_new(d, "initial_stock", json_integer(initial_stock)) != 0 ||
        json_object_set_new(d, "version", json_integer(p->version)) != 0) {
        json_decref(d);
        return NULL;
    }
    return d;
}

json_t *product_event_updated(const product *p, unsigned changed)
{
    json_t *d = product_json(p, 0);
    json_t *list = json_array();
    if (!d || !list) goto fail;
    json_object_del(d, "available");
    static const char *const names[] = {"name", "description", "category"};
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        if ((changed & (1u << i)) && json_array_append_new(list, json_string(names[i])) != 0)
            goto fail;
    if (json_object_set_new(d, "changed", list) != 0) {
        list = NULL;
        goto fail;
    }
    if (json_object_set_new(d, "version", json_integer(p->version)) != 0) {
        json_decref(d);
        return NULL;
    }
    return d;
fail:
    json_decref(list);
    json_decref(d);
    return NULL;
}

json_t *product_event_price_changed(const product *p, int64_t old_amount, const char *old_currency)
{
    return json_pack("{s:s,s:o,s:o,s:I}", "product_id", p->id, "old_price",
                     money(old_amount, old_currency), "new_price",
                     money(p->price_amount, p->currency), "version", (json_int_t)p->version);
}

/* ---- decoding events ------------------------------------------------------------------------- */

/* The product's own events are decoded by product_event_decode (contract/product_events.h). */

int product_stock_decode(const json_t *data, stock_event *out, char *reason, size_t reason_cap)
{
    memset(out, 0, sizeof *out);
    out->stock = out->reserved = -1;
    const sl_json_field f[] = {
        {.name = "product_id",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .out = &out->product_id},
        {.name = "stock", .kind = SL_JSON_INT, .min = 0, .max = INT64_MAX, .out = &out->stock},
        {.name = "reserved",
         .kind = SL_JSON_INT,
         .min = 0,
         .max = INT64_MAX,
         .out = &out->reserved},
        {.name = "available",
         .kind = SL_JSON_INT,
         .flags = SL_JSON_REQUIRED,
         .min = 0,
         .max = INT64_MAX,
         .out = &out->available},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    if (!json_is_object(data)) return sl_event_refuse(reason, reason_cap, INVENTORY_EV_STOCK, NULL);
    if (sl_json_read(data, f, SL_ARRAY_LEN(f), 0, &errs) != 0)
        return sl_event_refuse(reason, reason_cap, INVENTORY_EV_STOCK, &errs);
    if (!product_id_valid(out->product_id, strlen(out->product_id))) {
        sl_json_errors_add(&errs, "product_id", "is not a valid id");
        return sl_event_refuse(reason, reason_cap, INVENTORY_EV_STOCK, &errs);
    }
    if (out->stock < 0) out->stock = out->available;
    if (out->reserved < 0) out->reserved = out->stock - out->available;
    return 0;
}
