/*
 * model.h -- the model interface: what the trainer (train/trainer.h) needs
 * of any model, GPT-2 or a researcher's own, to train it with data, tensor
 * and pipeline parallelism, checkpoint it and resume it.
 *
 * A model is a weft_model (an open struct the implementation embeds as its
 * first member) with an ops table, as NCCL describes a transport:
 *
 *   params / nparams     this rank's parameters as weft_tensors in arena
 *                        form, in buffer order: tensor i lives at
 *                        params[i].offset in param_data and in grad_data;
 *                        each carries its shard spec (its place in the
 *                        global tensor) and flags (decay, tied, tied copy)
 *   frozen / nfrozen     tensors the model computes with but does not
 *                        train (LoRA's base weights: model/lora.h), in
 *                        arena form in frozen_data, with shard specs like
 *                        the parameters'. No gradients, no optimizer state,
 *                        no data-parallel reduction: everything that works
 *                        on params leaves them alone. They come from a
 *                        checkpoint (--init-from; a resume reloads the one
 *                        the checkpoint names); empty for most models.
 *   ops->forward         forward of micro-batch mb of the step's batch
 *                        through this rank's pipeline stage, activations
 *                        kept in `slot` until that slot's backward; the last
 *                        stage returns the micro-batch's mean loss
 *   ops->backward        backward of a slot, accumulating into grad_data,
 *                        calling hook(arg, offset) whenever the gradients
 *                        from offset to the end of grad_data are final (the
 *                        buffer is finished from its end towards its start,
 *                        so data parallelism reduces buckets meanwhile)
 *   ops->stage_*         where a later stage receives its input and an
 *                        earlier one finds its output, and their gradients
 *                        (pipeline parallelism; NULL for one-stage models)
 *   ops->logits          a language model's logits without targets
 *                        (sampling; NULL for other models)
 *   ops->decode          a language model's incremental decoding with a
 *                        key/value cache: each new token costs O(T), not a
 *                        forward over the whole context (generation; NULL
 *                        for other models)
 *
 * The batch is whatever the trainer's batch source (train/source.h) gives:
 * for a language model this rank's k micro-batches of token windows. The
 * model never communicates across data-parallel replicas or pipeline
 * stages; tensor parallelism, if it has any, happens inside its layers
 * (parallel/tp.h) on the communicator weft_model_part hands it.
 */
#ifndef WEFT_MODEL_MODEL_H
#define WEFT_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/comm.h"
#include "runtime/api.h"
#include "runtime/rng.h"
#include "runtime/device.h"
#include "runtime/tensor.h"

typedef struct weft_model weft_model;

/* What a model part holds, computed from its shape by the same function
 * whether the part is built (weft_model.mem) or only planned (weft_lm_plan:
 * nothing allocated); train/memory.h turns it into bytes by category. */
typedef struct weft_model_mem {
    size_t params;       /* trained elements held here (weft_model.n) */
    size_t frozen;       /* frozen elements held here (weft_model.frozen_n) */
    size_t slot_bytes;   /* one micro-batch's kept activations (forward, until its backward) */
    size_t shared_bytes; /* what every micro-batch shares: recomputation's work block, the
                          * activations' gradients, scratch */
    int nslots;          /* micro-batches whose activations are kept at once */
    /* The units ZeRO-2/3 hold whole for a while (elements; 0: the model has
     * none): what ZeRO-3 gathers and ZeRO-2/3's backward writes before a
     * reduction gives it back (train/memory.c says when which are resident) */
    size_t unit_first;   /* the first unit (the embedding): backward writes it last */
    size_t unit_block;   /* the largest block */
    size_t unit_head;    /* the last unit (the head) */
    size_t grad_early;   /* gradient elements backward writes first but reports final last: a tied
                          * embedding on the part that also holds the head */
} weft_model_mem;

