/*
 * Test helper: the consuming side of the durability pipeline. Usage:
 *   bus_consumer DB_URL NATS_URLS CONTEXT
 * Runs a transactional runner (group "pipeline") on shop.CONTEXT.happened.v1
 * whose effect inserts the event's number into `effects` (no uniqueness
 * constraint: only the inbox claim keeps an event from applying twice).
 * Runs until killed (SIGTERM: clean close).
 */
#include <shoal/bus.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int apply(void *data, sl_db *tx, const sl_bus_msg *m, char *reason, size_t cap)
{
    (void)data;
    (void)reason;
    (void)cap;
    sl_db_stmt *st;
    int rc = sl_db_prepare(tx, "INSERT INTO effects(n) VALUES (?)", &st);
    if (rc) return rc;
    rc = sl_db_bind_int64(st, 1, json_integer_value(json_object_get(m->data, "n")));
    if (rc == 0) rc = sl_db_step(st);
    sl_db_stmt_done(st);
    return rc < 0 ? rc : 0;
}

static void on_signal(uv_signal_t *s, int sig)
{
    (void)sig;
    uv_stop(s->loop);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bus_consumer DB_URL NATS_URLS CONTEXT\n");
        return 2;
    }
    char err[256], topic[128];
    snprintf(topic, sizeof topic, "shop.%s.happened.v1", argv[3]);
    sl_db *db;
    if (sl_db_open(argv[1], NULL, &db, err, sizeof err) != 0 ||
        sl_db_migrate(db, sl_db_lib_migrations(), NULL) != 0 ||
        sl_db_exec(db, "CREATE TABLE IF NOT EXISTS effects(n INTEGER NOT NULL)") != 0) {
        fprintf(stderr, "consumer: db: %s\n", err);
        return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    const char *ctxs[] = {argv[3]};
    const char *rep = getenv("BUS_REPLICAS");
    sl_bus_options o = {
        .url = argv[2],
        .contexts = ctxs,
        .n_contexts = 1,
        .replicas = rep ? atoi(rep) : 1,
        .partitions = getenv("BUS_PARTITIONS") ? (unsigned)atoi(getenv("BUS_PARTITIONS")) : 0};
    sl_bus *bus;
    if (sl_bus_open(loop, &o, &bus, err, sizeof err) != 0) {
        fprintf(stderr, "consumer: bus: %s\n", err);
        return 1;
    }
    const char *unordered = getenv("BUS_UNORDERED");
    sl_bus_sub_options so = {
        .ack_wait_ms = 2000, .backoff_max_ms = 2000, .unordered = unordered && atoi(unordered)};
    sl_bus_runner *r;
    const char *group = getenv("BUS_GROUP") ? getenv("BUS_GROUP") : "pipeline";
    if (sl_bus_runner_new(bus, db, topic, group, &so, NULL, apply, NULL, &r) != 0) {
        fprintf(stderr, "consumer: runner failed\n");
        return 1;
    }
    uv_signal_t sig;
    uv_signal_init(loop, &sig);
    uv_signal_start(&sig, on_signal, SIGTERM);
    uv_unref((uv_handle_t *)&sig);
    uv_run(loop, UV_RUN_DEFAULT);
    sl_bus_stats st;
    sl_bus_get_stats(bus, &st);
    fprintf(stderr, "consumer: delivered %llu redelivered %llu dead %llu\n",
            (unsigned long long)st.delivered, (unsigned long long)st.redelivered,
            (unsigned long long)st.dead_lettered);
    sl_bus_runner_free(r);
    uv_close((uv_handle_t *)&sig, NULL);
    sl_bus_close(bus, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    sl_db_close(db);
    return 0;
}
