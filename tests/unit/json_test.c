/* Unit tests for the json module: limits, validation messages and paths, problem bodies. */
#include <shoal/json.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static json_t *parse_ok(const char *text)
{
    json_t *v = NULL;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_json_parse(text, strlen(text), NULL, &v, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_non_null(v);
    return v;
}

/* Returns the message recorded for `field`, or NULL. */
static const char *msg_for(const sl_json_errors *errs, const char *field)
{
    for (size_t i = 0; i < errs->count; i++)
        if (strcmp(errs->items[i].field, field) == 0) return errs->items[i].message;
    return NULL;
}

static char *nest(size_t levels, char open, char close)
{
    char *s = malloc(levels * 2 + 1);
    memset(s, open, levels);
    memset(s + levels, close, levels);
    s[levels * 2] = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    sl_json_limits any = {.allow_any_top = true};
    json_t *v;
    sl_json_errors errs;
    char *ok = nest(32, '[', ']');
    sl_json_errors_init(&errs);
    assert_int_equal(sl_json_parse(ok, strlen(ok), &any, &v, &errs), 0);
    json_decref(v);
    char *deep = nest(33, '[', ']');
    assert_int_equal(sl_json_parse(deep, strlen(deep), &any, &v, &errs), SL_ELIMIT);
    assert_null(v);
    assert_string_equal(errs.items[0].message, "JSON nests deeper than 32 levels");
    /* 100,000 unclosed brackets: rejected by the scan, jansson never recurses into them. */
    char *bomb = malloc(100000);
    memset(bomb, '[', 100000);
    assert_int_equal(sl_json_parse(bomb, 100000, &any, &v, NULL), SL_ELIMIT);
    /* Brackets inside strings, including after an escaped quote, do not count. */
    char text[400];
    snprintf(text, sizeof text, "{\"a\":\"\\\"%s\"}", deep);
    assert_int_equal(sl_json_parse(text, strlen(text), NULL, &v, NULL), 0);
    json_decref(v);
    /* A custom depth. */
    sl_json_limits two = {.max_depth = 2};
    const char *three = "{\"a\":{\"b\":{}}}";
    assert_int_equal(sl_json_parse(three, strlen(three), &two, &v, NULL), SL_ELIMIT);
    free(ok);
    free(deep);
    free(bomb);
}

static void test_parse_errors(void **state)
{
    (void)state;
    json_t *v;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    const char *bad = "{\n  \"a\": 1,\n}";
    assert_int_equal(sl_json_parse(bad, strlen(bad), NULL, &v, &errs), SL_EPARSE);
    assert_null(v);
    assert_string_equal(errs.items[0].field, "");
    assert_non_null(strstr(errs.items[0].message, "invalid JSON at line 3, column 1"));

    sl_json_errors_init(&errs);
    const char *dup = "{\"a\":1,\"a\":2}";
    assert_int_equal(sl_json_parse(dup, strlen(dup), NULL, &v, &errs), SL_EPARSE);
    assert_non_null(strstr(errs.items[0].message, "duplicate object key"));

    const char bad_utf8[] = "{\"a\":\"\xC3\x28\"}";
    assert_int_equal(sl_json_parse(bad_utf8, sizeof bad_utf8 - 1, NULL, &v, NULL), SL_EPARSE);
    const char nul[] = "{\"a\":\"x\\u0000y\"}";
    assert_int_equal(sl_json_parse(nul, sizeof nul - 1, NULL, &v, NULL), SL_EPARSE);

    sl_json_errors_init(&errs);
    assert_int_equal(sl_json_parse("[1]", 3, NULL, &v, &errs), SL_EINVAL);
    assert_string_equal(errs.items[0].message, "must be a JSON object");
    sl_json_limits any = {.allow_any_top = true};
    assert_int_equal(sl_json_parse("[1]", 3, &any, &v, NULL), 0);
    json_decref(v);

    sl_json_limits small = {.max_bytes = 8};
    assert_int_equal(sl_json_parse("{\"a\":123}", 9, &small, &v, NULL), SL_ELIMIT);
    /* Not NUL-terminated: only `len` bytes are read. */
    assert_int_equal(sl_json_parse("{}garbage", 2, NULL, &v, NULL), 0);
    json_decref(v);
}

static const char *const colours[] = {"red", "green", NULL};

static void test_read_ok(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"name\":\"Zoë\",\"qty\":1099511627776,\"gift\":true,\"price\":2.5,"
                         "\"colour\":\"green\",\"address\":{\"city\":\"Lyon\"},\"tags\":[1,2],"
                         "\"note\":null}");
    const char *name = NULL, *colour = NULL, *note = "default";
    int64_t qty = 0;
    bool gift = false;
    double price = 0;
    json_t *address = NULL, *tags = NULL;
    sl_json_field fields[] = {
        {.name = "name",
         .kind = SL_JSON_STRING,
         .flags = SL_JSON_REQUIRED,
         .min = 1,
         .max = 3,
         .out = &name},
        {.name = "qty", .kind = SL_JSON_INT, .flags = SL_JSON_REQUIRED, .out = &qty},
        {.name = "gift", .kind = SL_JSON_BOOL, .out = &gift},
        {.name = "price", .kind = SL_JSON_NUMBER, .out = &price},
        {.name = "colour", .kind = SL_JSON_STRING, .allowed = colours, .out = &colour},
        {.name = "address", .kind = SL_JSON_OBJECT, .out = &address},
        {.name = "tags", .kind = SL_JSON_ARRAY, .max = 2, .out = &tags},
        {.name = "note", .kind = SL_JSON_STRING, .flags = SL_JSON_NULLABLE, .out = &note},
        {.name = "absent", .kind = SL_JSON_INT},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_json_read(v, fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, &errs),
                     0);
    assert_int_equal(errs.count, 0);
    assert_string_equal(name, "Zoë"); /* 3 code points, 4 bytes */
    assert_int_equal(qty, (int64_t)1 << 40);
    assert_true(gift);
    assert_true(price == 2.5);
    assert_string_equal(colour, "green");
    assert_ptr_equal(address, json_object_get(v, "address"));
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(note, "default"); /* null leaves the default in place */
    json_decref(v);
}