/* Fill mm's unit sizes from the units a model gives ZeRO-3: the first from
 * 0 to the first block (or the head), each of the L blocks from
 * blk_off[l], and the head from head_off to n. */
WEFT_API void weft_model_mem_units(weft_model_mem *mm, const size_t *blk_off, int L, size_t head_off, size_t n);

/* Called during backward each time grad_data[offset..n) is final. */
typedef void (*weft_grad_hook)(void *arg, size_t offset);

/* --- ZeRO-3's parameter-use hooks ---------------------------------------------
 * Under parallel.zero = 3 (parallel/dp.h) a rank holds only its shard of the
 * parameters; the rest of param_data is gathered a unit at a time. A model
 * that supports it lists where each unit starts in the flat buffer (`units`:
 * the embedding, each block, the head; set by weft_model_set_units) and
 * brackets every use of a unit's parameters, in forward and in backward,
 * with weft_model_use_begin / weft_model_use_end, naming the unit by its
 * start offset. Until data parallelism installs hooks these are no-ops, so
 * a model that never runs ZeRO-3 pays nothing. `dir` says which unit comes
 * next, for prefetching: WEFT_USE_FORWARD (the following unit),
 * WEFT_USE_BACKWARD (the preceding one), WEFT_USE_ALONE (none: a unit used
 * out of order, such as a tied embedding as the LM head).
 *
 * weft_model_progress, between the kernels of a block (after each product),
 * lets the gathers launched ahead move: weft's own collectives progress only
 * while a rank tests or waits them (collectives/backend_shm.c), so without
 * it a prefetched gather would wait, untouched, until its unit is needed
 * (bench/bench_gather.c measures the difference). A no-op without hooks. */
enum { WEFT_USE_BACKWARD = -1, WEFT_USE_ALONE = 0, WEFT_USE_FORWARD = 1 };
typedef struct weft_param_hooks {
    int (*begin)(void *arg, int unit, int dir); /* unit's parameters in place in param_data */
    void (*end)(void *arg, int unit);           /* done with them (until the next begin) */
    void *arg;
    void (*progress)(void *arg);                /* test what is in flight, without waiting (may be NULL) */
} weft_param_hooks;

typedef struct weft_model_ops {
    const char *family; /* "gpt2", "mlp", ... (logs, checkpoints) */
    int (*forward)(weft_model *m, int slot, const void *batch, int mb, double *loss);
    int (*backward)(weft_model *m, int slot, double loss_scale, weft_grad_hook hook, void *arg);
    float *(*stage_input)(weft_model *m, int slot);  /* (B, T, C) a later stage's input */
    float *(*stage_output)(weft_model *m, int slot); /* (B, T, C) what a stage sends on */
    float *(*stage_doutput)(weft_model *m);          /* the output's gradient, received */
    float *(*stage_dinput)(weft_model *m);           /* the input's gradient, sent back */
    /* A language model on one stage: the logits (b, t, V / tp) of tokens
     * (b, t) without targets, for sampling; NULL for other models. */
    int (*logits)(weft_model *m, const int32_t *tokens, int b, int t, const float **out);
    /* A language model whole on one rank (tp = pp = 1): append tokens (n) at
     * positions pos0 .. pos0+n-1 of one sequence, their keys and values
     * cached per layer, and *out = the last one's logits (V floats, valid
     * until the next call). n > 1 is a prompt's prefill. pos0 = 0 starts a
     * new sequence; otherwise pos0 must be the number of positions cached,
     * and pos0 + n at most the model's positions (model.context). The cache
     * is allocated on the first call, for every position, so training never
     * pays for it. WEFT_EINVAL for a split model, a token outside [0, V) or
     * positions out of order or past the end. NULL for other models. */
    int (*decode)(weft_model *m, const int32_t *tokens, int n, int pos0, const float **out);
    void (*free)(weft_model *m);
} weft_model_ops;

