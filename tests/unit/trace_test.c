/*
 * Unit tests for the trace module: W3C Trace Context parsing against the
 * specification's own examples, tracestate validation, and the tracer (span
 * pool, sampling, bounds, and the lock-free handoff to a real exporter thread).
 */
#include <shoal/trace.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TP_SAMPLED   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_UNSAMPLED "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"

static int parse(const char *s, sl_trace_ctx *c)
{
    return sl_traceparent_parse(s, strlen(s), c);
}

static void test_traceparent_spec_examples(void **state)
{
    (void)state;
    sl_trace_ctx c;
    /* §3.2.2.5 examples. */
    assert_int_equal(parse(TP_SAMPLED, &c), 0);
    static const uint8_t tid[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                    0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    static const uint8_t sid[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    assert_memory_equal(c.trace_id, tid, 16);
    assert_memory_equal(c.span_id, sid, 8);
    assert_int_equal(c.flags, SL_TRACE_FLAG_SAMPLED);
    char out[SL_TRACEPARENT_MAX];
    assert_int_equal(sl_traceparent_format(&c, out), 55);
    assert_string_equal(out, TP_SAMPLED);

    assert_int_equal(parse(TP_UNSAMPLED, &c), 0);
    assert_int_equal(c.flags, 0);
    sl_traceparent_format(&c, out);
    assert_string_equal(out, TP_UNSAMPLED);

    /* Unknown flag bits are kept as received (only "sampled" has a meaning in v00). */
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &c), 0);
    assert_int_equal(c.flags, 0x09);
}

static void test_traceparent_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "00",
        /* all-zero trace-id and parent-id (§3.2.2.3, §3.2.2.4) */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        /* version ff is forbidden (§3.2.2.1) */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* uppercase hex anywhere */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        /* version 00 must be exactly 55 characters */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        /* wrong field sizes, separators and characters */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01x",
        "00-4bf92f3577b34da6a3ce929d0e0e47366-0f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-g1",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
        /* a future version with trailing data must separate it with a dash */
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01what-the-future-will-be-like",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_trace_ctx c;
        memset(&c, 0xaa, sizeof c);
        if (parse(bad[i], &c) != SL_EPARSE) fail_msg("accepted traceparent %s", bad[i]);
        assert_int_equal(c.flags, 0xaa); /* untouched */
    }
    sl_trace_ctx c;
    assert_int_equal(sl_traceparent_parse(NULL, 55, &c), SL_EPARSE);
    /* An embedded NUL counts as a bad character, not as the end. */
    assert_int_equal(
        sl_traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\0", 55, &c),
        SL_EPARSE);
}

static void test_traceparent_future_versions(void **state)
{
    (void)state;
    sl_trace_ctx c;
    /* §3.2.4: a higher version is parsed by its first four fields, the rest ignored. */
    assert_int_equal(
        parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
            &c),
        0);
    assert_int_equal(c.flags, 1);
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &c), 0);
    assert_int_equal(c.flags, 0);
    assert_int_equal(parse("fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", &c), 0);
    /* We always emit version 00. */
    char out[SL_TRACEPARENT_MAX];
    sl_traceparent_format(&c, out);
    assert_string_equal(out, TP_SAMPLED);
}

static int ts_ok(const char *s)
{
    return sl_tracestate_validate(s, strlen(s)) == 0;
}

