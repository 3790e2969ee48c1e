/*
 * copy_stream.h -- a copy into memory this core will not read again soon
 * (a checkpoint's staging buffer, which the writer thread reads later),
 * and zeroing of a large buffer (the backward's activation gradients,
 * tens of MB read back piece by piece long after): non-temporal stores,
 * so neither reads the destination's lines first nor evicts the cache for
 * them.
 */
#ifndef WEFT_RUNTIME_COPY_STREAM_H
#define WEFT_RUNTIME_COPY_STREAM_H

#include <stddef.h>

/* memcpy(dst, src, n) for non-overlapping buffers; with streaming stores
 * from WEFT_COPY_STREAM_MIN bytes on x86-64 (AVX2 where the CPU has it,
 * else SSE2), ordered before return (sfence). */
enum { WEFT_COPY_STREAM_MIN = 256 << 10 };
void weft_copy_stream(void *dst, const void *src, size_t n);

/* memset(dst, 0, n), with streaming stores from WEFT_COPY_STREAM_MIN bytes
 * on x86-64 (SSE2), ordered before return. */
void weft_zero_stream(void *dst, size_t n);

#endif
