/*
 * backend_nccl.c -- the nccl backend: collectives on GPU (device) buffers
 * through NCCL, one NCCL communicator and one CUDA stream per weft_comm.
 *
 * libcudart and libnccl are opened at run time (dlopen), never linked: one
 * libweft serves machines with and without GPUs, and a machine without them
 * gets a clear "no CUDA device" instead of a loader error. The runtime is
 * the device layer's (runtime/cudart.h: one libcudart per process); this
 * file opens libnccl. It is compiled against the real nccl.h and
 * cuda_runtime_api.h when the CUDA toolkit is present (the Makefile adds
 * -DWEFT_HAVE_NCCL and -DWEFT_HAVE_CUDA), so every symbol
 * looked up is type-checked against its declaration; without the toolkit
 * the backend is still listed and says why it cannot serve.
 *
 * "auto" never picks nccl: a communicator cannot know that its buffers will
 * live on the GPU, and host buffers handed to NCCL fault. Ask for it with
 * comm.backend=nccl on communicators whose buffers are device memory; a host
 * pointer is refused with an error naming the argument.
 *
 * Semantics that differ from the host backends (docs/collectives.md):
 * - the send/recv tag is not matched: NCCL pairs sends and receives between
 *   two ranks in the order they are posted;
 * - bf16/f16 sums are accumulated by NCCL (not in f32 as shm/mpi do);
 * - AVG of integer dtypes and comm.deterministic are refused
 *   (WEFT_EUNSUPPORTED) rather than silently computed differently.
 *
 * Progress: post() enqueues the NCCL call on the communicator's stream and
 * records the request's CUDA event after it; test() queries that event and
 * NCCL's asynchronous error. A timed-out or failed communicator is aborted
 * (ncclCommAbort) when freed, so no rank is left inside a kernel.
 */
#include "collectives/backend.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef WEFT_HAVE_NCCL
#include "runtime/cudart.h"

#include <nccl.h>

/* NCCL's entry points, resolved once; the CUDA runtime's are the device
 * layer's table (runtime/cudart.h), so the process opens libcudart once. */
#define NCCL_FUNCS(X)                                                                                        \
    X(ncclGetUniqueId) X(ncclCommInitRank) X(ncclCommDestroy) X(ncclCommAbort) X(ncclCommGetAsyncError)     \
    X(ncclGetErrorString) X(ncclAllReduce) X(ncclReduceScatter) X(ncclAllGather) X(ncclBroadcast)          \
    X(ncclReduce) X(ncclSend) X(ncclRecv) X(ncclGroupStart) X(ncclGroupEnd) X(ncclGetVersion)

static struct {
#define DECLARE(fn) __typeof__(fn) *fn;
    NCCL_FUNCS(DECLARE)
#undef DECLARE
} api;

static const weft_cudart *rt; /* the CUDA runtime, once load() succeeded */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512]; /* empty once both libraries are loaded */

static void load(void)
{
    char why[384];
    const weft_cudart *cu = weft_cudart_get(why, sizeof why);
    if (!cu) {
        snprintf(load_error, sizeof load_error, "%s", why);
        return;
    }
    static const char *const names[] = {"libnccl.so.2", "libnccl.so", NULL};
    void *nccl = NULL;
    for (int i = 0; names[i] && !nccl; i++)
        nccl = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!nccl) {
        snprintf(load_error, sizeof load_error, "cannot load libnccl.so.2 (%s); put NCCL's lib directory on "
                 "LD_LIBRARY_PATH", dlerror());
        return;
    }
#define RESOLVE(fn)                                                                                          \
    if (!(api.fn = (__typeof__(fn) *)dlsym(nccl, #fn))) {                                                    \
        snprintf(load_error, sizeof load_error, "libnccl has no symbol %s: too old an NCCL", #fn);           \
        return;                                                                                              \
    }
    NCCL_FUNCS(RESOLVE)
#undef RESOLVE
    rt = cu;
}

typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;
    int device;
    void *barrier_buf; /* one device float for barrier() */
} nccl_state;

static int can_connect(const weft_comm *c)
{
    pthread_once(&load_once, load);
    /* Only when asked for by name: see the top of the file. */
    return strcmp(c->opts.backend, "nccl") == 0 && !load_error[0];
}

static const char *why_not(const weft_comm *c)
{
    (void)c;
    pthread_once(&load_once, load);
    return load_error[0] ? load_error : NULL;
}

static int cuda_err(weft_comm *c, cudaError_t e, const char *call)
{
    return weft_comm_fail(c, WEFT_ECOMM, "%s failed: %s", call, rt->cudaGetErrorString(e));
}

static int nccl_err(weft_comm *c, ncclResult_t e, const char *call)
{
    return weft_comm_fail(c, WEFT_ECOMM, "%s failed: %s", call, api.ncclGetErrorString(e));
}

#define CUDA_TRY(c, name, call)                                                                              \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess)                                                                               \
            return cuda_err(c, e_, name);                                                                    \
    } while (0)
