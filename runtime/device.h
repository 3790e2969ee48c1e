/*
 * device.h -- the device layer: where a rank's tensors live and how bytes
 * move between the host and that device. One interface, two
 * implementations behind a vtable (runtime/device_impl.h): `cpu`
 * (runtime/device_cpu.c) and `cuda` (runtime/device_cuda.c, libcudart
 * opened with dlopen, so one binary runs on machines with and without it).
 * The trainer never #ifs on the device; it asks this layer.
 *
 * What it offers:
 * - arenas sized at start: one big allocation each (cpu: page-aligned
 *   anonymous mmap, so ZeRO's madvise(MADV_DONTNEED) works on it; cuda:
 *   cudaMalloc), carved by a bump allocator, zeroed at creation on every
 *   device (cpu: a fresh mmap is; cuda: cudaMemsetAsync, waited for), which
 *   the optimizer's moments rely on. Nothing is freed piecewise; an arena
 *   is freed whole.
 * - copies host->device, device->host and device->device, asynchronous on
 *   a stream or synchronous;
 * - three streams, compute, communication and staging (a checkpoint's
 *   copies), and events: record an event on
 *   one stream, make another stream wait for it, synchronise a stream or an
 *   event. The ordering contract is CUDA's: work on one stream runs in
 *   order; work on two streams is ordered only through an event. On cpu
 *   every operation completes before it returns, which keeps the contract
 *   trivially (an event is complete as soon as it is recorded);
 * - pinned host staging buffers (cpu: page-aligned memory);
 * - a counter of device allocations (arenas, arena carvings, staging
 *   buffers) made after weft_device_mark_start: the steady-state step must
 *   leave it unchanged (tests/mpi/noalloc_step.c).
 *
 * Selection (weft_device_select): run.device = auto|cpu|cuda; a GPU is the
 * local rank modulo the GPUs visible (CUDA_VISIBLE_DEVICES applies).
 * weft_device_for_training_job adds what training can do today: the
 * models compute through the ops table (kernels/ops.h) on device memory
 * (parameters, gradients, optimizer state and activations are arenas of
 * the device), but the cuda step has never run on a GPU (issue 20), so
 * cuda is refused -- and auto falls back to cpu with a warning -- except
 * for the first milestone's configuration under WEFT_GPU_CHECK=1, which the
 * GPU check script uses to verify it.
 *
 * One device is the process's (weft_device_current): the model's and the
 * optimizer's buffers come from it. It is the cpu until weft_device_use
 * names another.
 */
#ifndef WEFT_RUNTIME_DEVICE_H
#define WEFT_RUNTIME_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/api.h"
#include "runtime/config.h"
#include "runtime/tensor.h"

typedef struct weft_dev weft_dev;                   /* an open device */
typedef struct weft_device_arena weft_device_arena; /* one allocation, carved in order */
typedef struct weft_device_event weft_device_event;

/* compute: the model's kernels; comm: the collectives' (NCCL) work; stage:
 * copies that run beside both (a checkpoint's device->host staging: on
 * comm it would hold the next step's gradient reductions behind it). */
typedef enum { WEFT_STREAM_COMPUTE = 0, WEFT_STREAM_COMM = 1, WEFT_STREAM_STAGE = 2 } weft_stream;
#define WEFT_NSTREAMS 3

typedef enum {
    WEFT_COPY_H2D, /* host -> device */
    WEFT_COPY_D2H, /* device -> host */
    WEFT_COPY_D2D, /* device -> device (same device) */
} weft_copy_dir;

/* The alignment of every arena carving unless asked for more (covers
 * vector loads and cuBLAS's preferred 256-byte alignment). */
#define WEFT_DEVICE_ALIGN 256

/* "cpu" or "cuda:N". */
WEFT_API const char *weft_device_name(weft_device where, char *buf, size_t len);

/* Open the device `where`: its streams and events. cuda without a usable
 * GPU (or in a build without CUDA): WEFT_EUNAVAILABLE naming why. */
WEFT_API int weft_device_open(weft_device where, weft_dev **out);
WEFT_API void weft_device_close(weft_dev *d);
WEFT_API weft_device weft_device_where(const weft_dev *d);
/* One line: "cpu" or "cuda:0 (NVIDIA H100, 79.6 GiB, sm_90)". */
WEFT_API void weft_device_describe(const weft_dev *d, char *buf, size_t len);

/* GPUs visible to this process through libcudart (0 without; why says so:
 * "built without CUDA", "cannot load libcudart ...", "no CUDA device"). */
WEFT_API int weft_device_cuda_count(char *why, size_t len);

/* --- arenas --------------------------------------------------------------- */
/* An arena of `bytes` on d, named for messages ("model", "optimizer"). */
WEFT_API int weft_device_arena_new(weft_dev *d, const char *name, size_t bytes, weft_device_arena **out);
/* The next `bytes` of the arena, aligned to `align` (0: WEFT_DEVICE_ALIGN;
 * a power of two). Past its end: WEFT_ENOMEM naming the arena, the device,
 * the bytes asked and the bytes left. */
WEFT_API int weft_device_arena_alloc(weft_device_arena *a, size_t bytes, size_t align, void **out);
WEFT_API size_t weft_device_arena_used(const weft_device_arena *a);
WEFT_API size_t weft_device_arena_size(const weft_device_arena *a);
/* Forget every carving (the memory stays; its contents are undefined). */
WEFT_API void weft_device_arena_reset(weft_device_arena *a);
WEFT_API void weft_device_arena_free(weft_device_arena *a);
/* The device the arena's memory is on. */
WEFT_API weft_dev *weft_device_arena_device(const weft_device_arena *a);

