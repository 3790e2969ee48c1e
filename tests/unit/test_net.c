/*
 * test_net.c -- the native network backends' pieces that need no network:
 * SipHash-2-4-128 against the reference implementation's test vectors
 * (key 00..0f, message 00..len-1), and the collective algorithms
 * (algo_*.c) run on 1-7 simulated ranks: every rank's schedule is executed
 * in one process, messages passed in order per (sender, receiver) pair,
 * and the results compared with sums computed directly. Rank counts the
 * MPI tests do not reach (5-7: uneven trees and rings), counts smaller
 * than the rank count, and a deadlock (no rank can move) all show here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "collectives/net.h"
#include "collectives/net_auth.h"
#include "collectives/reduce_simd.h"

static void siphash_vectors(void **state)
{
    (void)state;
    static const uint8_t want[3][16] = {
        {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93}, /* len 0 */
        {0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc, 0x45}, /* len 1 */
        {0x51, 0x50, 0xd1, 0x77, 0x2f, 0x50, 0x83, 0x4a, 0x50, 0x3e, 0x06, 0x9a, 0x97, 0x3f, 0xbd, 0x7c}, /* len 63 */
    };
    static const size_t lens[3] = {0, 1, 63};
    uint8_t key[16], msg[64], out[16];
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++) msg[i] = (uint8_t)i;
    for (int v = 0; v < 3; v++) {
        weft_siphash128(key, msg, lens[v], out);
        assert_memory_equal(out, want[v], 16);
    }
    assert_true(weft_auth_equal(want[0], want[0], 16));
    assert_false(weft_auth_equal(want[0], want[1], 16));
}

/* --- a simulated network ------------------------------------------------- */

#define MAXN 7
typedef struct { char *data; size_t len; } sim_msg;
typedef struct { sim_msg q[4096]; int head, tail; } sim_chan;
static sim_chan chan[MAXN][MAXN]; /* [from][to] */

/* Run every rank's schedule to the end; fails the test on a deadlock or a
 * message whose length differs from the receive. */
static void run_all(weft_net_sched *s, int n)
{
    memset(chan, 0, sizeof chan);
    int cur[MAXN] = {0}, left = n;
    char done[MAXN][4096];
    memset(done, 0, sizeof done);
    for (int round = 0; left > 0; round++) {
        assert_true(round < 100000); /* no progress for this long: deadlock */
        left = 0;
        for (int r = 0; r < n; r++) {
            weft_net_sched *S = &s[r];
            assert_false(S->err);
            while (cur[r] < S->nsteps) {
                weft_net_step *st = &S->steps[cur[r]];
                int all = 1;
                for (int i = st->x0; i < st->x0 + st->nx; i++) {
                    weft_net_xfer *x = &S->x[i];
                    if (done[r][i])
                        continue;
                    if (x->kind == WEFT_NET_X_SEND) {
                        sim_chan *c = &chan[r][x->peer];
                        char *copy = malloc(x->bytes + 1);
                        if (x->bytes) /* an empty transfer may have no buffer */
                            memcpy(copy, x->buf, x->bytes);
                        c->q[c->tail++] = (sim_msg){copy, x->bytes};
                        done[r][i] = 1;
                    } else {
                        sim_chan *c = &chan[x->peer][r];
                        if (c->head == c->tail) {
                            all = 0;
                            continue;
                        }
                        sim_msg m = c->q[c->head++];
                        assert_int_equal(m.len, x->bytes);
                        if (m.len)
                            memcpy(x->buf, m.data, m.len);
                        if (x->acc)
                            weft_simd_accumulate(S->wide, S->redop, x->acc, x->buf, m.len / S->wes);
                        free(m.data);
                        done[r][i] = 1;
                    }
                }
                if (!all)
                    break;
                for (int i = st->c0; i < st->c0 + st->nc; i++) {
                    weft_net_comp *c = &S->comp[i];
                    if (c->kind == WEFT_NET_C_COPY)
                        memmove(c->dst, c->a, c->n);
                    else if (c->kind == WEFT_NET_C_ACC)
                        weft_simd_accumulate(S->wide, S->redop, c->dst, c->a, c->n);
                    else
                        weft_simd_combine(S->wide, S->redop, c->dst, c->a, c->b, c->n);
                }
                cur[r]++;
            }
            left += cur[r] < S->nsteps;
        }
    }
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            assert_int_equal(chan[a][b].head, chan[a][b].tail); /* nothing left unreceived */
}

