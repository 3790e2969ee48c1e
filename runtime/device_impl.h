/*
 * device_impl.h -- the vtable behind runtime/device.h, in the spirit of
 * NCCL's transport table: each implementation (device_cpu.c, device_cuda.c)
 * fills one and device.c does everything common (arenas, counting, checks,
 * messages) once. Not a public header.
 *
 * Every function returns 0 or a negative WEFT_E* with weft_error's message
 * set; the implementation names the call, the device and the byte count.
 */
#ifndef WEFT_RUNTIME_DEVICE_IMPL_H
#define WEFT_RUNTIME_DEVICE_IMPL_H

#include "runtime/device.h"

typedef struct weft_device_impl {
    const char *name; /* "cpu", "cuda" */
    /* Devices of this kind visible to the process; 0 and why when none. */
    int (*count)(char *why, size_t len);
    int (*open)(weft_dev *d);   /* make d->streams and d->state */
    void (*close)(weft_dev *d);
    void (*describe)(const weft_dev *d, char *buf, size_t len);
    int (*mem_alloc)(weft_dev *d, size_t bytes, void **out); /* device memory (an arena's backing) */
    void (*mem_free)(weft_dev *d, void *p, size_t bytes);
    int (*host_alloc)(weft_dev *d, size_t bytes, void **out); /* pinned host memory */
    void (*host_free)(weft_dev *d, void *p, size_t bytes);
    int (*copy)(weft_dev *d, void *dst, const void *src, size_t bytes, weft_copy_dir dir, weft_stream s);
    int (*stream_sync)(weft_dev *d, weft_stream s);
    int (*event_new)(weft_dev *d, void **ev);
    void (*event_free)(weft_dev *d, void *ev);
    int (*event_record)(weft_dev *d, void *ev, weft_stream s);
    int (*stream_wait)(weft_dev *d, weft_stream s, void *ev);
    int (*event_sync)(weft_dev *d, void *ev);
    int (*event_query)(weft_dev *d, void *ev); /* 1 done, 0 not yet, <0 error */
} weft_device_impl;

struct weft_dev {
    const weft_device_impl *impl;
    weft_device where;
    void *streams[WEFT_NSTREAMS]; /* the implementation's (cpu: NULL) */
    void *state;                  /* the implementation's */
    int started;                  /* weft_device_mark_start was called */
    long allocs_after_start;
};

/* An arena: [base, base + size) carved in order; [base, base + used) is
 * given out. Checked by weft_device_arena_check at every change. */
struct weft_device_arena {
    weft_dev *d;
    char name[48];
    char *base;
    size_t size, used;
};

/* 0, or WEFT_EINTERNAL naming the broken invariant (runtime/invariant.h). */
int weft_device_arena_check(const weft_device_arena *a);

extern const weft_device_impl weft_device_cpu_impl;
extern const weft_device_impl weft_device_cuda_impl;

#endif
