/*
 * The dead-letter administration every service answers (docs/events.md,
 * "Dead letters through the gateway"), over the `.dlq` of the topics it
 * consumes:
 *
 *   GET  /admin/dlq?page=&per_page=        {items, page, per_page, total}, oldest first
 *   POST /admin/dlq/{message_id}/redrive   {redriven: 1}; 404 when it is not there
 *   POST /admin/dlq/redrive                {redriven: n}: every one of every topic
 *
 * Items are {message_id, service, topic, subject, attempts, last_error, at}.
 * A message_id is "<service>~<topic>~<sequence in the dead-letter queue>":
 * opaque to clients, but it names the service and the topic so the gateway
 * can route it. Only an admin or service identity may call these (401/403).
 *
 * On the in-process broker of the hosted shape the dead letters live in the
 * service's own database (table dead_letters, events.c), not in `.dlq`
 * topics: the same routes read that table, the sequence in a message_id is
 * the row's, and a redrive republishes the envelope and deletes the row once
 * every consuming group settled the redriven message.
 *
 * The bus belongs to worker 0's loop: these routes answer there; on another
 * worker (a service run with service.workers > 1) they answer 503 with
 * Retry-After, which a new connection may land better.
 */
#include "service_int.h"

#include "bus/dead_store.h"

#include <shoal/bus.h>
#include <shoal/json.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_SCAN_MAX 1000 /* dead letters read per topic */

typedef enum dlq_act { DLQ_LIST, DLQ_REDRIVE_ONE, DLQ_REDRIVE_ALL } dlq_act;

typedef struct dlq_op {
    sl_http_req *req;
    sl_bus *bus;
    sl_events *ev;
    sl_db *dead_db; /* the in-process broker's dead letters are here (events.c), else NULL */
    const sl_service_def *def;
    dlq_act act;
    const char *topic; /* DLQ_REDRIVE_ONE: its topic and sequence */
    uint64_t seq;
    size_t pending; /* bus calls not yet answered */
    int failed;     /* the first error of one of them */
    json_t *items;  /* this service's dead letters, with "_seq" while collecting */
    int64_t page, per_page;
    size_t redriven;
} dlq_op;

static void op_free(dlq_op *op)
{
    json_decref(op->items);
    free(op);
}

/* Checks the caller and finds the bus. Returns it, or NULL after answering. */
static sl_bus *admin_bus(sl_http_req *req, sl_svc_worker *w)
{
    sl_identity id;
    if (sl_req_require_identity(req, 0, &id) != 0) return NULL;
    if (strcmp(id.role, "admin") != 0 && strcmp(id.role, "service") != 0) {
        sl_respond_problem_ex(req, 403, "dead letters are for admins and services", NULL);
        return NULL;
    }
    if (sl_svc_worker_index(w) != 0) {
        json_t *p = sl_svc_problem(503, NULL, "dead letters are administered by worker 0", NULL);
        sl_respond_problem_owned(req, 503, p, 1);
        return NULL;
    }
    sl_bus *bus = w->svc->events ? sl__events_bus(w->svc->events) : NULL;
    if (!bus) {
        json_t *p = sl_svc_problem(503, NULL, "this service has no bus connection", NULL);
        sl_respond_problem_owned(req, 503, p, 5);
        return NULL;
    }
    return bus;
}

static void fail(dlq_op *op)
{
    json_t *p = sl_svc_problem(503, NULL, "the dead-letter queue could not be read", NULL);
    sl_respond_problem_owned(op->req, 503, p, 1);
    op_free(op);
}

/* 1 when `group` is the consumer group of one of def's subscriptions (as events.c names it). */
static int own_group(const sl_service_def *def, const char *topic, const char *group)
{
    for (size_t i = 0; i < def->nsubscriptions; i++) {
        const sl_subscription_def *sub = &def->subscriptions[i];
        if (strcmp(sub->topic, topic) != 0) continue;
        char g[SL_BUS_GROUP_MAX + 1];
        if (sub->group) {
            snprintf(g, sizeof g, "%s", sub->group);
        } else {
            int n = snprintf(g, sizeof g, "%s-%s", def->name, sub->topic);
            for (int k = 0; k < n && k < (int)sizeof g; k++)
                if (g[k] == '.') g[k] = '-';
        }
        if (strcmp(g, group) == 0) return 1;
    }
    return 0;
}

