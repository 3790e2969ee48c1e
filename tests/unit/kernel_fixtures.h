/*
 * kernel_fixtures.h -- helpers shared by the kernel unit tests
 * (test_kernels.c, test_flash.c, test_flash_bf16.c, test_fused.c): a seeded
 * xorshift generator, random and constant f64 buffers, their f32 copies, the
 * relative error of a whole tensor against a reference, the
 * finite-difference gradient check, and flash attention's causal-mask check.
 * Include after cmocka.h; define KF_SEED first to give a file its own
 * sequence. Inline: a file that leaves some unused still compiles warning-free.
 */
#ifndef WEFT_TESTS_KERNEL_FIXTURES_H
#define WEFT_TESTS_KERNEL_FIXTURES_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels/kernels.h"

#define FD_H 1e-5   /* central-difference step (f64) */
#define FD_TOL 1e-6 /* relative error allowed between FD and backward */
#define G0 0.5      /* gradient buffers start here: proves += */

#ifndef KF_SEED
#define KF_SEED 0x9E3779B97F4A7C15ull
#endif

static uint64_t rng = KF_SEED;
static inline double urand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) / 4503599627370496.0 - 1.0;
}

static inline double *rnd(size_t n, double scale)
{
    double *x = malloc(n * sizeof(double));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * urand();
    return x;
}

static inline double *filled(size_t n, double v)
{
    double *x = malloc(n * sizeof(double));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = v;
    return x;
}

static inline float *to_f32(const double *x, size_t n)
{
    float *y = malloc(n * sizeof(float));
    assert_non_null(y);
    for (size_t i = 0; i < n; i++)
        y[i] = (float)x[i];
    return y;
}

/* Largest |a - b| over the largest |b|: relative error of a whole tensor. */
static inline double rel_err(const double *a, const double *b, size_t n)
{
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return d / m;
}

static inline double rel_err_f32(const float *a, const double *b, size_t n)
{
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    return d / m;
}

typedef double (*loss_fn)(void *ctx);

/* Worst relative error between the analytic gradient ana (n) of loss L
 * w.r.t. x and central differences, over every stride-th element. Small
 * gradients are compared on an absolute scale of 1e-2. */
static inline double fd_check(const char *what, double *x, size_t n, const double *ana, loss_fn L,
                       void *ctx, size_t stride)
{
    double worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i += stride) {
        double save = x[i];
        x[i] = save + FD_H;
        double lp = L(ctx);
        x[i] = save - FD_H;
        double lm = L(ctx);
        x[i] = save;
        double num = (lp - lm) / (2 * FD_H);
        double err = fabs(num - ana[i]) / fmax(fmax(fabs(num), fabs(ana[i])), 1e-2);
        if (err > worst) {
            worst = err;
            worst_i = i;
        }
    }
    if (worst > FD_TOL)
        print_message("%s: worst relative error %.3g at element %zu\n", what, worst, worst_i);
    return worst;
}

/* Changing every token from CUT on (q, k and v) leaves the f32 flash
 * forward's outputs before CUT bitwise unchanged and changes the ones
 * after: nothing leaks across the diagonal of any tile (nor, in bf16, from
 * a padded one). */
static inline void flash_causal_check(void)
{
    enum { B = 1, T = 150, NH = 2, HS = 8, C = NH * HS, CUT = 100 };
    float *qkv = malloc(B * T * 3 * C * 4), *o1 = malloc(B * T * C * 4), *o2 = malloc(B * T * C * 4);
    float *lse = malloc(B * NH * T * 4);
    for (int i = 0; i < B * T * 3 * C; i++)
        qkv[i] = (float)urand();
    weft_attention_flash_forward(o1, lse, qkv, B, T, C, NH);
    for (int i = CUT * 3 * C; i < T * 3 * C; i++)
        qkv[i] += 10.0f;
    weft_attention_flash_forward(o2, lse, qkv, B, T, C, NH);
    assert_memory_equal(o1, o2, CUT * C * 4);
    assert_memory_not_equal(o1 + CUT * C, o2 + CUT * C, C * 4);
    free(qkv); free(o1); free(o2); free(lse);
}

#endif
