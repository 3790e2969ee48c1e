/*
 * net.h -- the pieces of the native network backends (backend_net.c) that
 * sit above a transport: framed messages with matching (net_msg.c) and
 * collective schedules (net_sched.c) that the algorithms (algo_ring.c,
 * algo_tree.c, algo_direct.c) fill in.
 *
 * A message is a 16-byte header (key, length) and its payload on the
 * stream to one peer. Collective messages carry key WEFT_NET_COLL | ticket and
 * are matched in order per peer; point-to-point messages carry their tag
 * and match the first receive posted for (peer, tag). A message that
 * arrives before its receive is posted is read into a pooled buffer (kept
 * and reused, so the steady state allocates nothing) and copied out when
 * the receive comes.
 *
 * A schedule is a list of steps; a step posts its sends and receives at
 * once, and when all have completed runs its local computations. A receive
 * may carry a reduction into a destination, applied slice by slice while
 * bytes arrive, which overlaps reducing with receiving.
 */
#ifndef WEFT_COLLECTIVES_NET_H
#define WEFT_COLLECTIVES_NET_H

#include <stdint.h>

#include "collectives/transport.h"

#define WEFT_NET_COLL (1ull << 63)

/* --- messages (net_msg.c) ------------------------------------------------ */

typedef struct weft_net_msg {
    uint64_t key;
    int peer, is_send;
    char *buf;
    size_t len;        /* bytes wanted (recv) or sent (send) */
    size_t done;       /* payload bytes moved so far */
    size_t hdr_done;   /* send: header bytes written */
    uint64_t hdr[2];   /* send: the header on the wire */
    int complete;
    struct weft_net_msg *next;
    struct weft_net_unexp *from_unexp; /* recv matched to a message still arriving */
    /* for error messages about receives */
    size_t esize;
    const char *what;
} weft_net_msg;

typedef struct weft_net_unexp {
    uint64_t key;
    size_t len, done, cap;
    char *buf;
    int complete;
    weft_net_msg *claimed;  /* a receive waiting for the rest of it */
    struct weft_net_unexp *next;
} weft_net_unexp;

typedef struct weft_net_peer {
    weft_net_msg *tx_head, *tx_tail;        /* sends, in order */
    weft_net_msg *posted_head, *posted_tail;/* receives waiting for a header */
    weft_net_unexp *unexp_head, *unexp_tail;
    /* the receive side of the stream */
    uint64_t rx_hdr[2];
    size_t rx_hdr_done;
    weft_net_msg *rx_msg;       /* payload going straight into a receive */
    weft_net_unexp *rx_unexp;   /* or into an unexpected buffer */
    int64_t last_rx_ns;
    int lost;              /* stream failed: WEFT_EPEER once anything needs it */
    char lost_why[256];
} weft_net_peer;

typedef struct weft_net_link {
    const weft_transport *tp;
    void *tstate;
    weft_comm *comm;
    int n, me;
    weft_net_peer *peers;
    weft_net_unexp *pool;       /* spare unexpected buffers */
} weft_net_link;

int weft_net_link_open(weft_net_link *l, weft_comm *c, const weft_transport *tp);
void weft_net_link_close(weft_net_link *l);
void weft_net_msg_send(weft_net_link *l, weft_net_msg *m, int peer, uint64_t key, const void *buf, size_t len);
void weft_net_msg_recv(weft_net_link *l, weft_net_msg *m, int peer, uint64_t key, void *buf, size_t len);
/* Move what can move now; <0 when a peer that a pending message needs is
 * lost, or a peer misbehaves. */
int weft_net_link_progress(weft_net_link *l);
/* "rank 2 (addr)" */
const char *weft_net_peer_name(weft_net_link *l, int peer);

/* --- schedules (net_sched.c) -------------------------------------------- */

typedef enum { WEFT_NET_X_SEND, WEFT_NET_X_RECV } weft_net_xkind;
typedef enum { WEFT_NET_C_COPY, WEFT_NET_C_ACC, WEFT_NET_C_COMBINE } weft_net_ckind;