static void test_read_errors(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"qty\":1099511627776,\"count\":2.0,\"name\":\"Zoëé\",\"code\":\"Zoë\","
                         "\"colour\":\"blue\",\"gift\":\"yes\",\"tags\":[1,2,3],\"extra\":1,"
                         "\"obj\":[],\"nn\":null,\"num\":\"1\",\"low\":-5}");
    int64_t qty = 7;
    sl_json_field fields[] = {
        {.name = "id", .kind = SL_JSON_STRING, .flags = SL_JSON_REQUIRED},
        {.name = "qty", .kind = SL_JSON_INT, .min = 1, .max = 1000, .out = &qty},
        {.name = "count", .kind = SL_JSON_INT},
        {.name = "name", .kind = SL_JSON_STRING, .max = 3},
        {.name = "code", .kind = SL_JSON_STRING, .max = 3, .max_bytes = 3},
        {.name = "colour", .kind = SL_JSON_STRING, .allowed = colours},
        {.name = "gift", .kind = SL_JSON_BOOL},
        {.name = "tags", .kind = SL_JSON_ARRAY, .max = 2},
        {.name = "obj", .kind = SL_JSON_OBJECT},
        {.name = "nn", .kind = SL_JSON_STRING},
        {.name = "num", .kind = SL_JSON_NUMBER},
        {.name = "low", .kind = SL_JSON_INT, .min = 0, .max = 10},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_json_read(v, fields, SL_ARRAY_LEN(fields), SL_JSON_REJECT_UNKNOWN, &errs),
                     SL_EINVAL);
    assert_int_equal(errs.count, 13);
    assert_string_equal(msg_for(&errs, "id"), "is required");
    assert_string_equal(msg_for(&errs, "qty"), "must be at most 1000");
    assert_int_equal(qty, 7); /* untouched on error */
    assert_string_equal(msg_for(&errs, "count"), "must be an integer");
    assert_string_equal(msg_for(&errs, "name"), "must be at most 3 characters");
    assert_string_equal(msg_for(&errs, "code"), "must be at most 3 bytes");
    assert_string_equal(msg_for(&errs, "colour"), "must be one of: red, green");
    assert_string_equal(msg_for(&errs, "gift"), "must be a boolean");
    assert_string_equal(msg_for(&errs, "tags"), "must have at most 2 items");
    assert_string_equal(msg_for(&errs, "obj"), "must be an object");
    assert_string_equal(msg_for(&errs, "nn"), "must not be null");
    assert_string_equal(msg_for(&errs, "num"), "must be a number");
    assert_string_equal(msg_for(&errs, "low"), "must be at least 0");
    assert_string_equal(msg_for(&errs, "extra"), "is not allowed");
    /* Table order first, unknown keys last. */
    assert_string_equal(errs.items[0].field, "id");
    assert_string_equal(errs.items[12].field, "extra");
    /* Without the flag, unknown keys pass. */
    sl_json_field one[] = {{.name = "qty", .kind = SL_JSON_INT}};
    assert_int_equal(sl_json_read(v, one, 1, 0, NULL), 0);
    json_decref(v);
}