/* --- pinned host staging buffers ------------------------------------------ */
WEFT_API int weft_device_host_alloc(weft_dev *d, size_t bytes, void **out);
WEFT_API void weft_device_host_free(weft_dev *d, void *p, size_t bytes);

/* --- copies, streams, events ------------------------------------------------ */
/* Enqueue a copy of `bytes` on stream s (cpu: done on return). */
WEFT_API int weft_device_copy_async(weft_dev *d, void *dst, const void *src, size_t bytes, weft_copy_dir dir,
                                    weft_stream s);
/* The same, then wait for it (and for everything before it on the compute stream). */
WEFT_API int weft_device_copy(weft_dev *d, void *dst, const void *src, size_t bytes, weft_copy_dir dir);
WEFT_API int weft_device_stream_sync(weft_dev *d, weft_stream s);
/* The implementation's handle of stream s, for libraries that enqueue on
 * it themselves (cuda: the cudaStream_t the CUDA kernels run on; cpu: NULL). */
WEFT_API void *weft_device_stream_handle(const weft_dev *d, weft_stream s);

WEFT_API int weft_device_event_new(weft_dev *d, weft_device_event **out);
WEFT_API void weft_device_event_free(weft_device_event *e);
/* Mark the point of stream s reached so far. */
WEFT_API int weft_device_event_record(weft_device_event *e, weft_stream s);
/* Work enqueued on s after this runs only once e's point was reached. An
 * event never recorded is an error (on cuda it would order nothing). */
WEFT_API int weft_device_stream_wait(weft_dev *d, weft_stream s, weft_device_event *e);
/* Block the host until e's point was reached. */
WEFT_API int weft_device_event_sync(weft_device_event *e);
/* 1 once e's point was reached, 0 before, negative on error. */
WEFT_API int weft_device_event_done(weft_device_event *e);

/* --- the steady-state check -------------------------------------------------- */
/* From now on every arena, carving and staging buffer made on d is counted. */
WEFT_API void weft_device_mark_start(weft_dev *d);
WEFT_API long weft_device_allocs_after_start(const weft_dev *d);

/* --- selection ------------------------------------------------------------------ */
/* The run.device key (in weft_runtime_config_keys). */
#define WEFT_DEVICE_KEY "run.device"

/* The device run.device asks for on this rank: cpu; cuda:(local rank mod
 * visible GPUs) for cuda, or for auto when a GPU is visible. The local rank
 * is OMPI_COMM_WORLD_LOCAL_RANK, else SLURM_LOCALID, else local_rank.
 * cuda without a GPU: WEFT_EUNAVAILABLE saying why. note (may be NULL)
 * gets one line on how the choice was made. */
WEFT_API int weft_device_select(const weft_config *cfg, int local_rank, weft_device *out, char *note,
                                size_t len);
/* Why training cannot use a GPU yet, in the messages that refuse it. */
#define WEFT_DEVICE_NO_CUDA_TRAINING "the model's training step does not run on CUDA yet"

/* The environment variable that lets the first GPU milestone's
 * configuration through (tests/gpu/run.sh sets it; docs/operations.md). */
#define WEFT_GPU_CHECK_ENV "WEFT_GPU_CHECK"

/* What a training job asks for, as far as the cuda gate cares. */
typedef struct weft_device_job {
    int world;             /* ranks in the job */
    int tp, pp;            /* parallel.tp, parallel.pp */
    int lora_rank;         /* lora.rank (0: no adapters) */
    const char *precision; /* train.precision ("f32", "bf16") */
    const char *family;    /* model.family ("gpt2", "llama"); NULL: a model of the caller's own */
} weft_device_job;

/* Whether training job may run on cuda today: 1 only for the first GPU
 * milestone's configuration (1 rank, parallel.tp = parallel.pp = 1, no
 * LoRA, train.precision = f32, GPT-2 or Llama) with WEFT_GPU_CHECK=1 in
 * the environment -- the not-yet-verified cuda step, which the GPU check
 * script (tests/gpu/run.sh) runs; 0 otherwise, why saying the first thing
 * that is not supported on cuda yet (job NULL: not known). */
WEFT_API int weft_device_cuda_training_ok(const weft_device_job *job, char *why, size_t len);

/* weft_device_select, then what training can use today (job as above; NULL
 * for a caller that does not know it, which always refuses): run.device =
 * cuda is refused before any GPU is looked for unless
 * weft_device_cuda_training_ok (WEFT_EUNAVAILABLE, exit 69, saying
 * WEFT_DEVICE_NO_CUDA_TRAINING and why); through the gate it is
 * weft_device_select's (no usable GPU: exit 69 saying why). auto finding
 * a GPU trains on it through the gate, else on cpu, saying so in note. */
WEFT_API int weft_device_for_training_job(const weft_config *cfg, int local_rank, const weft_device_job *job,
                                          weft_device *out, char *note, size_t len);
/* The same for a caller that does not know the job (weft-info): cuda refused. */
WEFT_API int weft_device_for_training(const weft_config *cfg, int local_rank, weft_device *out, char *note,
                                      size_t len);

/* The process's device (opening the cpu on first use); weft_device_use
 * makes d the process's device (the caller keeps ownership). */
WEFT_API weft_dev *weft_device_current(void);
WEFT_API void weft_device_use(weft_dev *d);

#endif
