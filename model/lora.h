/*
 * lora.h -- low-rank adapters (LoRA, Hu et al. 2021) on a model's linear
 * layers: y = x W^T + (alpha / r) (x A^T) B^T with A (r, in) and B (out, r)
 * trained and the base weight W frozen. A starts as PEFT's kaiming-uniform
 * (uniform in +-1/sqrt(in)), B at zero, so step 0 is the base model.
 *
 * A model with adapters keeps its base tensors in its frozen table
 * (model/model.h: weft_model_freeze) and only the adapters in params: data
 * parallelism, the optimizer, the gradient norm and checkpoints see the
 * adapters alone. This file owns the adapters' tensors, their activations
 * and their forward and backward; the model calls weft_lora_forward after
 * each target linear and weft_lora_backward beside its backward.
 *
 * Tensor parallelism (parallel/tp.h) follows the base layer's split:
 *   column-parallel base (output rows split): B split by rows the same way,
 *     A whole on every rank. h = x A^T is whole; backward dh = s dy B is a
 *     partial sum: dx += dh_local A first (the base layer's dx is summed
 *     over the group afterwards), then dh is summed over the group and
 *     dA = dh^T x is the same on every rank.
 *   row-parallel base (input columns split): A split by columns, B whole.
 *     h = x_local A_local^T is a partial sum: summed over the group, then
 *     y += s h B^T on every rank alike; backward needs no communication.
 * Whole tensors (A of a column layer, B of a row layer) get the same
 * gradient on every TP rank, as LayerNorm weights do.
 *
 * Dropout p on the adapter's input (PEFT's lora_dropout): x' = mask x /
 * (1 - p) feeds A; the mask of element (row n, global column j) of adapter
 * i is a hash of (seed, step, micro-batch, the base's global name, n, j), so backward draws it
 * again instead of storing it, tensor-parallel ranks agree on the columns
 * they share, and a resumed run draws the same masks. (Layouts that split
 * the batch differently draw different masks: with dropout, runs match
 * their own resume, not other layouts.)
 *
 * Letters: N rows (B*T), r the rank, in / out the base layer's local input
 * and output channels, s = alpha / r.
 */
#ifndef WEFT_MODEL_LORA_H
#define WEFT_MODEL_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/comm.h"
#include "model/model.h"
#include "runtime/api.h"
#include "runtime/rng.h"

typedef struct weft_lora_config {
    int rank;          /* r; 0: no adapters */
    double alpha;      /* the update is scaled by alpha / r */
    char targets[256]; /* comma-separated names of the family's linears ("" = its default) */
    double dropout;    /* p: on the adapter's input, in training steps */
    uint64_t seed;     /* of the dropout masks (train.seed) */
} weft_lora_config;

/* The bit mask of the names in list (comma-separated, spaces allowed) among
 * names[0..n); "" means def. WEFT_ECONFIG naming an unknown name and the
 * family's choices. */
WEFT_API int weft_lora_parse_targets(const char *list, const char *def, const char *const *names, int n,
                                     unsigned *mask);

typedef struct weft_lora weft_lora;

/* Adapters of rank c->rank for forwards of up to max_rows rows, keeping
 * activations for nslots micro-batches; tp the tensor-parallel group or NULL. */
WEFT_API int weft_lora_new(const weft_lora_config *c, int max_rows, int nslots, weft_comm *tp, weft_lora **out);
/* Append the adapters of base linear `base` (out, in), a tensor of m's
 * frozen table, to m->params (capacity cap): "<module>.lora_A.weight" and
 * "<module>.lora_B.weight", shard specs following the base's split. lo may
 * be NULL (a table only, for initialisation). Returns the adapter's index. */
WEFT_API int weft_lora_add(weft_lora *lo, weft_model *m, int cap, const weft_tensor *base, int rank);
/* Activation memory for the adapters added (once, after the last add). */
WEFT_API int weft_lora_alloc(weft_lora *lo);
WEFT_API void weft_lora_free(weft_lora *lo);
/* Bytes of activations one slot holds. */
WEFT_API size_t weft_lora_slot_bytes(const weft_lora *lo);

/* Dropout for the micro-batch about to be computed in slot: its masks are
 * drawn from (seed, step, mb) -- the same on every tensor-parallel rank and
 * after a resume -- or none when training is 0 (evaluation, generation). */
WEFT_API void weft_lora_begin(weft_lora *lo, int slot, int training, int64_t step, int mb);

/* The ops table (kernels/ops.h) the adapters' products run through: the
 * model's (weft_model.kops), set by the model once it is allocated, before
 * the first forward. Errors of the products are that table's sticky status,
 * which the model checks once per forward and backward. */
struct weft_ops;
WEFT_API void weft_lora_set_ops(weft_lora *lo, struct weft_ops *ops);

/* y (N, out) += s (x A^T) B^T for adapter i, keeping x A^T in slot.
 * params: the model's param_data. 0 or a communication error. */
WEFT_API int weft_lora_forward(weft_lora *lo, int i, int slot, const float *params, const float *x, float *y, int N);
/* Backward of adapter i's last forward in slot: dA, dB += into grads,
 * dx (N, in) += the adapter's share of the input gradient. */
WEFT_API int weft_lora_backward(weft_lora *lo, int i, int slot, const float *params, float *grads, const float *x,
                                const float *dy, float *dx, int N);

/* Initial values of global tensor g when it is an adapter's (A uniform in
 * +-1/sqrt(in), B zero): 1, else 0 (not an adapter: the model fills it). */
WEFT_API int weft_lora_fill(const weft_tensor *g, weft_rng *rng, float *out);

#endif