static void test_tracestate(void **state)
{
    (void)state;
    /* Examples from §3.3.1 and §3.3.2 of the specification. */
    assert_true(ts_ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    assert_true(ts_ok("congo=t61rcWkgMzE"));
    assert_true(ts_ok("rojo=00f067aa0ba902b7"));
    assert_true(ts_ok("congo=ucfJifl5GOE,rojo=00f067aa0ba902b7"));
    assert_true(ts_ok("fw529a3039@dt=ZGY2NzY5MTM2NDg1,rojo=00f067aa0ba902b7"));
    assert_true(ts_ok(""));                             /* empty header is accepted */
    assert_true(ts_ok("a=1 , b=2\t,\t c=3"));           /* OWS around commas */
    assert_true(ts_ok("a=1,,b=2, ,"));                  /* empty members are allowed */
    assert_true(ts_ok("a=b c"));                        /* inner space in a value */
    assert_true(ts_ok("k*/_-9=~!\"#$%&'()*+-./:;<>?")); /* every key and value class */
    assert_true(ts_ok("0tenant@sys=1"));                /* tenant may start with a digit */

    assert_false(ts_ok("Congo=t61rcWkgMzE"));   /* uppercase key */
    assert_false(ts_ok("1abc=x"));              /* simple key must start with lcalpha */
    assert_false(ts_ok("a=b=c"));               /* '=' in value */
    assert_false(ts_ok("a="));                  /* empty value */
    assert_false(ts_ok("=x"));                  /* empty key */
    assert_false(ts_ok("novalue"));             /* no '=' */
    assert_false(ts_ok("a=1,a=2"));             /* duplicate key */
    assert_false(ts_ok("t@1sys=x"));            /* system-id must start with lcalpha */
    assert_false(ts_ok("@sys=x"));              /* empty tenant */
    assert_false(ts_ok("t@=x"));                /* empty system */
    assert_false(ts_ok("a@b@c=x"));             /* two '@' */
    assert_false(ts_ok("t@abcdefghijklmno=x")); /* system-id of 15 chars */
    assert_false(ts_ok("a=x\x01y"));            /* control char */
    assert_false(ts_ok("a=caf\xc3\xa9"));       /* non-ASCII */

    /* Limits: 32 members OK, 33 not; values of 256 OK, 257 not; 512 bytes total. */
    char buf[1024];
    size_t n = 0;
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%sk%d=v", i ? "," : "", i);
    assert_int_equal(sl_tracestate_validate(buf, n), 0);
    n += (size_t)snprintf(buf + n, sizeof buf - n, ",k32=v");
    assert_int_equal(sl_tracestate_validate(buf, n), SL_EPARSE);

    memset(buf, 'v', sizeof buf);
    memcpy(buf, "a=", 2);
    assert_int_equal(sl_tracestate_validate(buf, 2 + 256), 0);
    assert_int_equal(sl_tracestate_validate(buf, 2 + 257), SL_EPARSE);
    memcpy(buf + 258, ",b=", 3);
    assert_int_equal(sl_tracestate_validate(buf, 512), 0);
    assert_int_equal(sl_tracestate_validate(buf, 513), SL_EPARSE); /* our bound */

    sl_tracestate ts;
    assert_int_equal(sl_tracestate_set(&ts, "rojo=1", 6), 0);
    assert_string_equal(ts.value, "rojo=1");
    assert_int_equal(sl_tracestate_set(&ts, "Rojo=1", 6), SL_EPARSE);
    assert_int_equal(ts.len, 0); /* discarded */
}

static void test_id_generation(void **state)
{
    (void)state;
    sl_rand r;
    sl_rand_seed(&r, 7);
    uint8_t a[16], b[16], s[8];
    sl_trace_id_new(&r, a);
    sl_trace_id_new(&r, b);
    assert_memory_not_equal(a, b, 16);
    for (int i = 0; i < 1000; i++) {
        sl_trace_ctx c = {.flags = 1};
        sl_trace_id_new(&r, c.trace_id);
        sl_span_id_new(&r, s);
        memcpy(c.span_id, s, 8);
        assert_true(sl_trace_ctx_is_valid(&c));
        char tp[SL_TRACEPARENT_MAX];
        sl_traceparent_format(&c, tp);
        sl_trace_ctx back;
        assert_int_equal(parse(tp, &back), 0);
        assert_memory_equal(&back.trace_id, &c.trace_id, 16);
    }
}

/* ---- tracer ---------------------------------------------------------------------------- */

typedef struct capture {
    sl_span_data spans[64];
    size_t n;
} capture;

static void capture_cb(const sl_span_data *span, void *data)
{
    capture *c = data;
    if (c->n < SL_ARRAY_LEN(c->spans)) c->spans[c->n++] = *span;
}

static sl_tracer *make_tracer(sl_fake_clock *fc, sl_rand *r, double ratio, uint32_t active,
                              uint32_t buffer)
{
    sl_fake_clock_init(fc, (int64_t)1700000000 * 1000000000);
    sl_rand_seed(r, 42);
    sl_tracer_config cfg;
    sl_tracer_config_init(&cfg);
    cfg.service = "order";
    cfg.clock = &fc->clock;
    cfg.rand = r;
    cfg.sample_ratio = ratio;
    cfg.max_active = active;
    cfg.buffer_spans = buffer;
    sl_tracer *t = NULL;
    assert_int_equal(sl_tracer_new(&cfg, &t), 0);
    return t;
}

static void test_span_lifecycle(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_rand r;
    sl_tracer *t = make_tracer(&fc, &r, 1.0, 8, 16);
    assert_string_equal(sl_tracer_service(t), "order");

    sl_trace_ctx remote;
    assert_int_equal(parse(TP_SAMPLED, &remote), 0);
    sl_span *srv, *cli;
    sl_span_start(t, "GET /orders/{id}", SL_SPAN_SERVER, &remote, &srv);
    assert_true(sl_span_is_recording(srv));
    const sl_trace_ctx *sc = sl_span_context(srv);
    assert_memory_equal(sc->trace_id, remote.trace_id, 16);  /* joins the trace */
    assert_memory_not_equal(sc->span_id, remote.span_id, 8); /* new span id */
    assert_int_equal(sc->flags, SL_TRACE_FLAG_SAMPLED);
    sl_span_set_attr_str(srv, "http.method", "GET");
    sl_span_set_attr_int(srv, "http.status_code", 200);

    sl_span_start(t, "payment.charge", SL_SPAN_CLIENT, sl_span_context(srv), &cli);
    sl_trace_ctx link = remote;
    sl_span_add_link(cli, &link);
    sl_span_set_status(cli, SL_SPAN_STATUS_ERROR, "upstream 503");
    sl_fake_clock_advance(&fc, 1500000);
    sl_span_end(cli);
    sl_fake_clock_advance(&fc, 500000);
    sl_span_end(srv);

    capture cap = {0};
    assert_int_equal(sl_tracer_drain(t, capture_cb, &cap, 100), 2);
    assert_int_equal(sl_tracer_drain(t, capture_cb, &cap, 100), 0);
    const sl_span_data *c = &cap.spans[0], *s = &cap.spans[1];
    assert_string_equal(c->name, "payment.charge");
    assert_int_equal(c->kind, SL_SPAN_CLIENT);
    assert_string_equal(sl_span_kind_name(c->kind), "client");
    assert_memory_equal(c->parent_span_id, s->ctx.span_id, 8);
    assert_int_equal(c->status, SL_SPAN_STATUS_ERROR);
    assert_string_equal(c->status_message, "upstream 503");
    assert_int_equal(c->n_links, 1);
    assert_int_equal(c->end_ns - c->start_ns, 1500000);
    assert_string_equal(s->name, "GET /orders/{id}");
    assert_memory_equal(s->parent_span_id, remote.span_id, 8);
    assert_int_equal(s->end_ns - s->start_ns, 2000000);
    assert_int_equal(s->start_ns, (int64_t)1700000000 * 1000000000);
    assert_int_equal(s->n_attrs, 2);
    assert_string_equal(s->attrs[0].key, "http.method");
    assert_int_equal(s->attrs[0].type, SL_SPAN_ATTR_STR);
    assert_string_equal(s->attrs[0].s, "GET");
    assert_int_equal(s->attrs[1].type, SL_SPAN_ATTR_INT);
    assert_int_equal(s->attrs[1].i, 200);

    sl_tracer_stats st;
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.started, 2);
    assert_int_equal(st.recorded, 2);
    assert_int_equal(st.dropped_full, 0);
    sl_tracer_free(t);
}

