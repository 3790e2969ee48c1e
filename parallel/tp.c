/*
 * tp.c -- tensor-parallel layers: the allreduces of Megatron's column/row
 * split, the vocabulary-parallel embedding and cross-entropy. See tp.h.
 *
 * The arithmetic is the plain kernels', through the model's ops table
 * (kernels/ops.h), the vocabulary-parallel pieces included (add_rows,
 * embedding_vp_*, xent_rescale): nothing here touches the device's memory
 * on the host. What is here is where a partial result becomes a whole one.
 */
#include "parallel/tp.h"
#include "kernels/ops.h"
#include "runtime/error.h"
#include "runtime/fault.h"

#include <stdlib.h>

static int grouped(const weft_comm *tp) { return tp && weft_comm_size(tp) > 1; }

int weft_tp_row_linear_forward(weft_ops *ops, float *out, const float *inp, const float *weight, const float *bias,
                               int N, int Cl, int OC, weft_comm *tp)
{
    if (!grouped(tp)) {
        ops->matmul_forward(ops, out, inp, weight, bias, N, Cl, OC);
        return 0;
    }
    /* Partial sums first, the bias after: added once, not P times. */
    ops->matmul_forward(ops, out, inp, weight, NULL, N, Cl, OC);
    WEFT_CHECK(weft_comm_allreduce(tp, out, out, (size_t)N * OC, WEFT_F32, WEFT_SUM));
    if (bias)
        ops->add_rows(ops, out, bias, N, 1, OC);
    return 0;
}

int weft_tp_reduce_grad(float *dinp, size_t n, weft_comm *tp)
{
    /* drop_tp_grad (tests only): skip this reduction, the bug the layout
     * tests must catch. */
    if (!grouped(tp) || weft_fault_at(WEFT_FAULT_TP_GRAD, -1))
        return 0;
    return weft_comm_allreduce(tp, dinp, dinp, n, WEFT_F32, WEFT_SUM);
}

int weft_tp_embedding_forward(weft_ops *ops, float *out, const int32_t *tokens, const float *wte_local, int v0, int Vl,
                              const float *wpe, int B, int T, int C, weft_comm *tp)
{
    if (!grouped(tp) && wpe) {
        ops->embedding_forward(ops, out, tokens, wte_local, wpe, B, T, C);
        return 0;
    }
    size_t N = (size_t)B * T;
    ops->embedding_vp_forward(ops, out, tokens, wte_local, v0, Vl, (int)N, C);
    /* One owner per token: the sum is exactly its row. Positions after, as
     * the single-rank kernel adds them: wte[tok] + wpe[t], bit for bit. */
    if (grouped(tp))
        WEFT_CHECK(weft_comm_allreduce(tp, out, out, N * C, WEFT_F32, WEFT_SUM));
    if (wpe)
        ops->add_rows(ops, out, wpe, (int)N, T, C);
    return 0;
}

void weft_tp_embedding_backward(weft_ops *ops, float *dwte_local, float *dwpe, const float *dout,
                                const int32_t *tokens, int v0, int Vl, int B, int T, int C, weft_comm *tp)
{
    if (!grouped(tp) && dwpe) { /* as the forward: one rank holds every row */
        ops->embedding_backward(ops, dwte_local, dwpe, dout, tokens, B, T, C);
        return;
    }
    ops->embedding_vp_backward(ops, dwte_local, dwpe, dout, tokens, v0, Vl, B, T, C);
}

int weft_tp_xent_forward(weft_ops *ops, float *losses, double *lse, double *mean, const float *logits,
                         const int32_t *targets, int N, int Vl, int v0, double *scratch, weft_comm *tp)
{
    /* scratch: (N) this slice's row maxima, then (N) sums of exps and (N)
     * target logits, adjacent so that one allreduce sums both */
    double *mx = scratch, *sz = scratch + N, *xt = scratch + 2 * (size_t)N;
    ops->xent_stats(ops, mx, sz, xt, logits, targets, N, Vl, v0);
    if (grouped(tp)) {
        /* The whole row's max, then each slice's sum rescaled to it: the
         * sums are over the same shift on every rank before they add. */
        WEFT_CHECK(weft_comm_allreduce(tp, mx, lse, (size_t)N, WEFT_F64, WEFT_MAX));
        ops->xent_rescale(ops, sz, mx, lse, N); /* and mx = lse */
        WEFT_CHECK(weft_comm_allreduce(tp, sz, sz, 2 * (size_t)N, WEFT_F64, WEFT_SUM));
    }
    ops->xent_finish(ops, mean, losses, lse, mx, sz, xt, targets, N);
    return 0;
}

void weft_tp_xent_head_backward(weft_ops *ops, float *dinp, float *dweight, float *logits, const double *lse,
                                const int32_t *targets, const float *inp, const float *weight, int N, int C, int Vl,
                                int v0, double dloss)
{
    ops->xent_head_backward(ops, dinp, dweight, logits, lse, targets, inp, weight, N, C, Vl, v0, dloss);
}
