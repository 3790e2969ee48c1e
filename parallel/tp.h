/*
 * tp.h -- tensor-parallel layers (Megatron-LM): the communicating halves of
 * a GPT block split across the ranks of a tensor-parallel group of P ranks.
 *
 * A column-parallel linear (attention's fused qkv, the MLP's c_fc) holds a
 * block of output rows of the weight, so its output is this rank's slice of
 * channels (its heads, its quarter of the MLP) and needs no communication
 * forward; backward, the input's gradient is a partial sum over ranks:
 * weft_tp_reduce_grad sums it. A row-parallel linear (attn.c_proj,
 * mlp.c_proj) takes that slice as input and holds the matching input
 * columns of the weight, so its output is a partial sum:
 * weft_tp_row_linear_forward sums it (and adds the bias, held whole, once);
 * backward needs no communication. So each column -> row pair costs one
 * allreduce forward and one backward.
 *
 * The token embedding is split by vocabulary rows: rank p holds rows
 * [v0, v0 + Vl), Vl = V / P. Embedding lookups sum over ranks (only the
 * owner of a token contributes); the tied LM head produces this rank's
 * columns of the logits, and the cross-entropy is computed from them with
 * two small allreduces per batch (row maximum; sums of exponentials and the
 * target's logit, together), so the (N, V) logits are never gathered. The
 * arithmetic is the kernels' two-pass cross-entropy (weft_xent_stats over
 * vocabulary tiles, weft_xent_grad): one read of the logits forward, one
 * write of their gradient backward.
 *
 * A NULL communicator (or one of size 1) means no tensor parallelism: the
 * functions then do what the plain kernels do, without communicating.
 *
 * The functions that compute take the model's ops table first (kernels/ops.h)
 * and run their kernels through it; a kernel's failure is that table's sticky
 * status, not their return value (which reports communication).
 */
#ifndef WEFT_PARALLEL_TP_H
#define WEFT_PARALLEL_TP_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/comm.h"
#include "kernels/ops.h"

/* out (N, OC) = sum over ranks of inp (N, Cl) @ weight (OC, Cl)^T, + bias (OC) once. */
int weft_tp_row_linear_forward(weft_ops *ops, float *out, const float *inp, const float *weight, const float *bias,
                               int N, int Cl, int OC, weft_comm *tp);

/* Sum a column-parallel layer's input gradient (n floats) over the group, in
 * place. (With WEFT_FAULT=drop_tp_grad it does not: a deliberate
 * bug for tests to show they catch it; runtime/fault.h.) */
int weft_tp_reduce_grad(float *dinp, size_t n, weft_comm *tp);

/* out (B*T, C) = wte_local[tok - v0] (zero for tokens another rank owns),
 * summed over the group, + wpe[t]. wte_local (Vl, C), wpe (maxT, C) or NULL
 * for a model without position embeddings (Llama). */
int weft_tp_embedding_forward(weft_ops *ops, float *out, const int32_t *tokens, const float *wte_local, int v0, int Vl,
                              const float *wpe, int B, int T, int C, weft_comm *tp);
/* dwte_local[tok - v0] += dout for this rank's tokens; dwpe[t] += dout
 * (every rank; dwpe NULL: none). Without a group and with dwpe, the
 * kernel's embedding_backward through ops (bitwise the loop here: every
 * element gets the same additions in the same order); otherwise the loop,
 * on the host (not yet on a cuda device's memory). */
void weft_tp_embedding_backward(weft_ops *ops, float *dwte_local, float *dwpe, const float *dout,
                                const int32_t *tokens, int v0, int Vl, int B, int T, int C, weft_comm *tp);

/* Vocabulary-parallel cross-entropy forward. logits (N, Vl) are columns
 * [v0, v0 + Vl) of the full logits. Writes losses (N) (0 where target < 0)
 * and lse (N), each row's log-sum-exp over the whole vocabulary, for
 * backward; *mean is the mean loss over rows with target >= 0. scratch: 3N
 * doubles (WEFT_TP_XENT_SCRATCH(N)). Every rank of the group gets the same
 * losses. */
#define WEFT_TP_XENT_SCRATCH(N) (3 * (size_t)(N))
int weft_tp_xent_forward(weft_ops *ops, float *losses, double *lse, double *mean, const float *logits,
                         const int32_t *targets, int N, int Vl, int v0, double *scratch, weft_comm *tp);
/* The head's backward on this rank's columns: dlogits (N, Vl) = (softmax -
 * onehot(target)) * dloss over logits (consumed: kernels.h's
 * weft_xent_head_backward), then dinp (N, C) += dlogits @ weight and
 * dweight += dlogits^T @ inp (NULL: frozen). No communication: with
 * tensor parallelism dinp is this rank's partial sum (weft_tp_reduce_grad). */
void weft_tp_xent_head_backward(weft_ops *ops, float *dinp, float *dweight, float *logits, const double *lse,
                                const int32_t *targets, const float *inp, const float *weight, int N, int C, int Vl,
                                int v0, double dloss);

#endif
