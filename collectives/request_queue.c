/*
 * request_queue.c -- the per-communicator FIFO of posted requests shared by
 * the backends that run their collectives in posting order (see
 * request_queue.h).
 */
#include "collectives/request_queue.h"
#include "runtime/error.h"
#include "runtime/invariant.h"

#include <assert.h>
#include <stdlib.h>

int weft_request_queue_check(const weft_request_queue *q)
{
    if ((q->ring == NULL) != (q->cap == 0))
        return weft_error(WEFT_EINTERNAL, "request queue: ring %p with capacity %zu", (void *)q->ring, q->cap);
    if (q->cap && (q->cap < 16 || (q->cap & (q->cap - 1))))
        return weft_error(WEFT_EINTERNAL, "request queue: capacity %zu is not a power of two >= 16", q->cap);
    if (q->cap ? q->head >= q->cap : q->head != 0)
        return weft_error(WEFT_EINTERNAL, "request queue: head %zu outside capacity %zu", q->head, q->cap);
    if (q->len > q->cap)
        return weft_error(WEFT_EINTERNAL, "request queue: %zu requests in a capacity of %zu", q->len, q->cap);
    for (size_t i = 0; i < q->len; i++)
        if (!q->ring[(q->head + i) % q->cap])
            return weft_error(WEFT_EINTERNAL, "request queue: entry %zu of %zu (slot %zu) is NULL", i, q->len,
                              (q->head + i) % q->cap);
    return 0;
}

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
    WEFT_INVARIANT(weft_request_queue_check(q), "request queue push");
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
    WEFT_INVARIANT(weft_request_queue_check(q), "request queue pop");
}

void weft_request_queue_free(weft_request_queue *q)
{
    free(q->ring);
    q->ring = NULL;
    q->cap = q->head = q->len = 0;
}
