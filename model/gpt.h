/*
 * gpt.h -- the GPT-2 reference model: token + learned position embeddings,
 * n_layer pre-LayerNorm blocks (causal multi-head attention, MLP with
 * tanh-GELU at 4x width), a final LayerNorm, and an LM head tied to the
 * token embedding; biases on every linear, LayerNorm eps 1e-5.
 *
 * All parameters live in one flat f32 buffer, laid out in the order of the
 * parameter table (weft_tensors, weft_gpt_model(m)->params): wte, wpe, then each block's tensors,
 * then ln_f. Backward produces gradients from the END of that buffer towards
 * the start (ln_f, the last block, ..., the first block, the embeddings),
 * and tells a hook after each stage how much of the buffer's tail is final,
 * so data parallelism can reduce gradient buckets while backward goes on.
 *
 * Letters: B batch, T time, C n_embd, NH n_head, L n_layer, V vocab,
 * maxT the context length (positions).
 */
#ifndef WEFT_MODEL_GPT_H
#define WEFT_MODEL_GPT_H

#include "runtime/api.h"

#include <stddef.h>
#include <stdint.h>

#include "collectives/comm.h"
#include "model/lora.h"
#include "model/model.h"
#include "runtime/api.h"
#include "runtime/shard.h"

typedef struct weft_gpt_config {
    int vocab;    /* V */
    int max_seq;  /* maxT: positions the model has */
    int n_layer;  /* L */
    int n_head;   /* NH */
    int n_embd;   /* C */
    /* Low-rank adapters (model/lora.h; rank 0: none). Targets: qkv
     * (attn.c_attn), proj (attn.c_proj), fc (mlp.c_fc), fcproj (mlp.c_proj);
     * default qkv. With adapters every tensor above is in the model's frozen
     * table and the parameters are the adapters alone. */
    weft_lora_config lora;
} weft_gpt_config;

typedef struct weft_gpt weft_gpt;

/* The part of the model one rank holds (model/model.h's weft_model_part:
 * what weft_trainer_part gives; micro_batch and seq_len are passed to
 * weft_gpt_new_part as B and T). Pipeline stage pp_rank of pp_size
 * holds blocks [pp_rank * L/pp_size, (pp_rank + 1) * L/pp_size); the first
 * stage also the embeddings, the last ln_f and the tied LM head (with
 * pp_size > 1, a copy of wte marked tied_copy). Tensor-parallel rank tp_rank
 * of tp_size holds its heads of each block, its 4C/tp_size MLP channels and
 * its V/tp_size vocabulary rows of wte (parallel/tp.h), communicating over
 * tp. nslots: micro-batches whose activations are kept at once (pipeline
 * schedules keep several; 1 otherwise). */
typedef weft_model_part weft_gpt_part;

/* The shape the model.* keys (model/lm.h) give; the vocabulary comes from
 * the dataset. */
#include "runtime/config.h"
WEFT_API void weft_gpt_config_from(const weft_config *cfg, int vocab, weft_gpt_config *out);

/* Check a configuration; WEFT_ECONFIG naming the keys (model.*) at fault. */
WEFT_API int weft_gpt_config_check(const weft_gpt_config *cfg);
/* The constraints of tensor- and pipeline-parallel sizes on this shape: TP
 * divides NH, C and V; PP divides L. */
WEFT_API int weft_gpt_layout_check(const weft_gpt_config *cfg, int tp, int pp);

/* Build a model with activations for batches up to B x T (T <= max_seq).
 * Allocates everything the steps will need, now. */
WEFT_API int weft_gpt_new(const weft_gpt_config *cfg, int B, int T, weft_gpt **out);
/* The same for one rank's part; parameter names stay the global GPT-2 names
 * (h.{l} with the global layer l), shapes are local, and each parameter's
 * shard spec says where its piece sits in the global tensor. */
WEFT_API int weft_gpt_new_part(const weft_gpt_config *cfg, const weft_gpt_part *part, int B, int T, weft_gpt **out);
WEFT_API void weft_gpt_free(weft_gpt *m);

/* GPT-2 initialisation from seed (every part of the model gets its piece of
 * the single-rank model's values): weights N(0, 0.02), the residual output
 * projections (attn.c_proj, mlp.c_proj) N(0, 0.02/sqrt(2L)), biases 0,
 * LayerNorm weight 1 and bias 0. */
