/*
 * algo_direct.c -- algorithms where every rank talks to every other in one
 * step: the rank-order reduce-scatter of comm.deterministic, the gather of
 * reduced pieces to a root, pairwise alltoall, and the dissemination
 * barrier. Written against the schedule interface, never a transport.
 *
 * Deterministic reduce-scatter: the owner of each piece receives that piece
 * from every rank and reduces x0 op x1 op ... op x(n-1) in rank order with
 * the same kernels the shm backend uses, so the bits do not depend on the
 * backend, the algorithm or the chunking. It moves as many bytes as the
 * ring, over n - 1 connections at once.
 */
#include "collectives/net.h"

void weft_net_direct_reduce_scatter(weft_net_sched *s, const weft_net_algo_args *a)
{
    int n = a->n;
    if (n < 2)
        return;
    size_t off, len, stride = (a->count + (size_t)n - 1) / (size_t)n * a->es;
    weft_comm_chunk(a->count, n, a->me, &off, &len);
    for (int j = 0; j < n; j++) {
        if (j == a->me)
            continue;
        size_t jo, jl;
        weft_comm_chunk(a->count, n, j, &jo, &jl);
        weft_net_sched_send(s, j, a->work + jo * a->es, jl * a->es);
        weft_net_sched_recv(s, j, a->tmp + (size_t)j * stride, len * a->es);
    }
    char *mine = a->work + off * a->es;
    weft_net_sched_copy(s, a->tmp + (size_t)a->me * stride, mine, len * a->es);
    weft_net_sched_combine(s, mine, a->tmp, a->tmp + stride, len);
    for (int j = 2; j < n; j++)
        weft_net_sched_acc(s, mine, a->tmp + (size_t)j * stride, len);
    weft_net_sched_step(s);
}

void weft_net_direct_gather(weft_net_sched *s, const weft_net_algo_args *a, int root)
{
    for (int j = 0; j < a->n; j++) {
        size_t off, len;
        weft_comm_chunk(a->count, a->n, j, &off, &len);
        if (a->me == root && j != root)
            weft_net_sched_recv(s, j, a->work + off * a->es, len * a->es);
        else if (a->me != root && j == a->me)
            weft_net_sched_send(s, root, a->work + off * a->es, len * a->es);
    }
    weft_net_sched_step(s);
}

void weft_net_pairwise_alltoall(weft_net_sched *s, const weft_net_algo_args *a, const char *send)
{
    size_t block = a->count * a->es;
    for (int k = 1; k < a->n; k++) { /* partner order spreads the load */
        int to = (a->me + k) % a->n, from = (a->me - k + a->n) % a->n;
        weft_net_sched_send(s, to, send + (size_t)to * block, block);
        weft_net_sched_recv(s, from, a->work + (size_t)from * block, block);
    }
    weft_net_sched_copy(s, a->work + (size_t)a->me * block, send + (size_t)a->me * block, block);
    weft_net_sched_step(s);
}

void weft_net_dissemination_barrier(weft_net_sched *s, int n, int me)
{
    for (int k = 1; k < n; k <<= 1) {
        weft_net_sched_send(s, (me + k) % n, NULL, 0);
        weft_net_sched_recv(s, (me - k + n) % n, NULL, 0);
        weft_net_sched_step(s);
    }
}
