/*
 * kernels.h -- the CPU compute ops of a GPT or Llama training step, forward
 * and backward, plus the optimizer math. Kernels take plain arrays and know
 * nothing of ranks, tensors' shard specs or the model.
 *
 * Dimension letters, used in every shape comment:
 *   B batch (sequences), T time (tokens per sequence), C channels,
 *   NH heads, hs = C / NH head size, NKV key/value heads (grouped-query
 *   attention), OC output channels, V vocabulary, N rows (= B*T where an
 *   op is row-wise).
 * Layouts are row-major; a linear layer's weight is (OC, C), so
 * out = inp @ weight^T + bias.
 *
 * Conventions:
 * - Every backward ACCUMULATES (+=) into its gradient outputs (dinp,
 *   dweight, dbias, ...), so gradients of shared inputs and of accumulated
 *   micro-batches add up; the caller zeroes gradients once per step.
 *   The one exception is weft_rope_backward, which turns its gradient in
 *   place.
 * - No kernel allocates: scratch space, where needed, is passed in.
 * - Each op exists in f32 (the model's) and f64 (for finite-difference
 *   checks and references): name_f64 takes double where name takes float.
 *
 * Who calls these: the models, LoRA, parallel/tp.c and the optimizer do not;
 * they compute through the ops table of their device (kernels/ops.h), whose
 * cpu implementation (ops_cpu.c) calls the f32 functions here one for one.
 * Tests, references (f64) and benchmarks call them directly.
 * - The f32 linear layer (weft_matmul_forward/backward) runs on oneDNN's
 *   matmul primitive (matmul_dnnl.c); every other product (attention, all of
 *   f64) on CBLAS (OpenBLAS). weft_kernels_init() sets both libraries'
 *   thread count (one per rank by default).
 */
#ifndef WEFT_KERNELS_KERNELS_H
#define WEFT_KERNELS_KERNELS_H

#include "runtime/api.h"
#include "runtime/dtype.h"

#include <stddef.h>
#include <stdint.h>

/* Set the threads of oneDNN and BLAS (n < 1: keep the libraries' default).
 * Call once per process before the first kernel. */
WEFT_API void weft_kernels_init(int threads);

