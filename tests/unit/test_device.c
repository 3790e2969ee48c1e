/*
 * test_device.c -- the device layer's cpu implementation and the
 * selection rules (runtime/device.h): arena bounds and alignment, the
 * over-allocation message, madvise on an arena page, copies in every
 * direction, the stream/event ordering contract (what a GPU would need is
 * refused on the cpu too), the after-start allocation counter, and
 * run.device = cpu|cuda|auto on this machine, which has no GPU, and the
 * cuda training gate: every condition of the first GPU milestone's
 * configuration and WEFT_GPU_CHECK, and that through the gate run.device =
 * cuda still ends in "no usable GPU" here (exit 69) instead of the refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/ctx.h"
#include "runtime/device.h"
#include "runtime/error.h"

static weft_dev *open_cpu(void)
{
    weft_dev *d = NULL;
    assert_int_equal(weft_device_open((weft_device){WEFT_DEVICE_CPU, 0}, &d), 0);
    return d;
}

static void test_arena(void **state)
{
    (void)state;
    weft_dev *d = open_cpu();
    weft_device_arena *a;
    assert_int_equal(weft_device_arena_new(d, "grads", 4096, &a), 0);
    char *p1, *p2, *p3;
    assert_int_equal(weft_device_arena_alloc(a, 100, 0, (void **)&p1), 0);
    assert_int_equal((uintptr_t)p1 % (uintptr_t)sysconf(_SC_PAGESIZE), 0); /* the arena's start: a page */
    assert_int_equal(weft_device_arena_alloc(a, 1, 0, (void **)&p2), 0);
    assert_int_equal(p2 - p1, WEFT_DEVICE_ALIGN); /* 100 rounded up to the default alignment */
    assert_int_equal(weft_device_arena_alloc(a, 8, 1024, (void **)&p3), 0);
    assert_int_equal(p3 - p1, 1024);
    assert_int_equal(weft_device_arena_used(a), 1032);
    assert_int_equal(weft_device_arena_size(a), 4096);
    for (int i = 0; i < 1032; i++) /* zero like calloc */
        assert_int_equal(p1[i], 0);
    /* Exactly what is left fits; one byte more does not, and says so. */
    char *last;
    assert_int_equal(weft_device_arena_alloc(a, 4096 - 1280, 0, (void **)&last), 0);
    assert_int_equal(last - p1, 1280);
    void *none = NULL;
    assert_int_equal(weft_device_arena_alloc(a, 1, 1, &none), WEFT_ENOMEM);
    assert_null(none);
    weft_device_arena_reset(a);
    assert_int_equal(weft_device_arena_alloc(a, 5000, 0, &none), WEFT_ENOMEM);
    const char *msg = weft_last_error();
    assert_non_null(strstr(msg, "arena 'grads' on cpu"));
    assert_non_null(strstr(msg, "5000 bytes asked with 4096 of 4096 left"));
    assert_int_equal(weft_device_arena_alloc(a, 8, 3, &none), WEFT_EINVAL);
    assert_non_null(strstr(weft_last_error(), "alignment 3"));
    weft_device_arena_free(a);
    weft_device_close(d);
}

/* ZeRO-2/3 give back whole pages of the gradient and parameter buffers
 * (parallel/dp.c): on an arena they read as zeros again. */
static void test_arena_madvise(void **state)
{
    (void)state;
    weft_dev *d = open_cpu();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    weft_device_arena *a;
    float *f;
    assert_int_equal(weft_device_arena_new(d, "params", 4 * page, &a), 0);
    assert_int_equal(weft_device_arena_alloc(a, 4 * page, 0, (void **)&f), 0);
    size_t per = page / sizeof(float);
    for (size_t i = 0; i < 4 * per; i++)
        f[i] = 1.5f;
    assert_int_equal(madvise((char *)f + page, 2 * page, MADV_DONTNEED), 0);
    assert_true(f[0] == 1.5f && f[per - 1] == 1.5f);
    assert_true(f[per] == 0.0f && f[3 * per - 1] == 0.0f); /* given back: zero again */
    assert_true(f[3 * per] == 1.5f && f[4 * per - 1] == 1.5f);
    weft_device_arena_free(a);
    weft_device_close(d);
}