static void test_bounds(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_rand r;
    sl_tracer *t = make_tracer(&fc, &r, 1.0, 4, 4);
    sl_span *s;
    char longname[200];
    memset(longname, 'n', sizeof longname);
    longname[199] = '\0';
    longname[62] = (char)0xc3; /* a two-byte character straddling the cut at 63 bytes */
    longname[63] = (char)0xa9;
    sl_span_start(t, longname, SL_SPAN_INTERNAL, NULL, &s);
    for (int i = 0; i < SL_SPAN_ATTRS_MAX + 5; i++)
        sl_span_set_attr_int(s, "k", i);
    sl_span_set_attr_str(s, "k", "dropped too");
    for (int i = 0; i < SL_SPAN_LINKS_MAX + 2; i++)
        sl_span_add_link(s, sl_span_context(s));
    sl_span_end(s);

    sl_span_start(t, "x", SL_SPAN_INTERNAL, NULL, &s);
    sl_span_set_attr_str(s, "a_key_that_is_longer_than_31_bytes", "v");
    sl_span_set_attr_str(s, "long", longname);
    sl_span_end(s);

    capture cap = {0};
    assert_int_equal(sl_tracer_drain(t, capture_cb, &cap, 10), 2);
    assert_int_equal(strlen(cap.spans[0].name), 62); /* cut before the split character */
    assert_int_equal(cap.spans[0].n_attrs, SL_SPAN_ATTRS_MAX);
    assert_int_equal(cap.spans[0].dropped_attrs, 6);
    assert_int_equal(cap.spans[0].n_links, SL_SPAN_LINKS_MAX);
    assert_int_equal(cap.spans[0].dropped_links, 2);
    assert_int_equal(cap.spans[1].n_attrs, 1);
    assert_int_equal(cap.spans[1].dropped_attrs, 1);
    assert_int_equal(strlen(cap.spans[1].attrs[0].s), SL_SPAN_ATTR_STR_MAX);
    sl_tracer_free(t);
}

