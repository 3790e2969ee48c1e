/*
 * noalloc_step.c -- "no allocation on the steady-state step path", checked:
 * this program replaces malloc/calloc/realloc/free (forwarding to glibc's
 * __libc_* functions) and counts calls on the training thread while it runs
 * the library's training step (weft_trainer_step, the step weft-train
 * runs): loader next, the pipeline schedule's forwards and backwards
 * (send/recv between stages, tensor-parallel allreduces inside the layers),
 * bucket reduction, the tied embedding's sum, the loss and gradient norm
 * over the mesh, AdamW, the ZeRO-1 gather, the refresh of the weights' bf16
 * copies (train.precision = bf16) -- on any DP x TP x PP layout.
 * After warm-up steps, the measured steps must allocate nothing, and the
 * device layer's after-start allocation counter (runtime/device.h) must
 * not move. Prints TAP from rank 0.
 *
 * One exception, counted apart and bounded: oneDNN 2.6's
 * dnnl_primitive_execute (the f32 linear layer, kernels/matmul_dnnl.c)
 * builds a std::unordered_map of its arguments on every call -- a few
 * small nodes, through operator new. Those must be small (< 4 KiB: a
 * scratchpad or buffer allocated per call would not be) and the same
 * number every step (nothing grows). posix_memalign, aligned_alloc and
 * memalign are counted too (oneDNN allocates its buffers through them).
 *
 *   mpirun -np 2 noalloc_step --data.path=DATASET_DIR [--comm.backend=shm] [--parallel.zero=1]
 *   mpirun -np 4 noalloc_step --data.path=DATASET_DIR --parallel.tp=2 --parallel.pp=2 [--parallel.schedule=gpipe]
 * (tests/train/test_noalloc.sh gives the batch sizes.)
 */
#include "model/lm.h"
#include "weft.h"
#include "train/trainer.h"
#include "tests/mpi/mpitap.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static _Thread_local int counting;
static _Thread_local long allocs, mpi_allocs, dnnl_allocs;
static _Thread_local size_t dnnl_largest; /* bytes of oneDNN's largest allocation */
static char first_caller[256]; /* the object that made the first counted allocation */

/* Open MPI's own allocations are not weft's: its free lists of requests
 * and fragments grow with the most operations ever in flight at once,
 * which depends on how the ranks happen to interleave, and weft's waits
 * call into MPI to keep its sends moving (collectives/request.c). They are
 * counted apart, by the shared object the caller's code lives in;
 * everything else on the training thread -- weft's code, libc called by
 * weft -- must allocate nothing. */
static int from_mpi(void *ra)
{
    Dl_info di;
    if (!dladdr(ra, &di) || !di.dli_fname)
        return 0;
    const char *f = di.dli_fname;
    return strstr(f, "libmpi") || strstr(f, "libopen-pal") || strstr(f, "libopen-rte") || strstr(f, "mca_") ||
           strstr(f, "libpmix") || strstr(f, "libhwloc") || strstr(f, "libevent");
}

static int in_object(void *ra, const char *name)
{
    Dl_info di;
    return dladdr(ra, &di) && di.dli_fname && strstr(di.dli_fname, name);
}

/* Whether operator new (libstdc++, the caller at ra) was called from
 * oneDNN: the first frame outside libstdc++ above it. weft is C, so any
 * other C++ caller is counted as weft's. */
static int from_dnnl(void *ra)
{
    if (!in_object(ra, "libstdc++"))
        return 0;
    void *frames[16];
    int n = backtrace(frames, 16), i = 0;
    while (i < n && !in_object(frames[i], "libstdc++")) /* this program's: count, malloc */
        i++;
    while (i < n && in_object(frames[i], "libstdc++")) /* operator new */
        i++;
    return i < n && in_object(frames[i], "libdnnl");
}

static void count(void *ra, size_t bytes)
{
    if (!counting)
        return;
    counting = 0; /* dladdr must not count itself */
    if (from_mpi(ra)) {
        mpi_allocs++;
    } else if (in_object(ra, "libdnnl") || from_dnnl(ra)) {
        dnnl_allocs++;
        dnnl_largest = bytes > dnnl_largest ? bytes : dnnl_largest;
    } else if (allocs++ == 0) {
        Dl_info di;
        snprintf(first_caller, sizeof first_caller, "%s",
                 dladdr(ra, &di) && di.dli_sname ? di.dli_sname : di.dli_fname ? di.dli_fname : "?");
    }
    counting = 1;
}

