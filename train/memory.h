/*
 * memory.h -- the bytes one rank of a training job holds, by category
 * (runtime/report.h's weft_mem_cat): parameters, gradients, optimizer
 * state, activations (the micro-batches the pipeline schedule keeps in
 * flight: all k under GPipe, at most pp - stage under 1F1B; one block's under
 * train.recompute = block), communication buffers, checkpoint staging, and
 * the process before the model (code, libraries, MPI: measured).
 *
 * One function computes the account, weft_memory_account, from the keys and
 * what the rank's model part holds (model.h's weft_model_mem). The running
 * trainer calls it with its built model's numbers (train/memreport.c: the
 * table at start, status.json, Prometheus, weft-report); the planner
 * (weft_memory_plan, weft-train --plan) with the numbers weft_lm_plan
 * computes for the same part without building it -- by the model's own
 * sizing code. Neither has a second copy of the formulas.
 */
#ifndef WEFT_TRAIN_MEMORY_H
#define WEFT_TRAIN_MEMORY_H

#include <stddef.h>

#include "model/model.h"
#include "parallel/dp.h"
#include "parallel/mesh.h"
#include "runtime/api.h"
#include "runtime/config.h"
#include "runtime/report.h"

typedef struct weft_mem_account {
    int rank;                     /* world rank */
    int coord[WEFT_NAXES];        /* its dp, tp and pp coordinates */
    weft_model_mem model;         /* what its model part holds */
    size_t opt_elems;             /* elements whose optimizer state it keeps */
    size_t bytes[WEFT_MEM_NCAT];  /* by category */
    size_t total;                 /* their sum: the planned resident memory */
} weft_mem_account;

/* The account of world rank `rank` of a job on `world` ranks configured by
 * cfg (parallel.*, train.*, checkpoint keys), whose model part holds *mm;
 * held: the rank's built weft_dp (weft_dp_mem: its optimizer shard, which
 * ZeRO-3 cuts within the model's units), or NULL to plan it from the sizes;
 * runtime: the process's resident bytes before the model (measured by the
 * caller: weft_memory_resident). Parameters and gradients are counted at
 * the moment of the step when the most of them are resident (ZeRO-2/3:
 * the shard plus what backward has gathered and written, memory.c).
 * WEFT_ECONFIG when the layout does not fit the world. */
WEFT_API int weft_memory_account(const weft_config *cfg, int world, int rank, const weft_model_mem *mm,
                                 const weft_dp_mem_bytes *held, size_t runtime, weft_mem_account *out);

/* The same for a language model (model.family) that is not built: the
 * part weft_trainer_part_at gives rank, sized by weft_lm_plan for a
 * vocabulary of vocab tokens. Allocates only the parameter table. */
WEFT_API int weft_memory_plan(const weft_config *cfg, int world, int rank, int vocab, size_t runtime,
                              weft_mem_account *out);

/* This process's resident memory now (VmRSS) and at its peak (VmHWM), from
 * /proc/self/status without allocating; 0 where unknown. */
WEFT_API void weft_memory_resident(size_t *rss, size_t *hwm);

/* One table row: "rank r (dp d tp t pp p): params X, grads X, ..., total X"
 * in MiB. */
WEFT_API void weft_memory_row(const weft_mem_account *a, char *buf, size_t len);

/* *best: the largest micro-batch (1 .. max_b) for which every rank's total
 * fits in limit bytes, with the configured micro-batches per step (a binary
 * search over train.micro_batch, train.global_batch following it; both are
 * put back in cfg before returning); 0 when even 1 does not fit, with
 * *worst the account of the first rank that does not fit at micro-batch 1. */
WEFT_API int weft_memory_fit(weft_config *cfg, int world, int vocab, size_t runtime, size_t limit,
                             int max_b, int *best, weft_mem_account *worst);

#endif