static void test_sampling(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_rand r;
    sl_tracer *t = make_tracer(&fc, &r, 0.0, 8, 8);
    sl_span *s;
    /* Ratio 0: roots are non-recording but still carry valid, propagatable ids. */
    sl_span_start(t, "root", SL_SPAN_SERVER, NULL, &s);
    assert_false(sl_span_is_recording(s));
    assert_true(sl_trace_ctx_is_valid(sl_span_context(s)));
    assert_int_equal(sl_span_context(s)->flags, 0);
    sl_span_set_attr_int(s, "ignored", 1);
    sl_span_end(s);
    /* A sampled remote parent wins over the ratio; an unsampled one is followed too. */
    sl_trace_ctx p;
    assert_int_equal(parse(TP_SAMPLED, &p), 0);
    sl_span_start(t, "child", SL_SPAN_SERVER, &p, &s);
    assert_true(sl_span_is_recording(s));
    sl_span_end(s);
    assert_int_equal(parse(TP_UNSAMPLED, &p), 0);
    sl_span_start(t, "child2", SL_SPAN_SERVER, &p, &s);
    assert_false(sl_span_is_recording(s));
    sl_span_end(s);
    /* An invalid parent (all zeros) starts a new root trace. */
    sl_trace_ctx zero = {.flags = 1};
    sl_span_start(t, "root2", SL_SPAN_SERVER, &zero, &s);
    assert_true(sl_trace_ctx_is_valid(sl_span_context(s)));
    assert_false(sl_span_is_recording(s));
    sl_span_end(s);

    capture cap = {0};
    assert_int_equal(sl_tracer_drain(t, capture_cb, &cap, 10), 1);
    assert_string_equal(cap.spans[0].name, "child");
    sl_tracer_stats st;
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.unsampled, 3);
    sl_tracer_free(t);

    /* Ratio 0.25 over many roots: roughly a quarter sampled. */
    t = make_tracer(&fc, &r, 0.25, 8, 8);
    int sampled = 0;
    for (int i = 0; i < 10000; i++) {
        sl_span_start(t, "r", SL_SPAN_SERVER, NULL, &s);
        sampled += sl_span_is_recording(s);
        sl_span_end(s);
        while (sl_tracer_drain(t, capture_cb, &(capture){0}, 100) > 0) {
        }
    }
    assert_true(sampled > 2200 && sampled < 2800);
    sl_tracer_free(t);
}