/* Rank r's value at i: small integers, so f64 sums are exact in any order. */
static double val(int r, size_t i) { return (double)((r * 7 + (int)i * 3) % 11 - 5); }

typedef enum { A_RING_AR, A_TREE_AR, A_DIRECT_AR, A_TREE_REDUCE, A_TREE_BCAST, A_CHAIN_BCAST, A_A2A, A_BARRIER } algo;

static void check_algo(algo k, int n, size_t count)
{
    weft_net_sched s[MAXN];
    double *work[MAXN], *tmp[MAXN], *send[MAXN];
    memset(s, 0, sizeof s);
    int root = n > 2 ? 2 : 0;
    size_t per = k == A_A2A ? count * (size_t)n : count;
    for (int r = 0; r < n; r++) {
        work[r] = calloc(per + 1, sizeof(double));
        tmp[r] = calloc(per * (size_t)n + 1, sizeof(double));
        send[r] = calloc(per + 1, sizeof(double));
        for (size_t i = 0; i < per; i++)
            send[r][i] = val(r, i);
        int bcast = k == A_TREE_BCAST || k == A_CHAIN_BCAST;
        memcpy(work[r], send[r], per * sizeof(double));
        if (bcast && r != root)
            memset(work[r], 0, per * sizeof(double));
        weft_net_sched_reset(&s[r], WEFT_F64, WEFT_SUM);
        weft_net_algo_args a = {n, r, count, sizeof(double), (char *)work[r], (char *)tmp[r]};
        switch (k) {
        case A_RING_AR: weft_net_ring_reduce_scatter(&s[r], &a); weft_net_ring_allgather(&s[r], &a); break;
        case A_TREE_AR: weft_net_tree_reduce(&s[r], &a, 0); weft_net_tree_broadcast(&s[r], &a, 0); break;
        case A_DIRECT_AR: weft_net_direct_reduce_scatter(&s[r], &a); weft_net_ring_allgather(&s[r], &a); break;
        case A_TREE_REDUCE: weft_net_tree_reduce(&s[r], &a, root); break;
        case A_TREE_BCAST: weft_net_tree_broadcast(&s[r], &a, root); break;
        case A_CHAIN_BCAST: weft_net_chain_broadcast(&s[r], &a, root, 3 * sizeof(double)); break;
        case A_A2A: weft_net_pairwise_alltoall(&s[r], &a, (const char *)send[r]); break;
        case A_BARRIER: weft_net_dissemination_barrier(&s[r], n, r); break;
        }
    }
    run_all(s, n);
    for (int r = 0; r < n; r++) {
        for (size_t i = 0; i < count && k != A_BARRIER; i++) {
            double sum = 0;
            for (int j = 0; j < n; j++)
                sum += val(j, i);
            if (k == A_A2A) {
                for (int j = 0; j < n; j++) /* block j of r's result is block r of j's input */
                    assert_true(work[r][(size_t)j * count + i] == val(j, (size_t)r * count + i));
            } else if (k == A_TREE_BCAST || k == A_CHAIN_BCAST) {
                assert_true(work[r][i] == val(root, i));
            } else if (k != A_TREE_REDUCE || r == root) {
                assert_true(work[r][i] == sum);
            }
        }
        free(work[r]);
        free(tmp[r]);
        free(send[r]);
        weft_net_sched_free(&s[r]);
    }
}

static void algorithms_on_1_to_7_ranks(void **state)
{
    (void)state;
    static const size_t counts[] = {0, 1, 2, 5, 13, 64};
    for (int k = A_RING_AR; k <= A_BARRIER; k++)
        for (int n = 1; n <= MAXN; n++)
            for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
                check_algo((algo)k, n, counts[c]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(siphash_vectors),
        cmocka_unit_test(algorithms_on_1_to_7_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