static void test_min_lengths(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"s\":\"\",\"a\":[],\"t\":\"ab\"}");
    sl_json_field fields[] = {
        {.name = "s", .kind = SL_JSON_STRING, .min = 1, .max = 10},
        {.name = "a", .kind = SL_JSON_ARRAY, .min = 1, .max = 10},
        {.name = "t", .kind = SL_JSON_STRING, .min = 3, .max = 10},
    };
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_json_read(v, fields, 3, 0, &errs), SL_EINVAL);
    assert_string_equal(msg_for(&errs, "s"), "must be at least 1 character");
    assert_string_equal(msg_for(&errs, "a"), "must have at least 1 item");
    assert_string_equal(msg_for(&errs, "t"), "must be at least 3 characters");
    json_decref(v);
}

static void test_nested_paths(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"shipping_address\":{\"city\":5},"
                         "\"items\":[{\"qty\":1},{\"qty\":2},{\"qty\":\"3\"},7]}");
    sl_json_field addr[] = {{.name = "city", .kind = SL_JSON_STRING, .flags = SL_JSON_REQUIRED}};
    sl_json_field item[] = {{.name = "qty", .kind = SL_JSON_INT, .flags = SL_JSON_REQUIRED}};
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    assert_int_equal(sl_json_read_at(json_object_get(v, "shipping_address"), "shipping_address",
                                     addr, 1, 0, &errs),
                     SL_EINVAL);
    json_t *items = json_object_get(v, "items");
    for (size_t i = 0; i < json_array_size(items); i++) {
        char p[64];
        assert_int_equal(sl_json_path_index(p, sizeof p, "items", i), 0);
        int rc = sl_json_read_at(json_array_get(items, i), p, item, 1, 0, &errs);
        assert_int_equal(rc, i < 2 ? 0 : SL_EINVAL);
    }
    assert_int_equal(errs.count, 3);
    assert_string_equal(msg_for(&errs, "shipping_address.city"), "must be a string");
    assert_string_equal(msg_for(&errs, "items[2].qty"), "must be an integer");
    assert_string_equal(msg_for(&errs, "items[3]"), "must be an object");
    char small[8];
    assert_int_equal(sl_json_path_key(small, sizeof small, "address", "city"), SL_ELIMIT);
    json_decref(v);
}

