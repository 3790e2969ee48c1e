/*
 * kernels.c -- the type-independent parts of kernels.h: thread setup (BLAS
 * and oneDNN), gradient-clipping scale, the learning-rate schedule, and the
 * single-core OpenBLAS SGEMM rate that benchmarks print beside their own
 * FLOP/s. The ops themselves are in ops_impl.h (instantiated by
 * ops_f32.c/ops_f64.c) and, for the f32 linear layer, matmul_dnnl.c.
 */
#include "kernels/kernels.h"
#include "kernels/matmul_dnnl.h"

#include <math.h>
#include <stdlib.h>

#include <cblas.h>

#include "runtime/timer.h"

/* Debian's cblas.h declares these; repeated here in case another CBLAS
 * header is picked up (they are OpenBLAS extensions). */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

void weft_kernels_init(int threads)
{
    if (threads >= 1)
        openblas_set_num_threads(threads);
    weft_matmul_set_threads(threads);
}

double weft_clip_scale(double global_norm, double max_norm)
{
    if (max_norm <= 0 || !(global_norm > max_norm))
        return 1.0;
    // the 1e-6 keeps the clipped norm just under max_norm, as torch does
    return max_norm / (global_norm + 1e-6);
}

double weft_lr_at(int64_t step, double max_lr, double min_lr, int64_t warmup, int64_t total)
{
    // linear warm-up: max_lr * (step + 1) / warmup, so step 0 already moves
    // the weights (an lr of exactly 0 would waste the first step) and step
    // warmup - 1 reaches max_lr
    if (step < warmup)
        return max_lr * (double)(step + 1) / (double)warmup;
    if (step >= total)
        return min_lr;
    // cosine from max_lr at step warmup to min_lr at step total
    double progress = (double)(step - warmup) / (double)(total - warmup);
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + cos(M_PI * progress));
}

double weft_sgemm_rate(int M, int N, int K, double seconds)
{
    // out (M, N) = A (M, K) @ B (N, K)^T, the layout of a linear layer's
    // forward; single-threaded whatever the caller set, restored after
    float *a = malloc((size_t)M * K * sizeof(float));
    float *b = malloc((size_t)N * K * sizeof(float));
    float *c = malloc((size_t)M * N * sizeof(float));
    if (!a || !b || !c) {
        free(a); free(b); free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)M * K; i++)
        a[i] = (float)((i * 7) % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++)
        b[i] = (float)((i * 5) % 11) * 0.01f;
    int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
    int64_t t0 = weft_now_ns(), t1;
    long calls = 0;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, a, K, b, K, 0, c, N);
        calls++;
        t1 = weft_now_ns();
    } while (calls < 3 || 1e-9 * (double)(t1 - t0) < seconds);
    openblas_set_num_threads(threads);
    free(a); free(b); free(c);
    return 2.0 * M * N * K * (double)calls / (1e-9 * (double)(t1 - t0));
}
