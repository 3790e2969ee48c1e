/*
 * optim.h -- AdamW over a flat parameter buffer, sharded the way data
 * parallelism says (all of it, or this rank's ZeRO-1 shard), with the
 * warm-up + cosine learning-rate schedule and global-norm clipping applied
 * by the caller through lr and grad_scale.
 *
 * Weight decay applies to the tensors flagged WEFT_TENSOR_DECAY (matrices
 * and embeddings), never to biases and LayerNorm parameters, as in GPT-2
 * training. The moments m and v exist only for the shard this rank
 * updates, so ZeRO-1 really divides optimizer memory by the DP size.
 */
#ifndef WEFT_MODEL_OPTIM_H
#define WEFT_MODEL_OPTIM_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

#include "parallel/dp.h"
#include "runtime/config.h"
#include "runtime/tensor.h"

typedef struct weft_adamw_opts {
    double lr, min_lr;
    int64_t warmup, total_steps;
    double beta1, beta2, eps, weight_decay, grad_clip;
} weft_adamw_opts;

typedef struct weft_optim weft_optim;

extern WEFT_API const weft_config_key weft_optim_config_keys[];
WEFT_API void weft_adamw_opts_from_config(const weft_config *cfg, int64_t total_steps, weft_adamw_opts *o);

/* params: the model's parameter table (arena form, covering the flat
 * buffer); dp gives the shard. Weight decay where a tensor has
 * WEFT_TENSOR_DECAY; a tensor without WEFT_TENSOR_TRAINABLE is frozen: never
 * updated (its moments stay zero, so checkpoints keep their layout). */
WEFT_API int weft_optim_new(const weft_tensor *params, int nparams, weft_dp *dp, const weft_adamw_opts *o,
                   weft_optim **out);
WEFT_API void weft_optim_free(weft_optim *o);

/* Learning rate for step (0-based) under the schedule. */
WEFT_API double weft_optim_lr(const weft_optim *o, int64_t step);

/* One AdamW step on this rank's shard: params -= ..., using grads scaled by
 * grad_scale (the clipping factor). Increments the step count t. Runs
 * through the ops table (kernels/ops.h) of the device that was the
 * process's (weft_device_current) when the optimizer was made; 0 or that
 * table's first failure. */
WEFT_API int weft_optim_step(weft_optim *o, float *params, const float *grads, double lr, double grad_scale);

/* The factor that clips gradients of global norm grad_norm to optim.grad_clip. */
WEFT_API double weft_optim_clip_scale(const weft_optim *o, double grad_norm);

WEFT_API int64_t weft_optim_t(const weft_optim *o);

/* For checkpoints: the AdamW moments of this rank's shard, m and v, each
 * weft_optim_state_size floats, concatenated over the weft_dp_shard ranges
 * in order; and setting the step count t when resuming. */
WEFT_API float *weft_optim_m(weft_optim *o);
WEFT_API float *weft_optim_v(weft_optim *o);
WEFT_API size_t weft_optim_state_size(const weft_optim *o);
WEFT_API void weft_optim_set_t(weft_optim *o, int64_t t);

#endif
