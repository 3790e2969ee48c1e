/*
 * ib_fake.c -- an in-process stand-in for libibverbs (ib_verbs.h) so the
 * ib transport's protocol is tested on machines without RDMA hardware
 * (WEFT_IB_FAKE=1). It keeps what the protocol depends on and checks what
 * a real device would refuse:
 *   - alloc() places the rings in a memfd every peer maps (the "remote
 *     memory" an RDMA write reaches), found through /proc/<pid>/fd;
 *   - reg_mr() records regions; post_write() fails a local range no
 *     registration covers (as a bad lkey would) and a remote range outside
 *     the peer's region or with the wrong rkey;
 *   - writes land in posting order and complete in order, as on an RC QP.
 * A write is a memcpy done at post time; its completion waits in the CQ.
 */
#include "collectives/ib_verbs.h"
#include "runtime/error.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FAKE_MAGIC 0x57454654494246ull /* "WEFTIBF" */
#define MAX_MR 256
#define CQ_CAP 4096

struct weft_ibv_ctx {
    int fd;
    char *base;
    size_t size;
    weft_ibv_mr mrs[MAX_MR];
    int nmr;
    uint32_t region_rkey;
    uint64_t cq_ids[CQ_CAP];
    int cq_ok[CQ_CAP];
    unsigned cq_head, cq_tail;
};

struct weft_ibv_qp {
    weft_ibv_ctx *ctx;
    char *remote;          /* the peer's region, mapped here */
    uint64_t remote_base;  /* its address in the peer */
    size_t remote_size;
    uint32_t remote_rkey;
};

typedef struct fake_info {
    uint64_t magic;
    int32_t pid, fd;
    uint64_t base, size;
    uint32_t rkey;
} fake_info;
_Static_assert(sizeof(fake_info) <= sizeof(weft_ibv_qpinfo), "fits the exchange");

static int fake_open(weft_ibv_ctx **out, char *why, size_t n)
{
    weft_ibv_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(why, n, "out of memory");
        return -1;
    }
    c->fd = -1;
    *out = c;
    return 0;
}