/* sl_json_read_money: bounds and paths from the caller, the currency rule its own. */
static void test_read_money(void **state)
{
    (void)state;
    json_t *v = parse_ok("{\"price\":{\"amount\":1999,\"currency\":\"EUR\",\"note\":1},"
                         "\"zero\":{\"amount\":0,\"currency\":\"USD\"},"
                         "\"lower\":{\"amount\":5,\"currency\":\"eur\"},"
                         "\"digits\":{\"amount\":5,\"currency\":\"E1R\"},"
                         "\"long\":{\"amount\":5,\"currency\":\"EURO\"},"
                         "\"high\":{\"amount\":1001,\"currency\":\"bad\"},"
                         "\"none\":{},\"arr\":[]}");
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int64_t amount = -1;
    char cur[4] = "xxx";
    assert_int_equal(
        sl_json_read_money(json_object_get(v, "price"), "price", 1, 1000000, &amount, cur, &errs),
        0);
    assert_int_equal(amount, 1999);
    assert_string_equal(cur, "EUR");
    assert_int_equal(errs.count, 0);
    /* The lower bound is the caller's: 0 passes with 0, not with 1. */
    assert_int_equal(
        sl_json_read_money(json_object_get(v, "zero"), "zero", 0, 10, &amount, cur, &errs), 0);
    assert_int_equal(amount, 0);
    assert_string_equal(cur, "USD");
    assert_int_equal(sl_json_read_money(json_object_get(v, "zero"), "items[2].unit_price", 1, 10,
                                        &amount, cur, &errs),
                     SL_EINVAL);
    assert_string_equal(msg_for(&errs, "items[2].unit_price.amount"), "must be at least 1");
    const char *bad[] = {"lower", "digits"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        amount = -1;
        memcpy(cur, "xxx", 4);
        assert_int_equal(
            sl_json_read_money(json_object_get(v, bad[i]), bad[i], 1, 10, &amount, cur, &errs),
            SL_EINVAL);
        char at[32];
        snprintf(at, sizeof at, "%s.currency", bad[i]);
        assert_string_equal(msg_for(&errs, at), "must be three upper-case letters (ISO 4217)");
        assert_int_equal(amount, -1); /* untouched on error */
        assert_string_equal(cur, "xxx");
    }
    assert_int_equal(
        sl_json_read_money(json_object_get(v, "long"), "long", 1, 10, &amount, cur, &errs),
        SL_EINVAL);
    assert_string_equal(msg_for(&errs, "long.currency"), "must be at most 3 bytes");
    /* A table error stops the reading: the letters are not looked at, one error per field. */
    size_t before = errs.count;
    assert_int_equal(
        sl_json_read_money(json_object_get(v, "high"), "high", 1, 1000, &amount, cur, &errs),
        SL_EINVAL);
    assert_int_equal(errs.count, before + 1);
    assert_string_equal(msg_for(&errs, "high.amount"), "must be at most 1000");
    assert_null(msg_for(&errs, "high.currency"));
    assert_int_equal(
        sl_json_read_money(json_object_get(v, "none"), "none", 1, 10, &amount, cur, &errs),
        SL_EINVAL);
    assert_string_equal(msg_for(&errs, "none.amount"), "is required");
    assert_string_equal(msg_for(&errs, "none.currency"), "is required");
    assert_int_equal(
        sl_json_read_money(json_object_get(v, "arr"), "arr", 1, 10, &amount, cur, &errs),
        SL_EINVAL);
    assert_string_equal(msg_for(&errs, "arr"), "must be an object");
    /* errs may be NULL. */
    assert_int_equal(
        sl_json_read_money(json_object_get(v, "lower"), "lower", 1, 10, &amount, cur, NULL),
        SL_EINVAL);
    json_decref(v);
}

static void test_errors_bounded(void **state)
{
    (void)state;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    for (int i = 0; i < 20; i++)
        sl_json_errors_add(&errs, "f", "error %d", i);
    assert_int_equal(errs.count, SL_JSON_ERRORS_MAX);
    assert_int_equal(errs.dropped, 4);
    assert_int_equal(sl_json_errors_total(&errs), 20);
    /* A long field of 2-byte characters is cut on a character boundary. */
    char longf[400] = "";
    for (int i = 0; i < 150; i++)
        strcat(longf, "é");
    sl_json_errors_init(&errs);
    sl_json_errors_add(&errs, longf, "x");
    assert_int_equal(strlen(errs.items[0].field), SL_JSON_FIELD_MAX - 1 - 1);
    assert_true(sl_utf8_valid(errs.items[0].field, strlen(errs.items[0].field)));
    /* Invalid UTF-8 in a field is replaced. */
    sl_json_errors_add(&errs, "a\xFF", "y");
    assert_string_equal(errs.items[1].field, "a?");
}

static void test_problem_body(void **state)
{
    (void)state;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    sl_json_errors_add(&errs, "items[0].qty", "must be at most %d", 1000);
    sl_json_errors_add(&errs, "email", "is required");
    size_t len;
    char *body = sl_problem_body(422, NULL, "The order is invalid.", &errs, &len);
    assert_non_null(body);
    assert_int_equal(len, strlen(body));
    json_error_t jerr;
    json_t *v = json_loads(body, 0, &jerr);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "type")), "about:blank");
    assert_string_equal(json_string_value(json_object_get(v, "title")), "Unprocessable Content");
    assert_int_equal(json_integer_value(json_object_get(v, "status")), 422);
    assert_string_equal(json_string_value(json_object_get(v, "detail")), "The order is invalid.");
    assert_null(json_object_get(v, "instance"));
    json_t *e = json_object_get(v, "errors");
    assert_int_equal(json_array_size(e), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(e, 0), "field")),
                        "items[0].qty");
    assert_string_equal(json_string_value(json_object_get(json_array_get(e, 0), "message")),
                        "must be at most 1000");
    /* Member order is fixed: type first. */
    assert_memory_equal(body, "{\"type\":\"about:blank\",\"title\"", 29);
    json_decref(v);
    free(body);

    sl_problem p = {.status = 404, .instance = "/orders/42", .type = "https://x/not-found"};
    body = sl_problem_body_ex(&p, NULL);
    assert_string_equal(body, "{\"type\":\"https://x/not-found\",\"title\":\"Not Found\","
                              "\"status\":404,\"instance\":\"/orders/42\"}");
    free(body);
    body = sl_problem_body(599, NULL, "bad \xFF utf8", NULL, NULL);
    assert_string_equal(body, "{\"type\":\"about:blank\",\"status\":599,\"detail\":\"\"}");
    free(body);

    assert_string_equal(sl_problem_title(400), "Bad Request");
    assert_string_equal(sl_problem_title(405), "Method Not Allowed");
    assert_string_equal(sl_problem_title(413), "Content Too Large");
    assert_string_equal(sl_problem_title(429), "Too Many Requests");
    assert_string_equal(sl_problem_title(431), "Request Header Fields Too Large");
    assert_string_equal(sl_problem_title(503), "Service Unavailable");
    assert_null(sl_problem_title(299));
}