struct weft_model {
    const weft_model_ops *ops;
    weft_tensor *params;      /* (nparams) this rank's parameters, buffer order */
    int nparams;
    float *param_data;        /* (n) every parameter's local piece */
    float *grad_data;         /* (n) their gradients, same layout */
    size_t n;
    weft_tensor *frozen;      /* (nfrozen) tensors used but not trained, or NULL */
    int nfrozen;
    float *frozen_data;       /* (frozen_n) their local pieces */
    size_t frozen_n;
    size_t global_params;     /* elements of the whole model, over all ranks (frozen ones too) */
    size_t global_trainable;  /* of which trained (the whole model's params tables) */
    const char *adapter;      /* with a frozen table: what is trained ("lora"), for messages */
    size_t stage_floats;      /* floats of one micro-batch's stage output (pipeline messages) */
    int tokens_per_sample;    /* T for a language model, 1 otherwise (throughput) */
    double flops_per_token;   /* model FLOPs of forward + backward per token */
    int largest_matmul[2];    /* N (outputs), K (inputs) of its largest matmul: the
                               * shape of the reference SGEMM rate in run.json */
    int64_t step;             /* set by the trainer: the step being computed (0-based) */
    int training;             /* set by the trainer: 1 in a training step, 0 in evaluation;
                               * a model that draws random numbers in forward (LoRA
                               * dropout) draws them from (seed, step, micro-batch) when
                               * training, so a resumed run draws the same ones */
    char summary[160];        /* one line for the log: family and sizes */
    size_t *units;            /* (nunits) ZeRO-3: where each unit starts in param_data, ascending
                               * from 0; NULL: the model cannot gather layer by layer */
    int nunits;
    weft_param_hooks use;     /* ZeRO-3: installed by the trainer; zeros: no-ops */
    weft_model_mem mem;       /* what it holds (memory accounting); zero: not known */
    weft_device_arena *arena; /* weft_model_alloc: param_data, grad_data and frozen_data, each
                               * page-aligned, in one arena on the process's device */
    struct weft_ops *kops;    /* weft_model_alloc: the ops table (kernels/ops.h) of that device,
                               * what the model computes with; closed by weft_model_release */
    weft_device_arena *acts;  /* weft_model_acts_new: the activations, their gradients and the
                               * step's scratch, on the same device; freed by weft_model_release */
};

/* The part of a model one rank builds: its pipeline stage and tensor-
 * parallel slice, the micro-batch size and sequence length it keeps
 * activations for, and how many micro-batches' activations at once. */
typedef struct weft_model_part {
    int tp_rank, tp_size;
    int pp_rank, pp_size;
    int nslots;
    weft_comm *tp;            /* NULL when tp_size is 1 */
    int micro_batch;          /* B */
    int seq_len;              /* T */
    int recompute;            /* train.recompute: 0 none (keep every block's activations),
                               * 1 block (keep each block's input, recompute the block
                               * in backward); a model without it ignores it */
} weft_model_part;

/* --- for implementations ---------------------------------------------------- */

/* Append a parameter of the given spec to m->params (capacity cap), at the
 * next offset; m->n grows by its elements. */
WEFT_API int weft_model_add_param(weft_model *m, int cap, const char *name, weft_shard_spec shard, unsigned flags);
/* Move the parameter table built so far into the frozen table (clearing
 * WEFT_TENSOR_TRAINABLE), leaving params empty for the tensors that will be
 * trained (adapters). Before weft_model_alloc. */
WEFT_API int weft_model_freeze(weft_model *m);
/* Allocate param_data and grad_data for m->n elements, and frozen_data for
 * m->frozen_n, zeroed: one arena (named "model") on the process's device
 * (weft_device_current), sized here, each buffer starting on a page (ZeRO
 * gives whole pages back); every tensor's `device` is set to it. Opens
 * m->kops, that device's ops table (kernels/ops.h), which every forward and
 * backward computes through: so the public constructors (weft_gpt_new,
 * weft_llama_new, weft_lm_new) keep their signatures and a model computes
 * on whatever device weft_device_use named before it was made. */
