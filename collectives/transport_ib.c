/*
 * transport_ib.c -- the ib transport: one reliable-connection queue pair
 * per peer, byte streams made of RDMA writes into rings in the receiver's
 * memory, flow-controlled by credits. Written against the narrow verbs
 * interface (ib_verbs.h), so the protocol below runs here on the in-process
 * fake (WEFT_IB_FAKE=1) and on hardware through libibverbs.
 *
 * Memory: one registered region per rank, one area per peer j:
 *   ring[RING]   bytes j writes to me
 *   tail_in      j's write position (j writes it after each data write; RC
 *                delivers writes in order, so the bytes are there first)
 *   credit_in    how far j has consumed what I write into j's ring
 *   tail_src, credit_src   local sources of those 8-byte writes
 * Sending to j: write min(free, contiguous) bytes straight from the
 * caller's buffer (registered through the cache below) into j's ring, then
 * the new tail. Bytes count as taken only once both writes completed, so
 * the caller may reuse its buffer as with a socket. Receiving from j:
 * copy out of my ring up to tail_in, and report consumption (credit) once
 * an eighth of the ring is free again.
 *
 * Registration cache: up to MR_CACHE page-aligned registrations of
 * callers' buffers, reused while they cover a send, least recently used
 * evicted. It assumes registered buffers stay mapped (weft's buffers are
 * allocated at start and kept; a freed and remapped buffer would need a
 * memory-hook, not done here).
 *
 * Queue-pair details, region addresses and keys are exchanged over MPI.
 */
#include "collectives/ib_verbs.h"
#include "collectives/transport.h"
#include "runtime/error.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RING (1u << 20)
#define AREA ((size_t)RING + 256)
#define MR_CACHE 64
#define MAX_CQE 64

enum { WR_DATA = 1, WR_TAIL = 2, WR_CREDIT = 3 };

typedef struct ib_peer {
    weft_ibv_qp *qp;
    uint64_t r_ring, r_tail, r_credit; /* in the peer's region */
    uint32_t rkey;
    uint64_t tail;                     /* bytes written to the peer */
    const char *fl_src;                /* the send in flight */
    size_t fl_len;
    int fl_pending, fl_done;
    uint64_t head, credit_sent;        /* bytes consumed from the peer; reported */
    int credit_inflight;
    int lost;
} ib_peer;

typedef struct mr_entry {
    weft_ibv_mr mr;
    uint64_t used;
} mr_entry;

typedef struct ib_state {
    const weft_ibv *v;
    weft_ibv_ctx *ctx;
    weft_comm *c;
    int n, me;
    char *region;
    size_t region_bytes;
    weft_ibv_mr region_mr;
    ib_peer *peers;
    mr_entry cache[MR_CACHE];
    int ncache;
    uint64_t clock;
    char (*names)[48];
} ib_state;

typedef struct ib_xinfo {
    weft_ibv_qpinfo qp;
    uint64_t base;
    uint32_t rkey, pad;
} ib_xinfo;

static const weft_ibv *verbs(void)
{
    const char *f = getenv("WEFT_IB_FAKE");
    if (f && *f && strcmp(f, "0") != 0)
        return &weft_ibv_fake;
    return weft_ibv_real;
}

static char *area(ib_state *s, int j) { return s->region + (size_t)j * AREA; }
static _Atomic uint64_t *tail_in(ib_state *s, int j) { return (_Atomic uint64_t *)(area(s, j) + RING); }
static _Atomic uint64_t *credit_in(ib_state *s, int j) { return (_Atomic uint64_t *)(area(s, j) + RING + 64); }
static uint64_t *tail_src(ib_state *s, int j) { return (uint64_t *)(area(s, j) + RING + 128); }
static uint64_t *credit_src(ib_state *s, int j) { return (uint64_t *)(area(s, j) + RING + 192); }

static int ib_can_connect(const weft_comm *c, char *why, size_t n)
{
    (void)c;
    const weft_ibv *v = verbs();
    if (!v) {
        snprintf(why, n, "this libweft was built without libibverbs (install libibverbs-dev and rebuild)");
        return 0;
    }
    weft_ibv_ctx *ctx;
    if (v->open(&ctx, why, n) != 0)
        return 0;
    v->close(ctx);
    return 1;
}

static const char *ib_peer_name(void *state, int peer) { return ((ib_state *)state)->names[peer]; }

/* --- registration cache ---------------------------------------------------- */

static int in_flight(ib_state *s, const mr_entry *e)
{
    for (int j = 0; j < s->n; j++) {
        const ib_peer *p = &s->peers[j];
        if (p->fl_pending && (const char *)e->mr.addr <= p->fl_src &&
            p->fl_src < (const char *)e->mr.addr + e->mr.len)
            return 1;
    }
    return 0;
}

