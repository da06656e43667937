/*
 * Every SQL statement of the catalogue, through sl_db prepared statements:
 * the write model (products), the local record of inventory's stock
 * (product_stock) and the read model (catalog_view with its full-text index:
 * an FTS5 external-content table kept by triggers on SQLite, a generated
 * tsvector column with a GIN index on PostgreSQL; see migrations/).
 *
 * List queries are assembled from fixed fragments chosen by which filters are
 * present and by the backend (sl_db_kind); user input only ever reaches the
 * database as bound parameters.
 */
#include "product.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Binds the arguments in order; each `fmt` letter: s text, i int64, n null. */
static int bind_all(sl_db_stmt *st, const char *fmt, va_list ap)
{
    int rc = 0;
    for (int i = 0; rc == 0 && fmt[i]; i++) {
        if (fmt[i] == 's')
            rc = sl_db_bind_text(st, i + 1, va_arg(ap, const char *), SIZE_MAX);
        else if (fmt[i] == 'i')
            rc = sl_db_bind_int64(st, i + 1, va_arg(ap, int64_t));
        else
            rc = sl_db_bind_null(st, i + 1);
    }
    return rc;
}

/* Runs a statement without rows; *changes (may be NULL) gets the rows changed. */
static int exec_sql(sl_db *db, int64_t *changes, const char *sql, const char *fmt, ...)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    va_list ap;
    va_start(ap, fmt);
    rc = bind_all(st, fmt, ap);
    va_end(ap);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) rc = 0; /* not expected; tolerated */
    if (rc == 0 && changes) *changes = sl_db_changes(st);
    sl_db_stmt_done(st);
    return rc;
}

