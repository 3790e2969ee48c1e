/*
 * device_cuda.c -- the cuda implementation of the device layer
 * (runtime/device_impl.h): arenas from cudaMalloc, staging buffers from
 * cudaMallocHost, copies with cudaMemcpyAsync on one of three non-blocking
 * streams (compute, communication, staging), events from cudaEventCreateWithFlags
 * (timing disabled: they only order).
 *
 * libcudart is opened at run time with dlopen, never linked: one libweft
 * runs on machines with and without CUDA. This file is the one place that
 * opens it; the nccl backend takes the same table (runtime/cudart.h). The file is compiled against the real cuda_runtime_api.h whenever
 * the toolkit is present (the Makefile adds -DWEFT_HAVE_CUDA), so every
 * symbol looked up is type-checked against its declaration; without it the
 * implementation exists and says "built without CUDA".
 *
 * Every failed CUDA call becomes a weft error naming the call, the device
 * and the byte count: "cudaMalloc of 1048576 bytes on cuda:1: out of memory".
 * Device properties come from cudaDeviceGetAttribute and cudaMemGetInfo
 * (cudaGetDeviceProperties' struct changed size between CUDA releases).
 */
#include "runtime/device_impl.h"
#include "runtime/error.h"

#include <stdio.h>
#include <string.h>

#ifdef WEFT_HAVE_CUDA
#include "runtime/cudart.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

static weft_cudart api;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[384]; /* empty once libcudart is loaded and a GPU is visible */