static int by_time(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    const char *ax = json_string_value(json_object_get(x, "at"));
    const char *ay = json_string_value(json_object_get(y, "at"));
    int c = strcmp(ax ? ax : "", ay ? ay : "");
    if (c) return c;
    return strcmp(json_string_value(json_object_get(x, "message_id")),
                  json_string_value(json_object_get(y, "message_id")));
}

static void respond_list(dlq_op *op)
{
    size_t total = json_array_size(op->items);
    json_t **v = calloc(total ? total : 1, sizeof *v);
    if (!v) {
        fail(op);
        return;
    }
    for (size_t i = 0; i < total; i++)
        v[i] = json_array_get(op->items, i);
    qsort(v, total, sizeof *v, by_time); /* oldest first */
    size_t from = (size_t)((op->page - 1) * op->per_page);
    json_t *page = json_array();
    for (size_t i = from; i < total && i < from + (size_t)op->per_page; i++) {
        json_t *o = json_copy(v[i]);
        json_object_del(o, "_seq");
        json_array_append_new(page, o);
    }
    free(v);
    json_t *doc = json_pack("{s:o, s:I, s:I, s:I}", "items", page, "page", (json_int_t)op->page,
                            "per_page", (json_int_t)op->per_page, "total", (json_int_t)total);
    sl_respond_owned(op->req, 200, doc);
    op_free(op);
}

static void redrive_done(void *data, int status, size_t count)
{
    dlq_op *op = data;
    if (status != 0) op->failed = status;
    op->redriven += count;
    if (--op->pending > 0) return;
    if (op->failed) {
        fail(op);
    } else if (op->act == DLQ_REDRIVE_ONE && op->redriven == 0) {
        sl_respond_field(op->req, 404, "message_id", "no such dead letter", "no such dead letter");
        op_free(op);
    } else {
        sl_respond_owned(op->req, 200, json_pack("{s:I}", "redriven", (json_int_t)op->redriven));
        op_free(op);
    }
}

/* After collecting: redrive this service's dead letters (all, or the one asked for). */
static void redrive_collected(dlq_op *op)
{
    op->pending = 1; /* held while the redrives start */
    size_t i;
    json_t *o;
    json_array_foreach(op->items, i, o)
    {
        const char *t = json_string_value(json_object_get(o, "topic"));
        uint64_t seq = (uint64_t)json_integer_value(json_object_get(o, "_seq"));
        if (op->act == DLQ_REDRIVE_ONE && (seq != op->seq || strcmp(t, op->topic) != 0)) continue;
        op->pending++;
        if (op->dead_db) {
            int rc = sl__events_redrive_dead(op->ev, t, seq);
            redrive_done(op, rc == SL_EPARSE || rc == SL_ENOTFOUND ? 0 : rc, rc == 0);
        } else if (sl_bus_dlq_redrive(op->bus, t, seq, redrive_done, op) != 0) {
            op->pending--;
        }
    }
    redrive_done(op, 0, 0);
}

static void collected(void *data, int status, const sl_bus_dead *items, size_t n)
{
    dlq_op *op = data;
    if (status != 0) op->failed = status;
    for (size_t i = 0; status == 0 && i < n; i++) {
        const sl_bus_dead *d = &items[i];
        if (!own_group(op->def, d->topic, d->group)) continue; /* another service's */
        char mid[SL_BUS_TOPIC_MAX + 96];
        snprintf(mid, sizeof mid, "%s~%s~%" PRIu64, op->def->name, d->topic, d->dlq_seq);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:i, s:s, s:s?, s:I}", "message_id", mid,
                              "service", op->def->name, "topic", d->topic, "subject",
                              d->subject[0] ? d->subject : NULL, "attempts", (int)d->deliveries,
                              "last_error", d->reason, "at", d->at[0] ? d->at : NULL, "_seq",
                              (json_int_t)d->dlq_seq);
        if (o) json_array_append_new(op->items, o);
    }
    if (--op->pending > 0) return;
    if (op->failed)
        fail(op);
    else if (op->act == DLQ_LIST)
        respond_list(op);
    else
        redrive_collected(op);
}

/* Reads the dead letters of every consumed topic (or op->topic) at once. */
static void collect(dlq_op *op)
{
    op->pending = 1; /* held while the reads start */
    for (size_t t = 0; t < op->def->nsubscriptions; t++) {
        const char *topic = op->def->subscriptions[t].topic;
        if (op->topic && strcmp(topic, op->topic) != 0) continue;
        op->pending++;
        if (op->dead_db) {
            size_t n = 0;
            sl_bus_dead *items = malloc(DLQ_SCAN_MAX * sizeof *items);
            int rc = items ? sl__dead_store_list(op->dead_db, topic, DLQ_SCAN_MAX, items, &n)
                           : SL_ENOMEM;
            collected(op, rc, items, rc == 0 ? n : 0);
            free(items);
        } else if (sl_bus_dlq_list(op->bus, topic, DLQ_SCAN_MAX, collected, op) != 0) {
            op->pending--;
        }
    }
    collected(op, 0, NULL, 0);
}

