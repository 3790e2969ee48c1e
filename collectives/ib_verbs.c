/*
 * ib_verbs.c -- ib_verbs.h over libibverbs: the first device's first
 * active port, one protection domain and completion queue, RC queue pairs
 * moved INIT -> RTR -> RTS with the peer's LID/GID, QP number and PSN, and
 * signaled RDMA writes. Compiled only when the libibverbs headers were
 * found at build time (WEFT_HAVE_IBVERBS); otherwise weft_ibv_real is
 * NULL and asking for comm.backend=ib says so.
 *
 * This path needs RDMA hardware to run; the protocol above it is tested
 * with ib_fake.c.
 */
#include "collectives/ib_verbs.h"

#ifndef WEFT_HAVE_IBVERBS
const weft_ibv *const weft_ibv_real = NULL;
#else

#include "runtime/error.h"

#include <infiniband/verbs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct weft_ibv_ctx {
    struct ibv_context *dev;
    struct ibv_pd *pd;
    struct ibv_cq *cq;
    uint8_t port;
    struct ibv_port_attr pattr;
    union ibv_gid gid;
};

struct weft_ibv_qp {
    weft_ibv_ctx *ctx;
    struct ibv_qp *qp;
    uint32_t psn;
};

typedef struct real_info {
    uint16_t lid;
    uint8_t port, pad;
    uint32_t qpn, psn;
    uint8_t gid[16];
} real_info;

