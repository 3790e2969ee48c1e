/*
 * llama.h -- the Llama family (Llama 2/3, Qwen, Mistral, SmolLM, TinyLlama
 * without their extras): a token embedding without positions, n_layer
 * pre-norm blocks of RMSNorm -> causal grouped-query attention with rotary
 * position embeddings -> residual, RMSNorm -> SwiGLU MLP -> residual, a final
 * RMSNorm and an LM head, tied to the embedding or its own. No biases.
 *
 * Parameter names are Hugging Face's (LlamaForCausalLM's state dict), so a
 * checkpoint reads like the model it will be exported as:
 *
 *   model.embed_tokens.weight                      (V, C)
 *   model.layers.{l}.input_layernorm.weight        (C)
 *   model.layers.{l}.self_attn.q_proj.weight       (NH hs, C)
 *   model.layers.{l}.self_attn.k_proj.weight       (NKV hs, C)
 *   model.layers.{l}.self_attn.v_proj.weight       (NKV hs, C)
 *   model.layers.{l}.self_attn.o_proj.weight       (C, NH hs)
 *   model.layers.{l}.post_attention_layernorm.weight (C)
 *   model.layers.{l}.mlp.gate_proj.weight          (F, C)
 *   model.layers.{l}.mlp.up_proj.weight            (F, C)
 *   model.layers.{l}.mlp.down_proj.weight          (C, F)
 *   model.norm.weight                              (C)
 *   lm_head.weight                                 (V, C)  only when untied
 *
 * Rotary embeddings use the half-split layout of Hugging Face's Llama: in
 * each head of size hs, element i < hs/2 pairs with i + hs/2 and turns by
 * pos * theta^(-2i/hs). Query head h attends with key/value head
 * h / (NH / NKV).
 *
 * Tensor parallelism over P ranks (Megatron-LM, as GPT-2): q/k/v and
 * gate/up are column-parallel (each rank its heads, its F/P channels), o and
 * down row-parallel; the embedding and the untied head are split by
 * vocabulary rows. Key/value heads: when P divides NKV each rank holds its
 * NKV/P of them; when NKV < P (and divides P) every rank holds k_proj and
 * v_proj whole, computes with the one head its query heads use, and the
 * weights' gradients are summed over the group, so the replicas stay equal.
 *
 * Letters: B batch, T time, C n_embd, NH n_head, NKV n_kv_head, hs = C/NH,
 * F ffn_dim, L n_layer, V vocab.
 */
#ifndef WEFT_MODEL_LLAMA_H
#define WEFT_MODEL_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "model/lora.h"
#include "model/model.h"
#include "runtime/api.h"

typedef struct weft_llama_config {
    int vocab;          /* V */
    int max_seq;        /* positions the rotary table covers (model.context) */
    int n_layer;        /* L */
    int n_head;         /* NH */
    int n_kv_head;      /* NKV, divides NH (NH: multi-head; 1: multi-query) */
    int n_embd;         /* C */
    int ffn_dim;        /* F */
    double rope_theta;  /* rotary base (10000 in Llama 2, 500000 in Llama 3) */
    double norm_eps;    /* RMSNorm epsilon */
    int tie_embeddings; /* 1: the LM head is model.embed_tokens.weight */
    /* Low-rank adapters (model/lora.h; rank 0: none) on q, k, v, o (the
     * attention's projections), gate, up, down (the MLP's); default q,v.
     * With adapters the tensors above are the model's frozen table. */
    weft_lora_config lora;
} weft_llama_config;

typedef struct weft_llama weft_llama;

/* WEFT_ECONFIG naming the model.* keys at fault. */
WEFT_API int weft_llama_config_check(const weft_llama_config *cfg);
/* The constraints of a DP x TP x PP layout on this shape (exit 64 material):
 * TP divides NH, F and V, and NKV % TP == 0 or TP % NKV == 0; PP divides L. */
WEFT_API int weft_llama_layout_check(const weft_llama_config *cfg, int tp, int pp);

/* Build one rank's part (weft_model_part; the whole model when tp_size =
 * pp_size = 1) with activations for micro-batches up to B x T, everything
 * the steps need allocated now. Names are global (model.layers.{l} with the
 * global layer l), shapes local, shard specs place each piece. */
/* What the part weft_llama_new_part would build holds (model.h's
 * weft_model_mem), without allocating it: the planner's numbers, from the
 * same function that sizes a built model's buffers (its model's mem). */
WEFT_API int weft_llama_plan(const weft_llama_config *cfg, const weft_model_part *part, int B, int T,
                             weft_model_mem *out);
WEFT_API int weft_llama_new_part(const weft_llama_config *cfg, const weft_model_part *part, int B, int T,
                                 weft_llama **out);
WEFT_API int weft_llama_new(const weft_llama_config *cfg, int B, int T, weft_llama **out);
WEFT_API void weft_llama_free(weft_llama *m);

/* Initialisation from seed, every part taking its piece of the single-rank
 * model's values: matrices N(0, 0.02), the residual outputs (o_proj,
 * down_proj) N(0, 0.02/sqrt(2L)), RMSNorm weights 1. */
WEFT_API void weft_llama_init(weft_llama *m, uint64_t seed);

WEFT_API weft_model *weft_llama_model(weft_llama *m);
WEFT_API const weft_llama_config *weft_llama_cfg(const weft_llama *m);

/* Forward of tokens (b, t), b <= B, t <= T, on a model with one stage. With
 * targets: *loss = mean cross-entropy (targets < 0 ignored). Without: only
 * the logits, (b, t, V/tp) of this rank's vocabulary rows, at
 * weft_llama_logits. Returns 0 or a communication error (TP). */
WEFT_API int weft_llama_forward(weft_llama *m, const int32_t *tokens, const int32_t *targets, int b, int t,
                                double *loss);
WEFT_API const float *weft_llama_logits(const weft_llama *m);
/* Backward of the last forward (which had targets), accumulating gradients;
 * loss_scale multiplies the mean loss differentiated; hook may be NULL. */
WEFT_API int weft_llama_backward(weft_llama *m, double loss_scale, weft_grad_hook hook, void *arg);

/* Model FLOPs of forward + backward per token at sequence length t: 6 per
 * matmul weight (embedding lookups excluded, the head included) plus
 * attention's 12 L t C. */
WEFT_API double weft_llama_flops_per_token(const weft_llama *m, int t);

#endif