/* The lkey of a registration covering [a, a + len). */
static int lkey_for(ib_state *s, const void *a, size_t len, uint32_t *lkey)
{
    const char *p = a;
    if (p >= s->region && p + len <= s->region + s->region_bytes) {
        *lkey = s->region_mr.lkey;
        return 0;
    }
    for (int i = 0; i < s->ncache; i++) {
        mr_entry *e = &s->cache[i];
        if ((const char *)e->mr.addr <= p && p + len <= (const char *)e->mr.addr + e->mr.len) {
            e->used = ++s->clock;
            *lkey = e->mr.lkey;
            return 0;
        }
    }
    int slot = s->ncache < MR_CACHE ? s->ncache++ : -1;
    for (int i = 0; slot < 0 && i < MR_CACHE; i++) /* evict the least recently used idle one */
        if (!in_flight(s, &s->cache[i]) && (slot < 0 || s->cache[i].used < s->cache[slot].used))
            slot = i;
    if (slot < 0)
        return weft_error(WEFT_EINTERNAL, "ib: registration cache full of buffers in flight");
    if (s->cache[slot].mr.handle)
        s->v->dereg_mr(s->ctx, &s->cache[slot].mr);
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p / pg * pg, hi = ((uintptr_t)p + len + pg - 1) / pg * pg;
    memset(&s->cache[slot], 0, sizeof s->cache[slot]);
    WEFT_CHECK(s->v->reg_mr(s->ctx, (void *)lo, hi - lo, &s->cache[slot].mr));
    s->cache[slot].used = ++s->clock;
    *lkey = s->cache[slot].mr.lkey;
    return 0;
}

/* --- completions and credits ---------------------------------------------- */

static int reap(ib_state *s)
{
    uint64_t ids[MAX_CQE];
    int ok[MAX_CQE];
    int k = s->v->poll_cq(s->ctx, ids, ok, MAX_CQE);
    if (k < 0)
        return weft_error(WEFT_ECOMM, "ib: communicator '%s': polling the completion queue failed", s->c->name);
    for (int i = 0; i < k; i++) {
        int j = (int)(ids[i] >> 8), kind = (int)(ids[i] & 0xff);
        if (j < 0 || j >= s->n)
            continue;
        ib_peer *p = &s->peers[j];
        if (!ok[i])
            p->lost = 1;
        if (kind == WR_CREDIT)
            p->credit_inflight = 0;
        else if (--p->fl_pending == 0)
            p->fl_done = 1;
    }
    return 0;
}

static int send_credit(ib_state *s, int j, int force)
{
    ib_peer *p = &s->peers[j];
    if (p->credit_inflight || p->head == p->credit_sent || (!force && p->head - p->credit_sent < RING / 8))
        return 0;
    *credit_src(s, j) = p->head;
    p->credit_inflight = 1;
    p->credit_sent = p->head;
    return s->v->post_write(p->qp, credit_src(s, j), 8, s->region_mr.lkey, p->r_credit, p->rkey,
                            (uint64_t)j << 8 | WR_CREDIT);
}

static long peer_lost(ib_state *s, int j)
{
    return weft_error(WEFT_EPEER, "ib: communicator '%s': an RDMA write to %s failed (its process ended or its "
                      "link is down)", s->c->name, s->names[j]);
}

/* --- streams ---------------------------------------------------------------- */

static long ib_sendv(void *state, int j, const struct iovec *iov, int iovcnt)
{
    ib_state *s = state;
    ib_peer *p = &s->peers[j];
    WEFT_CHECK(reap(s));
    if (p->lost)
        return peer_lost(s, j);
    if (p->fl_pending)
        return 0;
    if (p->fl_done) { /* the caller retries from where it stopped: that is the write that completed */
        p->fl_done = 0;
        if (iovcnt < 1 || iov[0].iov_base != p->fl_src)
            return weft_error(WEFT_EINTERNAL, "ib: a send to %s resumed at another buffer", s->names[j]);
        return (long)p->fl_len;
    }
    if (iovcnt < 1 || iov[0].iov_len == 0)
        return 0;
    uint64_t used = p->tail - atomic_load_explicit(credit_in(s, j), memory_order_acquire);
    size_t room = RING - used, contig = RING - p->tail % RING, n = iov[0].iov_len;
    n = n < room ? n : room;
    n = n < contig ? n : contig;
    if (n == 0)
        return 0;
    uint32_t lkey = 0;
    WEFT_CHECK(lkey_for(s, iov[0].iov_base, n, &lkey));
    int rc = s->v->post_write(p->qp, iov[0].iov_base, n, lkey, p->r_ring + p->tail % RING, p->rkey,
                              (uint64_t)j << 8 | WR_DATA);
    p->tail += n;
    *tail_src(s, j) = p->tail;
    rc = rc ? rc : s->v->post_write(p->qp, tail_src(s, j), 8, s->region_mr.lkey, p->r_tail, p->rkey,
                                    (uint64_t)j << 8 | WR_TAIL);
    if (rc)
        return peer_lost(s, j);
    p->fl_src = iov[0].iov_base;
    p->fl_len = n;
    p->fl_pending = 2;
    p->fl_done = 0;
    WEFT_CHECK(reap(s)); /* a fast completion: taken at once */
    if (p->fl_done) {
        p->fl_done = 0;
        return (long)n;
    }
    return 0;
}

