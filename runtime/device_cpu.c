/*
 * device_cpu.c -- the cpu implementation of the device layer
 * (runtime/device_impl.h): the "device" is the host. Arenas are anonymous
 * page-aligned mmaps, zero on first touch like calloc, so ZeRO's
 * madvise(MADV_DONTNEED) of whole pages (parallel/dp.c) gives pages back
 * and they read as zeros again. Staging buffers are page-aligned memory
 * (nothing to pin). Every copy completes before it returns, so streams need
 * no queue: an event is reached as soon as it is recorded, which keeps the
 * ordering contract of device.h (work after a wait runs after the event's
 * work) without doing anything.
 */
#include "runtime/copy_stream.h"
#include "runtime/device_impl.h"
#include "runtime/error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int cpu_count(char *why, size_t len)
{
    (void)why;
    (void)len;
    return 1;
}

static int cpu_open(weft_dev *d)
{
    if (d->where.index != 0)
        return weft_error(WEFT_EINVAL, "device cpu: there is one cpu device (index 0), not %d", d->where.index);
    return 0;
}

static void cpu_close(weft_dev *d) { (void)d; }

static void cpu_describe(const weft_dev *d, char *buf, size_t len)
{
    (void)d;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(buf, len, "cpu (%ld core%s online)", n, n == 1 ? "" : "s");
}

static int cpu_mem_alloc(weft_dev *d, size_t bytes, void **out)
{
    (void)d;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return weft_error(WEFT_ENOMEM, "cpu: mmap of %zu bytes failed: %s", bytes, strerror(errno));
    *out = p;
    return 0;
}

static void cpu_mem_free(weft_dev *d, void *p, size_t bytes)
{
    (void)d;
    munmap(p, bytes);
}

static int cpu_host_alloc(weft_dev *d, size_t bytes, void **out)
{
    (void)d;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    int e = posix_memalign(out, page, (bytes + page - 1) / page * page);
    if (e)
        return weft_error(WEFT_ENOMEM, "cpu: staging buffer of %zu bytes: %s", bytes, strerror(e));
    return 0;
}

static void cpu_host_free(weft_dev *d, void *p, size_t bytes)
{
    (void)d;
    (void)bytes;
    free(p);
}

static int cpu_copy(weft_dev *d, void *dst, const void *src, size_t bytes, weft_copy_dir dir, weft_stream s)
{
    (void)d;
    (void)dir;
    if (s == WEFT_STREAM_STAGE) /* a checkpoint's staging: read later by the writer thread, not here */
        weft_copy_stream(dst, src, bytes);
    else
        memmove(dst, src, bytes);
    return 0;
}

static int cpu_nop_stream(weft_dev *d, weft_stream s)
{
    (void)d;
    (void)s;
    return 0;
}

/* An event needs no state: a non-NULL token so a missing one is a bug. */
static int cpu_event_new(weft_dev *d, void **ev)
{
    (void)d;
    *ev = (void *)d;
    return 0;
}

static void cpu_event_free(weft_dev *d, void *ev)
{
    (void)d;
    (void)ev;
}

static int cpu_event_record(weft_dev *d, void *ev, weft_stream s)
{
    (void)ev;
    return cpu_nop_stream(d, s);
}

static int cpu_stream_wait(weft_dev *d, weft_stream s, void *ev)
{
    (void)ev;
    return cpu_nop_stream(d, s);
}

static int cpu_event_sync(weft_dev *d, void *ev)
{
    (void)d;
    (void)ev;
    return 0;
}

static int cpu_event_query(weft_dev *d, void *ev)
{
    (void)d;
    (void)ev;
    return 1;
}

const weft_device_impl weft_device_cpu_impl = {
    .name = "cpu",
    .count = cpu_count,
    .open = cpu_open,
    .close = cpu_close,
    .describe = cpu_describe,
    .mem_alloc = cpu_mem_alloc,
    .mem_free = cpu_mem_free,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_host_free,
    .copy = cpu_copy,
    .stream_sync = cpu_nop_stream,
    .event_new = cpu_event_new,
    .event_free = cpu_event_free,
    .event_record = cpu_event_record,
    .stream_wait = cpu_stream_wait,
    .event_sync = cpu_event_sync,
    .event_query = cpu_event_query,
};
