/*
 * dp.h -- data parallelism: averaging gradients across the data-parallel
 * group in buckets that are reduced while backward still runs, and ZeRO-1/2/3.
 *
 * The gradients are one flat buffer that backward finishes from the end
 * towards the start (see model/gpt.h). It is cut into buckets of at most
 * parallel.bucket_mb from the end; weft_dp_hook(offset) launches, as an
 * async collective, every bucket lying wholly at or after offset, and
 * polls the ones in flight so they progress during backward.
 *
 * zero = 0: each bucket is allreduced (AVG); every rank then updates all
 *   parameters. zero = 1: each bucket is reduce-scattered (AVG) in place, so
 *   rank r holds the averaged gradient of its chunk of every bucket (its
 *   shard); the optimizer updates only the shard, with optimizer state for
 *   the shard only, and weft_dp_gather_params allgathers the parameters.
 *   zero = 2: as 1, and once a bucket's reduce-scatter is seen complete
 *   the gradient pages of that bucket outside this rank's shard are given
 *   back to the system (madvise MADV_DONTNEED on the model's buffer).
 *
 * ZeRO-2: which gradient bytes exist when. The buffer stays n floats of
 * address space (the model's backward writes each tensor at its offset);
 * what is resident is:
 *   - from the end of a step to the first backward of the next (the
 *     optimizer, the checkpoint copy, every forward): this rank's shard of
 *     every bucket, plus the partial pages at the edges of the dropped
 *     ranges (at most two pages a bucket) -- weft_dp_mem's `grads`;
 *   - during backward, the pages backward has written since: with one
 *     micro-batch a step, the buckets not yet reduced (a bucket's pages are
 *     dropped when its reduction is seen complete, while backward goes on
 *     through earlier layers; at most two buckets' reductions are left in
 *     flight -- the hook waits for older ones -- so these are the layer
 *     backward is in and two buckets); with gradient accumulation (k > 1) the
 *     first k - 1 backwards accumulate into the whole buffer (the sum over
 *     micro-batches is not final before the last one, and reducing every
 *     micro-batch would cost k times the traffic), so from the first
 *     backward to the last one's reductions all n floats are resident --
 *     weft_dp_mem's `grads_peak`. Under a pipeline schedule the reductions
 *     happen in the last micro-batch's backward (1F1B: the stage's last
 *     backward, after its last forward), the same as without stages.
 * The dropped pages read as zero when next touched, so the next step's
 * weft_dp_zero_grads zeroes only what stayed resident.
 *
 * zero = 3: as 2, and the parameters are sharded the same way. The model
 *   lists its units (model.h: the embedding, each block, the head), the
 *   buckets are cut within units, and the model brackets each use of a
 *   unit's parameters with the hooks weft_dp_use_begin / weft_dp_use_end
 *   (dp_zero3.c): begin allgathers the unit's buckets in place into
 *   param_data (launching the next parallel.zero_prefetch units' gathers
 *   too, in the direction the model walks, so they run while this unit
 *   computes) and waits for its own; the last end gives its pages outside
 *   the shard back. Forward gathers each unit, backward gathers it again.
 *   The optimizer updates the shard, which never leaves; after it (and
 *   after evaluation, and after a checkpoint load wrote whole tensors)
 *   weft_dp_release_params gives every unit back. A checkpoint is the same
 *   file as under ZeRO-1: each rank writes its shard ranges.
 *
 * ZeRO-3: which parameter bytes exist when. param_data stays n floats of
 * address space; resident are this rank's shard of every unit plus at most
 * two partial pages a bucket (weft_dp_mem's `params`), and, while they are
 * in use or prefetched, whole units: the one in use (with the head, also
 * the tied embedding), and up to parallel.zero_prefetch ahead of it
 * (`gather_pool`, a bound: the prefetch + 2 largest units). No buffer is
 * allocated for a gather, at start or in the step: a gathered unit is its
 * own range of param_data, mapped again when the gather writes it.
 *
 * Per step: weft_dp_zero_grads -> weft_dp_begin -> weft_dp_hook (from
 * backward) ... -> weft_dp_finish_grads -> optimizer over weft_dp_shard
 * ranges -> weft_dp_gather_params.
 */
#ifndef WEFT_PARALLEL_DP_H
#define WEFT_PARALLEL_DP_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

#include "collectives/comm.h"
#include "runtime/config.h"

typedef struct weft_dp weft_dp;

/* ZeRO-2/3: at most this many buckets' reductions are left in flight during
 * backward (the hook waits for older ones), so their pages are resident
 * beside the layer backward is in (train/memory.c counts them). */
#define WEFT_DP_IN_FLIGHT 2

typedef struct weft_dp_opts {
    size_t bucket_bytes; /* largest bucket */
    int zero;            /* 0, 1, 2 or 3 */
    int prefetch;        /* ZeRO-3: units gathered ahead of the one in use */
    const size_t *units; /* ZeRO-3: (nunits) where each unit starts, ascending from 0 (model.h) */
    int nunits;
    /* The ops table (kernels/ops.h) of the device params and grads live on
     * (the model's): the gradients' zeroing and sum of squares, ZeRO-3's
     * poison and the refresh of the weights' bf16 copies after a gather go
     * through it. weft_dp_new requires it. */
    struct weft_ops *ops;
} weft_dp_opts;

extern WEFT_API const weft_config_key weft_parallel_config_keys[];
WEFT_API void weft_dp_opts_from_config(const weft_config *cfg, weft_dp_opts *o);

/* params and grads: n floats each, owned by the caller (the model). */
WEFT_API int weft_dp_new(weft_comm *comm, float *params, float *grads, size_t n, const weft_dp_opts *o, weft_dp **out);
WEFT_API void weft_dp_free(weft_dp *dp);