static int real_open(weft_ibv_ctx **out, char *why, size_t n)
{
    int num = 0;
    struct ibv_device **list = ibv_get_device_list(&num);
    if (!list || num == 0) {
        snprintf(why, n, "no RDMA device (libibverbs lists none); use comm.backend=tcp or mpi");
        if (list)
            ibv_free_device_list(list);
        return -1;
    }
    weft_ibv_ctx *c = calloc(1, sizeof *c);
    c->dev = c ? ibv_open_device(list[0]) : NULL;
    const char *name = ibv_get_device_name(list[0]);
    ibv_free_device_list(list);
    if (!c || !c->dev) {
        snprintf(why, n, "cannot open RDMA device %s", name ? name : "?");
        free(c);
        return -1;
    }
    for (c->port = 1; c->port < 8; c->port++)
        if (ibv_query_port(c->dev, c->port, &c->pattr) == 0 && c->pattr.state == IBV_PORT_ACTIVE)
            break;
    c->pd = ibv_alloc_pd(c->dev);
    c->cq = c->pd ? ibv_create_cq(c->dev, 4096, NULL, NULL, 0) : NULL;
    if (c->port >= 8 || !c->cq || ibv_query_gid(c->dev, c->port, 0, &c->gid) != 0) {
        snprintf(why, n, "RDMA device %s has no active port, or no PD/CQ", name ? name : "?");
        if (c->pd)
            ibv_dealloc_pd(c->pd);
        ibv_close_device(c->dev);
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

static void real_close(weft_ibv_ctx *c)
{
    ibv_destroy_cq(c->cq);
    ibv_dealloc_pd(c->pd);
    ibv_close_device(c->dev);
    free(c);
}

static void *real_alloc(weft_ibv_ctx *c, size_t bytes)
{
    (void)c;
    void *p = NULL;
    if (posix_memalign(&p, 4096, bytes) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

static void real_free(weft_ibv_ctx *c, void *p, size_t bytes)
{
    (void)c;
    (void)bytes;
    free(p);
}

static int real_reg_mr(weft_ibv_ctx *c, void *addr, size_t len, weft_ibv_mr *out)
{
    struct ibv_mr *mr = ibv_reg_mr(c->pd, addr, len, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    if (!mr)
        return weft_error(WEFT_ECOMM, "ib: registering %zu bytes at %p failed", len, addr);
    *out = (weft_ibv_mr){addr, len, mr->lkey, mr->rkey, mr};
    return 0;
}

static void real_dereg_mr(weft_ibv_ctx *c, weft_ibv_mr *mr)
{
    (void)c;
    if (mr->handle)
        ibv_dereg_mr(mr->handle);
    mr->handle = NULL;
}

static int real_create_qp(weft_ibv_ctx *c, weft_ibv_qp **out, weft_ibv_qpinfo *mine)
{
    struct ibv_qp_init_attr ia = {.send_cq = c->cq, .recv_cq = c->cq, .qp_type = IBV_QPT_RC,
                                  .cap = {.max_send_wr = 256, .max_recv_wr = 1, .max_send_sge = 1, .max_recv_sge = 1}};
    weft_ibv_qp *q = calloc(1, sizeof *q);
    if (!q || !(q->qp = ibv_create_qp(c->pd, &ia))) {
        free(q);
        return weft_error(WEFT_ECOMM, "ib: ibv_create_qp failed");
    }
    q->ctx = c;
    if (getrandom(&q->psn, sizeof q->psn, 0) != (ssize_t)sizeof q->psn)
        q->psn = (uint32_t)(uintptr_t)q;
    q->psn &= 0xffffff;
    struct ibv_qp_attr a = {.qp_state = IBV_QPS_INIT, .pkey_index = 0, .port_num = c->port,
                            .qp_access_flags = IBV_ACCESS_REMOTE_WRITE};
    if (ibv_modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)) {
        ibv_destroy_qp(q->qp);
        free(q);
        return weft_error(WEFT_ECOMM, "ib: queue pair to INIT failed");
    }
    real_info r = {c->pattr.lid, c->port, 0, q->qp->qp_num, q->psn, {0}};
    memcpy(r.gid, c->gid.raw, 16);
    memset(mine, 0, sizeof *mine);
    memcpy(mine->bytes, &r, sizeof r);
    *out = q;
    return 0;
}

static int real_connect_qp(weft_ibv_qp *q, const weft_ibv_qpinfo *theirs)
{
    real_info r;
    memcpy(&r, theirs->bytes, sizeof r);
    struct ibv_qp_attr a = {.qp_state = IBV_QPS_RTR, .path_mtu = q->ctx->pattr.active_mtu, .dest_qp_num = r.qpn,
                            .rq_psn = r.psn, .max_dest_rd_atomic = 1, .min_rnr_timer = 12,
                            .ah_attr = {.dlid = r.lid, .port_num = q->ctx->port, .is_global = 1,
                                        .grh = {.hop_limit = 1, .sgid_index = 0}}};
    memcpy(a.ah_attr.grh.dgid.raw, r.gid, 16);
    if (ibv_modify_qp(q->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                     IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
        return weft_error(WEFT_ECOMM, "ib: queue pair to RTR failed (peer LID %u QPN %u)", r.lid, r.qpn);
    struct ibv_qp_attr b = {.qp_state = IBV_QPS_RTS, .timeout = 14, .retry_cnt = 7, .rnr_retry = 7,
                            .sq_psn = q->psn, .max_rd_atomic = 1};
    if (ibv_modify_qp(q->qp, &b, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                                     IBV_QP_MAX_QP_RD_ATOMIC))
        return weft_error(WEFT_ECOMM, "ib: queue pair to RTS failed");
    return 0;
}

static void real_destroy_qp(weft_ibv_qp *q)
{
    ibv_destroy_qp(q->qp);
    free(q);
}

static int real_post_write(weft_ibv_qp *q, const void *local, size_t len, uint32_t lkey, uint64_t raddr,
                           uint32_t rkey, uint64_t wr_id)
{
    struct ibv_sge sge = {(uint64_t)(uintptr_t)local, (uint32_t)len, lkey};
    struct ibv_send_wr wr = {.wr_id = wr_id, .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
                             .send_flags = IBV_SEND_SIGNALED, .wr = {.rdma = {raddr, rkey}}}, *bad;
    return ibv_post_send(q->qp, &wr, &bad) ? weft_error(WEFT_ECOMM, "ib: ibv_post_send failed") : 0;
}

static int real_poll_cq(weft_ibv_ctx *c, uint64_t *ids, int *ok, int max)
{
    struct ibv_wc wc[64];
    int k = ibv_poll_cq(c->cq, max < 64 ? max : 64, wc);
    for (int i = 0; i < k; i++) {
        ids[i] = wc[i].wr_id;
        ok[i] = wc[i].status == IBV_WC_SUCCESS;
    }
    return k;
}

static const weft_ibv real = {
    .name = "libibverbs",
    .open = real_open,
    .close = real_close,
    .alloc = real_alloc,
    .free = real_free,
    .reg_mr = real_reg_mr,
    .dereg_mr = real_dereg_mr,
    .create_qp = real_create_qp,
    .connect_qp = real_connect_qp,
    .destroy_qp = real_destroy_qp,
    .post_write = real_post_write,
    .poll_cq = real_poll_cq,
};
const weft_ibv *const weft_ibv_real = &real;
#endif
