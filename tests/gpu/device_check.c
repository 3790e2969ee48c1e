/*
 * device_check.c -- the device layer's cuda implementation (runtime/device.h,
 * runtime/device_cuda.c) on real GPUs, every visible one in turn
 * (tests/gpu/run.sh): selection from the local rank and the training
 * refusal while the model's step does not run on CUDA; arenas whose
 * carvings are device memory (asked of libcudart itself, linked here) on
 * that GPU, aligned, with the over-allocation message; copies in every
 * direction through pinned staging; the two-stream ordering through an
 * event on buffers large enough that an unordered copy would be caught; the
 * after-start counter; a failed cudaMalloc named with its call, device and
 * bytes.
 *
 * Like kernels_check it links only what it tests (the device layer, errors,
 * logging, configuration) and the CUDA runtime -- no MPI, HDF5 or oneDNN --
 * so it runs on a GPU machine that has none of them. TAP on stdout.
 */
#include "runtime/config.h"
#include "runtime/device.h"
#include "runtime/error.h"

#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TAP: a case is tap_begin, checks, tap_end; its first failed check is
 * printed as a comment. */
static int tap_n, tap_fails, tap_total_failed;
static char tap_first[1024];
static void tap_begin(void) { tap_fails = 0; tap_first[0] = '\0'; }
__attribute__((format(printf, 1, 2))) static void tap_fail(const char *fmt, ...)
{
    if (tap_fails++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tap_first, sizeof tap_first, fmt, ap);
        va_end(ap);
    }
}
#define TAP_CHECK(cond, ...) do { if (!(cond)) tap_fail(__VA_ARGS__); } while (0)
__attribute__((format(printf, 1, 2))) static void tap_end(const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (tap_fails)
        printf("# %d failed check%s, first: %s\n", tap_fails, tap_fails > 1 ? "s" : "", tap_first);
    printf("%s %d - %s\n", tap_fails ? "not ok" : "ok", ++tap_n, name);
    fflush(stdout);
    tap_total_failed += tap_fails != 0;
}

/* run.device as ctx.c declares it in weft_runtime_config_keys (this
 * program links no MPI, so not ctx.c). */
static const weft_config_key device_keys[] = {
    {"run.device", WEFT_CFG_ENUM, "auto", WEFT_UNBOUNDED, "auto|cpu|cuda", "where each rank's tensors live"},
    WEFT_CONFIG_END,
};

static int is_device_memory(const void *p, int device)
{
    struct cudaPointerAttributes a;
    return cudaPointerGetAttributes(&a, p) == cudaSuccess && a.type == cudaMemoryTypeDevice && a.device == device;
}

static void check_selection(int ngpu)
{
    tap_begin();
    const weft_config_key *const tables[] = {device_keys, NULL};
    weft_config *cfg = NULL;
    TAP_CHECK(weft_config_new(tables, &cfg) == 0, "config: %s", weft_last_error());
    char note[512];
    weft_device where = {WEFT_DEVICE_CPU, 0}, train;
    /* The launcher's local rank wins over the one passed; modulo the GPUs. */
    for (int lr = 0; cfg && lr < 2 * ngpu + 1; lr++) {
        char v[16];
        snprintf(v, sizeof v, "%d", lr);
        setenv("OMPI_COMM_WORLD_LOCAL_RANK", v, 1);
        int rc = weft_device_select(cfg, 99, &where, note, sizeof note);
        TAP_CHECK(rc == 0 && where.kind == WEFT_DEVICE_CUDA && where.index == lr % ngpu,
                  "auto, local rank %d of %d GPUs: kind %d index %d (%s)", lr, ngpu, (int)where.kind, where.index,
                  rc ? weft_last_error() : note);
    }
    unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
    int rc = cfg ? weft_device_for_training(cfg, 0, &train, note, sizeof note) : -1;
    TAP_CHECK(rc == 0 && train.kind == WEFT_DEVICE_CPU && strstr(note, "issue 20"),
              "auto trains on cpu with a warning until the step runs on CUDA: rc %d, note '%s'", rc, note);
    if (cfg)
        weft_config_set(cfg, "run.device", "cuda", "device_check");
    rc = cfg ? weft_device_for_training(cfg, 0, &train, note, sizeof note) : -1;
    TAP_CHECK(rc == WEFT_EUNAVAILABLE && weft_exit_code(rc) == 69 &&
              strstr(weft_last_error(), WEFT_DEVICE_NO_CUDA_TRAINING),
              "run.device = cuda refused for training: rc %d, '%s'", rc, weft_last_error());
    /* The gate (device.h): the first milestone's job trains on the GPU only
     * with WEFT_GPU_CHECK=1; any other job is refused, naming why. */
    weft_device_job job = {.world = 1, .tp = 1, .pp = 1, .lora_rank = 0, .precision = "f32", .family = "gpt2"};
    const char *was = getenv(WEFT_GPU_CHECK_ENV);
    char saved[16];
    snprintf(saved, sizeof saved, "%s", was ? was : "");
    setenv(WEFT_GPU_CHECK_ENV, "1", 1);
    rc = cfg ? weft_device_for_training_job(cfg, 0, &job, &train, note, sizeof note) : -1;
    TAP_CHECK(rc == 0 && train.kind == WEFT_DEVICE_CUDA && train.index == 0,
              "the milestone's job with WEFT_GPU_CHECK=1 trains on cuda:0: rc %d, kind %d (%s)", rc, (int)train.kind,
              rc ? weft_last_error() : note);
    job.world = 2;
    rc = cfg ? weft_device_for_training_job(cfg, 0, &job, &train, note, sizeof note) : -1;
    TAP_CHECK(rc == WEFT_EUNAVAILABLE && strstr(weft_last_error(), "2 ranks"),
              "2 ranks refused on cuda even with WEFT_GPU_CHECK=1: rc %d, '%s'", rc, weft_last_error());
    job.world = 1;
    unsetenv(WEFT_GPU_CHECK_ENV);
    rc = cfg ? weft_device_for_training_job(cfg, 0, &job, &train, note, sizeof note) : -1;
    TAP_CHECK(rc == WEFT_EUNAVAILABLE && strstr(weft_last_error(), "never been verified"),
              "the milestone's job without WEFT_GPU_CHECK refused: rc %d, '%s'", rc, weft_last_error());
    if (was)
        setenv(WEFT_GPU_CHECK_ENV, saved, 1);
    weft_config_free(cfg);
    tap_end("selection: auto -> cuda:(local rank mod %d GPUs); training refuses cuda (exit 69), auto trains on cpu, "
            "but the milestone's job under WEFT_GPU_CHECK=1 trains on cuda", ngpu);
}