#define NCCL_TRY(c, name, call)                                                                              \
    do {                                                                                                     \
        ncclResult_t e_ = (call);                                                                            \
        if (e_ != ncclSuccess)                                                                               \
            return nccl_err(c, e_, name);                                                                    \
    } while (0)

static int nccl_init(weft_comm *c)
{
    if (c->opts.deterministic)
        return weft_error(WEFT_EUNSUPPORTED, "communicator '%s': comm.deterministic is not available on the "
                          "nccl backend (NCCL's reduction order depends on its algorithm); use shm/mpi/tcp for "
                          "bitwise-reproducible reductions", c->name);
    if (c->ctx->local_size > rt->ndevices)
        return weft_error(WEFT_ECONFIG, "communicator '%s': %d ranks on this node share %d CUDA device%s; NCCL "
                          "needs a GPU of its own per rank: start at most %d ranks per node", c->name,
                          c->ctx->local_size, rt->ndevices, rt->ndevices > 1 ? "s" : "", rt->ndevices);
    nccl_state *s = calloc(1, sizeof *s);
    if (!s)
        return weft_error(WEFT_ENOMEM, "communicator '%s': out of memory", c->name);
    c->backend_state = s;
    s->device = c->ctx->local_rank % rt->ndevices;
    CUDA_TRY(c, "cudaSetDevice", rt->cudaSetDevice(s->device));
    ncclUniqueId id;
    if (c->rank == 0)
        NCCL_TRY(c, "ncclGetUniqueId", api.ncclGetUniqueId(&id));
    if (MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, c->mpi) != MPI_SUCCESS)
        return weft_comm_fail(c, WEFT_ECOMM, "MPI_Bcast of the NCCL unique id failed");
    NCCL_TRY(c, "ncclCommInitRank", api.ncclCommInitRank(&s->comm, c->size, id, c->rank));
    CUDA_TRY(c, "cudaStreamCreateWithFlags", rt->cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    CUDA_TRY(c, "cudaMalloc", rt->cudaMalloc(&s->barrier_buf, sizeof(float)));
    int v = 0;
    api.ncclGetVersion(&v);
    WEFT_DEBUG("communicator '%s': NCCL %d on CUDA device %d", c->name, v, s->device);
    return 0;
}

static void nccl_fini(weft_comm *c)
{
    nccl_state *s = c->backend_state;
    if (!s)
        return;
    if (s->comm)
        (c->failed ? api.ncclCommAbort : api.ncclCommDestroy)(s->comm);
    if (s->stream)
        rt->cudaStreamDestroy(s->stream);
    if (s->barrier_buf)
        rt->cudaFree(s->barrier_buf);
    free(s);
    c->backend_state = NULL;
}

static int nccl_type(weft_dtype dt, ncclDataType_t *out)
{
    switch (dt) {
    case WEFT_F32: *out = ncclFloat32; return 0;
    case WEFT_F64: *out = ncclFloat64; return 0;
    case WEFT_F16: *out = ncclFloat16; return 0;
    case WEFT_BF16: *out = ncclBfloat16; return 0;
    case WEFT_I32: *out = ncclInt32; return 0;
    case WEFT_I64: *out = ncclInt64; return 0;
    case WEFT_U8: *out = ncclUint8; return 0;
    default: return WEFT_EINVAL;
    }
}

/* On one rank an average is the input itself. NCCL 2.28.3's single-rank
 * ncclAvg out of place left the elements past 2^20 of a 2^20+3 count
 * unwritten on an H100 (tests/gpu/nccl_check.c found it; ncclSum is right),
 * so a one-rank AVG is sent as a SUM. */
static ncclRedOp_t nccl_op_for(const weft_comm *c, weft_redop op)
{
    if (op == WEFT_AVG && c->size == 1)
        return ncclSum;
    switch (op) {
    case WEFT_AVG: return ncclAvg;
    case WEFT_MAX: return ncclMax;
    case WEFT_MIN: return ncclMin;
    default: return ncclSum;
    }
}

/* Buffers must be device (or managed) memory: NCCL faults on host pointers. */
static int check_device_ptr(weft_comm *c, const weft_op *op, const void *p, const char *which)
{
    if (!p)
        return 0;
    struct cudaPointerAttributes a;
    if (rt->cudaPointerGetAttributes(&a, p) != cudaSuccess || (a.type != cudaMemoryTypeDevice &&
                                                                a.type != cudaMemoryTypeManaged))
        return weft_error(WEFT_EINVAL, "%s on communicator '%s' (nccl): the %s buffer %p is host memory; the "
                          "nccl backend moves device buffers (use shm/mpi/tcp for host memory)",
                          weft_op_name(op->kind), c->name, which, p);
    return 0;
}