/* Zero the gradient buffer for a step (ZeRO-2: only its resident part;
 * the dropped pages are zero already), through the ops table's zero.
 * Instead of weft_model_zero_grad. */
WEFT_API void weft_dp_zero_grads(weft_dp *dp);
WEFT_API void weft_dp_begin(weft_dp *dp);
/* Backward's hook: gradients from offset to the end are final. */
WEFT_API void weft_dp_hook(void *dp, size_t offset);
/* Launch what is left and wait for every bucket. */
WEFT_API int weft_dp_finish_grads(weft_dp *dp);

/* The ranges of the flat buffer this rank updates (all of it when zero = 0). */
WEFT_API int weft_dp_nshards(const weft_dp *dp);
WEFT_API void weft_dp_shard(const weft_dp *dp, int i, size_t *offset, size_t *len);
WEFT_API size_t weft_dp_shard_total(const weft_dp *dp);
/* The same without a weft_dp (the memory planner): the elements of n that
 * rank of size holds the optimizer state of under o (n unless ZeRO). */
WEFT_API size_t weft_dp_plan_shard(size_t n, const weft_dp_opts *o, int size, int rank);
/* ZeRO-2/3, planned: the elements of n kept resident between uses (n
 * below ZeRO-2): the shard and the partial pages at the edges of each
 * range given back -- one page a range, their expected sum (where a page
 * boundary falls depends on the buffer's address, known only once built). */
WEFT_API size_t weft_dp_plan_kept(size_t n, const weft_dp_opts *o, int size, int rank);

/* Sum of squares of the reduced gradients over the whole model, the same on
 * every rank (an allreduce of one number under ZeRO-1): one running double
 * over the shard x range pieces, each piece summed in a fixed order by the
 * ops table's sumsq_acc (kernels/ops.h). */
WEFT_API int weft_dp_grad_sumsq(weft_dp *dp, double *out);
/* The same over only the given ranges of the flat buffer (offset, length
 * pairs; n of them): with tensor and pipeline parallelism, the tensors this
 * rank counts towards the global norm (not the copies other ranks count). */
WEFT_API int weft_dp_grad_sumsq_ranges(weft_dp *dp, const size_t (*ranges)[2], int n, double *out);
/* ZeRO-1: allgather every bucket's updated parameters. No-op otherwise. */
WEFT_API int weft_dp_gather_params(weft_dp *dp);

/* What this rank holds for data parallelism, in bytes, by category (for
 * the trainer's memory accounting). Sizes, not measurements: they follow
 * from n, the buckets and the ZeRO stage, and hold from weft_dp_new on. */
typedef struct weft_dp_mem_bytes {
    size_t params;      /* parameter bytes resident between uses (ZeRO-3: the shard plus the partial
                         * edge pages; otherwise the whole flat buffer) */
    size_t grads;       /* gradient bytes resident between steps and during forward (ZeRO-2: the
                         * shard plus the partial edge pages; otherwise the whole buffer) */
    size_t grads_peak;  /* gradient bytes resident at most, during backward: a bound, the whole buffer
                         * (the memory account's peak, train/memory.c, counts what backward has
                         * written and not yet reduced; see above) */
    size_t optim_shard; /* bytes of the parameters this rank's optimizer updates; AdamW's state is
                         * twice this (m and v, f32) */
    size_t comm;        /* communication buffers data parallelism owns: the bucket table (the
                         * collectives reduce in place, so no staging copies) */
    size_t gather_pool; /* ZeRO-3: the most parameter bytes gathered at once beyond `params`, a bound
                         * (the prefetch + 2 largest units; see above); 0 otherwise */
} weft_dp_mem_bytes;
WEFT_API void weft_dp_mem(const weft_dp *dp, weft_dp_mem_bytes *out);

/* ZeRO-3 (see above). The model's parameter-use hooks (model.h
 * weft_param_hooks, arg = the weft_dp): unit's parameters gathered into
 * place (launching the next parallel.zero_prefetch units' gathers in
 * direction dir), and done with them. */
WEFT_API int weft_dp_use_begin(void *dp, int unit, int dir);
WEFT_API void weft_dp_use_end(void *dp, int unit);
/* Test every gather and reduction in flight once, without waiting, so
 * they move while the model computes (model.h: weft_model_progress, called
 * between a block's kernels). An error is kept for finish_grads. */
WEFT_API void weft_dp_progress(void *dp);
/* Every unit given back but this rank's shard (waiting for gathers in
 * flight): after the optimizer (weft_dp_gather_params does it), after
 * evaluation, after loading a checkpoint into param_data. No-op below
 * ZeRO-3. */
WEFT_API int weft_dp_release_params(weft_dp *dp);
/* Collective. Every parameter in place in param_data, until the next
 * weft_dp_release_params (sampling, exporting, tests). No-op below ZeRO-3. */
WEFT_API int weft_dp_gather_all(weft_dp *dp);
/* ZeRO-3, since weft_dp_begin: the gathers' summed spans (launch to done)
 * and the time the step waited for them; 1 - wait / span is the share of
 * gather time hidden behind compute. */
WEFT_API void weft_dp_gather_times(const weft_dp *dp, int64_t *gather_ns, int64_t *wait_ns);

/* Timing of the last step: time blocked in finish_grads (exposed), and the
 * window from the first bucket's launch to finish_grads' return (0 when
 * nothing was launched). */
WEFT_API int64_t weft_dp_exposed_ns(const weft_dp *dp);
WEFT_API int64_t weft_dp_comm_span_ns(const weft_dp *dp);
WEFT_API int weft_dp_nbuckets(const weft_dp *dp);
WEFT_API weft_comm *weft_dp_comm(const weft_dp *dp);

#endif