static void load(void)
{
    static const char *const names[] = {"libcudart.so.13", "libcudart.so.12", "libcudart.so", NULL};
    void *h = NULL;
    for (int i = 0; names[i] && !h; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(load_error, sizeof load_error, "cannot load libcudart (%s); is CUDA installed and on "
                 "LD_LIBRARY_PATH?", dlerror());
        return;
    }
#define RESOLVE(fn)                                                                                          \
    if (!(api.fn = (__typeof__(fn) *)dlsym(h, #fn))) {                                                       \
        snprintf(load_error, sizeof load_error, "libcudart has no symbol %s: too old a CUDA", #fn);          \
        return;                                                                                              \
    }
    WEFT_CUDART_FUNCS(RESOLVE)
#undef RESOLVE
    cudaError_t e = api.cudaGetDeviceCount(&api.ndevices);
    if (e != cudaSuccess || api.ndevices < 1) {
        snprintf(load_error, sizeof load_error, "no CUDA device visible (%s)",
                 e != cudaSuccess ? api.cudaGetErrorString(e) : "cudaGetDeviceCount returned 0");
        api.ndevices = 0;
    }
}

const weft_cudart *weft_cudart_get(char *why, size_t len)
{
    pthread_once(&load_once, load);
    if (load_error[0]) {
        snprintf(why, len, "%s", load_error);
        return NULL;
    }
    return &api;
}

/* A failed call as a weft error: the call, the device, the bytes. Running
 * out of memory is WEFT_ENOMEM; anything else leaves the device unusable
 * for this job (WEFT_EINTERNAL: exit 70). */
static int fail(const weft_dev *d, const char *call, size_t bytes, cudaError_t e)
{
    int rc = e == cudaErrorMemoryAllocation ? WEFT_ENOMEM : WEFT_EINTERNAL;
    if (bytes)
        return weft_error(rc, "%s of %zu bytes on cuda:%d: %s (CUDA error %d)", call, bytes, d->where.index,
                          api.cudaGetErrorString(e), (int)e);
    return weft_error(rc, "%s on cuda:%d: %s (CUDA error %d)", call, d->where.index, api.cudaGetErrorString(e),
                      (int)e);
}

#define CU(d, call, bytes, expr)                                                                             \
    do {                                                                                                     \
        cudaError_t e_ = (expr);                                                                             \
        if (e_ != cudaSuccess)                                                                               \
            return fail(d, call, bytes, e_);                                                                 \
    } while (0)

static int cuda_count(char *why, size_t len)
{
    if (len)
        why[0] = '\0';
    const weft_cudart *rt = weft_cudart_get(why, len);
    return rt ? rt->ndevices : 0;
}

static int cuda_open(weft_dev *d)
{
    char why[384];
    int n = cuda_count(why, sizeof why);
    if (n < 1)
        return weft_error(WEFT_EUNAVAILABLE, "device cuda:%d: %s", d->where.index, why);
    if (d->where.index < 0 || d->where.index >= n)
        return weft_error(WEFT_EUNAVAILABLE, "device cuda:%d: only %d GPU%s visible (CUDA_VISIBLE_DEVICES=%s)",
                          d->where.index, n, n == 1 ? "" : "s",
                          getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "unset");
    CU(d, "cudaSetDevice", 0, api.cudaSetDevice(d->where.index));
    for (int s = 0; s < WEFT_NSTREAMS; s++) {
        cudaStream_t st;
        CU(d, "cudaStreamCreateWithFlags", 0, api.cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
        d->streams[s] = st;
    }
    return 0;
}

static void cuda_close(weft_dev *d)
{
    api.cudaSetDevice(d->where.index);
    for (int s = 0; s < WEFT_NSTREAMS; s++)
        if (d->streams[s])
            api.cudaStreamDestroy((cudaStream_t)d->streams[s]);
}

static void cuda_describe(const weft_dev *d, char *buf, size_t len)
{
    int major = 0, minor = 0, sms = 0;
    size_t free_b = 0, total = 0;
    api.cudaSetDevice(d->where.index);
    api.cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d->where.index);
    api.cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d->where.index);
    api.cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, d->where.index);
    api.cudaMemGetInfo(&free_b, &total);
    snprintf(buf, len, "cuda:%d (sm_%d%d, %d SMs, %.1f GiB, %.1f GiB free)", d->where.index, major, minor, sms,
             (double)total / 1073741824.0, (double)free_b / 1073741824.0);
}

/* Zeroed, as the cpu's fresh mmap is (device.h): the optimizer's moments
 * and the gradients of a first step rely on it. The memset is on the
 * compute stream, waited for here: the non-blocking streams do not order
 * after the legacy default stream a plain cudaMemset would use. */
static int cuda_mem_alloc(weft_dev *d, size_t bytes, void **out)
{
    CU(d, "cudaSetDevice", 0, api.cudaSetDevice(d->where.index));
    CU(d, "cudaMalloc", bytes, api.cudaMalloc(out, bytes));
    cudaStream_t s = (cudaStream_t)d->streams[WEFT_STREAM_COMPUTE];
    cudaError_t e = api.cudaMemsetAsync(*out, 0, bytes, s);
    if (e == cudaSuccess)
        e = api.cudaStreamSynchronize(s);
    if (e != cudaSuccess) {
        api.cudaFree(*out);
        *out = NULL;
        return fail(d, "cudaMemsetAsync (zeroing a new arena)", bytes, e);
    }
    return 0;
}

static void cuda_mem_free(weft_dev *d, void *p, size_t bytes)
{
    (void)bytes;
    api.cudaSetDevice(d->where.index);
    api.cudaFree(p);
}

static int cuda_host_alloc(weft_dev *d, size_t bytes, void **out)
{
    CU(d, "cudaSetDevice", 0, api.cudaSetDevice(d->where.index));
    CU(d, "cudaMallocHost", bytes, api.cudaMallocHost(out, bytes));
    return 0;
}

static void cuda_host_free(weft_dev *d, void *p, size_t bytes)
{
    (void)d;
    (void)bytes;
    api.cudaFreeHost(p);
}

static int cuda_copy(weft_dev *d, void *dst, const void *src, size_t bytes, weft_copy_dir dir, weft_stream s)
{
    static const enum cudaMemcpyKind kinds[] = {
        [WEFT_COPY_H2D] = cudaMemcpyHostToDevice,
        [WEFT_COPY_D2H] = cudaMemcpyDeviceToHost,
        [WEFT_COPY_D2D] = cudaMemcpyDeviceToDevice,
    };
    static const char *const what[] = {
        [WEFT_COPY_H2D] = "cudaMemcpyAsync host->device",
        [WEFT_COPY_D2H] = "cudaMemcpyAsync device->host",
        [WEFT_COPY_D2D] = "cudaMemcpyAsync device->device",
    };
    CU(d, what[dir], bytes, api.cudaMemcpyAsync(dst, src, bytes, kinds[dir], (cudaStream_t)d->streams[s]));
    return 0;
}

static int cuda_stream_sync(weft_dev *d, weft_stream s)
{
    static const char *const what[WEFT_NSTREAMS] = {
        [WEFT_STREAM_COMPUTE] = "cudaStreamSynchronize (compute stream)",
        [WEFT_STREAM_COMM] = "cudaStreamSynchronize (communication stream)",
        [WEFT_STREAM_STAGE] = "cudaStreamSynchronize (staging stream)",
    };
    CU(d, what[s], 0, api.cudaStreamSynchronize((cudaStream_t)d->streams[s]));
    return 0;
}

static int cuda_event_new(weft_dev *d, void **ev)
{
    cudaEvent_t e;
    CU(d, "cudaSetDevice", 0, api.cudaSetDevice(d->where.index));
    CU(d, "cudaEventCreateWithFlags", 0, api.cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    *ev = e;
    return 0;
}

static void cuda_event_free(weft_dev *d, void *ev)
{
    (void)d;
    api.cudaEventDestroy((cudaEvent_t)ev);
}

static int cuda_event_record(weft_dev *d, void *ev, weft_stream s)
{
    CU(d, "cudaEventRecord", 0, api.cudaEventRecord((cudaEvent_t)ev, (cudaStream_t)d->streams[s]));
    return 0;
}

static int cuda_stream_wait(weft_dev *d, weft_stream s, void *ev)
{
    CU(d, "cudaStreamWaitEvent", 0, api.cudaStreamWaitEvent((cudaStream_t)d->streams[s], (cudaEvent_t)ev, 0));
    return 0;
}

/* Also called from threads other than the one that opened the device (the
 * checkpoint writer waits for its staging copies): make d current there. */
static int cuda_event_sync(weft_dev *d, void *ev)
{
    CU(d, "cudaSetDevice", 0, api.cudaSetDevice(d->where.index));
    CU(d, "cudaEventSynchronize", 0, api.cudaEventSynchronize((cudaEvent_t)ev));
    return 0;
}

static int cuda_event_query(weft_dev *d, void *ev)
{
    cudaError_t e = api.cudaEventQuery((cudaEvent_t)ev);
    if (e == cudaErrorNotReady)
        return 0;
    return e == cudaSuccess ? 1 : fail(d, "cudaEventQuery", 0, e);
}

const weft_device_impl weft_device_cuda_impl = {
    .name = "cuda",
    .count = cuda_count,
    .open = cuda_open,
    .close = cuda_close,
    .describe = cuda_describe,
    .mem_alloc = cuda_mem_alloc,
    .mem_free = cuda_mem_free,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .copy = cuda_copy,
    .stream_sync = cuda_stream_sync,
    .event_new = cuda_event_new,
    .event_free = cuda_event_free,
    .event_record = cuda_event_record,
    .stream_wait = cuda_stream_wait,
    .event_sync = cuda_event_sync,
    .event_query = cuda_event_query,
};

#else /* !WEFT_HAVE_CUDA */

/* Built without the CUDA toolkit: the kind exists, and says why it cannot serve. */
static int nocuda_count(char *why, size_t len)
{
    snprintf(why, len, "built without CUDA (no cuda_runtime_api.h under CUDA_HOME at build time)");
    return 0;
}

static int nocuda_open(weft_dev *d)
{
    return weft_error(WEFT_EUNAVAILABLE, "device cuda:%d: this weft was built without CUDA (no "
                      "cuda_runtime_api.h under CUDA_HOME at build time)", d->where.index);
}

const weft_device_impl weft_device_cuda_impl = {
    .name = "cuda",
    .count = nocuda_count,
    .open = nocuda_open,
};

#endif