#define WEFT_KERNEL_DECLS(real, sfx)                                                                         \
    /* out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC); bias may be NULL */                          \
    WEFT_API void weft_matmul_forward##sfx(real *out, const real *inp, const real *weight, const real *bias, \
                                           int N, int C, int OC);                                            \
    /* dinp (N, C) += dout @ weight; dweight (OC, C) += dout^T @ inp; dbias (OC) += colsum(dout).            \
     * dbias may be NULL; dinp may be NULL (first layer's input needs no gradient); dweight                  \
     * may be NULL (a frozen weight). */                                                                     \
    WEFT_API void weft_matmul_backward##sfx(real *dinp, real *dweight, real *dbias, const real *dout,        \
                                            const real *inp, const real *weight, int N, int C, int OC);      \
    /* out (N, C) = (inp - mean) * rstd * weight + bias, eps 1e-5; saves mean (N), rstd (N) */               \
    WEFT_API void weft_layernorm_forward##sfx(real *out, real *mean, real *rstd, const real *inp,            \
                                              const real *weight, const real *bias, int N, int C);           \
    /* dweight and dbias both NULL: a frozen LayerNorm, dinp only */                                         \
    WEFT_API void weft_layernorm_backward##sfx(real *dinp, real *dweight, real *dbias, const real *dout,     \
                                               const real *inp, const real *weight, const real *mean,        \
                                               const real *rstd, int N, int C);                              \
    /* LayerNorm fused with the residual add before it (pre-norm blocks): res (N, C) = a + b, then         \
     * out = LayerNorm(res) exactly as weft_layernorm_forward, in one sweep per row. res must not           \
     * overlap a or b. Results equal the two unfused calls' bit for bit. */                                  \
    WEFT_API void weft_layernorm_residual_forward##sfx(real *res, real *out, real *mean, real *rstd,         \
                                                       const real *a, const real *b, const real *weight,     \
                                                       const real *bias, int N, int C);                      \
    /* Its backward: g (N, C) = dres + LayerNorm's input gradient of dout, where dres is the gradient        \
     * res gets from its other use (the residual stream); da += g and db += g. dweight, dbias += as          \
     * weft_layernorm_backward's (both NULL: frozen). */                                                     \
    WEFT_API void weft_layernorm_residual_backward##sfx(real *da, real *db, real *dweight, real *dbias,      \
                                                        const real *dout, const real *dres, const real *res, \
                                                        const real *weight, const real *mean,                \
                                                        const real *rstd, int N, int C);                     \
    /* Causal multi-head self-attention.                                                                     \
     * qkv (B, T, 3C): q, k, v concatenated along channels, heads contiguous within each.                    \
     * out (B, T, C); att (B, NH, T, T) saves the softmax probabilities for backward                         \
     * (entries above the diagonal are 0). Scale 1/sqrt(hs). */                                              \
    WEFT_API void weft_attention_forward##sfx(real *out, real *att, const real *qkv, int B, int T, int C,    \
                                              int NH);                                                       \
    /* dqkv (B, T, 3C) += ...; datt (B, NH, T, T) is scratch the caller provides. */                         \
    WEFT_API void weft_attention_backward##sfx(real *dqkv, real *datt, const real *dout, const real *qkv,    \
                                               const real *att, int B, int T, int C, int NH);                \
    /* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */                          \
    WEFT_API void weft_gelu_forward##sfx(real *out, const real *inp, size_t n);                              \
    WEFT_API void weft_gelu_backward##sfx(real *dinp, const real *inp, const real *dout, size_t n);          \
    /* out = a + b; backward: da += dout, db += dout */                                                      \
    WEFT_API void weft_residual_forward##sfx(real *out, const real *a, const real *b, size_t n);             \
    WEFT_API void weft_residual_backward##sfx(real *da, real *db, const real *dout, size_t n);               \
    /* out (B, T, C) = wte[tokens[b,t]] + wpe[t]; wte (V, C), wpe (maxT, C) */                               \
    WEFT_API void weft_embedding_forward##sfx(real *out, const int32_t *tokens, const real *wte,             \
                                              const real *wpe, int B, int T, int C);                         \
    WEFT_API void weft_embedding_backward##sfx(real *dwte, real *dwpe, const real *dout,                     \
                                               const int32_t *tokens, int B, int T, int C);                  \
    /* Fused softmax + cross-entropy over rows of logits (N, V), numerically stable.                         \
     * losses (N) = -log softmax(logits)[target] (losses may be NULL); returns their mean over               \
     * the rows whose target is >= 0 (0 if none), as PyTorch's ignore_index does.                            \
     * If dlogits is not NULL: dlogits (N, V) = (softmax - onehot(target)) * dloss, where dloss              \
     * is the gradient of the caller's loss w.r.t. each row's loss (1/N for a mean).                         \
     * A target < 0 is ignored (loss 0, no gradient). dlogits may alias logits. */                           \
    WEFT_API double weft_xent_forward_backward##sfx(real *losses, real *dlogits, const real *logits,         \
                                                    const int32_t *targets, int N, int V, double dloss);     \
    /* The two passes of the cross-entropy, for a caller that combines rows' statistics across                \
     * ranks (parallel/tp.c's vocabulary-parallel loss). logits (N, V) are columns [v0, v0 + V) of the       \
     * whole vocabulary's. Stats, one pass over vocabulary tiles: mx (N) each row's max, sum (N) its         \
     * sum of exp(logit - mx), xt (N) the target's logit when this slice holds it (else 0, and 0 for         \
     * target < 0). Grad, one pass: dlogits (N, V) = (exp(logit - lse) - onehot(target - v0)) * dloss,       \
     * lse (N) the whole row's log-sum-exp; zero rows where target < 0. Overwrites; may alias logits. */     \
    WEFT_API void weft_xent_stats##sfx(double *mx, double *sum, double *xt, const real *logits,              \
                                       const int32_t *targets, int N, int V, int v0);                        \
    WEFT_API void weft_xent_grad##sfx(real *dlogits, const real *logits, const double *lse,                  \
                                      const int32_t *targets, int N, int V, int v0, double dloss);           \
    /* AdamW with decoupled weight decay, bias-corrected, t = step number from 1:                            \
     * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;                                                           \
     * p -= lr (mhat / (sqrt(vhat) + eps) + wd p). grad_scale multiplies g first (clipping). */              \
    WEFT_API void weft_adamw_update##sfx(real *params, const real *grads, real *m, real *v, size_t n,        \
                                         double lr, double beta1, double beta2, double eps,                  \
                                         double weight_decay, int64_t t, double grad_scale);                 \
    /* Sum of squares of n values, accumulated in double. */                                                 \
    WEFT_API double weft_sumsq##sfx(const real *x, size_t n);                                                \
                                                                                                             \
    /* --- the Llama family's ops ---                                                                        \
     * RMSNorm: out (N, C) = inp * rstd * weight, rstd (N) = 1/sqrt(mean over C of inp^2 + eps),             \
     * saved for backward. */                                                                                \
    WEFT_API void weft_rmsnorm_forward##sfx(real *out, real *rstd, const real *inp, const real *weight,      \
                                            int N, int C, double eps);                                       \
    /* dinp (N, C) += ...; dweight (C) += ... (NULL: frozen) */                                              \
    WEFT_API void weft_rmsnorm_backward##sfx(real *dinp, real *dweight, const real *dout, const real *inp,   \
                                             const real *weight, const real *rstd, int N, int C);            \
    /* RMSNorm fused with the residual add before it: res (N, C) = a + b, out = RMSNorm(res), as the        \
     * layernorm pair above (res must not overlap a or b; bitwise the unfused calls' results). */            \
    WEFT_API void weft_rmsnorm_residual_forward##sfx(real *res, real *out, real *rstd, const real *a,        \
                                                     const real *b, const real *weight, int N, int C,        \
                                                     double eps);                                            \
    /* g = dres + RMSNorm's input gradient of dout; da += g, db += g; dweight += (NULL: frozen) */           \
    WEFT_API void weft_rmsnorm_residual_backward##sfx(real *da, real *db, real *dweight, const real *dout,   \
                                                      const real *dres, const real *res, const real *weight, \
                                                      const real *rstd, int N, int C);                       \
    /* Rotary tables for Hugging Face Llama's half-split RoPE: cos, sin (T, hs/2) of the angle               \
     * t * theta^(-2i/hs), i < hs/2, computed in double then rounded to real. hs even. */                    \
    WEFT_API void weft_rope_table##sfx(real *cos, real *sin, int T, int hs, double theta);                   \
    /* In place on x (B, T, nh*hs), heads contiguous within a row: in each head, element i (< hs/2)          \
     * and i + hs/2 turn by the angle at (t, i) of the tables (T, hs/2):                                     \
     * x'[i] = x[i] cos - x[i+hs/2] sin;  x'[i+hs/2] = x[i+hs/2] cos + x[i] sin. */                          \
    WEFT_API void weft_rope_forward##sfx(real *x, const real *cos, const real *sin, int B, int T, int nh,    \
                                         int hs);                                                            \
    /* In place on dx (B, T, nh*hs): the gradient turned back by -angle (the rotation's transpose).          \
     * The one backward that OVERWRITES rather than accumulates: dx holds the gradient w.r.t. the            \
     * rotated x on entry and the gradient w.r.t. the unrotated x on return. */                              \
    WEFT_API void weft_rope_backward##sfx(real *dx, const real *cos, const real *sin, int B, int T, int nh,  \
                                          int hs);                                                           \
    /* SwiGLU: out (n) = silu(gate) * up, silu(x) = x / (1 + exp(-x)) */                                     \
    WEFT_API void weft_swiglu_forward##sfx(real *out, const real *gate, const real *up, size_t n);           \
    /* dgate += dout * up * silu'(gate); dup += dout * silu(gate) */                                         \
    WEFT_API void weft_swiglu_backward##sfx(real *dgate, real *dup, const real *gate, const real *up,        \
                                            const real *dout, size_t n);                                     \
    /* Causal grouped-query attention. q (B, T, NH*hs); k, v (B, T, NKV*hs), heads contiguous                \
     * within each; NKV divides NH and query head h uses key/value head h / (NH/NKV) (NKV = NH:              \
     * multi-head, NKV = 1: multi-query). out (B, T, NH*hs); att (B, NH, T, T) saves the softmax             \
     * probabilities (0 above the diagonal). Scale 1/sqrt(hs). */                                            \
    WEFT_API void weft_gqa_attention_forward##sfx(real *out, real *att, const real *q, const real *k,        \
                                                  const real *v, int B, int T, int NH, int NKV, int hs);     \
    /* dq, dk, dv += ... (dk, dv summed over the query heads that share them); datt (B, NH, T, T)            \
     * is scratch the caller provides. */                                                                    \
    WEFT_API void weft_gqa_attention_backward##sfx(real *dq, real *dk, real *dv, real *datt,                 \
                                                   const real *dout, const real *q, const real *k,           \
                                                   const real *v, const real *att, int B, int T, int NH,     \
                                                   int NKV, int hs);                                   \
    /* Flash-style causal attention, what the models train with: the results of the two ops above            \
     * (MHA on fused qkv, and GQA) without the (B, NH, T, T) probabilities. Query tiles sweep key            \
     * tiles with an online softmax; lse (B, NH, T) saves each row's log-sum-exp of the scaled scores.       \
     * Backward recomputes a tile's probabilities from q, k and lse and needs the forward's out;             \
     * its only scratch is one tile on the stack. Gradients accumulate (+=) as the others'. */               \
    WEFT_API void weft_attention_flash_forward##sfx(real *out, real *lse, const real *qkv, int B, int T,     \
                                                    int C, int NH);                                          \
    WEFT_API void weft_attention_flash_backward##sfx(real *dqkv, const real *dout, const real *qkv,          \
                                                     const real *out, const real *lse, int B, int T, int C,  \
                                                     int NH);                                                \
    WEFT_API void weft_gqa_attention_flash_forward##sfx(real *out, real *lse, const real *q, const real *k,  \
                                                        const real *v, int B, int T, int NH, int NKV,        \
                                                        int hs);                                             \
    WEFT_API void weft_gqa_attention_flash_backward##sfx(real *dq, real *dk, real *dv, const real *dout,     \
                                                         const real *q, const real *k, const real *v,        \
                                                         const real *out, const real *lse, int B, int T,     \
                                                         int NH, int NKV, int hs);                           \
    /* Decoding: causal grouped-query attention of n new queries over a key/value cache.                    \
     * q (n, NH*hs): the queries of positions pos0 .. pos0+n-1; kc, vc (pos0+n, NKV*hs): the keys and       \
     * values of every position so far (the new ones included), heads contiguous within each. Query i        \
     * attends to positions 0 .. pos0+i. out (n, NH*hs); scratch (WEFT_ATT_DECODE_ROWS, pos0+n) the          \
     * caller provides. Equals rows pos0.. of weft_gqa_attention_forward over the whole prefix (NKV = NH:    \
     * GPT-2's multi-head attention). Nothing is saved for backward. */                                     \
    WEFT_API void weft_attention_decode##sfx(real *out, real *scratch, const real *q, const real *kc,        \
                                             const real *vc, int n, int pos0, int NH, int NKV, int hs);

