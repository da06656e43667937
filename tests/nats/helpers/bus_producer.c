/*
 * Test helper: the producing side of the durability pipeline. Usage:
 *   bus_producer DB_URL NATS_URLS CONTEXT TOTAL
 * Writes events ev-0 … ev-(TOTAL-1) into the outbox of DB_URL in
 * transactions of 500 (resuming after the last committed one when
 * restarted after kill -9), while an outbox relay publishes them through
 * the bus to topic shop.CONTEXT.happened.v1. Exits 0 once every event is
 * written and published. Prints nothing but errors.
 */
#include <shoal/bus.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct prod {
    sl_db *db;
    sl_bus *bus;
    sl_outbox_relay *relay;
    uv_timer_t timer;
    long total, written;
    char topic[128];
    int done;
} prod;

static long count_rows(sl_db *db)
{
    sl_db_stmt *st;
    if (sl_db_prepare(db, "SELECT count(*) FROM outbox", &st) != 0) return -1;
    long n = sl_db_step(st) == SL_DB_ROW ? (long)sl_db_column_int64(st, 0) : -1;
    sl_db_stmt_done(st);
    return n;
}

static int write_chunk(prod *p)
{
    if (sl_db_begin(p->db) != 0) return -1;
    long end = p->written + 500 < p->total ? p->written + 500 : p->total;
    int64_t now = sl_clock_wall_ns(sl_clock_system());
    for (long i = p->written; i < end; i++) {
        char id[32], subj[32], data[160];
        snprintf(id, sizeof id, "ev-%ld", i);
        snprintf(subj, sizeof subj, "agg-%ld", i % 100);
        snprintf(data, sizeof data, "{\"n\":%ld,\"pad\":\"%0100d\"}", i, 0);
        sl_outbox_event ev = {.id = id,
                              .source = "/test/producer",
                              .type = p->topic,
                              .subject = subj,
                              .data_json = data};
        if (sl_outbox_add(p->db, &ev, now, NULL) != 0) {
            sl_db_rollback(p->db);
            return -1;
        }
    }
    if (sl_db_commit(p->db) != 0) return -1;
    p->written = end;
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    prod *p = t->data;
    if (p->written < p->total) {
        /* Keep the outbox backlog bounded so writing and relaying interleave. */
        int64_t backlog = 0, age = 0;
        if (sl_outbox_backlog(p->db, 0, &backlog, &age) == 0 && backlog < 5000) {
            if (write_chunk(p) != 0)
                fprintf(stderr, "producer: write failed: %s\n", sl_db_errmsg(p->db));
            sl_outbox_notify(p->relay);
        }
        return;
    }
    int64_t backlog = 1, age = 0;
    if (sl_outbox_backlog(p->db, 0, &backlog, &age) == 0 && backlog == 0) {
        p->done = 1;
        uv_timer_stop(t);
        uv_stop(t->loop);
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bus_producer DB_URL NATS_URLS CONTEXT TOTAL\n");
        return 2;
    }
    prod p = {.total = atol(argv[4])};
    snprintf(p.topic, sizeof p.topic, "shop.%s.happened.v1", argv[3]);
    char err[256];
    if (sl_db_open(argv[1], NULL, &p.db, err, sizeof err) != 0 ||
        sl_db_migrate(p.db, sl_db_lib_migrations(), NULL) != 0) {
        fprintf(stderr, "producer: db: %s\n", err);
        return 1;
    }
    p.written = count_rows(p.db);
    uv_loop_t *loop = uv_default_loop();
    const char *ctxs[] = {argv[3]};
    const char *rep = getenv("BUS_REPLICAS");
    sl_bus_options o = {.url = argv[2],
                        .contexts = ctxs,
                        .n_contexts = 1,
                        .replicas = rep ? atoi(rep) : 1,
                        .partitions =
                            getenv("BUS_PARTITIONS") ? (unsigned)atoi(getenv("BUS_PARTITIONS")) : 0,
                        .publish_timeout_ms = 3000};
    if (sl_bus_open(loop, &o, &p.bus, err, sizeof err) != 0) {
        fprintf(stderr, "producer: bus: %s\n", err);
        return 1;
    }
    sl_outbox_publisher pub = sl_bus_outbox_publisher(p.bus);
    sl_outbox_relay_options ro = {
        .batch_max = 512, .retry_base_ms = 50, .retry_max_ms = 1000, .poll_ms = 100};
    if (sl_outbox_relay_new(p.db, &pub, &ro, &p.relay) != 0 ||
        sl_outbox_relay_start(p.relay, loop) != 0) {
        fprintf(stderr, "producer: relay failed\n");
        return 1;
    }
    uv_timer_init(loop, &p.timer);
    p.timer.data = &p;
    uv_timer_start(&p.timer, on_timer, 1, 1);
    uv_run(loop, UV_RUN_DEFAULT);
    sl_outbox_relay_stop(p.relay);
    uv_close((uv_handle_t *)&p.timer, NULL);
    sl_bus_close(p.bus, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    sl_outbox_relay_free(p.relay);
    sl_db_close(p.db);
    return p.done ? 0 : 1;
}
