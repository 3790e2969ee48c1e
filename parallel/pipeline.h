/*
 * pipeline.h -- pipeline parallelism: the schedules that run m micro-batches
 * through pp stages, and the point-to-point traffic between stages.
 *
 * A stage is described by callbacks (weft_pipe_stage): forward and backward
 * of one micro-batch in an activation slot, and the buffers where its
 * input/output and their gradients live. The schedule decides the order;
 * between stages, activations go forward and their gradients backward with
 * async send/recv on the pipeline communicator (a send is waited for only
 * when its buffer is about to be reused, so a stage goes on computing while
 * its output travels).
 *
 * GPipe: every forward, then every backward (FIFO): m slots of activations.
 * 1F1B: stage s runs min(pp - s - 1, m) forwards to fill the pipe, then
 *   alternates one forward and one backward, then drains the backwards: at
 *   most pp - s micro-batches in flight, so min(pp - s, m) slots.
 * Either way each micro-batch's forward precedes its backward on every
 * stage, backwards run in micro-batch order, and the last backward of the
 * step is the one with `last` set (where gradient reduction may overlap).
 * The idle time of a stage in either is about (pp - 1) / (m + pp - 1) of the
 * step (the bubble); weft_pipe_stats measures it.
 */
#ifndef WEFT_PARALLEL_PIPELINE_H
#define WEFT_PARALLEL_PIPELINE_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

#include "collectives/comm.h"

typedef enum { WEFT_PIPE_1F1B = 0, WEFT_PIPE_GPIPE } weft_pipe_schedule;

typedef struct weft_pipe_stage {
    void *arg;
    /* forward of micro-batch mb of batch in slot; *loss: its loss (last stage) */
    int (*forward)(void *arg, const void *batch, int mb, int slot, double *loss);
    int (*backward)(void *arg, int mb, int slot, int last);
    float *(*input)(void *arg, int slot);  /* where a later stage receives its input */
    float *(*output)(void *arg, int slot); /* what a stage sends on */
    float *(*doutput)(void *arg);          /* where the output's gradient is received */
    float *(*dinput)(void *arg);           /* the input's gradient, sent back */
} weft_pipe_stage;

/* One step of a stage's plan: forward or backward of micro-batch mb. */
typedef struct weft_pipe_action {
    int backward; /* 0: forward */
    int mb;
} weft_pipe_action;

/* "1f1b" or "gpipe" (parallel.schedule). WEFT_ECONFIG otherwise. */
WEFT_API int weft_pipe_schedule_parse(const char *name, weft_pipe_schedule *out);
WEFT_API const char *weft_pipe_schedule_name(weft_pipe_schedule s);

/* Activation slots stage `stage` needs: the most micro-batches it has in
 * flight, min(pp - stage, m) under 1F1B (the first stage pp, the last one
 * 1), m under GPipe. */
WEFT_API int weft_pipe_nslots(weft_pipe_schedule s, int pp, int stage, int m);
/* Slot of micro-batch mb on stage `stage` (mb modulo its slots: the ones in
 * flight are consecutive, so never two in one slot). */
WEFT_API int weft_pipe_slot(weft_pipe_schedule s, int pp, int stage, int m, int mb);
/* Stage `stage`'s 2m actions in order into out. */
WEFT_API void weft_pipe_plan(weft_pipe_schedule s, int pp, int stage, int m, weft_pipe_action *out);

/* The schedule's invariants over a stage's plan of 2m actions (0, or
 * WEFT_EINTERNAL naming the first action that breaks one): every micro-
 * batch forward once and backward once, its forward first; forwards and
 * backwards each in micro-batch order; never more micro-batches in flight
 * (forwarded, not yet backwarded) than the slots, nor, under 1F1B, than
 * pp - stage. Checked on every plan weft_pipe_new makes. */
WEFT_API int weft_pipe_plan_check(weft_pipe_schedule s, int pp, int stage, int m, const weft_pipe_action *plan);

typedef struct weft_pipe weft_pipe;

/* comm: the pipeline group (rank = stage). m micro-batches per step;
 * act_floats: floats of one micro-batch's activation (and gradient)
 * message. Allocates the plan and reserves the requests now. */
WEFT_API int weft_pipe_new(weft_comm *comm, weft_pipe_schedule s, int m, size_t act_floats,
                           const weft_pipe_stage *stage, weft_pipe **out);
WEFT_API void weft_pipe_free(weft_pipe *p);

/* One training step's schedule over batch (handed to every forward): every
 * micro-batch forward and backward. *loss_sum: the forwards' losses summed
 * in schedule order (0 but on the last stage). */
WEFT_API int weft_pipe_train(weft_pipe *p, const void *batch, double *loss_sum);
/* Forward only, micro-batches 0..m-1 of batch in slot 0 (evaluation); their
 * losses are added to *loss_sum, so evaluations over several batches sum in one
 * running total. */
WEFT_API int weft_pipe_forward(weft_pipe *p, const void *batch, int m, double *loss_sum);

typedef struct weft_pipe_stats {
    int64_t total_ns;   /* the last weft_pipe_train, start to end */
    int64_t compute_ns; /* in forward/backward callbacks */
    int64_t wait_ns;    /* blocked on receives and sends: the bubble */
    int peak_inflight;  /* most micro-batches whose activations were held at once */
} weft_pipe_stats;
WEFT_API void weft_pipe_get_stats(const weft_pipe *p, weft_pipe_stats *out);

#endif