/* Quiet roots (probes, polls) are never head-sampled; with a parent they follow it. */
static void test_quiet_roots(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_rand r;
    sl_tracer *t = make_tracer(&fc, &r, 1.0, 8, 8);
    sl_span *s;
    sl_span_start_quiet(t, "GET /healthz", SL_SPAN_SERVER, NULL, &s);
    assert_false(sl_span_is_recording(s));
    assert_true(sl_trace_ctx_is_valid(sl_span_context(s)));
    assert_int_equal(sl_span_context(s)->flags, 0);
    sl_span_end(s);
    sl_trace_ctx p;
    assert_int_equal(parse(TP_SAMPLED, &p), 0);
    sl_span_start_quiet(t, "GET /metrics", SL_SPAN_SERVER, &p, &s);
    assert_true(sl_span_is_recording(s));
    assert_int_equal(sl_span_context(s)->flags & SL_TRACE_FLAG_SAMPLED, SL_TRACE_FLAG_SAMPLED);
    sl_span_end(s);
    /* The same tracer still samples ordinary roots at its ratio (1.0). */
    sl_span_start(t, "GET /orders", SL_SPAN_SERVER, NULL, &s);
    assert_true(sl_span_is_recording(s));
    sl_span_end(s);
    capture cap = {0};
    assert_int_equal(sl_tracer_drain(t, capture_cb, &cap, 10), 2);
    assert_string_equal(cap.spans[0].name, "GET /metrics");
    assert_string_equal(cap.spans[1].name, "GET /orders");
    sl_tracer_free(t);

    /* With errors kept, a quiet root that fails is exported; one that succeeds is not. */
    sl_tracer_config cfg;
    sl_tracer_config_init(&cfg);
    cfg.service = "gateway";
    cfg.clock = &fc.clock;
    cfg.rand = &r;
    cfg.keep_errors = 1;
    assert_int_equal(sl_tracer_new(&cfg, &t), 0);
    sl_span_start_quiet(t, "poll ok", SL_SPAN_CLIENT, NULL, &s);
    sl_span_end(s);
    sl_span_start_quiet(t, "poll failed", SL_SPAN_CLIENT, NULL, &s);
    sl_span_set_status(s, SL_SPAN_STATUS_ERROR, "connection refused");
    assert_int_equal(sl_span_context(s)->flags, 0);
    sl_span_end(s);
    capture cap2 = {0};
    assert_int_equal(sl_tracer_drain(t, capture_cb, &cap2, 10), 1);
    assert_string_equal(cap2.spans[0].name, "poll failed");
    sl_tracer_free(t);
}

static void test_pool_exhausted_and_buffer_full(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_rand r;
    sl_tracer *t = make_tracer(&fc, &r, 1.0, 2, 2); /* pool = 2 active + 2 buffered */
    sl_span *open[6];
    for (int i = 0; i < 6; i++) {
        sl_span_start(t, "s", SL_SPAN_INTERNAL, NULL, &open[i]);
        assert_non_null(open[i]);
        assert_true(sl_trace_ctx_is_valid(sl_span_context(open[i])));
    }
    for (int i = 0; i < 4; i++)
        assert_true(sl_span_is_recording(open[i]));
    assert_false(sl_span_is_recording(open[4])); /* pool exhausted */
    sl_span_set_attr_int(open[4], "k", 1);       /* harmless no-ops */
    sl_span_set_status(open[4], SL_SPAN_STATUS_OK, "x");
    for (int i = 0; i < 6; i++)
        sl_span_end(open[i]);

    sl_tracer_stats st;
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.pool_exhausted, 2);
    assert_int_equal(st.recorded, 2);     /* the buffer holds 2 */
    assert_int_equal(st.dropped_full, 2); /* the newest two are dropped */
    capture cap = {0};
    assert_int_equal(sl_tracer_drain(t, capture_cb, &cap, 1), 1);
    assert_int_equal(sl_tracer_drain(t, capture_cb, &cap, 10), 1);
    /* After draining, every span is reusable again. */
    for (int i = 0; i < 4; i++) {
        sl_span_start(t, "again", SL_SPAN_INTERNAL, NULL, &open[i]);
        assert_true(sl_span_is_recording(open[i]));
    }
    for (int i = 0; i < 4; i++)
        sl_span_end(open[i]);
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.pool_touched, 4);
    sl_tracer_free(t);
}