static void copy_col(sl_db_stmt *st, int col, char *dst, size_t cap)
{
    size_t n = 0;
    const char *s = sl_db_column_text(st, col, &n);
    if (n >= cap) n = cap - 1; /* the write model's checks keep every value within cap */
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* ---- write model ------------------------------------------------------------------------- */

int store_product_insert(sl_db *tx, const product *p, int64_t now_ms)
{
    return exec_sql(tx, NULL,
                    "INSERT INTO products (id, sku, name, description, category, price_amount, "
                    "price_currency, version, created_ms, updated_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    "sssssisiii", p->id, p->sku, p->name, p->description, p->category,
                    p->price_amount, p->currency, p->version, now_ms, now_ms);
}

int store_product_get(sl_db *db, const char *id, product *out)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db,
                           "SELECT id, sku, name, description, category, price_amount, "
                           "price_currency, version FROM products WHERE id = ?",
                           &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, id, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        copy_col(st, 0, out->id, sizeof out->id);
        copy_col(st, 1, out->sku, sizeof out->sku);
        copy_col(st, 2, out->name, sizeof out->name);
        copy_col(st, 3, out->description, sizeof out->description);
        copy_col(st, 4, out->category, sizeof out->category);
        out->price_amount = sl_db_column_int64(st, 5);
        copy_col(st, 6, out->currency, sizeof out->currency);
        out->version = sl_db_column_int64(st, 7);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

int store_product_update(sl_db *tx, const product *p, int64_t old_version, int64_t now_ms)
{
    int64_t n = 0;
    int rc = exec_sql(tx, &n,
                      "UPDATE products SET name = ?, description = ?, category = ?, "
                      "price_amount = ?, price_currency = ?, version = ?, updated_ms = ? "
                      "WHERE id = ? AND version = ?",
                      "sssisiisi", p->name, p->description, p->category, p->price_amount,
                      p->currency, p->version, now_ms, p->id, old_version);
    if (rc == 0 && n == 0) rc = SL_ECONFLICT;
    return rc;
}

static int single_int(sl_db *db, const char *sql, const char *arg, int64_t *out)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if (arg) rc = sl_db_bind_text(st, 1, arg, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        *out = sl_db_column_int64(st, 0);
        rc = 0;
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

int store_product_count(sl_db *db, int64_t *n)
{
    return single_int(db, "SELECT COUNT(*) FROM products", NULL, n);
}

int store_stock_put(sl_db *tx, const stock_event *s, int64_t now_ms)
{
    return exec_sql(tx, NULL,
                    "INSERT INTO product_stock (product_id, stock, reserved, available, "
                    "updated_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (product_id) DO UPDATE SET "
                    "stock = excluded.stock, reserved = excluded.reserved, "
                    "available = excluded.available, updated_ms = excluded.updated_ms",
                    "siiii", s->product_id, s->stock, s->reserved, s->available, now_ms);
}

int store_stock_available(sl_db *db, const char *product_id, int64_t *available)
{
    return single_int(db, "SELECT available FROM product_stock WHERE product_id = ?", product_id,
                      available);
}

/* ---- read model: writes ------------------------------------------------------------------ */

int store_view_apply(sl_db *tx, const char *type, const product_event_view *ev, int *applied)
{
    int64_t n = 0;
    int rc;
    *applied = 0;
    if (strcmp(type, PRODUCT_EV_CREATED) == 0) {
        /* A stock event may have arrived first: its figure is in product_stock. */
        rc = exec_sql(tx, &n,
                      "INSERT INTO catalog_view (product_id, sku, name, description, category, "
                      "price_amount, price_currency, available, version) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, COALESCE((SELECT s.available FROM "
                      "product_stock s WHERE s.product_id = ?), 0), ?) "
                      "ON CONFLICT (product_id) DO NOTHING",
                      "sssssissi", ev->product_id, ev->sku, ev->name, ev->description, ev->category,
                      ev->price_amount, ev->currency, ev->product_id, ev->version);
    } else if (strcmp(type, PRODUCT_EV_UPDATED) == 0) {
        rc = exec_sql(tx, &n,
                      "UPDATE catalog_view SET name = ?, description = ?, category = ?, "
                      "version = ? WHERE product_id = ? AND version < ?",
                      "sssisi", ev->name, ev->description, ev->category, ev->version,
                      ev->product_id, ev->version);
    } else {
        rc = exec_sql(tx, &n,
                      "UPDATE catalog_view SET price_amount = ?, price_currency = ?, "
                      "version = ? WHERE product_id = ? AND version < ?",
                      "isisi", ev->price_amount, ev->currency, ev->version, ev->product_id,
                      ev->version);
    }
    if (rc == 0) *applied = n > 0;
    return rc;
}

int store_view_set_available(sl_db *tx, const char *product_id, int64_t available)
{
    return exec_sql(tx, NULL, "UPDATE catalog_view SET available = ? WHERE product_id = ?", "is",
                    available, product_id);
}

int store_view_clear(sl_db *tx)
{
    return sl_db_exec(tx, "DELETE FROM catalog_view");
}

int store_view_load(sl_db *tx, const product_row *r)
{
    return exec_sql(tx, NULL,
                    "INSERT INTO catalog_view (product_id, sku, name, description, category, "
                    "price_amount, price_currency, available, version) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    "sssssisii", r->product_id, r->sku, r->name, r->description, r->category,
                    r->price_amount, r->currency, r->available, r->version);
}

/* ---- read model: queries ------------------------------------------------------------------ */

#define VIEW_COLS                                                                                  \
    "v.product_id, v.sku, v.name, v.description, v.category, v.price_amount, "                     \
    "v.price_currency, v.available, v.version"

/* Steps through every row of `st`, handing each to cb; a non-zero cb result stops. */
static product_row row_of(sl_db_stmt *st)
{
    return (product_row){.product_id = sl_db_column_text(st, 0, NULL),
                         .sku = sl_db_column_text(st, 1, NULL),
                         .name = sl_db_column_text(st, 2, NULL),
                         .description = sl_db_column_text(st, 3, NULL),
                         .category = sl_db_column_text(st, 4, NULL),
                         .price_amount = sl_db_column_int64(st, 5),
                         .currency = sl_db_column_text(st, 6, NULL),
                         .available = sl_db_column_int64(st, 7),
                         .version = sl_db_column_int64(st, 8)};
}

/* Steps through every row of `st`, handing each to cb; a non-zero cb result stops and is
 * returned; the end of the rows returns 0 (SL_DB_DONE). */
static int each_row(sl_db_stmt *st, product_row_cb cb, void *data, int64_t *count)
{
    int rc;
    while ((rc = sl_db_step(st)) == SL_DB_ROW) {
        product_row r = row_of(st);
        if (count) (*count)++;
        int crc = cb(data, &r);
        if (crc != 0) return crc;
    }
    return rc;
}

static int run_rows(sl_db *db, const char *sql, const char *arg, product_row_cb cb, void *data)
{
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    if (arg) rc = sl_db_bind_text(st, 1, arg, SIZE_MAX);
    if (rc == 0) rc = each_row(st, cb, data, NULL);
    sl_db_stmt_done(st);
    return rc;
}

int store_view_get(sl_db *db, const char *id, product_row_cb cb, void *data)
{
    sl_db_stmt *st;
    int rc =
        sl_db_prepare(db, "SELECT " VIEW_COLS " FROM catalog_view v WHERE v.product_id = ?", &st);
    if (rc != 0) return rc;
    rc = sl_db_bind_text(st, 1, id, SIZE_MAX);
    if (rc == 0) rc = sl_db_step(st);
    if (rc == SL_DB_ROW) {
        product_row r = row_of(st);
        rc = cb(data, &r);
    } else if (rc == SL_DB_DONE) {
        rc = SL_ENOTFOUND;
    }
    sl_db_stmt_done(st);
    return rc;
}

int store_view_scan(sl_db *db, product_row_cb cb, void *data)
{
    return run_rows(db, "SELECT " VIEW_COLS " FROM catalog_view v ORDER BY v.product_id", NULL, cb,
                    data);
}

/* Batch read: the ids padded with NULLs up to one of three statement sizes (few cached texts). */
static int list_ids(sl_db *db, const product_query *q, product_row_cb cb, void *data,
                    int64_t *total)
{
    static const size_t sizes[] = {1, 10, PRODUCT_IDS_MAX};
    size_t slots = sizes[0];
    for (size_t i = 0; i < SL_ARRAY_LEN(sizes) && slots < q->nids; i++)
        slots = sizes[i];
    char sql[sizeof(VIEW_COLS) + 80 + PRODUCT_IDS_MAX * 3];
    int off = snprintf(sql, sizeof sql,
                       "SELECT " VIEW_COLS " FROM catalog_view v WHERE "
                       "v.product_id IN (");
    for (size_t i = 0; i < slots; i++)
        off += snprintf(sql + off, sizeof sql - (size_t)off, i ? ",?" : "?");
    snprintf(sql + off, sizeof sql - (size_t)off, ")");
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    for (size_t i = 0; rc == 0 && i < slots; i++)
        rc = i < q->nids ? sl_db_bind_text(st, (int)i + 1, q->ids[i], SIZE_MAX)
                         : sl_db_bind_null(st, (int)i + 1);
    int64_t n = 0;
    if (rc == 0) rc = each_row(st, cb, data, &n);
    sl_db_stmt_done(st);
    *total = n;
    return rc;
}

/* The FROM/WHERE part shared by a page and its count. */
static void list_from(char *sql, size_t cap, const product_query *q, int pg)
{
    size_t off = strlen(sql);
    const char *from = !q->has_q ? " FROM catalog_view v WHERE 1 = 1"
                       : pg ? " FROM catalog_view v WHERE v.tsv @@ plainto_tsquery('simple', ?)"
                            : " FROM catalog_fts JOIN catalog_view v ON v.seq = "
                              "catalog_fts.rowid WHERE catalog_fts MATCH ?";
    off += (size_t)snprintf(sql + off, cap - off, "%s", from);
    if (q->category[0]) off += (size_t)snprintf(sql + off, cap - off, " AND v.category = ?");
    if (q->min_price >= 0)
        off += (size_t)snprintf(sql + off, cap - off, " AND v.price_amount >= ?");
    if (q->max_price >= 0) snprintf(sql + off, cap - off, " AND v.price_amount <= ?");
}

static int bind_filters(sl_db_stmt *st, const product_query *q, int pg, int *idx)
{
    int rc = 0;
    if (q->has_q) rc = sl_db_bind_text(st, (*idx)++, pg ? q->plain : q->fts, SIZE_MAX);
    if (rc == 0 && q->category[0]) rc = sl_db_bind_text(st, (*idx)++, q->category, SIZE_MAX);
    if (rc == 0 && q->min_price >= 0) rc = sl_db_bind_int64(st, (*idx)++, q->min_price);
    if (rc == 0 && q->max_price >= 0) rc = sl_db_bind_int64(st, (*idx)++, q->max_price);
    return rc;
}

static const char *list_order(const product_query *q, int pg)
{
    switch (q->sort) {
    case PRODUCT_SORT_PRICE:
        return " ORDER BY v.price_amount, v.product_id";
    case PRODUCT_SORT_PRICE_DESC:
        return " ORDER BY v.price_amount DESC, v.product_id";
    case PRODUCT_SORT_NAME:
        break;
    case PRODUCT_SORT_DEFAULT:
        /* Relevance: name matches weigh most, then category, then description. */
        if (q->has_q)
            return pg ? " ORDER BY ts_rank(v.tsv, plainto_tsquery('simple', ?)) DESC, v.product_id"
                      : " ORDER BY bm25(catalog_fts, 10.0, 1.0, 5.0), v.seq";
        break;
    }
    /* Byte order on both backends, so pages agree whatever the database's locale. */
    return pg ? " ORDER BY v.name COLLATE \"C\", v.product_id" : " ORDER BY v.name, v.product_id";
}

/* The keyset condition of a cursor: the rows after (key, product_id) in list_order's order.
 * Relevance order has none (its cursor skips after_offset rows: ranking every match is its
 * cost anyway). */
static const char *list_keyset(const product_query *q, int pg)
{
    switch (q->sort) {
    case PRODUCT_SORT_PRICE:
        return " AND (v.price_amount > ? OR (v.price_amount = ? AND v.product_id > ?))";
    case PRODUCT_SORT_PRICE_DESC:
        return " AND (v.price_amount < ? OR (v.price_amount = ? AND v.product_id > ?))";
    case PRODUCT_SORT_NAME:
        break;
    case PRODUCT_SORT_DEFAULT:
        if (q->has_q) return "";
        break;
    }
    return pg ? " AND (v.name COLLATE \"C\" > ? OR (v.name COLLATE \"C\" = ? AND v.product_id > ?))"
              : " AND (v.name > ? OR (v.name = ? AND v.product_id > ?))";
}

static int bind_keyset(sl_db_stmt *st, const product_query *q, int *idx)
{
    int by_price = q->sort == PRODUCT_SORT_PRICE || q->sort == PRODUCT_SORT_PRICE_DESC;
    int rc = 0;
    for (int i = 0; rc == 0 && i < 2; i++)
        rc = by_price ? sl_db_bind_int64(st, (*idx)++, q->after_price)
                      : sl_db_bind_text(st, (*idx)++, q->after_name, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_text(st, (*idx)++, q->after_id, SIZE_MAX);
    return rc;
}

/*
 * SQLite, a search without other filters: count and rank inside the FTS5 index alone, then
 * join only the rows of the page. Ranking all matches is the inherent cost of relevance order;
 * this keeps it from also reading every matching catalog_view row (bench/catalog.sh).
 */
static const char fts_count_sql[] = "SELECT COUNT(*) FROM catalog_fts WHERE catalog_fts MATCH ?";
static const char fts_page_sql[] =
    "SELECT " VIEW_COLS " FROM (SELECT rowid AS r, bm25(catalog_fts, 10.0, 1.0, 5.0) AS score "
    "FROM catalog_fts WHERE catalog_fts MATCH ? ORDER BY score, rowid LIMIT ? OFFSET ?) m "
    "JOIN catalog_view v ON v.seq = m.r ORDER BY m.score, m.r";

int store_view_list(sl_db *db, const product_query *q, product_row_cb cb, void *data,
                    int64_t *total)
{
    if (q->nids > 0) return list_ids(db, q, cb, data, total);
    int pg = sl_db_kind(db) == SL_DB_POSTGRES;
    int fts_only = !pg && q->has_q && !q->category[0] && q->min_price < 0 && q->max_price < 0;
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT COUNT(*)");
    list_from(sql, sizeof sql, q, pg);
    if (fts_only) snprintf(sql, sizeof sql, "%s", fts_count_sql);
    sl_db_stmt *st;
    int rc = sl_db_prepare(db, sql, &st);
    if (rc != 0) return rc;
    int idx = 1;
    rc = bind_filters(st, q, pg, &idx);
    if (rc == 0 && (rc = sl_db_step(st)) == SL_DB_ROW) {
        *total = sl_db_column_int64(st, 0);
        rc = 0;
    }
    sl_db_stmt_done(st);
    if (rc != 0) return rc < 0 ? rc : SL_EIO;
    if (!q->has_after && *total <= (q->page - 1) * q->per_page) return 0; /* past the end */

    snprintf(sql, sizeof sql, "SELECT " VIEW_COLS);
    list_from(sql, sizeof sql, q, pg);
    size_t off = strlen(sql);
    const char *keyset = q->has_after ? list_keyset(q, pg) : "";
    snprintf(sql + off, sizeof sql - off, "%s%s LIMIT ? OFFSET ?", keyset, list_order(q, pg));
    if (fts_only && q->sort == PRODUCT_SORT_DEFAULT) snprintf(sql, sizeof sql, "%s", fts_page_sql);
    if ((rc = sl_db_prepare(db, sql, &st)) != 0) return rc;
    idx = 1;
    rc = bind_filters(st, q, pg, &idx);
    if (rc == 0 && *keyset) rc = bind_keyset(st, q, &idx);
    if (rc == 0 && pg && q->has_q && q->sort == PRODUCT_SORT_DEFAULT)
        rc = sl_db_bind_text(st, idx++, q->plain, SIZE_MAX);
    if (rc == 0) rc = sl_db_bind_int64(st, idx++, q->per_page);
    int64_t skip = q->has_after ? q->after_offset : (q->page - 1) * q->per_page;
    if (rc == 0) rc = sl_db_bind_int64(st, idx++, skip);
    if (rc == 0) rc = each_row(st, cb, data, NULL);
    sl_db_stmt_done(st);
    return rc;
}
