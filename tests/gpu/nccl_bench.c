/*
 * nccl_bench.c -- allreduce on GPU buffers through weft's nccl backend, beside
 * the reference measured in the same run: a device-to-device cudaMemcpy of
 * the same bytes (what one GPU's memory can move), and, on more than one
 * rank, NCCL's bus bandwidth by nccl-tests' definition (2(n-1)/n x algbw).
 * Prints one row per size; run by tests/gpu/run.sh.
 */
#include "weft.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

static double now(void) { return 1e-9 * (double)weft_now_ns(); }

int main(int argc, char **argv)
{
    static const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    weft_ctx *ctx;
    if (weft_init(&argc, argv, keys, &ctx))
        return 1;
    weft_comm_opts o;
    weft_comm_opts_from_config(ctx->config, &o);
    snprintf(o.backend, sizeof o.backend, "nccl");
    weft_comm *c;
    if (weft_comm_world(ctx, &o, &c)) {
        fprintf(stderr, "nccl_bench: %s\n", weft_last_error());
        return 1;
    }
    int n = ctx->size;
    if (ctx->rank == 0)
        printf("# %d rank(s); allreduce f32 sum out of place; reference: cudaMemcpy device-to-device\n"
               "#%12s %10s %10s %10s %12s %12s\n", n, "bytes", "weft_us", "algbw", "busbw", "memcpy_us",
               "memcpy_GB/s");
    for (size_t bytes = 1 << 20; bytes <= (size_t)1 << 30; bytes <<= 2) {
        void *a, *b;
        if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess)
            break;
        cudaMemset(a, 0, bytes);
        int iters = bytes >= (1 << 28) ? 10 : 50;
        for (int w = 0; w < 3; w++)
            weft_comm_allreduce(c, a, b, bytes / 4, WEFT_F32, WEFT_SUM);
        weft_comm_barrier(c);
        double t0 = now();
        for (int i = 0; i < iters; i++)
            weft_comm_allreduce(c, a, b, bytes / 4, WEFT_F32, WEFT_SUM);
        double t = (now() - t0) / iters;
        cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaDeviceSynchronize();
        t0 = now();
        for (int i = 0; i < iters; i++)
            cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaDeviceSynchronize();
        double tm = (now() - t0) / iters;
        double algbw = (double)bytes / t / 1e9;
        if (ctx->rank == 0)
            printf(" %12zu %10.1f %10.1f %10.1f %12.1f %12.1f\n", bytes, t * 1e6, algbw,
                   algbw * 2.0 * (n - 1) / n, tm * 1e6, (double)bytes / tm / 1e9);
        cudaFree(a);
        cudaFree(b);
    }
    weft_comm_free(c);
    weft_finalize(ctx);
    return 0;
}