static dlq_op *op_new(sl_http_req *req, sl_svc_worker *w, sl_bus *bus, dlq_act act)
{
    dlq_op *op = calloc(1, sizeof *op);
    json_t *items = json_array();
    if (!op || !items) {
        free(op);
        json_decref(items);
        sl_respond_problem_ex(req, 500, "out of memory", NULL);
        return NULL;
    }
    *op = (dlq_op){.req = req,
                   .bus = bus,
                   .ev = w->svc->events,
                   .dead_db = sl__events_dead_db(w->svc->events),
                   .def = w->svc->def,
                   .act = act,
                   .items = items};
    return op;
}

static void dlq_list(sl_http_req *req, sl_svc_worker *w)
{
    sl_bus *bus = admin_bus(req, w);
    if (!bus) return;
    sl_json_errors errs;
    sl_json_errors_init(&errs);
    int64_t page = 1, per_page = 20;
    if (sl_req_page(req, &page, &per_page, &errs) != 0) {
        sl_respond_invalid(req, &errs);
        return;
    }
    dlq_op *op = op_new(req, w, bus, DLQ_LIST);
    if (!op) return;
    op->page = page;
    op->per_page = per_page;
    collect(op);
}

/*
 * Splits "<service>~<topic>~<seq>" into topic and seq when the service is
 * `name` and the topic one of `def`'s subscriptions. Pure. Returns the
 * subscription's index, or -1.
 */
static int parse_message_id(const sl_service_def *def, sl_slice v, uint64_t *seq)
{
    const char *a = memchr(v.ptr, '~', v.len);
    if (!a) return -1;
    const char *end = v.ptr + v.len;
    const char *b = NULL;
    for (const char *p = end; p > a + 1; p--)
        if (p[-1] == '~') {
            b = p - 1;
            break;
        }
    if (!b || b == a) return -1;
    size_t nl = (size_t)(a - v.ptr), tl = (size_t)(b - a - 1), sl = (size_t)(end - b - 1);
    if (nl != strlen(def->name) || memcmp(v.ptr, def->name, nl) != 0 || sl == 0 || sl > 19)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < sl; i++) {
        char c = b[1 + i];
        if (c < '0' || c > '9') return -1;
        n = n * 10 + (uint64_t)(c - '0');
    }
    if (n == 0) return -1;
    for (size_t i = 0; i < def->nsubscriptions; i++) {
        const char *t = def->subscriptions[i].topic;
        if (strlen(t) == tl && memcmp(t, a + 1, tl) == 0) {
            *seq = n;
            return (int)i;
        }
    }
    return -1;
}

static void dlq_redrive_one(sl_http_req *req, sl_svc_worker *w)
{
    sl_bus *bus = admin_bus(req, w);
    if (!bus) return;
    sl_slice v = sl_route_param(&req->params, "message_id");
    uint64_t seq = 0;
    int t = v.len && v.len <= SL_BUS_TOPIC_MAX + 96 ? parse_message_id(w->svc->def, v, &seq) : -1;
    if (t < 0) {
        sl_respond_field(req, 404, "message_id", "no such dead letter", "no such dead letter");
        return;
    }
    dlq_op *op = op_new(req, w, bus, DLQ_REDRIVE_ONE);
    if (!op) return;
    op->topic = w->svc->def->subscriptions[t].topic;
    op->seq = seq;
    collect(op); /* only this service's own dead letter is redriven */
}

static void dlq_redrive_all(sl_http_req *req, sl_svc_worker *w)
{
    sl_bus *bus = admin_bus(req, w);
    if (!bus) return;
    dlq_op *op = op_new(req, w, bus, DLQ_REDRIVE_ALL);
    if (op) collect(op);
}

const sl_route_def sl__service_dlq_routes[] = {
    {SL_HTTP_GET, "/admin/dlq", dlq_list, 0},
    {SL_HTTP_POST, "/admin/dlq/redrive", dlq_redrive_all, 0},
    {SL_HTTP_POST, "/admin/dlq/{message_id}/redrive", dlq_redrive_one, 0},
};

const size_t sl__service_ndlq_routes = SL_ARRAY_LEN(sl__service_dlq_routes);
