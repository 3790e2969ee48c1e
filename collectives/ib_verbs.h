/*
 * ib_verbs.h -- the narrow verbs interface the ib transport is written
 * against: a device, registered memory, reliable-connection queue pairs,
 * RDMA writes and their completions. Two implementations:
 *   ib_verbs.c  libibverbs (RC queue pairs), built when its headers exist
 *   ib_fake.c   an in-process fake for tests on machines without RDMA:
 *               "RDMA writes" are copies into the peer's rings, which the
 *               fake places in shared memory (memfd) that every rank maps
 * so the transport's protocol (rings, credits, registration cache,
 * completions) runs the same code against either.
 */
#ifndef WEFT_COLLECTIVES_IB_VERBS_H
#define WEFT_COLLECTIVES_IB_VERBS_H

#include <stddef.h>
#include <stdint.h>

typedef struct weft_ibv_ctx weft_ibv_ctx; /* a device (and its protection domain, CQ) */
typedef struct weft_ibv_qp weft_ibv_qp;   /* one RC queue pair to one peer */

typedef struct weft_ibv_mr {
    void *addr;
    size_t len;
    uint32_t lkey, rkey;
    void *handle;
} weft_ibv_mr;

/* What a peer needs to connect to a queue pair (and, for the fake, to
 * reach this rank's memory). Exchanged through MPI. */
typedef struct weft_ibv_qpinfo {
    uint8_t bytes[64];
} weft_ibv_qpinfo;

typedef struct weft_ibv {
    const char *name;
    /* The first device; <0 with why (e.g. "no RDMA device") when none. */
    int (*open)(weft_ibv_ctx **ctx, char *why, size_t n);
    void (*close)(weft_ibv_ctx *ctx);
    /* Memory peers will write into (receive rings): page-aligned, zeroed. */
    void *(*alloc)(weft_ibv_ctx *ctx, size_t bytes);
    void (*free)(weft_ibv_ctx *ctx, void *p, size_t bytes);
    int (*reg_mr)(weft_ibv_ctx *ctx, void *addr, size_t len, weft_ibv_mr *out);
    void (*dereg_mr)(weft_ibv_ctx *ctx, weft_ibv_mr *mr);
    int (*create_qp)(weft_ibv_ctx *ctx, weft_ibv_qp **qp, weft_ibv_qpinfo *mine);
    int (*connect_qp)(weft_ibv_qp *qp, const weft_ibv_qpinfo *theirs);
    void (*destroy_qp)(weft_ibv_qp *qp);
    /* Post an RDMA write of len bytes at local (inside the MR of lkey) to
     * raddr (inside the peer's MR of rkey); its completion carries wr_id. */
    int (*post_write)(weft_ibv_qp *qp, const void *local, size_t len, uint32_t lkey, uint64_t raddr,
                      uint32_t rkey, uint64_t wr_id);
    /* Up to max completions: wr_ids[i] and ok[i] (0: the write failed). */
    int (*poll_cq)(weft_ibv_ctx *ctx, uint64_t *wr_ids, int *ok, int max);
} weft_ibv;

extern const weft_ibv weft_ibv_fake;
/* NULL when this build has no libibverbs. */
extern const weft_ibv *const weft_ibv_real;

#endif
