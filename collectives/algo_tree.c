/*
 * algo_tree.c -- binomial trees for small messages (latency: log2 n steps
 * instead of the ring's n - 1), written against the schedule interface.
 * Ranks are renumbered relative to the root (v = rank - root mod n); in the
 * reduce, v receives from v + 1, v + 2, v + 4, ... while those exist and
 * then sends its partial result to v - lowbit(v); the broadcast runs the
 * same tree the other way. A small allreduce is a reduce to rank 0 followed
 * by a broadcast from it, so every rank ends with the same bits.
 */
#include "collectives/net.h"

static int real(int v, int root, int n) { return (v + root) % n; }

void weft_net_tree_reduce(weft_net_sched *s, const weft_net_algo_args *a, int root)
{
    int n = a->n, v = (a->me - root + n) % n;
    for (int mask = 1; mask < n; mask <<= 1) {
        if (v & mask) {
            weft_net_sched_send(s, real(v - mask, root, n), a->work, a->count * a->es);
            weft_net_sched_step(s);
            return;
        }
        if (v + mask < n) {
            weft_net_sched_recv_acc(s, real(v + mask, root, n), a->tmp, a->work, a->count);
            weft_net_sched_step(s);
        }
    }
}

void weft_net_tree_broadcast(weft_net_sched *s, const weft_net_algo_args *a, int root)
{
    int n = a->n, v = (a->me - root + n) % n, mask = 1;
    size_t bytes = a->count * a->es;
    for (; mask < n; mask <<= 1)
        if (v & mask) {
            weft_net_sched_recv(s, real(v - mask, root, n), a->work, bytes);
            weft_net_sched_step(s);
            break;
        }
    for (mask >>= 1; mask > 0; mask >>= 1)
        if (v + mask < n)
            weft_net_sched_send(s, real(v + mask, root, n), a->work, bytes);
    weft_net_sched_step(s);
}