static void check_arena(weft_dev *d, int idx)
{
    tap_begin();
    weft_device_arena *a = NULL;
    void *p1 = NULL, *p2 = NULL, *none = NULL;
    int rc = weft_device_arena_new(d, "check", 1 << 20, &a);
    TAP_CHECK(rc == 0, "arena: %s", weft_last_error());
    if (rc == 0) {
        TAP_CHECK(weft_device_arena_alloc(a, 100, 0, &p1) == 0 && weft_device_arena_alloc(a, 4, 0, &p2) == 0,
                  "carve: %s", weft_last_error());
        TAP_CHECK((char *)p2 - (char *)p1 == WEFT_DEVICE_ALIGN && (uintptr_t)p1 % WEFT_DEVICE_ALIGN == 0,
                  "carvings %p %p not %d apart and aligned", p1, p2, WEFT_DEVICE_ALIGN);
        TAP_CHECK(is_device_memory(p1, idx) && is_device_memory(p2, idx), "carvings are not device memory of cuda:%d",
                  idx);
        rc = weft_device_arena_alloc(a, 2 << 20, 0, &none);
        char want[64];
        snprintf(want, sizeof want, "arena 'check' on cuda:%d", idx);
        TAP_CHECK(rc == WEFT_ENOMEM && strstr(weft_last_error(), want), "over-allocation: rc %d, '%s'", rc,
                  weft_last_error());
        weft_device_arena_free(a);
    }
    rc = weft_device_arena_new(d, "huge", (size_t)1 << 50, &a);
    TAP_CHECK(rc == WEFT_ENOMEM && strstr(weft_last_error(), "cudaMalloc of 1125899906842624 bytes on cuda:"),
              "1 PiB arena: rc %d, '%s'", rc, weft_last_error());
    tap_end("arena on cuda:%d: device memory, aligned carvings, over-allocation and cudaMalloc failure named", idx);
}

/* n floats host -> device (compute stream), an event, then on the
 * communication stream device -> device -> host after waiting on it. */