/* Rows of scores weft_attention_decode works on at once (its scratch). */
#define WEFT_ATT_DECODE_ROWS 64

WEFT_KERNEL_DECLS(float, )
WEFT_KERNEL_DECLS(double, _f64)

/* The one implementation of gradient clipping and of the learning-rate
 * schedule: weft_optim_clip_scale and weft_optim_lr (model/optim.h) call
 * these with the optimizer's options.
 *
 * Clipping: the scale to multiply gradients by so that their global norm is
 * at most max_norm (1 when already within, or when max_norm <= 0). */
WEFT_API double weft_clip_scale(double global_norm, double max_norm);

/* Learning rate at step (0-based): linear warm-up max_lr * (step + 1) / warmup
 * for step < warmup (so the first step is not wasted at lr 0), then cosine
 * decay from max_lr at step warmup to min_lr at step total (min_lr after). */
WEFT_API double weft_lr_at(int64_t step, double max_lr, double min_lr, int64_t warmup, int64_t total);

/* The single-core SGEMM rate (FLOP/s, 2*M*N*K per call) of out (M, N) =
 * A (M, K) @ B (N, K)^T, timed over about `seconds`, for benchmarks'
 * reference figures. Runs one BLAS thread whatever was set, then restores. */
WEFT_API double weft_sgemm_rate(int M, int N, int K, double seconds);

