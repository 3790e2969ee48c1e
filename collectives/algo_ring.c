/*
 * algo_ring.c -- ring algorithms for large messages, written against the
 * schedule interface (net.h) and never naming a transport.
 *
 * Reduce-scatter: in step s (0..n-2) rank r sends piece r-s-1 to r+1 and
 * receives piece r-s-2 from r-1, folding it into its own copy as the bytes
 * arrive; after n-1 steps piece r holds every rank's contribution. Each
 * rank sends and receives (n-1)/n of the data: the bandwidth optimum.
 * Allgather: in step s rank r passes piece r-s on and receives piece
 * r-s-1 in place. Allreduce is the two back to back.
 * Broadcast: a chain from the root, the message cut into segments so every
 * link carries one segment while the next is still on its way.
 */
#include "collectives/net.h"

static int mod(int a, int n) { return ((a % n) + n) % n; }

static void piece(const weft_net_algo_args *a, int j, size_t *off, size_t *len)
{
    weft_comm_chunk(a->count, a->n, j, off, len);
}

void weft_net_ring_reduce_scatter(weft_net_sched *s, const weft_net_algo_args *a)
{
    int n = a->n, next = mod(a->me + 1, n), prev = mod(a->me - 1, n);
    for (int st = 0; st < n - 1; st++) {
        size_t so, sl, ro, rl;
        piece(a, mod(a->me - st - 1, n), &so, &sl);
        piece(a, mod(a->me - st - 2, n), &ro, &rl);
        weft_net_sched_send(s, next, a->work + so * a->es, sl * a->es);
        weft_net_sched_recv_acc(s, prev, a->tmp, a->work + ro * a->es, rl);
        weft_net_sched_step(s);
    }
}

void weft_net_ring_allgather(weft_net_sched *s, const weft_net_algo_args *a)
{
    int n = a->n, next = mod(a->me + 1, n), prev = mod(a->me - 1, n);
    for (int st = 0; st < n - 1; st++) {
        size_t so, sl, ro, rl;
        piece(a, mod(a->me - st, n), &so, &sl);
        piece(a, mod(a->me - st - 1, n), &ro, &rl);
        weft_net_sched_send(s, next, a->work + so * a->es, sl * a->es);
        weft_net_sched_recv(s, prev, a->work + ro * a->es, rl * a->es);
        weft_net_sched_step(s);
    }
}

void weft_net_chain_broadcast(weft_net_sched *s, const weft_net_algo_args *a, int root, size_t seg)
{
    int n = a->n, vr = mod(a->me - root, n);
    size_t bytes = a->count * a->es, nseg = (bytes + seg - 1) / seg;
    int prev = mod(a->me - 1, n), next = mod(a->me + 1, n);
    if (n < 2)
        return;
#define SEG(k) a->work + (k) * seg, (k) + 1 < nseg ? seg : bytes - (k) * seg
    if (vr == 0) { /* the root has every segment already */
        for (size_t k = 0; k < nseg; k++) {
            weft_net_sched_send(s, next, SEG(k));
            weft_net_sched_step(s);
        }
        return;
    }
    /* Receives run one segment ahead of forwarding, so each is posted
     * before its bytes arrive (no detour through an unexpected buffer). */
    for (size_t k = 0; k <= nseg; k++) {
        if (k == 0 && nseg > 0)
            weft_net_sched_recv(s, prev, SEG(0));
        if (k + 1 < nseg)
            weft_net_sched_recv(s, prev, SEG(k + 1));
        if (k >= 1 && vr < n - 1)
            weft_net_sched_send(s, next, SEG(k - 1));
        weft_net_sched_step(s);
    }
#undef SEG
}