void *malloc(size_t n) { count(__builtin_return_address(0), n); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { count(__builtin_return_address(0), a * b); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { count(__builtin_return_address(0), n); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { count(__builtin_return_address(0), n); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { count(__builtin_return_address(0), n); return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n)
{
    count(__builtin_return_address(0), n);
    *p = __libc_memalign(a, n);
    return *p ? 0 : ENOMEM;
}
void free(void *p) { __libc_free(p); }

/* This rank's part of the model the model.* keys describe (the test gives a
 * small GPT-2 or Llama) on the trainer's mesh. */
static int setup(weft_ctx *ctx, weft_trainer **t)
{
    WEFT_CHECK(weft_trainer_new(ctx, t));
    int vocab;
    WEFT_CHECK(weft_trainer_open_tokens(*t, &vocab));
    weft_model_part mp;
    weft_trainer_part(*t, &mp);

    weft_model *m;
    WEFT_CHECK(weft_lm_new(ctx->config, vocab, &mp, 1, &m));
    return weft_trainer_set_model(*t, m);
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_model_config_keys, WEFT_TRAINER_CONFIG_KEYS, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    tap_rank = ctx->rank;
    weft_trainer *t = NULL;
    tap_begin();
    rc = setup(ctx, &t);
    TAP_CHECK(rc == 0, "setup: %s", weft_last_error());
    weft_step_stats st = {0};
    for (int64_t s = 0; rc == 0 && s < 3; s++) /* warm-up: pools and scratch grow here */
        rc = weft_trainer_step(t, &(weft_step_stats){.step = s});
    void *warm[2];
    backtrace(warm, 2); /* its first call loads libgcc_s: not in a step */
    long dnnl_per_step[5];
    int dnnl_steady = 1;
    /* The device layer's own count (runtime/device.h): arenas, carvings and
     * staging buffers made after the trainer's start. On the cpu malloc's
     * count sees most of them too; on a GPU (cudaMalloc) only this does. */
    const weft_dev *dev = weft_device_current();
    long dev_before = weft_device_allocs_after_start(dev);
    for (int64_t s = 3; rc == 0 && s < 8; s++) {
        long before = dnnl_allocs;
        counting = 1;
        st = (weft_step_stats){.step = s};
        rc = weft_trainer_step(t, &st);
        counting = 0;
        dnnl_per_step[s - 3] = dnnl_allocs - before;
        dnnl_steady &= dnnl_per_step[s - 3] == dnnl_per_step[0];
    }
    TAP_CHECK(rc == 0, "steps: %s", weft_last_error());
    long dev_allocs = weft_device_allocs_after_start(dev) - dev_before;
    TAP_CHECK(dev_allocs == 0, "%ld device-layer allocations in 5 steady-state steps", dev_allocs);
    TAP_CHECK(allocs == 0, "%ld allocations in 5 steady-state steps on the training thread (first by %s)", allocs,
              first_caller);
    TAP_CHECK(dnnl_steady && dnnl_largest < 4096,
              "oneDNN's own allocations per step: %ld %ld %ld %ld %ld (want the same each step), largest %zu bytes "
              "(want < 4096)", dnnl_per_step[0], dnnl_per_step[1], dnnl_per_step[2], dnnl_per_step[3],
              dnnl_per_step[4], dnnl_largest);
    TAP_CHECK(rc != 0 || (isfinite(st.loss) && st.loss > 0 && isfinite(st.grad_norm)), "step 8: loss %g, norm %g",
              st.loss, st.grad_norm);
    /* The counts whatever the first failure was, for scripts that judge
     * one of them alone (tests/gpu/run.sh: on cuda the device layer's). */
    if (ctx->rank == 0)
        printf("# measured: steps %s, step 8 loss %g; device %s: %ld device-layer allocations; %ld host "
               "allocations on the training thread (first by %s)\n", rc == 0 ? "ran" : "failed", st.loss,
               weft_device_name(weft_device_where(dev), (char[32]){0}, 32), dev_allocs, allocs,
               allocs ? first_caller : "none");
    const weft_mesh *mesh = t ? weft_trainer_mesh(t) : NULL;
    char desc[128] = "?";
    if (mesh)
        weft_mesh_describe(mesh, desc, sizeof desc);
    if (strstr(desc, " (this"))
        *strstr(desc, " (this") = '\0';
    char devname[32];
    weft_device_name(weft_device_where(dev), devname, sizeof devname);
    tap_end("no allocation in 5 steady-state library steps (%s, %s, backend %s, ZeRO-%d, recompute %s, %d rank%s, "
            "%s, %s; %ld inside Open MPI, %ld inside oneDNN's execute; device %s: %ld device-layer allocations)", weft_config_str(ctx->config, "model.family"),
            weft_config_str(ctx->config, "train.precision"),
            weft_config_str(ctx->config, "comm.backend"), (int)weft_config_int(ctx->config, "parallel.zero"),
            weft_config_str(ctx->config, "train.recompute"), ctx->size, ctx->size == 1 ? "" : "s", desc, weft_config_str(ctx->config, "parallel.schedule"),
            mpi_allocs, dnnl_allocs, devname, dev_allocs);
    weft_trainer_close(t, rc);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