/* The pool is touched only as far as spans are in use at once: freed and drained spans are
 * reused before a fresh one is handed out, so a quiet process keeps few spans in memory. */
/* With no exporter (record_off) spans carry and propagate their context, sampled flag
 * included, but none records or waits in the buffer. */
static void test_record_off(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_rand r;
    sl_fake_clock_init(&fc, (int64_t)1700000000 * 1000000000);
    sl_rand_seed(&r, 7);
    sl_tracer_config cfg;
    sl_tracer_config_init(&cfg);
    cfg.service = "cart";
    cfg.clock = &fc.clock;
    cfg.rand = &r;
    cfg.keep_errors = 1;
    cfg.record_off = 1;
    sl_tracer *t = NULL;
    assert_int_equal(sl_tracer_new(&cfg, &t), 0);
    sl_trace_ctx p;
    assert_int_equal(parse(TP_SAMPLED, &p), 0);
    sl_span *s, *c;
    sl_span_start(t, "GET /cart", SL_SPAN_SERVER, &p, &s);
    assert_false(sl_span_is_recording(s));
    assert_memory_equal(sl_span_context(s)->trace_id, p.trace_id, SL_TRACE_ID_LEN);
    assert_int_equal(sl_span_context(s)->flags & SL_TRACE_FLAG_SAMPLED, SL_TRACE_FLAG_SAMPLED);
    sl_span_start(t, "GET /products", SL_SPAN_CLIENT, sl_span_context(s), &c);
    assert_memory_equal(sl_span_context(c)->trace_id, p.trace_id, SL_TRACE_ID_LEN);
    assert_memory_not_equal(sl_span_context(c)->span_id, sl_span_context(s)->span_id,
                            SL_SPAN_ID_LEN);
    sl_span_set_status(c, SL_SPAN_STATUS_ERROR, "refused"); /* not kept either */
    sl_span_end(c);
    sl_span_end(s);
    sl_span_start(t, "root", SL_SPAN_SERVER, NULL, &s); /* a root: sampled by the ratio (1.0) */
    assert_int_equal(sl_span_context(s)->flags & SL_TRACE_FLAG_SAMPLED, SL_TRACE_FLAG_SAMPLED);
    sl_span_end(s);
    capture cap = {0};
    assert_int_equal(sl_tracer_drain(t, capture_cb, &cap, 10), 0);
    sl_tracer_stats st;
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.started, 3);
    assert_int_equal(st.recorded, 0);
    assert_int_equal(st.kept_unsampled, 0);
    assert_int_equal(st.pool_touched, 2);
    sl_tracer_free(t);
}

static void test_pool_touched_only_as_needed(void **state)
{
    (void)state;
    sl_fake_clock fc;
    sl_rand r;
    sl_tracer *t = make_tracer(&fc, &r, 0.0, 256, 1024);
    sl_tracer_stats st;
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.pool_touched, 0);
    sl_span *a, *b, *c;
    /* Unsampled spans go straight back to the free stack: one span serves them all. */
    for (int i = 0; i < 100; i++) {
        sl_span_start(t, "quiet", SL_SPAN_SERVER, NULL, &a);
        sl_span_end(a);
    }
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.started, 100);
    assert_int_equal(st.pool_touched, 1);
    /* Three open at once need three. */
    sl_span_start(t, "a", SL_SPAN_SERVER, NULL, &a);
    sl_span_start(t, "b", SL_SPAN_CLIENT, sl_span_context(a), &b);
    sl_span_start(t, "c", SL_SPAN_CLIENT, sl_span_context(a), &c);
    sl_span_end(c);
    sl_span_end(b);
    sl_span_end(a);
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.pool_touched, 3);
    sl_tracer_free(t);

    /* Recorded spans wait in the export buffer; once drained they are reused. */
    t = make_tracer(&fc, &r, 1.0, 4, 8);
    capture cap = {0};
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 3; i++) {
            sl_span_start(t, "sampled", SL_SPAN_SERVER, NULL, &a);
            sl_span_end(a);
        }
        assert_int_equal(sl_tracer_drain(t, capture_cb, &cap, 10), 3);
        cap.n = 0;
    }
    sl_tracer_stats_get(t, &st);
    assert_int_equal(st.recorded, 15);
    assert_int_equal(st.pool_touched, 3);
    sl_tracer_free(t);

    sl_tracer_config cfg;
    sl_tracer_config_init(&cfg);
    assert_int_equal(sl_tracer_new(&cfg, &t), SL_EINVAL); /* no clock, rand, service */
}