static void test_copies(void **state)
{
    (void)state;
    weft_dev *d = open_cpu();
    weft_device_arena *a;
    assert_int_equal(weft_device_arena_new(d, "x", 1 << 16, &a), 0);
    float *dev1, *dev2, *host;
    assert_int_equal(weft_device_arena_alloc(a, 1000 * sizeof(float), 0, (void **)&dev1), 0);
    assert_int_equal(weft_device_arena_alloc(a, 1000 * sizeof(float), 0, (void **)&dev2), 0);
    assert_int_equal(weft_device_host_alloc(d, 1000 * sizeof(float), (void **)&host), 0);
    assert_int_equal((uintptr_t)host % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
    float src[1000], back[1000];
    for (int i = 0; i < 1000; i++)
        src[i] = (float)i * 0.25f - 7.0f;
    assert_int_equal(weft_device_copy(d, dev1, src, sizeof src, WEFT_COPY_H2D), 0);
    assert_int_equal(weft_device_copy_async(d, dev2, dev1, sizeof src, WEFT_COPY_D2D, WEFT_STREAM_COMM), 0);
    assert_int_equal(weft_device_stream_sync(d, WEFT_STREAM_COMM), 0);
    assert_int_equal(weft_device_copy(d, host, dev2, sizeof src, WEFT_COPY_D2H), 0);
    memcpy(back, host, sizeof back);
    assert_memory_equal(back, src, sizeof src);
    assert_int_equal(weft_device_copy(d, dev1, src, 0, WEFT_COPY_H2D), 0); /* nothing to do */
    assert_int_equal(weft_device_copy(d, NULL, src, 4, WEFT_COPY_H2D), WEFT_EINVAL);
    assert_non_null(strstr(weft_last_error(), "destination pointer is NULL"));
    assert_int_equal(weft_device_copy_async(d, dev1, src, 4, WEFT_COPY_H2D, (weft_stream)WEFT_NSTREAMS), WEFT_EINVAL);
    assert_non_null(strstr(weft_last_error(), "no stream 3"));
    /* the staging stream (checkpoints' device->host copies) is a stream like the others */
    memset(back, 0, sizeof back);
    assert_int_equal(weft_device_copy_async(d, back, dev2, sizeof src, WEFT_COPY_D2H, WEFT_STREAM_STAGE), 0);
    assert_int_equal(weft_device_stream_sync(d, WEFT_STREAM_STAGE), 0);
    assert_memory_equal(back, src, sizeof src);
    assert_ptr_equal(weft_device_arena_device(a), d);
    weft_device_host_free(d, host, 1000 * sizeof(float));
    weft_device_arena_free(a);
    weft_device_close(d);
}

/* The ordering contract: a copy on the communication stream made to wait
 * for an event recorded after a copy on the compute stream sees its data;
 * an event must be recorded before anything waits on it. */
static void test_streams_events(void **state)
{
    (void)state;
    weft_dev *d = open_cpu();
    weft_device_event *e;
    assert_int_equal(weft_device_event_new(d, &e), 0);
    assert_int_equal(weft_device_stream_wait(d, WEFT_STREAM_COMM, e), WEFT_ESTATE);
    assert_non_null(strstr(weft_last_error(), "never recorded"));
    assert_int_equal(weft_device_event_sync(e), WEFT_ESTATE);
    assert_int_equal(weft_device_event_done(e), WEFT_ESTATE);

    int a[256], b[256], c[256];
    for (int i = 0; i < 256; i++)
        a[i] = i * 3 + 1;
    memset(c, 0, sizeof c);
    assert_int_equal(weft_device_copy_async(d, b, a, sizeof a, WEFT_COPY_D2D, WEFT_STREAM_COMPUTE), 0);
    assert_int_equal(weft_device_event_record(e, WEFT_STREAM_COMPUTE), 0);
    assert_int_equal(weft_device_stream_wait(d, WEFT_STREAM_COMM, e), 0);
    assert_int_equal(weft_device_copy_async(d, c, b, sizeof b, WEFT_COPY_D2H, WEFT_STREAM_COMM), 0);
    assert_int_equal(weft_device_event_sync(e), 0);
    assert_int_equal(weft_device_event_done(e), 1);
    assert_int_equal(weft_device_stream_sync(d, WEFT_STREAM_COMM), 0);
    assert_memory_equal(c, a, sizeof a);
    assert_int_equal(weft_device_event_record(e, (weft_stream)-1), WEFT_EINVAL);
    weft_device_event_free(e);
    weft_device_close(d);
}

static void test_counter(void **state)
{
    (void)state;
    weft_dev *d = open_cpu();
    weft_device_arena *a, *b;
    void *p, *h;
    assert_int_equal(weft_device_arena_new(d, "before", 4096, &a), 0);
    assert_int_equal(weft_device_arena_alloc(a, 64, 0, &p), 0);
    assert_int_equal(weft_device_allocs_after_start(d), 0); /* before start: not counted */
    weft_device_mark_start(d);
    assert_int_equal(weft_device_allocs_after_start(d), 0);
    assert_int_equal(weft_device_copy(d, p, "abc", 4, WEFT_COPY_H2D), 0); /* copies allocate nothing */
    assert_int_equal(weft_device_allocs_after_start(d), 0);
    assert_int_equal(weft_device_arena_alloc(a, 64, 0, &p), 0);
    assert_int_equal(weft_device_allocs_after_start(d), 1);
    assert_int_equal(weft_device_arena_new(d, "after", 4096, &b), 0);
    assert_int_equal(weft_device_allocs_after_start(d), 2);
    assert_int_equal(weft_device_host_alloc(d, 100, &h), 0);
    assert_int_equal(weft_device_allocs_after_start(d), 3);
    assert_int_equal(weft_device_arena_alloc(a, 1 << 20, 0, &p), WEFT_ENOMEM); /* a failure is no allocation */
    assert_int_equal(weft_device_allocs_after_start(d), 3);
    weft_device_host_free(d, h, 100);
    weft_device_arena_free(b);
    weft_device_arena_free(a);
    weft_device_close(d);
}

static weft_config *config_with(const char *device)
{
    const weft_config_key *const tables[] = {weft_runtime_config_keys, NULL};
    weft_config *cfg;
    assert_int_equal(weft_config_new(tables, &cfg), 0);
    if (device)
        assert_int_equal(weft_config_set(cfg, "run.device", device, "test"), 0);
    return cfg;
}

/* This machine has no GPU (tests run without one): cpu is cpu, auto is cpu
 * and says why, cuda is refused with exit 69 and the reason; a value that
 * is none of the three is a configuration error naming it. */
static void test_select_without_gpu(void **state)
{
    (void)state;
    char why[256];
    if (weft_device_cuda_count(why, sizeof why) > 0) {
        skip(); /* a GPU machine: tests/gpu/device_check.c covers it */
        return;
    }
    weft_device where = {WEFT_DEVICE_CUDA, 7};
    char note[512];
    weft_config *cfg = config_with(NULL);
    assert_string_equal(weft_config_str(cfg, "run.device"), "auto");
    assert_int_equal(weft_device_select(cfg, 3, &where, note, sizeof note), 0);
    assert_int_equal(where.kind, WEFT_DEVICE_CPU);
    assert_non_null(strstr(note, "auto: no GPU"));
    assert_int_equal(weft_device_for_training(cfg, 3, &where, note, sizeof note), 0);
    assert_int_equal(where.kind, WEFT_DEVICE_CPU);
    weft_config_free(cfg);

    cfg = config_with("cpu");
    assert_int_equal(weft_device_for_training(cfg, 0, &where, NULL, 0), 0);
    assert_int_equal(where.kind, WEFT_DEVICE_CPU);
    weft_config_free(cfg);

    cfg = config_with("cuda");
    int rc = weft_device_select(cfg, 0, &where, note, sizeof note);
    assert_int_equal(rc, WEFT_EUNAVAILABLE);
    assert_int_equal(weft_exit_code(rc), 69);
    assert_non_null(strstr(weft_last_error(), "run.device = cuda, but this process has no usable GPU"));
    assert_non_null(strstr(weft_last_error(), why)); /* the loader's reason, as weft_device_cuda_count said */
    assert_int_equal(weft_device_for_training(cfg, 0, &where, note, sizeof note), WEFT_EUNAVAILABLE);
    weft_config_free(cfg);

    cfg = config_with(NULL);
    assert_int_equal(weft_config_set(cfg, "run.device", "tpu", "test"), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "tpu"));
    weft_config_free(cfg);

    weft_dev *d = NULL;
    assert_int_equal(weft_device_open((weft_device){WEFT_DEVICE_CUDA, 0}, &d), WEFT_EUNAVAILABLE);
    assert_non_null(strstr(weft_last_error(), "device cuda:0"));
    assert_null(d);
    assert_int_equal(weft_device_open((weft_device){WEFT_DEVICE_CPU, 1}, &d), WEFT_EINVAL);
}

