/*
 * dp_int.h -- weft_dp's state, shared by dp.c (buckets, reductions, ZeRO-1/2)
 * and dp_zero3.c (ZeRO-3's per-unit parameter gathers) and nobody else.
 */
#ifndef WEFT_PARALLEL_DP_INT_H
#define WEFT_PARALLEL_DP_INT_H

#include "parallel/dp.h"

enum { IDLE, LAUNCHED, DONE };

typedef struct {
    size_t start, len;          /* range of the flat buffer */
    size_t shard_off, shard_len; /* this rank's chunk within it (ZeRO-1) */
    size_t drop[2][2];           /* ZeRO-2: whole pages outside the shard, float offsets [a, b) into grads */
    size_t pdrop[2][2];          /* ZeRO-3: the same of params */
    int state;
    weft_request *req;           /* the gradient reduction */
    weft_request *greq;          /* ZeRO-3: the parameter gather */
    int gdone;                   /* ZeRO-3: a poll saw greq done (it must not be waited again) */
    int64_t t_launch;            /* trace: when it was launched */
} bucket;

/* ZeRO-3 unit states: RELEASED (only the shard resident) -> GATHERING
 * (allgathers in flight) -> GATHERED (whole in param_data) -> RELEASED. */
enum { RELEASED, GATHERING, GATHERED };

typedef struct {
    size_t start, len;           /* range of the flat buffer */
    int b0, nb;                  /* its buckets: b[b0 .. b0 + nb) */
    int state, users;            /* users: begins not yet ended */
    int64_t t_launch;            /* trace and the hidden share: when its gather was launched */
} unit;

struct weft_dp {
    weft_comm *comm;
    float *params, *grads;
    size_t n;
    weft_dp_opts opts;
    bucket *b;
    int nb, next;      /* buckets, and the next one to launch */
    int err;           /* first error seen in the hook */
    int64_t t_first_launch, t_last_done, exposed_ns;
    int64_t t_finished;          /* when weft_dp_finish_grads returned */
    size_t dropped;              /* ZeRO-2: floats of whole pages released after each reduction */
    /* ZeRO-3 */
    unit *u;
    int nu;
    int whole;                   /* weft_dp_gather_all: every unit in place, begin/end no-ops */
    int poison;                  /* WEFT_ZERO3_POISON (tests): released parameters are NaN */
    int no_progress;             /* WEFT_ZERO3_PROGRESS=0 (benchmarks): weft_dp_progress does nothing */
    size_t pdropped;             /* floats of parameter pages given back while released */
    size_t pool;                 /* floats: the most gathered at once (weft_dp_mem) */
    int64_t gather_ns, gather_wait_ns; /* this step: gathers' summed spans, and the time waited for them */
};

/* dp.c */
int weft_dp_poll(weft_dp *dp);
void weft_dp_whole_pages(const float *buf, size_t a, size_t b, size_t out[2]);
void weft_dp_drop(float *buf, const size_t (*drop)[2]);

/* dp_check.c: 0 or WEFT_EINTERNAL naming the broken invariant. reduced:
 * 1 once finish_grads returned (every bucket DONE), -1 right after a hook
 * (the ZeRO-2/3 bound on reductions in flight holds), 0 otherwise. */
int weft_dp_check(const weft_dp *dp, int reduced, const char *when);

/* dp_zero3.c */
int weft_dp_z3_setup(weft_dp *dp);
void weft_dp_z3_free(weft_dp *dp);

#endif
