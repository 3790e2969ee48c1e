/*
 * device.c -- the device layer's common half (runtime/device.h): arenas
 * (a bump allocator over one allocation), the after-start allocation
 * counter, argument checks, events, selection from run.device and the
 * local rank, and the process's current device. What differs between the
 * cpu and cuda is behind the vtable in device_impl.h.
 */
#include "runtime/device_impl.h"
#include "runtime/error.h"
#include "runtime/invariant.h"
#include "runtime/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct weft_device_event {
    weft_dev *d;
    void *ev;
    int recorded;
};

static const weft_device_impl *impl_of(weft_device_kind k)
{
    return k == WEFT_DEVICE_CUDA ? &weft_device_cuda_impl : &weft_device_cpu_impl;
}

const char *weft_device_name(weft_device where, char *buf, size_t len)
{
    if (where.kind == WEFT_DEVICE_CUDA)
        snprintf(buf, len, "cuda:%d", where.index);
    else
        snprintf(buf, len, "cpu");
    return buf;
}

int weft_device_cuda_count(char *why, size_t len)
{
    char scratch[8];
    return weft_device_cuda_impl.count(why ? why : scratch, why ? len : sizeof scratch);
}

int weft_device_open(weft_device where, weft_dev **out)
{
    weft_dev *d = calloc(1, sizeof *d);
    if (!d)
        return weft_error(WEFT_ENOMEM, "device: out of memory");
    d->impl = impl_of(where.kind);
    d->where = where;
    int rc = d->impl->open(d);
    if (rc) {
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void weft_device_close(weft_dev *d)
{
    if (!d)
        return;
    d->impl->close(d);
    free(d);
}

weft_device weft_device_where(const weft_dev *d) { return d->where; }

void weft_device_describe(const weft_dev *d, char *buf, size_t len) { d->impl->describe(d, buf, len); }

/* One more device allocation; counted once the step loop has started. */
static void counted(weft_dev *d)
{
    if (d->started)
        d->allocs_after_start++;
}

void weft_device_mark_start(weft_dev *d) { d->started = 1; }
long weft_device_allocs_after_start(const weft_dev *d) { return d->allocs_after_start; }

/* --- arenas --------------------------------------------------------------- */

/* The arena's invariants (device_impl.h): it belongs to a device and has a
 * name; its backing exists and is aligned to WEFT_DEVICE_ALIGN (cpu: a
 * page); the carved bytes lie inside it. */
int weft_device_arena_check(const weft_device_arena *a)
{
    if (!a || !a->d || !a->name[0])
        return weft_error(WEFT_EINTERNAL, "device arena %s: no %s", a && a->name[0] ? a->name : "(unnamed)",
                          !a ? "arena" : !a->d ? "device" : "name");
    if (!a->base || (uintptr_t)a->base % WEFT_DEVICE_ALIGN)
        return weft_error(WEFT_EINTERNAL, "device arena '%s': backing %p is %s", a->name, (void *)a->base,
                          a->base ? "not aligned to WEFT_DEVICE_ALIGN" : "missing");
    if (a->used > a->size)
        return weft_error(WEFT_EINTERNAL, "device arena '%s': %zu bytes carved from %zu", a->name, a->used, a->size);
    return 0;
}

int weft_device_arena_new(weft_dev *d, const char *name, size_t bytes, weft_device_arena **out)
{
    weft_device_arena *a = calloc(1, sizeof *a);
    if (!a)
        return weft_error(WEFT_ENOMEM, "device: out of memory for arena '%s'", name);
    a->d = d;
    snprintf(a->name, sizeof a->name, "%s", name);
    a->size = bytes;
    int rc = d->impl->mem_alloc(d, bytes ? bytes : 1, (void **)&a->base);
    if (rc) {
        free(a);
        return weft_error(rc, "device arena '%s': %s", name, weft_last_error());
    }
    counted(d);
    WEFT_INVARIANT(weft_device_arena_check(a), "a new arena");
    *out = a;
    return 0;
}

int weft_device_arena_alloc(weft_device_arena *a, size_t bytes, size_t align, void **out)
{
    align = align ? align : WEFT_DEVICE_ALIGN;
    if (align & (align - 1))
        return weft_error(WEFT_EINVAL, "device arena '%s': alignment %zu is not a power of two", a->name, align);
    size_t at = (a->used + align - 1) & ~(align - 1);
    if (at > a->size || bytes > a->size - at) {
        char dev[32];
        return weft_error(WEFT_ENOMEM, "device arena '%s' on %s: %zu bytes asked with %zu of %zu left (aligned to "
                          "%zu): the arena is sized at start; size it for everything it must hold", a->name,
                          weft_device_name(a->d->where, dev, sizeof dev), bytes,
                          at > a->size ? 0 : a->size - at, a->size, align);
    }
    a->used = at + bytes;
    counted(a->d);
    WEFT_INVARIANT(weft_device_arena_check(a), "an arena carving");
    *out = a->base + at;
    return 0;
}

weft_dev *weft_device_arena_device(const weft_device_arena *a) { return a->d; }
size_t weft_device_arena_used(const weft_device_arena *a) { return a->used; }
size_t weft_device_arena_size(const weft_device_arena *a) { return a->size; }
void weft_device_arena_reset(weft_device_arena *a)
{
    a->used = 0;
    WEFT_INVARIANT(weft_device_arena_check(a), "an arena reset");
}

void weft_device_arena_free(weft_device_arena *a)
{
    if (!a)
        return;
    a->d->impl->mem_free(a->d, a->base, a->size ? a->size : 1);
    free(a);
}

/* --- staging, copies, streams, events -------------------------------------- */

int weft_device_host_alloc(weft_dev *d, size_t bytes, void **out)
{
    WEFT_CHECK(d->impl->host_alloc(d, bytes ? bytes : 1, out));
    counted(d);
    return 0;
}

void weft_device_host_free(weft_dev *d, void *p, size_t bytes)
{
    if (p)
        d->impl->host_free(d, p, bytes ? bytes : 1);
}

static int stream_ok(const weft_dev *d, weft_stream s)
{
    if ((int)s < 0 || (int)s >= WEFT_NSTREAMS)
        return weft_error(WEFT_EINVAL, "device %s: no stream %d (compute 0, communication 1, staging 2)", d->impl->name, (int)s);
    return 0;
}

int weft_device_copy_async(weft_dev *d, void *dst, const void *src, size_t bytes, weft_copy_dir dir, weft_stream s)
{
    WEFT_CHECK(stream_ok(d, s));
    if (bytes == 0)
        return 0;
    if (!dst || !src)
        return weft_error(WEFT_EINVAL, "device copy of %zu bytes: %s pointer is NULL", bytes, dst ? "source" : "destination");
    return d->impl->copy(d, dst, src, bytes, dir, s);
}

int weft_device_copy(weft_dev *d, void *dst, const void *src, size_t bytes, weft_copy_dir dir)
{
    WEFT_CHECK(weft_device_copy_async(d, dst, src, bytes, dir, WEFT_STREAM_COMPUTE));
    return d->impl->stream_sync(d, WEFT_STREAM_COMPUTE);
}

int weft_device_stream_sync(weft_dev *d, weft_stream s)
{
    WEFT_CHECK(stream_ok(d, s));
    return d->impl->stream_sync(d, s);
}

void *weft_device_stream_handle(const weft_dev *d, weft_stream s)
{
    return s >= 0 && s < WEFT_NSTREAMS ? d->streams[s] : NULL;
}

int weft_device_event_new(weft_dev *d, weft_device_event **out)
{
    weft_device_event *e = calloc(1, sizeof *e);
    if (!e)
        return weft_error(WEFT_ENOMEM, "device: out of memory for an event");
    e->d = d;
    int rc = d->impl->event_new(d, &e->ev);
    if (rc) {
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void weft_device_event_free(weft_device_event *e)
{
    if (!e)
        return;
    e->d->impl->event_free(e->d, e->ev);
    free(e);
}

int weft_device_event_record(weft_device_event *e, weft_stream s)
{
    WEFT_CHECK(stream_ok(e->d, s));
    WEFT_CHECK(e->d->impl->event_record(e->d, e->ev, s));
    e->recorded = 1;
    return 0;
}

/* Waiting on an event never recorded orders nothing on cuda: a bug in the
 * caller's ordering, refused on every device so the cpu tests catch it. */
static int recorded(const weft_device_event *e, const char *what)
{
    if (!e->recorded)
        return weft_error(WEFT_ESTATE, "device %s: %s on an event never recorded (record it on the stream "
                          "whose work it marks first)", e->d->impl->name, what);
    return 0;
}

int weft_device_stream_wait(weft_dev *d, weft_stream s, weft_device_event *e)
{
    WEFT_CHECK(stream_ok(d, s));
    WEFT_CHECK(recorded(e, "stream wait"));
    return d->impl->stream_wait(d, s, e->ev);
}

int weft_device_event_sync(weft_device_event *e)
{
    WEFT_CHECK(recorded(e, "event synchronize"));
    return e->d->impl->event_sync(e->d, e->ev);
}

int weft_device_event_done(weft_device_event *e)
{
    WEFT_CHECK(recorded(e, "event query"));
    return e->d->impl->event_query(e->d, e->ev);
}

/* --- selection ---------------------------------------------------------------- */

/* The launcher's local rank (mpirun, then srun), else the one MPI found. */
static int launcher_local_rank(int fallback)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        char *end;
        long r = v && *v ? strtol(v, &end, 10) : -1;
        if (v && *v && !*end && r >= 0)
            return (int)r;
    }
    return fallback < 0 ? 0 : fallback;
}

int weft_device_select(const weft_config *cfg, int local_rank, weft_device *out, char *note, size_t len)
{
    const char *want = weft_config_str(cfg, WEFT_DEVICE_KEY);
    *out = (weft_device){WEFT_DEVICE_CPU, 0};
    if (strcmp(want, "cpu") == 0) {
        if (note)
            snprintf(note, len, "run.device = cpu");
        return 0;
    }
    char why[384];
    int n = weft_device_cuda_count(why, sizeof why);
    if (n < 1) {
        if (strcmp(want, "cuda") == 0)
            return weft_error(WEFT_EUNAVAILABLE, "run.device = cuda, but this process has no usable GPU: %s. "
                              "Run on a GPU node, or set run.device = cpu (or auto)", why);
        if (note)
            snprintf(note, len, "run.device = auto: no GPU (%s), cpu", why);
        return 0;
    }
    int lr = launcher_local_rank(local_rank);
    *out = (weft_device){WEFT_DEVICE_CUDA, lr % n};
    if (note)
        snprintf(note, len, "run.device = %s: GPU %d of %d visible (local rank %d modulo the GPUs, after "
                 "CUDA_VISIBLE_DEVICES)", want, lr % n, n, lr);
    return 0;
}

int weft_device_cuda_training_ok(const weft_device_job *job, char *why, size_t len)
{
    const char *gate = getenv(WEFT_GPU_CHECK_ENV);
    if (!job)
        snprintf(why, len, "the job's layout is not known here");
    else if (job->world != 1)
        snprintf(why, len, "%d ranks (only 1 rank may train on cuda yet)", job->world);
    else if (job->tp != 1 || job->pp != 1)
        snprintf(why, len, "parallel.tp = %d, parallel.pp = %d (tensor and pipeline parallelism are not supported "
                 "on cuda yet)", job->tp, job->pp);
    else if (job->lora_rank != 0)
        snprintf(why, len, "lora.rank = %d (LoRA is not supported on cuda yet)", job->lora_rank);
    else if (!job->precision || strcmp(job->precision, "f32") != 0)
        snprintf(why, len, "train.precision = %s (only f32 on cuda yet)", job->precision ? job->precision : "?");
    else if (!job->family || (strcmp(job->family, "gpt2") != 0 && strcmp(job->family, "llama") != 0))
        snprintf(why, len, "model %s (only gpt2 and llama on cuda yet)", job->family ? job->family : "of your own");
    else if (!gate || strcmp(gate, "1") != 0)
        snprintf(why, len, "it has never been verified on a GPU (%s=1, set by tests/gpu/run.sh, runs it)",
                 WEFT_GPU_CHECK_ENV);
    else
        return 1;
    return 0;
}

int weft_device_for_training_job(const weft_config *cfg, int local_rank, const weft_device_job *job,
                                 weft_device *out, char *note, size_t len)
{
    char scratch[512], why[256];
    note = note ? note : scratch;
    len = note == scratch ? sizeof scratch : len;
    int ok = weft_device_cuda_training_ok(job, why, sizeof why);
    /* cuda is refused for what the job asks before a GPU is looked for:
     * the message says what is not supported, on any machine */
    if (!ok && strcmp(weft_config_str(cfg, WEFT_DEVICE_KEY), "cuda") == 0) {
        *out = (weft_device){WEFT_DEVICE_CPU, 0};
        return weft_error(WEFT_EUNAVAILABLE, "run.device = cuda: %s: %s (issue 20). Train with run.device = cpu "
                          "or auto", WEFT_DEVICE_NO_CUDA_TRAINING, why);
    }
    WEFT_CHECK(weft_device_select(cfg, local_rank, out, note, len));
    if (out->kind != WEFT_DEVICE_CUDA || ok)
        return 0;
    snprintf(note, len, "run.device = auto found GPU %d, but %s: %s (issue 20): training on cpu", out->index,
             WEFT_DEVICE_NO_CUDA_TRAINING, why);
    *out = (weft_device){WEFT_DEVICE_CPU, 0};
    return 0;
}

int weft_device_for_training(const weft_config *cfg, int local_rank, weft_device *out, char *note, size_t len)
{
    return weft_device_for_training_job(cfg, local_rank, NULL, out, note, len);
}

/* --- the process's device ----------------------------------------------------- */

static weft_dev *current, *default_cpu;
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;

weft_dev *weft_device_current(void)
{
    pthread_mutex_lock(&current_lock);
    if (!current && !default_cpu && weft_device_open((weft_device){WEFT_DEVICE_CPU, 0}, &default_cpu) != 0)
        weft_bug("device: cannot open the cpu device: %s", weft_last_error());
    weft_dev *d = current ? current : default_cpu;
    pthread_mutex_unlock(&current_lock);
    return d;
}

void weft_device_use(weft_dev *d)
{
    pthread_mutex_lock(&current_lock);
    current = d;
    pthread_mutex_unlock(&current_lock);
}
