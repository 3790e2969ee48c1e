/*
 * cuda_load.h -- finds and opens libweft-cuda.so, the CUDA kernels'
 * library (kernels/cuda/cuda_ops.h), for a device of the device layer.
 * libweft never links it (nor the CUDA runtime or cuBLAS), so a machine
 * without CUDA runs the same programs; this is the one place that loads it.
 *
 * Where it looks, first found wins:
 *   1. $WEFT_CUDA_LIB, a path to the library;
 *   2. beside the code that holds libweft: the folder of libweft.so, or of
 *      a program linked with libweft.a, and that folder's ../lib (a build
 *      tree's bin/ -> lib/, an installation's PREFIX/bin -> PREFIX/lib);
 *   3. the dynamic linker's search path ("libweft-cuda.so").
 */
#ifndef WEFT_KERNELS_CUDA_LOAD_H
#define WEFT_KERNELS_CUDA_LOAD_H

#include "kernels/cuda/cuda_ops.h"
#include "runtime/device.h"

#include <stddef.h>

/* The kernels' table, loaded once per process; path (may be NULL) gets the
 * file it came from. WEFT_EUNAVAILABLE naming every place tried when none
 * loads; WEFT_EUNSUPPORTED when the library's table is of another version. */
int weft_cuda_ops_load(const weft_cuda_ops **out, char *path, size_t len);

/* A kernels context on device d's compute stream, with column scratch for
 * up to max_cols columns (the widest norm or bias). d must be a cuda device
 * (WEFT_EINVAL otherwise); CUDA failures are WEFT_EUNAVAILABLE with the
 * library's message. The caller frees it with ops->ctx_free. */
int weft_cuda_kernels_open(weft_dev *d, int max_cols, const weft_cuda_ops **ops, weft_cuda_ctx **ctx);

#endif