/* The gate's conditions, one at a time from the milestone's job. */
static void test_cuda_gate_conditions(void **state)
{
    (void)state;
    char why[256];
    const weft_device_job milestone = {.world = 1, .tp = 1, .pp = 1, .lora_rank = 0, .precision = "f32",
                                       .family = "gpt2"};
    unsetenv(WEFT_GPU_CHECK_ENV);
    assert_int_equal(weft_device_cuda_training_ok(&milestone, why, sizeof why), 0);
    assert_non_null(strstr(why, "never been verified on a GPU (WEFT_GPU_CHECK=1"));
    setenv(WEFT_GPU_CHECK_ENV, "0", 1);
    assert_int_equal(weft_device_cuda_training_ok(&milestone, why, sizeof why), 0);
    setenv(WEFT_GPU_CHECK_ENV, "1", 1);
    assert_int_equal(weft_device_cuda_training_ok(&milestone, why, sizeof why), 1);
    weft_device_job j = milestone;
    j.family = "llama";
    assert_int_equal(weft_device_cuda_training_ok(&j, why, sizeof why), 1);
    assert_int_equal(weft_device_cuda_training_ok(NULL, why, sizeof why), 0);
    assert_non_null(strstr(why, "not known"));
    static const struct {
        weft_device_job job;
        const char *says;
    } refused[] = {
        {{2, 1, 1, 0, "f32", "gpt2"}, "2 ranks (only 1 rank"},
        {{1, 2, 1, 0, "f32", "gpt2"}, "parallel.tp = 2, parallel.pp = 1"},
        {{1, 1, 2, 0, "f32", "gpt2"}, "parallel.tp = 1, parallel.pp = 2"},
        {{1, 1, 1, 8, "f32", "gpt2"}, "lora.rank = 8 (LoRA"},
        {{1, 1, 1, 0, "bf16", "gpt2"}, "train.precision = bf16 (only f32"},
        {{1, 1, 1, 0, "f32", "mlp"}, "model mlp (only gpt2 and llama"},
        {{1, 1, 1, 0, "f32", NULL}, "model of your own"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(weft_device_cuda_training_ok(&refused[i].job, why, sizeof why), 0);
        if (!strstr(why, refused[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, why, refused[i].says);
    }
    unsetenv(WEFT_GPU_CHECK_ENV);
}

/* On this machine (no GPU): run.device = cuda is refused as not running on
 * CUDA yet while the gate is closed, and, once it is open, fails as any
 * cuda run without a GPU does -- both exit 69, with different messages;
 * auto trains on cpu either way. */
static void test_cuda_gate_without_gpu(void **state)
{
    (void)state;
    char why[256], note[512];
    if (weft_device_cuda_count(why, sizeof why) > 0) {
        skip(); /* a GPU machine: tests/gpu/run.sh trains through the gate */
        return;
    }
    const weft_device_job job = {.world = 1, .tp = 1, .pp = 1, .lora_rank = 0, .precision = "f32", .family = "gpt2"};
    weft_device where;
    weft_config *cfg = config_with("cuda");
    unsetenv(WEFT_GPU_CHECK_ENV);
    int rc = weft_device_for_training_job(cfg, 0, &job, &where, note, sizeof note);
    assert_int_equal(rc, WEFT_EUNAVAILABLE);
    assert_int_equal(weft_exit_code(rc), 69);
    assert_non_null(strstr(weft_last_error(), WEFT_DEVICE_NO_CUDA_TRAINING));
    assert_non_null(strstr(weft_last_error(), "never been verified"));
    assert_null(strstr(weft_last_error(), "no usable GPU"));
    setenv(WEFT_GPU_CHECK_ENV, "1", 1);
    rc = weft_device_for_training_job(cfg, 0, &job, &where, note, sizeof note);
    assert_int_equal(rc, WEFT_EUNAVAILABLE);
    assert_int_equal(weft_exit_code(rc), 69);
    assert_non_null(strstr(weft_last_error(), "run.device = cuda, but this process has no usable GPU"));
    assert_null(strstr(weft_last_error(), WEFT_DEVICE_NO_CUDA_TRAINING));
    /* the caller that does not know the job is refused, gate or not */
    assert_int_equal(weft_device_for_training(cfg, 0, &where, note, sizeof note), WEFT_EUNAVAILABLE);
    assert_non_null(strstr(weft_last_error(), WEFT_DEVICE_NO_CUDA_TRAINING));
    weft_config_free(cfg);
    cfg = config_with(NULL); /* auto */
    assert_int_equal(weft_device_for_training_job(cfg, 0, &job, &where, note, sizeof note), 0);
    assert_int_equal(where.kind, WEFT_DEVICE_CPU);
    assert_non_null(strstr(note, "auto: no GPU"));
    weft_config_free(cfg);
    unsetenv(WEFT_GPU_CHECK_ENV);
}

static void test_names_and_current(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(weft_device_name((weft_device){WEFT_DEVICE_CPU, 0}, buf, sizeof buf), "cpu");
    assert_string_equal(weft_device_name((weft_device){WEFT_DEVICE_CUDA, 3}, buf, sizeof buf), "cuda:3");
    weft_dev *cur = weft_device_current();
    assert_non_null(cur);
    assert_ptr_equal(weft_device_current(), cur); /* the same one every time */
    assert_int_equal(weft_device_where(cur).kind, WEFT_DEVICE_CPU);
    weft_device_describe(cur, buf, sizeof buf);
    assert_non_null(strstr(buf, "cpu ("));
    weft_dev *mine = open_cpu();
    weft_device_use(mine);
    assert_ptr_equal(weft_device_current(), mine);
    weft_device_use(NULL);
    assert_ptr_equal(weft_device_current(), cur);
    weft_device_close(mine);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena),          cmocka_unit_test(test_arena_madvise),
        cmocka_unit_test(test_copies),         cmocka_unit_test(test_streams_events),
        cmocka_unit_test(test_counter),        cmocka_unit_test(test_select_without_gpu),
        cmocka_unit_test(test_names_and_current),
        cmocka_unit_test(test_cuda_gate_conditions), cmocka_unit_test(test_cuda_gate_without_gpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
