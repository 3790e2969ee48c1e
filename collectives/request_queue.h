/*
 * request_queue.h -- the FIFO of posted requests that a backend progressing
 * its collectives one at a time (shm, tcp/ib, hier) keeps per communicator:
 * a ring that grows by doubling and never shrinks, so weft_comm_reserve can
 * size it at start and the steady state never allocates.
 */
#ifndef WEFT_COLLECTIVES_REQUEST_QUEUE_H
#define WEFT_COLLECTIVES_REQUEST_QUEUE_H

#include <stddef.h>

#include "collectives/backend.h"

typedef struct weft_request_queue {
    weft_request **ring; /* cap slots; len of them in use from head */
    size_t cap, head, len;
} weft_request_queue;

/* The invariants (0, or WEFT_EINTERNAL naming the one broken): ring is
 * NULL exactly when cap is 0; cap is 0 or a power of two >= 16 (grown by
 * doubling); head < cap; len <= cap; the len slots from head hold
 * requests (not NULL). Checked after every push and pop. */
int weft_request_queue_check(const weft_request_queue *q);
/* Room for at least want requests; WEFT_ENOMEM naming c on failure. */
int weft_request_queue_reserve(weft_request_queue *q, size_t want, const weft_comm *c);
/* Append r (grows if needed). */
int weft_request_queue_push(weft_request_queue *q, weft_request *r, const weft_comm *c);
/* The oldest request, or NULL when empty. */
weft_request *weft_request_queue_front(const weft_request_queue *q);
/* Drop the oldest request (the queue must not be empty). */
void weft_request_queue_pop(weft_request_queue *q);
void weft_request_queue_free(weft_request_queue *q);

#endif