static long ib_recv(void *state, int j, void *buf, size_t n)
{
    ib_state *s = state;
    ib_peer *p = &s->peers[j];
    uint64_t avail = atomic_load_explicit(tail_in(s, j), memory_order_acquire) - p->head;
    size_t contig = RING - p->head % RING, k = n;
    k = k < avail ? k : (size_t)avail;
    k = k < contig ? k : contig;
    if (k == 0)
        return 0;
    memcpy(buf, area(s, j) + p->head % RING, k);
    p->head += k;
    if (send_credit(s, j, 0))
        return peer_lost(s, j);
    return (long)k;
}

static int ib_poll(void *state)
{
    ib_state *s = state;
    WEFT_CHECK(reap(s));
    for (int j = 0; j < s->n; j++)
        if (j != s->me && send_credit(s, j, 0))
            return (int)peer_lost(s, j);
    return 0;
}

/* --- open / close ----------------------------------------------------------- */

static void ib_close(void *state)
{
    ib_state *s = state;
    if (!s)
        return;
    for (int j = 0; s->peers && j < s->n; j++)
        if (s->peers[j].qp)
            s->v->destroy_qp(s->peers[j].qp);
    for (int i = 0; i < s->ncache; i++)
        s->v->dereg_mr(s->ctx, &s->cache[i].mr);
    if (s->region_mr.handle)
        s->v->dereg_mr(s->ctx, &s->region_mr);
    if (s->region)
        s->v->free(s->ctx, s->region, s->region_bytes);
    if (s->ctx)
        s->v->close(s->ctx);
    free(s->peers);
    free(s->names);
    free(s);
}

static int setup_local(ib_state *s, ib_xinfo *mine)
{
    char why[256];
    if (!s->v)
        return weft_error(WEFT_EUNSUPPORTED, "ib: this libweft was built without libibverbs");
    if (s->v->open(&s->ctx, why, sizeof why) != 0)
        return weft_error(WEFT_EUNSUPPORTED, "ib: communicator '%s' rank %d: %s", s->c->name, s->me, why);
    s->region_bytes = AREA * (size_t)s->n;
    s->region = s->v->alloc(s->ctx, s->region_bytes);
    if (!s->region)
        return weft_error(WEFT_ENOMEM, "ib: %zu bytes of receive rings: out of memory", s->region_bytes);
    WEFT_CHECK(s->v->reg_mr(s->ctx, s->region, s->region_bytes, &s->region_mr));
    for (int j = 0; j < s->n; j++) {
        mine[j].base = (uint64_t)(uintptr_t)s->region;
        mine[j].rkey = s->region_mr.rkey;
        if (j != s->me)
            WEFT_CHECK(s->v->create_qp(s->ctx, &s->peers[j].qp, &mine[j].qp));
    }
    return 0;
}

static int ib_open(weft_comm *c, void **state)
{
    ib_state *s = calloc(1, sizeof *s);
    if (!s)
        return weft_error(WEFT_ENOMEM, "ib: out of memory");
    s->v = verbs();
    s->c = c;
    s->n = c->size;
    s->me = c->rank;
    s->peers = calloc((size_t)s->n, sizeof *s->peers);
    s->names = calloc((size_t)s->n, sizeof *s->names);
    ib_xinfo *mine = calloc((size_t)s->n, sizeof *mine), *theirs = calloc((size_t)s->n, sizeof *theirs);
    int rc = s->peers && s->names && mine && theirs ? setup_local(s, mine) : weft_error(WEFT_ENOMEM, "ib: out of memory");
    int ok = rc == 0, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    if (all) {
        MPI_Alltoall(mine, sizeof *mine, MPI_BYTE, theirs, sizeof *theirs, MPI_BYTE, c->mpi);
        for (int j = 0; rc == 0 && j < s->n; j++) {
            snprintf(s->names[j], sizeof s->names[j], "rank %d (ib)", j);
            if (j == s->me)
                continue;
            ib_peer *p = &s->peers[j];
            p->r_ring = theirs[j].base + (uint64_t)s->me * AREA;
            p->r_tail = p->r_ring + RING;
            p->r_credit = p->r_ring + RING + 64;
            p->rkey = theirs[j].rkey;
            rc = s->v->connect_qp(p->qp, &theirs[j].qp);
        }
        ok = rc == 0;
        MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    }
    free(mine);
    free(theirs);
    if (!all) {
        if (rc == 0)
            rc = weft_error(WEFT_ECOMM, "ib: communicator '%s': another rank could not set up its queue pairs", c->name);
        ib_close(s);
        return rc;
    }
    *state = s;
    return 0;
}

const weft_transport weft_transport_ib = {
    .name = "ib",
    .can_connect = ib_can_connect,
    .open = ib_open,
    .close = ib_close,
    .sendv = ib_sendv,
    .recv = ib_recv,
    .poll = ib_poll,
    .peer_name = ib_peer_name,
};
