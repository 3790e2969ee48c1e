/*
 * device_check.c -- the device layer's cuda implementation (runtime/device.h,
 * runtime/device_cuda.c) on a real GPU, one rank per GPU (tests/gpu/run.sh):
 * selection from the local rank and the training refusal while the model
 * has no CUDA kernels; arenas whose carvings are device memory (asked of
 * libcudart itself, linked here) on this rank's GPU, aligned, with the
 * over-allocation message; copies in every direction through pinned
 * staging; the two-stream ordering through an event on buffers large enough
 * that an unordered copy would be caught; the after-start counter; a failed
 * cudaMalloc named with its call, device and bytes.
 */
#include "weft.h"
#include "tests/mpi/mpitap.h"

#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int is_device_memory(const void *p, int device)
{
    struct cudaPointerAttributes a;
    return cudaPointerGetAttributes(&a, p) == cudaSuccess && a.type == cudaMemoryTypeDevice && a.device == device;
}

static void check_selection(weft_ctx *ctx, int ngpu, weft_device *where)
{
    tap_begin();
    char note[512];
    weft_config_set(ctx->config, "run.device", "auto", "device_check");
    int rc = weft_device_select(ctx->config, ctx->local_rank, where, note, sizeof note);
    TAP_CHECK(rc == 0 && where->kind == WEFT_DEVICE_CUDA, "auto on a GPU machine chose %d: %s", (int)where->kind,
              rc ? weft_last_error() : note);
    TAP_CHECK(where->index == ctx->local_rank % ngpu, "local rank %d of %d GPUs got cuda:%d", ctx->local_rank, ngpu,
              where->index);
    weft_device train;
    rc = weft_device_for_training(ctx->config, ctx->local_rank, &train, note, sizeof note);
    TAP_CHECK(rc == 0 && train.kind == WEFT_DEVICE_CPU && strstr(note, "issue 20"),
              "auto trains on cpu with a warning until the kernels exist: rc %d, note '%s'", rc, note);
    weft_config_set(ctx->config, "run.device", "cuda", "device_check");
    rc = weft_device_for_training(ctx->config, ctx->local_rank, &train, note, sizeof note);
    TAP_CHECK(rc == WEFT_EUNAVAILABLE && weft_exit_code(rc) == 69 &&
              strstr(weft_last_error(), "the model's CUDA kernels are not built yet: issue 20"),
              "run.device = cuda refused for training: rc %d, '%s'", rc, weft_last_error());
    tap_end("selection: auto -> cuda:local rank mod %d GPUs; training refuses cuda (exit 69), auto trains on cpu",
            ngpu);
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

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    tap_rank = ctx->rank;
    char why[384];
    int ngpu = weft_device_cuda_count(why, sizeof why);
    if (ngpu < 1) {
        if (ctx->rank == 0)
            printf("not ok 1 - no GPU visible: %s\n", why);
        weft_finalize(ctx);
        return 1;
    }
    weft_device where = {WEFT_DEVICE_CPU, 0};
    check_selection(ctx, ngpu, &where);
    weft_dev *d = NULL;
    tap_begin();
    rc = weft_device_open((weft_device){WEFT_DEVICE_CUDA, ctx->local_rank % ngpu}, &d);
    char desc[128] = "";
    if (rc == 0)
        weft_device_describe(d, desc, sizeof desc);
    TAP_CHECK(rc == 0 && strstr(desc, "sm_"), "open cuda:%d: %s", ctx->local_rank % ngpu,
              rc ? weft_last_error() : desc);
    tap_end("open %s", rc == 0 ? desc : "cuda");
    if (rc == 0) {
        check_arena(d, ctx->local_rank % ngpu);
        check_copies_and_order(d);
        check_counter(d);
        weft_device_close(d);
    }
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