typedef struct weft_net_xfer {
    weft_net_xkind kind;
    int peer;
    char *buf;
    size_t bytes;
    char *acc;       /* recv only: acc[i] = acc[i] op buf[i] as bytes arrive */
    size_t reduced;  /* bytes of buf already folded into acc */
    weft_net_msg msg;
} weft_net_xfer;

typedef struct weft_net_comp {
    weft_net_ckind kind;
    char *dst;
    const char *a, *b;
    size_t n;        /* bytes for COPY, elements otherwise */
} weft_net_comp;

typedef struct weft_net_step {
    int x0, nx, c0, nc;
} weft_net_step;

typedef struct weft_net_sched {
    weft_net_step *steps;
    weft_net_xfer *x;
    weft_net_comp *comp;
    int nsteps, nx, ncomp;
    int cap_steps, cap_x, cap_comp;
    int err;          /* an append failed for memory */
    weft_dtype wide;  /* element type of reductions */
    weft_redop redop;
    size_t wes;       /* its size */
    /* execution */
    int cur, posted;
} weft_net_sched;

void weft_net_sched_reset(weft_net_sched *s, weft_dtype wide, weft_redop redop);
void weft_net_sched_free(weft_net_sched *s);
void weft_net_sched_send(weft_net_sched *s, int peer, const void *buf, size_t bytes);
void weft_net_sched_recv(weft_net_sched *s, int peer, void *buf, size_t bytes);
/* Receive n wide elements into tmp and fold them into acc as they arrive. */
void weft_net_sched_recv_acc(weft_net_sched *s, int peer, void *tmp, void *acc, size_t n);
void weft_net_sched_copy(weft_net_sched *s, void *dst, const void *src, size_t bytes);
void weft_net_sched_acc(weft_net_sched *s, void *dst, const void *src, size_t n);
void weft_net_sched_combine(weft_net_sched *s, void *dst, const void *a, const void *b, size_t n);
/* Close the step being built (empty steps are dropped). */
void weft_net_sched_step(weft_net_sched *s);
/* Run s on link l for collective ticket: 1 done, 0 pending, <0 error. */
int weft_net_sched_run(weft_net_sched *s, weft_net_link *l, uint64_t ticket);
/* The peer the current step still waits on (-1: none), for diagnostics. */
int weft_net_sched_waiting_on(const weft_net_sched *s);

/* --- algorithms (algo_*.c): fill a schedule, never name a transport ------ */

/* Element ranges of the n pieces of count elements (weft_comm_chunk). */
typedef struct weft_net_algo_args {
    int n, me;
    size_t count;      /* elements (wide type for reductions) */
    size_t es;         /* element size */
    char *work;        /* count elements, reduced/gathered in place */
    char *tmp;         /* scratch: see each algorithm for its size */
} weft_net_algo_args;

/* Ring: reduce-scatter leaves piece me of work reduced; allgather fills
 * every piece from its owner. tmp: one piece (ceil(count/n) elements). */
void weft_net_ring_reduce_scatter(weft_net_sched *s, const weft_net_algo_args *a);
void weft_net_ring_allgather(weft_net_sched *s, const weft_net_algo_args *a);
/* Broadcast as a pipelined chain from root, segments of seg bytes. */
void weft_net_chain_broadcast(weft_net_sched *s, const weft_net_algo_args *a, int root, size_t seg);
/* Binomial trees. tmp: count elements. */
void weft_net_tree_reduce(weft_net_sched *s, const weft_net_algo_args *a, int root);
void weft_net_tree_broadcast(weft_net_sched *s, const weft_net_algo_args *a, int root);
/* Every owner gathers its piece from all and reduces in rank order
 * (comm.deterministic). tmp: n pieces. */
void weft_net_direct_reduce_scatter(weft_net_sched *s, const weft_net_algo_args *a);
/* Pieces to the root (after a reduce-scatter). */
void weft_net_direct_gather(weft_net_sched *s, const weft_net_algo_args *a, int root);
/* send: n blocks of count elements (not aliasing work, which receives). */
void weft_net_pairwise_alltoall(weft_net_sched *s, const weft_net_algo_args *a, const char *send);
void weft_net_dissemination_barrier(weft_net_sched *s, int n, int me);

#endif