WEFT_API int weft_model_alloc(weft_model *m);
/* The part's activation arena (m->acts, named "activations") on the
 * model's device (m->kops->dev), after weft_model_alloc and once m->mem is
 * known: sized from the planner's numbers, nslots * slot_bytes +
 * shared_bytes, less host_bytes (what the part keeps on the host: the
 * split micro-batch, LoRA's own arrays), plus WEFT_DEVICE_ALIGN for each of
 * ncarve carvings. weft_model_acts_take carves it in order; a carving past
 * its end is WEFT_ENOMEM naming the arena (the planner and the model
 * disagree: a bug). Everything a step computes into lives here, so the
 * step allocates nothing and, on cuda, the kernels read device memory. */
WEFT_API int weft_model_acts_new(weft_model *m, size_t host_bytes, int ncarve);
WEFT_API int weft_model_acts_take(weft_model *m, size_t bytes, void **out);
/* Initialise a part so that every layout starts from the single-rank
 * model's values: whole is the whole model's parameter table (no buffers
 * needed), fill(arg, g, rng, out) draws the g->numel values of global
 * tensor g from rng. Every rank draws every value, in table order from one
 * stream seeded with seed, and keeps the pieces of the tensors it holds (by
 * name, in its params or its frozen table, placed by their shard specs).
 * The values are drawn and cut into pieces on the host and each piece is
 * copied up to the model's device (weft_device_copy), row by row. */
typedef void (*weft_param_fill)(void *arg, const weft_tensor *g, weft_rng *rng, float *out);
WEFT_API int weft_model_init_from_whole(weft_model *m, const weft_model *whole, uint64_t seed, weft_param_fill fill,
                                        void *arg);
/* The arguments of ops->decode against the model (split over tp x pp ranks
 * or not, V tokens, `context` positions, `cached` of them in the cache):
 * 0, or WEFT_EINVAL saying what is wrong. */
WEFT_API int weft_model_decode_check(int tp, int pp, int V, int context, int cached, const int32_t *tokens, int n,
                                     int pos0);
/* ZeRO-3 (see above): the units' start offsets (any order, duplicates and
 * offsets at or past n ignored; 0 is always one), and the brackets around
 * a unit's use (start: its start offset; one that starts no unit is a
 * no-op). begin returns what gathering the unit returned. */
WEFT_API int weft_model_set_units(weft_model *m, const size_t *starts, int n);
WEFT_API int weft_model_use_begin(weft_model *m, size_t start, int dir);
WEFT_API void weft_model_use_end(weft_model *m, size_t start);
WEFT_API void weft_model_progress(weft_model *m);
/* Free what weft_model_add_param and weft_model_alloc allocated. */
WEFT_API void weft_model_release(weft_model *m);

/* A part's own consistency (ranks inside their groups, at least one slot,
 * the TP communicator present and of the right size); WEFT_EINVAL naming
 * what is wrong. The model's shape against the sizes is the model's check. */
WEFT_API int weft_model_part_check(const weft_model_part *p);

/* A language model's micro-batch mb of the step's batch: the batch is this
 * rank's k*B windows of T + 1 tokens; inputs (B, T) are each window's first
 * T tokens, targets (B, T) its last T. */
WEFT_API void weft_model_split_windows(const int32_t *batch, int mb, int B, int T, int32_t *inputs,
                                       int32_t *targets);

/* --- for users -------------------------------------------------------------- */

/* The parameter named name, or NULL. */
WEFT_API const weft_tensor *weft_model_param(const weft_model *m, const char *name);
/* The frozen tensor named name, or NULL. */
WEFT_API const weft_tensor *weft_model_frozen(const weft_model *m, const char *name);
WEFT_API void weft_model_zero_grad(weft_model *m);
WEFT_API void weft_model_free(weft_model *m);

#endif