static void check_copies_and_order(weft_dev *d)
{
    tap_begin();
    size_t n = 16u << 20, bytes = n * sizeof(float); /* 64 MiB: long enough to race if unordered */
    float *pinned = NULL, *back = malloc(bytes);
    weft_device_arena *a = NULL;
    void *x = NULL, *y = NULL;
    weft_device_event *e = NULL;
    int rc = weft_device_host_alloc(d, bytes, (void **)&pinned);
    rc = rc ? rc : weft_device_arena_new(d, "copies", 2 * bytes, &a);
    rc = rc ? rc : weft_device_arena_alloc(a, bytes, 0, &x);
    rc = rc ? rc : weft_device_arena_alloc(a, bytes, 0, &y);
    rc = rc ? rc : weft_device_event_new(d, &e);
    TAP_CHECK(rc == 0 && back, "set-up: %s", weft_last_error());
    if (rc == 0 && back) {
        struct cudaPointerAttributes pa;
        TAP_CHECK(cudaPointerGetAttributes(&pa, pinned) == cudaSuccess && pa.type == cudaMemoryTypeHost,
                  "staging buffer is not pinned host memory");
        for (size_t i = 0; i < n; i++)
            pinned[i] = (float)(i % 1000003) * 0.5f;
        memset(back, 0, bytes);
        rc = weft_device_copy_async(d, x, pinned, bytes, WEFT_COPY_H2D, WEFT_STREAM_COMPUTE);
        rc = rc ? rc : weft_device_event_record(e, WEFT_STREAM_COMPUTE);
        rc = rc ? rc : weft_device_stream_wait(d, WEFT_STREAM_COMM, e);
        rc = rc ? rc : weft_device_copy_async(d, y, x, bytes, WEFT_COPY_D2D, WEFT_STREAM_COMM);
        rc = rc ? rc : weft_device_copy_async(d, back, y, bytes, WEFT_COPY_D2H, WEFT_STREAM_COMM);
        rc = rc ? rc : weft_device_stream_sync(d, WEFT_STREAM_COMM);
        TAP_CHECK(rc == 0, "copies: %s", weft_last_error());
        TAP_CHECK(weft_device_event_done(e) == 1, "event not done after the stream that waited on it finished");
        TAP_CHECK(memcmp(back, pinned, bytes) == 0, "data through H2D (compute) -> event -> D2D, D2H (comm) differs");
        memset(back, 0, bytes);
        rc = weft_device_copy(d, back, x, bytes, WEFT_COPY_D2H);
        TAP_CHECK(rc == 0 && memcmp(back, pinned, bytes) == 0, "synchronous D2H: %s", rc ? weft_last_error() : "differs");
    }
    weft_device_event_free(e);
    weft_device_arena_free(a);
    weft_device_host_free(d, pinned, bytes);
    free(back);
    tap_end("copies H2D, D2D, D2H of 64 MiB through pinned staging, ordered across streams by an event");
}

static void check_counter(weft_dev *d)
{
    tap_begin();
    weft_device_arena *a = NULL;
    void *p = NULL, *q = NULL;
    int rc = weft_device_arena_new(d, "counted", 1 << 16, &a);
    rc = rc ? rc : weft_device_arena_alloc(a, 64, 0, &p);
    long before = weft_device_allocs_after_start(d);
    weft_device_mark_start(d);
    rc = rc ? rc : weft_device_copy(d, p, "0123456789abcdef", 16, WEFT_COPY_H2D);
    TAP_CHECK(rc == 0 && weft_device_allocs_after_start(d) == before, "a copy counted as an allocation (%s)",
              rc ? weft_last_error() : "");
    rc = rc ? rc : weft_device_arena_alloc(a, 64, 0, &q);
    TAP_CHECK(rc == 0 && weft_device_allocs_after_start(d) == before + 1, "a carving after start: count %ld, want %ld",
              weft_device_allocs_after_start(d), before + 1);
    weft_device_arena_free(a);
    tap_end("the after-start allocation counter counts carvings, not copies");
}

int main(void)
{
    char why[384];
    int ngpu = weft_device_cuda_count(why, sizeof why);
    if (ngpu < 1) {
        printf("not ok 1 - no GPU visible: %s\n1..1\n", why);
        return 1;
    }
    check_selection(ngpu);
    for (int i = 0; i < ngpu; i++) {
        weft_dev *d = NULL;
        tap_begin();
        int rc = weft_device_open((weft_device){WEFT_DEVICE_CUDA, i}, &d);
        char desc[128] = "";
        if (rc == 0)
            weft_device_describe(d, desc, sizeof desc);
        TAP_CHECK(rc == 0 && strstr(desc, "sm_"), "open cuda:%d: %s", i, rc ? weft_last_error() : desc);
        tap_end("open %s", rc == 0 ? desc : "cuda");
        if (rc)
            continue;
        check_arena(d, i);
        check_copies_and_order(d);
        check_counter(d);
        weft_device_close(d);
    }
    weft_dev *d = NULL;
    tap_begin();
    int rc = weft_device_open((weft_device){WEFT_DEVICE_CUDA, ngpu}, &d);
    TAP_CHECK(rc == WEFT_EUNAVAILABLE && strstr(weft_last_error(), "GPU"), "cuda:%d of %d: rc %d, '%s'", ngpu, ngpu,
              rc, weft_last_error());
    tap_end("cuda:%d (one past the visible GPUs) is refused naming the count", ngpu);
    printf("1..%d\n", tap_n);
    return tap_total_failed ? 1 : 0;
}