/* reduce_scatter/allgather with a count the ranks cannot split evenly: a
 * group of rooted operations, one per rank's chunk. */
static int post_uneven(weft_comm *c, nccl_state *s, const weft_op *op, ncclDataType_t t)
{
    size_t es = weft_dtype_size(op->dtype);
    NCCL_TRY(c, "ncclGroupStart", api.ncclGroupStart());
    for (int i = 0; i < c->size; i++) {
        size_t off, len;
        weft_comm_chunk(op->count, c->size, i, &off, &len);
        ncclResult_t e;
        if (op->kind == WEFT_OP_REDUCE_SCATTER)
            e = api.ncclReduce((const char *)op->send + off * es, i == c->rank ? op->recv : NULL, len, t,
                               nccl_op_for(c, op->redop), i, s->comm, s->stream);
        else
            e = api.ncclBroadcast(i == c->rank ? op->send : NULL, (char *)op->recv + off * es, len, t, i,
                                  s->comm, s->stream);
        if (e != ncclSuccess) {
            api.ncclGroupEnd();
            return nccl_err(c, e, op->kind == WEFT_OP_REDUCE_SCATTER ? "ncclReduce" : "ncclBroadcast");
        }
    }
    NCCL_TRY(c, "ncclGroupEnd", api.ncclGroupEnd());
    return 0;
}

static int post_alltoall(weft_comm *c, nccl_state *s, const weft_op *op, ncclDataType_t t)
{
    size_t bytes = op->count * weft_dtype_size(op->dtype);
    if (op->send == op->recv)
        return weft_error(WEFT_EUNSUPPORTED, "alltoall on communicator '%s': in-place alltoall is not "
                          "supported by the nccl backend; pass separate buffers", c->name);
    NCCL_TRY(c, "ncclGroupStart", api.ncclGroupStart());
    for (int i = 0; i < c->size; i++) {
        ncclResult_t e = api.ncclSend((const char *)op->send + (size_t)i * bytes, op->count, t, i, s->comm,
                                      s->stream);
        if (e == ncclSuccess)
            e = api.ncclRecv((char *)op->recv + (size_t)i * bytes, op->count, t, i, s->comm, s->stream);
        if (e != ncclSuccess) {
            api.ncclGroupEnd();
            return nccl_err(c, e, "ncclSend/ncclRecv (alltoall)");
        }
    }
    NCCL_TRY(c, "ncclGroupEnd", api.ncclGroupEnd());
    return 0;
}

static int enqueue(weft_comm *c, nccl_state *s, const weft_op *op, ncclDataType_t t)
{
    size_t off, len, es = weft_dtype_size(op->dtype);
    weft_comm_chunk(op->count, c->size, c->rank, &off, &len);
    int even = op->count % (size_t)c->size == 0;
    switch (op->kind) {
    case WEFT_OP_ALLREDUCE:
        NCCL_TRY(c, "ncclAllReduce", api.ncclAllReduce(op->send, op->recv, op->count, t, nccl_op_for(c, op->redop), s->comm, s->stream));
        return 0;
    case WEFT_OP_REDUCE_SCATTER:
        if (!even)
            return post_uneven(c, s, op, t);
        NCCL_TRY(c, "ncclReduceScatter", api.ncclReduceScatter(op->send, op->recv, len, t, nccl_op_for(c, op->redop), s->comm, s->stream));
        return 0;
    case WEFT_OP_ALLGATHER:
        if (!even)
            return post_uneven(c, s, op, t);
        NCCL_TRY(c, "ncclAllGather", api.ncclAllGather(op->send, op->recv, len, t, s->comm, s->stream));
        return 0;
    case WEFT_OP_BROADCAST:
        NCCL_TRY(c, "ncclBroadcast", api.ncclBroadcast(op->send, op->recv, op->count, t, op->peer, s->comm, s->stream));
        return 0;
    case WEFT_OP_REDUCE:
        NCCL_TRY(c, "ncclReduce", api.ncclReduce(op->send, op->recv, op->count, t, nccl_op_for(c, op->redop), op->peer, s->comm,
                                   s->stream));
        return 0;
    case WEFT_OP_ALLTOALL:
        return post_alltoall(c, s, op, t);
    case WEFT_OP_SEND:
        NCCL_TRY(c, "ncclSend", api.ncclSend(op->send, op->count, t, op->peer, s->comm, s->stream));
        return 0;
    case WEFT_OP_RECV:
        NCCL_TRY(c, "ncclRecv", api.ncclRecv(op->recv, op->count, t, op->peer, s->comm, s->stream));
        return 0;
    case WEFT_OP_BARRIER:
        NCCL_TRY(c, "ncclAllReduce", api.ncclAllReduce(s->barrier_buf, s->barrier_buf, 1, ncclFloat32, ncclSum, s->comm,
                                      s->stream));
        return 0;
    default:
        (void)es;
        return weft_error(WEFT_EINTERNAL, "nccl backend: unknown operation %d", (int)op->kind);
    }
}

