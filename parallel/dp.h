/*
 * dp.h -- data parallelism: averaging gradients across the data-parallel
 * group in buckets that are reduced while backward still runs, and ZeRO-1.
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
 *
 * Per step: weft_dp_begin -> weft_dp_hook (from backward) ... ->
 * weft_dp_finish_grads -> optimizer over weft_dp_shard ranges ->
 * weft_dp_gather_params.
 */
#ifndef WEFT_PARALLEL_DP_H
#define WEFT_PARALLEL_DP_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

#include "collectives/comm.h"
#include "runtime/config.h"

typedef struct weft_dp weft_dp;

typedef struct weft_dp_opts {
    size_t bucket_bytes; /* largest bucket */
    int zero;            /* 0 or 1 */
} weft_dp_opts;

extern WEFT_API const weft_config_key weft_parallel_config_keys[];
WEFT_API void weft_dp_opts_from_config(const weft_config *cfg, weft_dp_opts *o);

/* params and grads: n floats each, owned by the caller (the model). */
WEFT_API int weft_dp_new(weft_comm *comm, float *params, float *grads, size_t n, const weft_dp_opts *o, weft_dp **out);
WEFT_API void weft_dp_free(weft_dp *dp);

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

/* Sum of squares of the reduced gradients over the whole model, the same on
 * every rank (an allreduce of one number under ZeRO-1). */
WEFT_API int weft_dp_grad_sumsq(weft_dp *dp, double *out);
/* The same over only the given ranges of the flat buffer (offset, length
 * pairs; n of them): with tensor and pipeline parallelism, the tensors this
 * rank counts towards the global norm (not the copies other ranks count). */
WEFT_API int weft_dp_grad_sumsq_ranges(weft_dp *dp, const size_t (*ranges)[2], int n, double *out);
/* ZeRO-1: allgather every bucket's updated parameters. No-op otherwise. */
WEFT_API int weft_dp_gather_params(weft_dp *dp);

/* Timing of the last step: time blocked in finish_grads (exposed), and the
 * window from the first bucket's launch to finish_grads' return (0 when
 * nothing was launched). */
WEFT_API int64_t weft_dp_exposed_ns(const weft_dp *dp);
WEFT_API int64_t weft_dp_comm_span_ns(const weft_dp *dp);
WEFT_API int weft_dp_nbuckets(const weft_dp *dp);
WEFT_API weft_comm *weft_dp_comm(const weft_dp *dp);

#endif
