/*
 * cudart.h -- the CUDA runtime's entry points, opened once per process.
 *
 * libweft never links libcudart: one library serves machines with and
 * without GPUs. The device layer (device_cuda.c) opens it with dlopen the
 * first time anything asks, resolves every entry point weft calls, and
 * counts the visible GPUs; the nccl backend (collectives/backend_nccl.c)
 * takes the same table instead of opening the runtime a second time, so the
 * process has one runtime, one device count and one reason why not.
 *
 * Declared only where the toolkit's cuda_runtime_api.h was found at build
 * time (WEFT_HAVE_CUDA): the table's types are CUDA's own, so every symbol
 * looked up is type-checked against its declaration.
 */
#ifndef WEFT_RUNTIME_CUDART_H
#define WEFT_RUNTIME_CUDART_H

#ifdef WEFT_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <stddef.h>

/* Every runtime call weft makes, by either user. */
#define WEFT_CUDART_FUNCS(X)                                                                                 \
    X(cudaGetDeviceCount) X(cudaSetDevice) X(cudaGetErrorString) X(cudaMalloc) X(cudaFree)                   \
    X(cudaMallocHost) X(cudaFreeHost) X(cudaMemcpyAsync) X(cudaStreamCreateWithFlags) X(cudaStreamDestroy)   \
    X(cudaStreamSynchronize) X(cudaEventCreateWithFlags) X(cudaEventDestroy) X(cudaEventRecord)              \
    X(cudaStreamWaitEvent) X(cudaEventSynchronize) X(cudaEventQuery) X(cudaDeviceGetAttribute)               \
    X(cudaMemGetInfo) X(cudaPointerGetAttributes) X(cudaMemsetAsync)

typedef struct weft_cudart {
#define WEFT_CUDART_DECLARE(fn) __typeof__(fn) *fn;
    WEFT_CUDART_FUNCS(WEFT_CUDART_DECLARE)
#undef WEFT_CUDART_DECLARE
    int ndevices; /* GPUs visible after CUDA_VISIBLE_DEVICES, >= 1 */
} weft_cudart;

/* The runtime's table, or NULL with why it is unusable copied into why
 * (libcudart not loadable, a symbol missing, no GPU visible). Loaded once
 * (pthread_once); safe from any thread. */
const weft_cudart *weft_cudart_get(char *why, size_t len);
#endif

#endif