static void test_dump_and_escape(void **state)
{
    (void)state;
    json_t *o = json_pack("{s:i,s:s,s:[b,n]}", "z", 1, "a", "x\"y", "m", 1);
    size_t len;
    char *s = sl_json_dump(o, &len);
    assert_string_equal(s, "{\"z\":1,\"a\":\"x\\\"y\",\"m\":[true,null]}");
    assert_int_equal(len, strlen(s));
    free(s);
    json_decref(o);

    char out[64];
    const char in[] = "a\"b\\c\n\x01\xC3\xA9\xFF";
    size_t n = sl_json_escape(in, sizeof in - 1, out, sizeof out);
    assert_string_equal(out, "a\\\"b\\\\c\\n\\u0001\xC3\xA9\\ufffd");
    assert_int_equal(n, strlen(out));
    /* Truncation: returns the full length, writes what fits plus NUL. */
    char tiny[4];
    assert_int_equal(sl_json_escape("abcdef", 6, tiny, sizeof tiny), 6);
    assert_string_equal(tiny, "abc");
    assert_int_equal(sl_json_escape("\n", 1, NULL, 0), 2);

    assert_true(sl_utf8_valid("Zoë €𝄞", strlen("Zoë €𝄞")));
    assert_false(sl_utf8_valid("\xC0\xAF", 2));         /* overlong */
    assert_false(sl_utf8_valid("\xED\xA0\x80", 3));     /* surrogate */
    assert_false(sl_utf8_valid("\xF4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(sl_utf8_valid("\xE2\x82", 2));         /* truncated */
    /* ASCII is skipped eight bytes at a time: a bad or good sequence at every offset of a long
     * ASCII run, and one cut short by the end, is still judged. */
    char buf[40];
    for (size_t at = 0; at + 3 <= sizeof buf; at++) {
        memset(buf, 'a', sizeof buf);
        memcpy(buf + at, "\xE2\x82\xAC", 3); /* € */
        assert_true(sl_utf8_valid(buf, sizeof buf));
        buf[at + 2] = 'a'; /* truncated in the middle of the run */
        assert_false(sl_utf8_valid(buf, sizeof buf));
        memset(buf, 'a', sizeof buf);
        buf[at] = (char)0xFF;
        assert_false(sl_utf8_valid(buf, sizeof buf));
        assert_false(sl_utf8_valid(buf, at + 1));
        assert_true(sl_utf8_valid(buf, at)); /* the run before it alone is fine */
    }
}

/* The quick check proves plain JSON valid, and says "cannot tell" (0) for everything it does not
 * decide exactly as jansson would: every 1 must be a jansson accept. */
static void test_quick_valid(void **state)
{
    (void)state;
    static const char *const sure[] = {"{}",
                                       "[]",
                                       "0",
                                       "-0",
                                       "-12.5",
                                       "true",
                                       "false",
                                       "null",
                                       "\"\"",
                                       " \t\r\n{ } ",
                                       "{\"t\":1764345600000000000,\"pad\":\"0000000000\"}",
                                       "[1,[2,[3,{\"a\":{\"b\":[true,null]}}]]]",
                                       "\"caf\xc3\xa9 \xf0\x9f\x90\x9f\"",
                                       "{\"a\":\"x\\n\\t\\\"\\\\\\/\\b\\f\\r\"}",
                                       "{\"a\":1,\"b\":{\"a\":2},\"c\":[{\"a\":3}]}",
                                       "123456789012345678",
                                       "{\"a\":{},\"b\":{}}",
                                       "9223372036854775807",
                                       "-9223372036854775808",
                                       "0.1234567890123456789012345"};
    static const char *const unsure[] = {
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e5",
        "1E-2",
        "9223372036854775808",
        "-9223372036854775809",
        "12345678901234567890",
        "tru",
        "nul",
        "True",
        "[1 2]",
        "{} {}",
        "\"\\u0041\"",
        "\"\\x\"",
        "\"a\nb\"",
        "\"\xc3\"",
        "\"\xed\xa0\x80\"",
        "\"\xc0\xaf\"",
        "{\"a\":1,\"a\":2}",
        "{\"a\\u0062\":1}",
        "{\"a\":1,\"b\":{\"c\":1,\"c\":2}}",
        "\"abc",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"};
    for (size_t i = 0; i < sizeof sure / sizeof *sure; i++) {
        assert_int_equal(sl_json_quick_valid(sure[i], strlen(sure[i])), 1);
        json_error_t err;
        json_t *v = json_loads(sure[i], JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
        assert_non_null(v);
        /* The loader makes the value jansson makes: equal, same types, same key order. */
        json_t *q = NULL;
        assert_int_equal(sl_json_quick_load(sure[i], strlen(sure[i]), &q), 1);
        assert_true(json_equal(v, q));
        char *a = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY),
             *b = json_dumps(q, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_string_equal(a, b);
        free(a);
        free(b);
        json_decref(q);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof unsure / sizeof *unsure; i++) {
        assert_int_equal(sl_json_quick_valid(unsure[i], strlen(unsure[i])), 0);
        json_t *q = (json_t *)1;
        assert_int_equal(sl_json_quick_load(unsure[i], strlen(unsure[i]), &q), 0);
        assert_null(q);
    }
    /* Values the loader makes, checked by value rather than against jansson. */
    json_t *q = NULL;
    const char *doc = "{\"n\":-9223372036854775808,\"s\":\"a\\\"b\\nc\",\"r\":-12.5,\"z\":[]}";
    assert_int_equal(sl_json_quick_load(doc, strlen(doc), &q), 1);
    assert_true(json_integer_value(json_object_get(q, "n")) == INT64_MIN);
    assert_string_equal(json_string_value(json_object_get(q, "s")), "a\"b\nc");
    assert_true(json_is_real(json_object_get(q, "r")));
    assert_true(json_real_value(json_object_get(q, "r")) == -12.5);
    assert_int_equal(json_array_size(json_object_get(q, "z")), 0);
    assert_string_equal(json_object_iter_key(json_object_iter(q)), "n");
    json_decref(q);
    /* An escaped string longer than the loader's stack buffer. */
    char longs[700];
    size_t lo = 0;
    longs[lo++] = '"';
    for (int i = 0; i < 300; i++) {
        longs[lo++] = '\\';
        longs[lo++] = 'n';
    }
    longs[lo++] = '"';
    assert_int_equal(sl_json_quick_load(longs, lo, &q), 1);
    assert_int_equal(json_string_length(q), 300);
    assert_int_equal(json_string_value(q)[299], '\n');
    json_decref(q);
    /* A failure deep inside frees what was made (ASan checks) and leaves *out NULL. */
    const char *late = "{\"a\":[1,{\"b\":\"x\"},[true]],\"c\":{\"d\":[1,2,}}";
    assert_int_equal(sl_json_quick_load(late, strlen(late), &q), 0);
    assert_null(q);
    /* Length is honoured: a NUL inside, and bytes past `len`, are not read as the value. */
    assert_int_equal(sl_json_quick_valid("{}\0{", 4), 0);
    assert_int_equal(sl_json_quick_valid("[1]]", 3), 1);
    assert_int_equal(sl_json_quick_valid(NULL, 0), 0);
    /* 65 keys in one object: more than the check remembers, so it cannot tell. */
    char many[1024];
    size_t o = 0;
    many[o++] = '{';
    for (int i = 0; i < 65; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "%s\"k%d\":%d", i ? "," : "", i, i);
    many[o++] = '}';
    assert_int_equal(sl_json_quick_valid(many, o), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_limit),     cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_read_ok),         cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_min_lengths),     cmocka_unit_test(test_nested_paths),
        cmocka_unit_test(test_errors_bounded),  cmocka_unit_test(test_problem_body),
        cmocka_unit_test(test_dump_and_escape), cmocka_unit_test(test_quick_valid),
        cmocka_unit_test(test_read_money),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