static int nccl_post(weft_comm *c, weft_request *r)
{
    nccl_state *s = c->backend_state;
    const weft_op *op = &r->op;
    ncclDataType_t t = ncclFloat32;
    if (op->kind != WEFT_OP_BARRIER && nccl_type(op->dtype, &t) < 0)
        return weft_error(WEFT_EINVAL, "nccl backend: dtype %d has no NCCL type", (int)op->dtype);
    if (op->redop == WEFT_AVG && !weft_dtype_is_float(op->dtype) &&
        (op->kind == WEFT_OP_ALLREDUCE || op->kind == WEFT_OP_REDUCE_SCATTER || op->kind == WEFT_OP_REDUCE))
        return weft_error(WEFT_EUNSUPPORTED, "%s on communicator '%s': AVG of %s is not supported by the nccl "
                          "backend (weft's integer average is computed in 64 bits); use SUM and divide",
                          weft_op_name(op->kind), c->name, weft_dtype_name(op->dtype));
    if (op->count) {
        WEFT_CHECK(check_device_ptr(c, op, op->send, "send"));
        WEFT_CHECK(check_device_ptr(c, op, op->recv, "recv"));
    }
    if (!r->backend_req)
        CUDA_TRY(c, "cudaEventCreateWithFlags", rt->cudaEventCreateWithFlags((cudaEvent_t *)&r->backend_req, cudaEventDisableTiming));
    CUDA_TRY(c, "cudaSetDevice", rt->cudaSetDevice(s->device));
    WEFT_CHECK(enqueue(c, s, op, t));
    CUDA_TRY(c, "cudaEventRecord", rt->cudaEventRecord((cudaEvent_t)r->backend_req, s->stream));
    return 0;
}

static int nccl_test(weft_comm *c, weft_request *r, int *done)
{
    nccl_state *s = c->backend_state;
    cudaError_t e = rt->cudaEventQuery((cudaEvent_t)r->backend_req);
    if (e == cudaSuccess) {
        *done = 1;
        return 0;
    }
    if (e != cudaErrorNotReady)
        return cuda_err(c, e, "cudaEventQuery");
    ncclResult_t async = ncclSuccess;
    api.ncclCommGetAsyncError(s->comm, &async);
    if (async != ncclSuccess && async != ncclInProgress)
        return nccl_err(c, async, "NCCL (asynchronous error)");
    *done = 0;
    return 0;
}

static int nccl_reserve(weft_comm *c, int n)
{
    (void)n;
    (void)c;
    return 0; /* events are made on a request's first use and kept */
}

static void nccl_request_release(weft_request *r)
{
    if (r->backend_req)
        rt->cudaEventDestroy((cudaEvent_t)r->backend_req);
    r->backend_req = NULL;
}

const weft_backend weft_backend_nccl = {
    .name = "nccl",
    .can_connect = can_connect,
    .init = nccl_init,
    .fini = nccl_fini,
    .post = nccl_post,
    .test = nccl_test,
    .request_release = nccl_request_release,
    .reserve = nccl_reserve,
    .why_not = why_not,
};

#else /* !WEFT_HAVE_NCCL */

static int can_connect(const weft_comm *c)
{
    (void)c;
    return 0;
}

static const char *why_not(const weft_comm *c)
{
    (void)c;
    return "this libweft was built without CUDA/NCCL (no nccl.h under CUDA_HOME at build time)";
}

static int never(weft_comm *c) { (void)c; return WEFT_EUNSUPPORTED; }
static void nothing(weft_comm *c) { (void)c; }
static int no_post(weft_comm *c, weft_request *r) { (void)c; (void)r; return WEFT_EUNSUPPORTED; }
static int no_test(weft_comm *c, weft_request *r, int *done) { (void)c; (void)r; *done = 1; return 0; }

const weft_backend weft_backend_nccl = {
    .name = "nccl",
    .can_connect = can_connect,
    .init = never,
    .fini = nothing,
    .post = no_post,
    .test = no_test,
    .why_not = why_not,
};

#endif