/* The f32 rate (FLOP/s, 2*M*N*K per call) of weft_matmul_forward's product
 * out (M, N) = A (M, K) @ B (N, K)^T on oneDNN with the threads
 * weft_kernels_init set, timed over about `seconds` (0: oneDNN failed). */
WEFT_API double weft_matmul_rate(int M, int N, int K, double seconds);

/* The machine's f32 peak as this process sees it: the fastest single call
 * among a few large square products (1024..2048) on oneDNN with the threads
 * weft_kernels_init set, over about `seconds` in all. What MFU divides by. */
WEFT_API double weft_matmul_peak(double seconds);

/* The threads oneDNN runs the products with. */
WEFT_API int weft_matmul_threads(void);

/* --- bf16 mixed precision (train.precision = bf16) ---
 * In bf16 the linear layer (weft_matmul_forward/backward, still f32 arrays
 * at the API) multiplies bf16 copies of its inputs -- each rounded to
 * nearest even -- and accumulates and writes f32: gradients, biases and
 * every other op stay f32, except two that follow this precision: flash
 * attention's tile products (its scores, softmax and sums stay f32) and
 * weft_xent_head_backward's. Process-wide, like the thread count.
 *
 * Whether bf16 products can run at speed here: the CPU has avx512_bf16 or
 * AMX-BF16 (cpuid) and oneDNN may use them (its effective ISA, which
 * ONEDNN_MAX_CPU_ISA caps). 1: yes (why names the instructions); 0: no,
 * why says what is missing. */