/* ---- producer/consumer race with a real exporter thread ------------------------------ */

#define RACE_SPANS 200000

typedef struct race {
    sl_tracer *tracer;
    atomic_int producer_done;
    uint8_t *seen; /* RACE_SPANS entries */
    size_t delivered, duplicates, out_of_order;
    int64_t last_seq;
} race;

static void race_cb(const sl_span_data *span, void *data)
{
    race *rc = data;
    int64_t seq = span->attrs[0].i;
    if (span->n_attrs != 1 || seq < 0 || seq >= RACE_SPANS) {
        rc->duplicates++; /* corrupt: count as a failure */
        return;
    }
    if (rc->seen[seq]++) rc->duplicates++;
    if (seq <= rc->last_seq) rc->out_of_order++;
    rc->last_seq = seq;
    rc->delivered++;
}

static void *exporter_main(void *arg)
{
    race *rc = arg;
    for (;;) {
        int done = atomic_load(&rc->producer_done);
        size_t n = sl_tracer_drain(rc->tracer, race_cb, rc, 37);
        if (n == 0 && done) break;
    }
    return NULL;
}

static void test_exporter_thread_race(void **state)
{
    (void)state;
    sl_rand r;
    sl_rand_seed(&r, 9);
    sl_tracer_config cfg;
    sl_tracer_config_init(&cfg);
    cfg.service = "race";
    cfg.clock = sl_clock_system();
    cfg.rand = &r;
    cfg.max_active = 4;
    cfg.buffer_spans = 64; /* small, so that some spans are dropped */
    race rc = {.seen = calloc(RACE_SPANS, 1), .last_seq = -1};
    assert_non_null(rc.seen);
    atomic_init(&rc.producer_done, 0);
    assert_int_equal(sl_tracer_new(&cfg, &rc.tracer), 0);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, exporter_main, &rc), 0);
    for (int64_t i = 0; i < RACE_SPANS; i++) {
        sl_span *s;
        sl_span_start(rc.tracer, "work", SL_SPAN_INTERNAL, NULL, &s);
        sl_span_set_attr_int(s, "seq", i);
        sl_span_end(s);
    }
    atomic_store(&rc.producer_done, 1);
    assert_int_equal(pthread_join(th, NULL), 0);

    sl_tracer_stats st;
    sl_tracer_stats_get(rc.tracer, &st);
    assert_int_equal(rc.duplicates, 0);
    assert_int_equal(rc.out_of_order, 0);
    assert_int_equal(st.pool_exhausted, 0); /* one open span at a time never exhausts it */
    assert_int_equal(st.started, RACE_SPANS);
    assert_int_equal(st.recorded, rc.delivered);
    /* Every span was delivered exactly once or counted as dropped. */
    assert_int_equal(rc.delivered + st.dropped_full, RACE_SPANS);
    size_t seen = 0;
    for (size_t i = 0; i < RACE_SPANS; i++)
        seen += rc.seen[i];
    assert_int_equal(seen, rc.delivered);
    assert_true(rc.delivered > 0);
    print_message("delivered %zu, dropped %llu\n", rc.delivered,
                  (unsigned long long)st.dropped_full);
    sl_tracer_free(rc.tracer);
    free(rc.seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_spec_examples),
        cmocka_unit_test(test_traceparent_invalid),
        cmocka_unit_test(test_traceparent_future_versions),
        cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_id_generation),
        cmocka_unit_test(test_span_lifecycle),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_quiet_roots),
        cmocka_unit_test(test_pool_exhausted_and_buffer_full),
        cmocka_unit_test(test_pool_touched_only_as_needed),
        cmocka_unit_test(test_record_off),
        cmocka_unit_test(test_exporter_thread_race),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
