/*
 * request_queue.c -- the per-communicator FIFO of posted requests shared by
 * the backends that run their collectives in posting order (see
 * request_queue.h).
 */
#include "collectives/request_queue.h"
#include "runtime/error.h"

#include <assert.h>
#include <stdlib.h>

int weft_request_queue_reserve(weft_request_queue *q, size_t want, const weft_comm *c)
{
    if (want <= q->cap)
        return 0;
    size_t cap = q->cap ? 2 * q->cap : 16;
    while (cap < want)
        cap *= 2;
    weft_request **ring = malloc(cap * sizeof *ring);
    if (!ring)
        return weft_error(WEFT_ENOMEM, "%s: communicator '%s': out of memory for the queue of %zu requests",
                          c->backend ? c->backend->name : "?", c->name, cap);
    for (size_t i = 0; i < q->len; i++) /* unroll the ring: the oldest first */
        ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    return 0;
}

int weft_request_queue_push(weft_request_queue *q, weft_request *r, const weft_comm *c)
{
    WEFT_CHECK(weft_request_queue_reserve(q, q->len + 1, c));
    q->ring[(q->head + q->len++) % q->cap] = r;
    return 0;
}

weft_request *weft_request_queue_front(const weft_request_queue *q)
{
    return q->len ? q->ring[q->head] : NULL;
}

void weft_request_queue_pop(weft_request_queue *q)
{
    assert(q->len > 0);
    q->head = (q->head + 1) % q->cap;
    q->len--;
}

void weft_request_queue_free(weft_request_queue *q)
{
    free(q->ring);
    q->ring = NULL;
    q->cap = q->head = q->len = 0;
}