WEFT_API void weft_gpt_init(weft_gpt *m, uint64_t seed);

WEFT_API const weft_gpt_config *weft_gpt_cfg(const weft_gpt *m);
/* The model as the trainer sees it (model/model.h): its parameter table
 * (weft_tensors with shard specs, in buffer order) and the interface. */
WEFT_API weft_model *weft_gpt_model(weft_gpt *m);
WEFT_API int weft_gpt_nparams(const weft_gpt *m);
WEFT_API const weft_tensor *weft_gpt_param_at(const weft_gpt *m, int i);
WEFT_API size_t weft_gpt_num_params(const weft_gpt *m); /* total elements held here */
WEFT_API size_t weft_gpt_global_params(const weft_gpt *m); /* elements of the whole model */
WEFT_API const weft_gpt_part *weft_gpt_part_of(const weft_gpt *m);
WEFT_API float *weft_gpt_params(weft_gpt *m);
WEFT_API float *weft_gpt_grads(weft_gpt *m);

/* Forward on tokens (b, t) with b <= B, t <= T, on a model of one stage.
 * With targets, *loss is the mean cross-entropy over the positions whose
 * target is >= 0; without, *loss is 0 and only the logits are computed.
 * Returns 0 or a communication error (tensor parallelism). */
WEFT_API int weft_gpt_forward(weft_gpt *m, const int32_t *tokens, const int32_t *targets, int b, int t,
                              double *loss);
/* Logits (b, t, V) of the last forward. */
WEFT_API const float *weft_gpt_logits(const weft_gpt *m);

WEFT_API void weft_gpt_zero_grad(weft_gpt *m);


/* Hook called during backward each time the gradients from element offset
 * to the end of the flat buffer are final for this backward. */

/* Backward of the last forward (which must have had targets), accumulating
 * into the gradients. loss_scale multiplies the mean loss being
 * differentiated (1/k when k micro-batches are accumulated). hook may be
 * NULL (micro-steps that do not reduce). */
WEFT_API int weft_gpt_backward(weft_gpt *m, double loss_scale, weft_grad_hook hook, void *arg);

/* --- pipeline stages and micro-batch slots --------------------------------
 * forward_slot keeps micro-batch activations in slot (0 <= slot < nslots)
 * until backward_slot of that slot. On the first stage tokens are embedded;
 * on a later stage the input must already be in weft_gpt_stage_input(slot).
 * The last stage computes the loss (*loss; 0 elsewhere) from targets.
 * Before backward_slot on a stage that is not the last, the gradient of its
 * output must be in weft_gpt_stage_doutput(); afterwards the gradient of its
 * input is in weft_gpt_stage_dinput(). Both return 0 or a communication
 * error (tensor parallelism). */
WEFT_API int weft_gpt_forward_slot(weft_gpt *m, int slot, const int32_t *tokens, const int32_t *targets, int b, int t,
                          double *loss);
WEFT_API int weft_gpt_backward_slot(weft_gpt *m, int slot, double loss_scale, weft_grad_hook hook, void *arg);
WEFT_API float *weft_gpt_stage_input(weft_gpt *m, int slot);   /* (B, T, C) */
WEFT_API float *weft_gpt_stage_output(weft_gpt *m, int slot);  /* (B, T, C) */
WEFT_API float *weft_gpt_stage_doutput(weft_gpt *m);           /* (B, T, C) */
WEFT_API float *weft_gpt_stage_dinput(weft_gpt *m);            /* (B, T, C) */
/* What the part weft_gpt_new_part would build holds (model.h's
 * weft_model_mem), without allocating it: the planner's numbers, from the
 * same function that sizes a built model's buffers (its model's mem). */
WEFT_API int weft_gpt_plan(const weft_gpt_config *cfg, const weft_gpt_part *part, int B, int T, weft_model_mem *out);
/* Bytes of forward activations one slot holds (memory reporting). */
WEFT_API size_t weft_gpt_slot_bytes(const weft_gpt *m);

/* Model FLOPs of one forward+backward over b*t tokens (6 N per token for the
 * matmuls plus attention's 12 L t C per token), for FLOP/s reporting. */
WEFT_API double weft_gpt_flops_per_token(const weft_gpt *m, int t);

#endif
