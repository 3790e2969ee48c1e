/*
 * flight.c -- the flight recorder ring. See flight.h.
 */
#include "collectives/flight.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "runtime/timer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t seq;
    uint64_t count;
    int64_t t_post_ns, t_end_ns; /* monotonic; t_end_ns 0 while posted */
    int32_t peer;
    int8_t op, dtype, redop, state;
} entry;

struct weft_flight {
    pthread_mutex_t mu;
    char group[64];
    char backend[16];
    int rank, size, capacity;
    uint64_t next_seq;
    int64_t mono0_ns; /* monotonic and wall clock read together, to */
    double wall0_s;   /* print entries as wall-clock times */
    entry *ring;      /* capacity entries; slot = seq % capacity */
};

static const char *const op_names[WEFT_NOPS] = {
    "allreduce", "reduce_scatter", "allgather", "broadcast", "reduce",
    "alltoall",  "send",           "recv",      "barrier",
};
static const char *const state_names[] = {"posted", "done", "failed", "timedout"};
static const char *const redop_names[] = {"sum", "avg", "max", "min"};

const char *weft_op_name(weft_op_kind op) { return op < WEFT_NOPS ? op_names[op] : "?"; }
const char *weft_flight_state_name(weft_flight_state s) { return s <= WEFT_FLIGHT_TIMEDOUT ? state_names[s] : "?"; }

int weft_flight_new(const char *group, int rank, int size, const char *backend, int capacity,
                    weft_flight **out)
{
    if (capacity < 1)
        return weft_error(WEFT_EINVAL, "flight recorder capacity %d must be >= 1", capacity);
    weft_flight *f = calloc(1, sizeof *f);
    entry *ring = calloc((size_t)capacity, sizeof *ring);
    if (!f || !ring) {
        free(f);
        free(ring);
        return weft_error(WEFT_ENOMEM, "flight recorder of %d entries: out of memory", capacity);
    }
    pthread_mutex_init(&f->mu, NULL);
    snprintf(f->group, sizeof f->group, "%s", group);
    snprintf(f->backend, sizeof f->backend, "%s", backend);
    f->rank = rank;
    f->size = size;
    f->capacity = capacity;
    f->ring = ring;
    f->mono0_ns = weft_now_ns();
    f->wall0_s = weft_wall_s();
    *out = f;
    return 0;
}

void weft_flight_free(weft_flight *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f->ring);
    free(f);
}

uint64_t weft_flight_begin(weft_flight *f, weft_op_kind op, int dtype, int redop,
                           uint64_t count, int peer)
{
    pthread_mutex_lock(&f->mu);
    uint64_t seq = f->next_seq++;
    entry *e = &f->ring[seq % (uint64_t)f->capacity];
    *e = (entry){.seq = seq, .count = count, .t_post_ns = weft_now_ns(), .peer = peer,
                 .op = (int8_t)op, .dtype = (int8_t)dtype, .redop = (int8_t)redop,
                 .state = WEFT_FLIGHT_POSTED};
    pthread_mutex_unlock(&f->mu);
    return seq;
}

void weft_flight_end(weft_flight *f, uint64_t seq, weft_flight_state state)
{
    pthread_mutex_lock(&f->mu);
    entry *e = &f->ring[seq % (uint64_t)f->capacity];
    if (e->seq == seq && seq < f->next_seq) {
        e->state = (int8_t)state;
        e->t_end_ns = weft_now_ns();
    }
    pthread_mutex_unlock(&f->mu);
}

uint64_t weft_flight_next_seq(const weft_flight *f)
{
    pthread_mutex_lock((pthread_mutex_t *)&f->mu);
    uint64_t s = f->next_seq;
    pthread_mutex_unlock((pthread_mutex_t *)&f->mu);
    return s;
}

int weft_flight_oldest_pending(const weft_flight *f, uint64_t *seq, weft_op_kind *op,
                               int64_t *age_ns)
{
    int found = 0;
    pthread_mutex_lock((pthread_mutex_t *)&f->mu);
    uint64_t n = f->next_seq < (uint64_t)f->capacity ? f->next_seq : (uint64_t)f->capacity;
    for (uint64_t s = f->next_seq - n; s < f->next_seq && !found; s++) {
        const entry *e = &f->ring[s % (uint64_t)f->capacity];
        if (e->state == WEFT_FLIGHT_POSTED) {
            *seq = e->seq;
            *op = (weft_op_kind)e->op;
            *age_ns = weft_now_ns() - e->t_post_ns;
            found = 1;
        }
    }
    pthread_mutex_unlock((pthread_mutex_t *)&f->mu);
    return found;
}

static void dump_entry(const weft_flight *f, const entry *e, FILE *out)
{
    double post = f->wall0_s + 1e-9 * (double)(e->t_post_ns - f->mono0_ns);
    fprintf(out, "{\"seq\":%llu,\"op\":\"%s\",\"dtype\":\"%s\",\"redop\":\"%s\",\"count\":%llu,"
                 "\"peer\":%d,\"state\":\"%s\",\"t_post\":%.6f,",
            (unsigned long long)e->seq, weft_op_name((weft_op_kind)e->op),
            e->dtype >= 0 ? weft_dtype_name((weft_dtype)e->dtype) : "",
            e->redop >= 0 && e->redop < 4 ? redop_names[e->redop] : "", (unsigned long long)e->count,
            e->peer, weft_flight_state_name((weft_flight_state)e->state), post);
    if (e->t_end_ns)
        fprintf(out, "\"t_end\":%.6f,\"duration_ms\":%.3f}",
                f->wall0_s + 1e-9 * (double)(e->t_end_ns - f->mono0_ns),
                1e-6 * (double)(e->t_end_ns - e->t_post_ns));
    else
        fprintf(out, "\"t_end\":null,\"pending_ms\":%.3f}", 1e-6 * (double)(weft_now_ns() - e->t_post_ns));
}

int weft_flight_dump(const weft_flight *f, FILE *out)
{
    pthread_mutex_lock((pthread_mutex_t *)&f->mu);
    uint64_t n = f->next_seq < (uint64_t)f->capacity ? f->next_seq : (uint64_t)f->capacity;
    fprintf(out, "{\"group\":\"%s\",\"rank\":%d,\"size\":%d,\"backend\":\"%s\",\"capacity\":%d,"
                 "\"next_seq\":%llu,\"records\":[",
            f->group, f->rank, f->size, f->backend, f->capacity, (unsigned long long)f->next_seq);
    for (uint64_t s = f->next_seq - n; s < f->next_seq; s++) {
        dump_entry(f, &f->ring[s % (uint64_t)f->capacity], out);
        if (s + 1 < f->next_seq)
            fputc(',', out);
    }
    fputs("]}", out);
    pthread_mutex_unlock((pthread_mutex_t *)&f->mu);
    return ferror(out) ? weft_error(WEFT_EIO, "writing the flight record of '%s' failed", f->group) : 0;
}
