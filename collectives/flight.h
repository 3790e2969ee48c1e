/*
 * flight.h -- the per-communicator flight recorder: a fixed ring of the last
 * N operations (sequence number, op, dtype, count, peer/root, state, times),
 * kept so that a hang or an abort can say what every rank was doing.
 *
 * Recording costs a mutex and a few stores per operation and never
 * allocates. The owner thread records; a dump may come from any thread (the
 * abort path, the watchdog), hence the mutex.
 *
 * Entry states: POSTED (begin) -> DONE | FAILED | TIMEDOUT (end). An entry
 * overwritten by a newer sequence number is simply gone; end() on it is a
 * no-op.
 */
#ifndef WEFT_COLLECTIVES_FLIGHT_H
#define WEFT_COLLECTIVES_FLIGHT_H

#include <stdint.h>
#include <stdio.h>

typedef enum {
    WEFT_OP_ALLREDUCE = 0,
    WEFT_OP_REDUCE_SCATTER,
    WEFT_OP_ALLGATHER,
    WEFT_OP_BROADCAST,
    WEFT_OP_REDUCE,
    WEFT_OP_ALLTOALL,
    WEFT_OP_SEND,
    WEFT_OP_RECV,
    WEFT_OP_BARRIER,
    WEFT_NOPS
} weft_op_kind;

typedef enum {
    WEFT_FLIGHT_POSTED = 0,
    WEFT_FLIGHT_DONE,
    WEFT_FLIGHT_FAILED,
    WEFT_FLIGHT_TIMEDOUT,
} weft_flight_state;

typedef struct weft_flight weft_flight;

const char *weft_op_name(weft_op_kind op);
const char *weft_flight_state_name(weft_flight_state s);

int weft_flight_new(const char *group, int rank, int size, const char *backend, int capacity,
                    weft_flight **out);
void weft_flight_free(weft_flight *f);

/* Record a new operation; returns its sequence number (0, 1, 2, ...). peer:
 * root or peer rank, -1 when none. redop/dtype: -1 when not applicable. */
uint64_t weft_flight_begin(weft_flight *f, weft_op_kind op, int dtype, int redop,
                           uint64_t count, int peer);
void weft_flight_end(weft_flight *f, uint64_t seq, weft_flight_state state);

/* Sequence number the next begin() will get. */
uint64_t weft_flight_next_seq(const weft_flight *f);
/* The oldest operation still POSTED (1) or none (0). */
int weft_flight_oldest_pending(const weft_flight *f, uint64_t *seq, weft_op_kind *op,
                               int64_t *age_ns);

/* One JSON object (no trailing newline). */
int weft_flight_dump(const weft_flight *f, FILE *out);

#endif
