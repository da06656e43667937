/* Internals shared by the service host's files (service.c, events.c). */
#ifndef SHOAL_SERVICE_INT_H
#define SHOAL_SERVICE_INT_H

#include <shoal/service.h>

typedef struct sl_events sl_events;

/*
 * Event plumbing of a service (events.c): the bus, the outbox relay and the
 * subscriptions' transactional runners, all on worker 0's loop.
 *   sl__events_new   main thread, after migrations: reads bus.* settings, opens the relay's
 *                    database connection, creates the relay (not started)
 *   sl__events_watch any worker thread: the relay wakes after that connection's commits
 *   sl__events_start worker 0's thread: opens the bus, starts the relay and the runners
 *   sl__events_stop  worker 0's thread: stops the runners and the relay, closes the bus
 *   sl__events_free  main thread, after the workers stopped
 */
int sl__events_new(sl_service *svc, const sl_service_def *def, sl_config *cfg, const char *db_url,
                   const void *db_opts, sl_logger *log, sl_metrics *metrics, sl_events **out);
void sl__events_watch(sl_events *ev, sl_db *db);
int sl__events_start(sl_events *ev, uv_loop_t *loop);
void sl__events_stop(sl_events *ev);
void sl__events_free(sl_events *ev);

#endif