static void fake_close(weft_ibv_ctx *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void *fake_alloc(weft_ibv_ctx *c, size_t bytes)
{
    if (c->base) /* one region per device context is all the transport asks for */
        return NULL;
    c->fd = memfd_create("weft-ibfake", MFD_CLOEXEC);
    if (c->fd < 0 || ftruncate(c->fd, (off_t)bytes) != 0)
        return NULL;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    c->base = p;
    c->size = bytes;
    return p;
}

static void fake_free(weft_ibv_ctx *c, void *p, size_t bytes)
{
    munmap(p, bytes);
    c->base = NULL;
}

static int fake_reg_mr(weft_ibv_ctx *c, void *addr, size_t len, weft_ibv_mr *out)
{
    int slot = -1;
    for (int i = 0; i < c->nmr && slot < 0; i++)
        if (!c->mrs[i].handle)
            slot = i;
    if (slot < 0 && c->nmr < MAX_MR)
        slot = c->nmr++;
    if (slot < 0)
        return weft_error(WEFT_ENOMEM, "ib (fake): more than %d memory registrations", MAX_MR);
    uint32_t key = (uint32_t)slot + 1 + 0x1000u * (uint32_t)(rand() & 0xff);
    *out = (weft_ibv_mr){addr, len, key, key, c};
    c->mrs[slot] = *out;
    if ((char *)addr == c->base)
        c->region_rkey = key;
    return 0;
}

static void fake_dereg_mr(weft_ibv_ctx *c, weft_ibv_mr *mr)
{
    for (int i = 0; i < c->nmr; i++)
        if (c->mrs[i].handle && c->mrs[i].lkey == mr->lkey)
            memset(&c->mrs[i], 0, sizeof c->mrs[i]);
    mr->handle = NULL;
}

static int fake_create_qp(weft_ibv_ctx *c, weft_ibv_qp **qp, weft_ibv_qpinfo *mine)
{
    *qp = calloc(1, sizeof **qp);
    if (!*qp)
        return weft_error(WEFT_ENOMEM, "ib (fake): out of memory");
    (*qp)->ctx = c;
    fake_info f = {FAKE_MAGIC, (int32_t)getpid(), c->fd, (uint64_t)(uintptr_t)c->base, c->size, c->region_rkey};
    memset(mine, 0, sizeof *mine);
    memcpy(mine->bytes, &f, sizeof f);
    return 0;
}

static int fake_connect_qp(weft_ibv_qp *qp, const weft_ibv_qpinfo *theirs)
{
    fake_info f;
    memcpy(&f, theirs->bytes, sizeof f);
    if (f.magic != FAKE_MAGIC)
        return weft_error(WEFT_ECOMM, "ib (fake): the peer is not using the fake device");
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", f.pid, f.fd);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return weft_error(WEFT_ECOMM, "ib (fake): cannot open the peer's region %s", path);
    void *p = mmap(NULL, f.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return weft_error(WEFT_ECOMM, "ib (fake): cannot map the peer's region");
    qp->remote = p;
    qp->remote_base = f.base;
    qp->remote_size = f.size;
    qp->remote_rkey = f.rkey;
    return 0;
}

static void fake_destroy_qp(weft_ibv_qp *qp)
{
    if (qp->remote)
        munmap(qp->remote, qp->remote_size);
    free(qp);
}

static int covered(const weft_ibv_ctx *c, const void *p, size_t len, uint32_t lkey)
{
    for (int i = 0; i < c->nmr; i++) {
        const weft_ibv_mr *m = &c->mrs[i];
        if (m->handle && m->lkey == lkey && (const char *)m->addr <= (const char *)p &&
            (const char *)p + len <= (const char *)m->addr + m->len)
            return 1;
    }
    return 0;
}

static int fake_post_write(weft_ibv_qp *qp, const void *local, size_t len, uint32_t lkey, uint64_t raddr,
                           uint32_t rkey, uint64_t wr_id)
{
    weft_ibv_ctx *c = qp->ctx;
    if (c->cq_tail - c->cq_head >= CQ_CAP)
        return weft_error(WEFT_EINTERNAL, "ib (fake): completion queue overflow");
    int ok = covered(c, local, len, lkey) && rkey == qp->remote_rkey && raddr >= qp->remote_base &&
             raddr + len <= qp->remote_base + qp->remote_size;
    if (ok) {
        atomic_thread_fence(memory_order_release); /* earlier writes land first, as on an RC QP */
        memcpy(qp->remote + (raddr - qp->remote_base), local, len);
        atomic_thread_fence(memory_order_release);
    }
    c->cq_ids[c->cq_tail % CQ_CAP] = wr_id;
    c->cq_ok[c->cq_tail % CQ_CAP] = ok;
    c->cq_tail++;
    return 0;
}

static int fake_poll_cq(weft_ibv_ctx *c, uint64_t *ids, int *ok, int max)
{
    int k = 0;
    for (; k < max && c->cq_head != c->cq_tail; k++, c->cq_head++) {
        ids[k] = c->cq_ids[c->cq_head % CQ_CAP];
        ok[k] = c->cq_ok[c->cq_head % CQ_CAP];
    }
    return k;
}

const weft_ibv weft_ibv_fake = {
    .name = "fake",
    .open = fake_open,
    .close = fake_close,
    .alloc = fake_alloc,
    .free = fake_free,
    .reg_mr = fake_reg_mr,
    .dereg_mr = fake_dereg_mr,
    .create_qp = fake_create_qp,
    .connect_qp = fake_connect_qp,
    .destroy_qp = fake_destroy_qp,
    .post_write = fake_post_write,
    .poll_cq = fake_poll_cq,
};
