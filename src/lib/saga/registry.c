/*
 * The process-wide registry of tracked saga ids (sl_saga_registry): a
 * chained hash set under one mutex. Drivers claim an id before tracking it
 * and release it when they stop, so two drivers of one process (one per
 * worker thread) never drive the same saga, and its size is the process's
 * backlog of running sagas for admission control. Claims are a few per saga,
 * not per request, so one mutex is enough.
 */
#include "saga/saga_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096 /* power of two */

typedef struct node {
    struct node *next;
    const void *owner;
    int64_t claimed_ms; /* the claiming driver's wall clock */
    char id[SL_SAGA_ID_MAX + 1];
} node;

struct sl_saga_registry {
    pthread_mutex_t mu;
    node *b[BUCKETS];
    _Atomic size_t count;
};

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h & (BUCKETS - 1));
}

int sl_saga_registry_new(sl_saga_registry **out)
{
    sl_saga_registry *r = calloc(1, sizeof *r);
    if (r == NULL) return SL_ENOMEM;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return SL_ENOMEM;
    }
    *out = r;
    return 0;
}

void sl_saga_registry_free(sl_saga_registry *r)
{
    if (r == NULL) return;
    for (size_t i = 0; i < BUCKETS; i++) {
        for (node *n = r->b[i]; n != NULL;) {
            node *next = n->next;
            free(n);
            n = next;
        }
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

size_t sl_saga_registry_count(sl_saga_registry *r)
{
    return atomic_load(&r->count);
}

int64_t sl_saga_registry_oldest_ms(sl_saga_registry *r)
{
    int64_t oldest = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < BUCKETS && atomic_load(&r->count) > 0; i++)
        for (const node *n = r->b[i]; n != NULL; n = n->next)
            if (oldest == 0 || n->claimed_ms < oldest) oldest = n->claimed_ms;
    pthread_mutex_unlock(&r->mu);
    return oldest;
}

int sl__saga_registry_claim(sl_saga_registry *r, const char *id, const void *owner, int64_t now_ms)
{
    node *fresh = calloc(1, sizeof *fresh);
    if (fresh == NULL) return SL_ENOMEM;
    fresh->claimed_ms = now_ms;
    sl__saga_text_copy(fresh->id, sizeof fresh->id, id, strlen(id));
    fresh->owner = owner;
    size_t h = hash(fresh->id);
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    for (node *n = r->b[h]; n != NULL; n = n->next) {
        if (strcmp(n->id, fresh->id) == 0) {
            rc = n->owner == owner ? 0 : SL_EBUSY;
            free(fresh);
            fresh = NULL;
            break;
        }
    }
    if (fresh != NULL) {
        fresh->next = r->b[h];
        r->b[h] = fresh;
        atomic_fetch_add(&r->count, 1);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void sl__saga_registry_release(sl_saga_registry *r, const char *id, const void *owner)
{
    size_t h = hash(id);
    pthread_mutex_lock(&r->mu);
    for (node **pp = &r->b[h]; *pp != NULL; pp = &(*pp)->next) {
        node *n = *pp;
        if (strcmp(n->id, id) == 0) {
            if (n->owner == owner) {
                *pp = n->next;
                free(n);
                atomic_fetch_sub(&r->count, 1);
            }
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
}