WEFT_API int weft_matmul_bf16_supported(char *why, size_t len);

/* The linear layer's precision from now on: WEFT_F32 (the default) or
 * WEFT_BF16; WEFT_EUNSUPPORTED (message: what the CPU or oneDNN lacks) when
 * bf16 cannot run at speed. */
WEFT_API int weft_matmul_set_precision(weft_dtype dt);
WEFT_API weft_dtype weft_matmul_precision(void);

/* Weights' bf16 copies: register the n floats at base (the model's
 * parameters) and products read a bf16 copy of any operand inside them
 * instead of rounding it per call. The copy is as fresh as the last
 * refresh: call weft_matmul_bf16_refresh(p, n) after every write to
 * [p, p + n) (an optimizer step, a gather, a load); forget before freeing
 * base. Registering is allocation; refreshing is not. */
WEFT_API int weft_matmul_bf16_mirror(const float *base, size_t n);
WEFT_API void weft_matmul_bf16_refresh(const float *p, size_t n);
WEFT_API void weft_matmul_bf16_forget(const float *base);

/* The LM head's backward from its logits (N, V; columns [v0, v0 + V) of the
 * vocabulary): weft_xent_grad's gradient of them (lse, targets, dloss as
 * there), then dinp (N, C) += dlogits @ weight (V, C) and, unless NULL,
 * dweight (V, C) += dlogits^T @ inp (N, C). logits is consumed: it holds the
 * gradient afterwards -- in f32, or in bf16 over its first half when the
 * products are bf16, rounded as it is made and never written in f32
 * (xent_head.c says why). */
WEFT_API void weft_xent_head_backward(float *dinp, float *dweight, float *logits, const double *lse,
                                      const int32_t *targets, const float *inp, const float *weight, int N, int C,
                                      int V, int v0, double dloss);

/* weft_matmul_rate and weft_matmul_peak in a given precision (WEFT_F32 or
 * WEFT_BF16: bf16 inputs, f32 output). */
WEFT_API double weft_matmul_rate_as(weft_dtype dt, int M, int N, int K, double seconds);
WEFT_API double weft_matmul_peak_as(weft_dtype dt, double seconds);

#endif
