/*
 * matmul_dnnl.c -- the f32 linear layer (weft_matmul_forward and
 * weft_matmul_backward of kernels.h) through oneDNN's matmul primitive, the
 * thread count oneDNN runs with, and the f32 GEMM rates the trainer and the
 * benchmarks divide by (weft_matmul_rate, weft_matmul_peak).
 *
 * Why oneDNN: its JIT kernels pick the CPU's best instructions at run time
 * (AVX-512, and for bf16 avx512_bf16/AMX) and it is the library the bf16
 * path will need; the f32 linear layers are most of a CPU step's FLOPs.
 * The f64 ops stay on CBLAS (ops_f64.c): they are the reference the f32
 * ops are tested against, so they must not share this code, and oneDNN's
 * CPU matmul has no f64. Attention's many small per-head products stay on
 * CBLAS too (ops_impl.h) until a fused attention kernel replaces them.
 *
 * Every product is C (M, N) [+]= op(A) (M, K) @ op(B) (K, N) [+ bias (N)],
 * row-major, A or B read transposed in place through strides:
 *   forward          out (N, OC) = inp (N, C) @ weight^T (C, OC) + bias   (bias in the primitive)
 *   backward data    dinp (N, C) += dout (N, OC) @ weight (OC, C)         (a sum post-op)
 *   backward weight  dweight (OC, C) += dout^T (OC, N) @ inp (N, C)       (a sum post-op)
 * and dbias (OC) += the column sums of dout, a plain loop.
 *
 * Each distinct product (shape, transposes, bias, accumulate) gets a
 * primitive on first use, kept in a fixed table for the life of the
 * process with its memory objects and its scratchpad (user mode, so the
 * library allocates none per call): the first step creates them, later
 * steps only point the memory objects at the caller's arrays and execute.
 * oneDNN 2.6's dnnl_primitive_execute itself still builds a small map of
 * its arguments on the heap on every call; tests/mpi/noalloc_step.c counts
 * those apart from weft's own allocations and checks they do not grow.
 * A product the table has no room for, or that oneDNN refuses, runs
 * through cblas_sgemm instead, with a warning once.
 *
 * Precision (weft_matmul_set_precision): in f32 every operand is f32. In
 * bf16, A and B are bf16 -- a weight's bf16 mirror, or the floats rounded
 * into scratch for this call (bf16.c) -- and the product accumulates and
 * writes f32 (C, bias and the sum post-op stay f32): oneDNN 2.6 runs
 * bf16 x bf16 -> f32 with its brgemm kernels on avx512_bf16, for every
 * transpose the three directions use.
 *
 * Threads: Debian's oneDNN uses OpenMP; it runs with the thread count
 * weft_kernels_init set, applied on whichever thread calls (OpenMP's count
 * is per thread). Calls are serialised by one mutex (the table and its
 * memory objects are shared); a rank trains on one thread anyway.
 */
#include "kernels/kernels.h"
#include "kernels/matmul_dnnl.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <dnnl.h>
#include <omp.h>

#define MAX_PRODUCTS 96 /* distinct shapes: ~4 per layer kind x 3 directions, x micro-batch sizes,
                         * and 3 per head size for bf16 attention's tiles */

/* C (M, N) [+]= op(A) @ op(B) [+ bias]: what identifies a primitive. */
typedef struct {
    int M, N, K;
    int ta, tb;       /* A stored (K, M) / B stored (N, K), read transposed */
    int bias, accum;  /* bias (N) added / C accumulated into (beta = 1) */
    int bf16;         /* A and B bf16 (C f32), else all f32 */
} shape;

typedef struct {
    shape s;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, bias, c, scratch;
    dnnl_exec_arg_t args[5];
    int nargs;
} product;

static struct {
    pthread_mutex_t mu;
    int ready, failed;        /* engine and stream made / could not be */
    int threads;              /* what weft_kernels_init asked for (0: the library's default) */
    int bf16;                 /* weft_matmul_set_precision(WEFT_BF16) */
    int warned_bf16;          /* told once that a bf16 product ran in f32 */
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    product table[MAX_PRODUCTS];
    int n;
    int warned;
} dn = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* --- threads ---------------------------------------------------------------- */

void weft_matmul_set_threads(int n)
{
    pthread_mutex_lock(&dn.mu);
    dn.threads = n >= 1 ? n : 0;
    pthread_mutex_unlock(&dn.mu);
    if (n >= 1)
        omp_set_num_threads(n);
}

/* OpenMP's thread count belongs to the calling thread: apply ours to
 * whichever thread runs a product (a no-op once it is set there). */
static void apply_threads(void)
{
    if (dn.threads >= 1 && omp_get_max_threads() != dn.threads)
        omp_set_num_threads(dn.threads);
}

int weft_matmul_threads(void)
{
    return dn.threads >= 1 ? dn.threads : omp_get_max_threads();
}

/* --- primitives ------------------------------------------------------------ */

static int engine_ready(void)
{
    if (!dn.ready && !dn.failed) {
        dn.failed = dnnl_engine_create(&dn.engine, dnnl_cpu, 0) != dnnl_success ||
                    dnnl_stream_create(&dn.stream, dn.engine, dnnl_stream_default_flags) != dnnl_success;
        dn.ready = !dn.failed;
    }
    return dn.ready;
}

static void md_2d(dnnl_memory_desc_t *md, int rows, int cols, int transposed, dnnl_data_type_t dt)
{
    /* (rows, cols) as the product reads it; transposed: stored (cols, rows) */
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {transposed ? 1 : cols, transposed ? rows : 1};
    dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

static void product_free(product *p)
{
    dnnl_memory_t *mems[] = {&p->a, &p->b, &p->bias, &p->c, &p->scratch};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (*mems[i])
            dnnl_memory_destroy(*mems[i]);
    if (p->prim)
        dnnl_primitive_destroy(p->prim);
    memset(p, 0, sizeof *p);
}

static dnnl_status_t make_memory(product *p, dnnl_memory_t *m, const dnnl_memory_desc_t *md, int arg,
                                 void *handle)
{
    dnnl_status_t st = dnnl_memory_create(m, md, dn.engine, handle);
    if (st == dnnl_success)
        p->args[p->nargs++] = (dnnl_exec_arg_t){arg, *m};
    return st;
}

/* The primitive descriptor of s: bias in the primitive, accumulation as a
 * sum post-op, the scratchpad the caller's (created with the product). */
static dnnl_status_t describe(const shape *s, dnnl_primitive_desc_t *pd)
{
    dnnl_memory_desc_t a, b, bias, c;
    dnnl_data_type_t in = s->bf16 ? dnnl_bf16 : dnnl_f32;
    md_2d(&a, s->M, s->K, s->ta, in);
    md_2d(&b, s->K, s->N, s->tb, in);
    md_2d(&bias, 1, s->N, 0, dnnl_f32);
    md_2d(&c, s->M, s->N, 0, dnnl_f32);
    dnnl_matmul_desc_t desc;
    dnnl_status_t st = dnnl_matmul_desc_init(&desc, &a, &b, s->bias ? &bias : NULL, &c);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    if (st == dnnl_success)
        st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success && s->accum) {
        st = dnnl_post_ops_create(&ops);
        if (st == dnnl_success)
            st = dnnl_post_ops_append_sum(ops, 1.0f);
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(attr, ops);
    }
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &desc, attr, dn.engine, NULL);
    if (ops)
        dnnl_post_ops_destroy(ops);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return st;
}

/* Make the primitive of s and its memory objects (data pointers set per call). */
static dnnl_status_t product_init(product *p, const shape *s)
{
    memset(p, 0, sizeof *p);
    p->s = *s;
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = describe(s, &pd);
    if (st != dnnl_success)
        return st;
    st = dnnl_primitive_create(&p->prim, pd);
    const dnnl_memory_desc_t *q[] = {
        dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
        dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
        dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1),
        dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0),
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0),
    };
    if (st == dnnl_success)
        st = make_memory(p, &p->a, q[0], DNNL_ARG_SRC, DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = make_memory(p, &p->b, q[1], DNNL_ARG_WEIGHTS, DNNL_MEMORY_NONE);
    if (st == dnnl_success && s->bias)
        st = make_memory(p, &p->bias, q[2], DNNL_ARG_BIAS, DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = make_memory(p, &p->c, q[3], DNNL_ARG_DST, DNNL_MEMORY_NONE);
    if (st == dnnl_success && q[4] && dnnl_memory_desc_get_size(q[4]) > 0)
        st = make_memory(p, &p->scratch, q[4], DNNL_ARG_SCRATCHPAD, DNNL_MEMORY_ALLOCATE);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        product_free(p);
    return st;
}

static dnnl_status_t product_run(product *p, const void *a, const void *b, const float *bias, float *c)
{
    dnnl_memory_set_data_handle(p->a, (void *)a);
    dnnl_memory_set_data_handle(p->b, (void *)b);
    if (p->bias)
        dnnl_memory_set_data_handle(p->bias, (void *)bias);
    dnnl_memory_set_data_handle(p->c, c);
    dnnl_status_t st = dnnl_primitive_execute(p->prim, dn.stream, p->nargs, p->args);
    return st == dnnl_success ? dnnl_stream_wait(dn.stream) : st;
}

/* The cached product of s: found, or made now; NULL when there is no room
 * or oneDNN cannot do it (the caller falls back to CBLAS). */
static product *lookup(const shape *s)
{
    for (int i = 0; i < dn.n; i++)
        if (!memcmp(&dn.table[i].s, s, sizeof *s))
            return &dn.table[i];
    if (!engine_ready() || dn.n == MAX_PRODUCTS)
        return NULL;
    if (product_init(&dn.table[dn.n], s) != dnnl_success)
        return NULL;
    return &dn.table[dn.n++];
}

static void fallback(const shape *s, const float *a, const float *b, const float *bias, float *c)
{
    if (!dn.warned) {
        dn.warned = 1;
        WEFT_WARN("kernels: a matmul of %dx%dx%d runs through CBLAS: %s", s->M, s->N, s->K,
                  !dn.ready ? "oneDNN's CPU engine could not be created"
                  : dn.n == MAX_PRODUCTS ? "the table of oneDNN primitives is full"
                                         : "oneDNN could not make a primitive for it");
    }
    if (bias)
        for (int m = 0; m < s->M; m++)
            memcpy(c + (size_t)m * s->N, bias, (size_t)s->N * sizeof *c);
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->M, s->N,
                s->K, 1, a, s->ta ? s->M : s->K, b, s->tb ? s->K : s->N, bias || s->accum ? 1 : 0, c, s->N);
}

/* The bf16 product of s on operands already in bf16; 0 when oneDNN has
 * no primitive for it (told once). */
static int run_bf16(const shape *s, const uint16_t *a16, const uint16_t *b16, const float *bias, float *c)
{
    shape h = *s;
    h.bf16 = 1;
    product *p = a16 && b16 ? lookup(&h) : NULL;
    if (p && product_run(p, a16, b16, bias, c) == dnnl_success)
        return 1;
    if (!dn.warned_bf16) {
        dn.warned_bf16 = 1;
        WEFT_WARN("kernels: a bf16 matmul of %dx%dx%d runs in f32: %s", s->M, s->N, s->K,
                  !a16 || !b16 ? "no memory to round its operands into" : "oneDNN could not make a bf16 primitive");
    }
    return 0;
}

/* The f32 product of s (oneDNN, else CBLAS); the caller holds dn.mu. */
static void run_f32(const shape *s, const float *a, const float *b, const float *bias, float *c)
{
    product *p = lookup(s);
    if (!p || product_run(p, a, b, bias, c) != dnnl_success)
        fallback(s, a, b, bias, c);
}

/* In bf16: A and B as bf16 (mirrors or rounded now), else f32. */
static void gemm(const shape *s, const float *a, const float *b, const float *bias, float *c)
{
    pthread_mutex_lock(&dn.mu);
    apply_threads();
    if (!dn.bf16 ||
        !run_bf16(s, weft_bf16_operand(a, (size_t)s->M * s->K, 0), weft_bf16_operand(b, (size_t)s->K * s->N, 1),
                  bias, c))
        run_f32(s, a, b, bias, c);
    pthread_mutex_unlock(&dn.mu);
}

/* --- the ops of kernels.h ----------------------------------------------------- */

void weft_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                         int OC)
{
    if (N <= 0 || OC <= 0)
        return;
    if (C <= 0) { /* an empty sum: oneDNN refuses K = 0 */
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++)
                out[(size_t)n * OC + o] = bias ? bias[o] : 0;
        return;
    }
    shape s = {.M = N, .N = OC, .K = C, .tb = 1, .bias = bias != NULL};
    gemm(&s, inp, weight, bias, out);
}

/* dbias (OC) += column sums of dout (N, OC), row by row (unit stride) */
void weft_colsum_acc(float *restrict dbias, const float *restrict dout, int N, int OC)
{
    for (int n = 0; n < N; n++) {
        const float *restrict row = dout + (size_t)n * OC;
        int o = 0;
        for (; o + 8 <= OC; o += 8)
            for (int k = 0; k < 8; k++)
                dbias[o + k] += row[o + k];
        for (; o < OC; o++)
            dbias[o] += row[o];
    }
}

/* A product on operands already bf16, each stored densely (ld = its
 * stored width): flash attention's tiles (flash_bf16_impl.h). */
int weft_matmul_bf16_dense(float *c, const uint16_t *a, const uint16_t *b, int M, int N, int K, int ta, int tb,
                           int accum)
{
    shape s = {.M = M, .N = N, .K = K, .ta = ta, .tb = tb, .accum = accum, .bf16 = 1};
    pthread_mutex_lock(&dn.mu);
    /* One thread, made and run so: a tile is about 1 us of work, less than
     * an OpenMP fork and join (with train.threads = 2 on one rank, the
     * tiles on both threads made a bf16 step 7% slower than f32 tiles on
     * BLAS, measured). The caller's count is put back after. */
    int threads = omp_get_max_threads();
    if (threads != 1)
        omp_set_num_threads(1);
    product *p = lookup(&s);
    int ok = p && product_run(p, a, b, NULL, c) == dnnl_success;
    if (threads != 1)
        omp_set_num_threads(threads);
    pthread_mutex_unlock(&dn.mu);
    return ok;
}

/* The backward's two products in bf16 on dout16, the output gradient
 * already bf16: each that runs (its other operand at hand, a primitive for
 * it) is done; returns which: 1 dinp, 2 dweight (either also when absent).
 * Slot 1 holds the weight's bf16 form (its mirror, normally), then inp's.
 * The caller holds dn.mu. */
static int backward_bf16_run(float *dinp, float *dweight, const uint16_t *dout16, const float *inp,
                             const float *weight, int N, int C, int OC)
{
    int done = 0;
    if (dinp) {
        shape s = {.M = N, .N = C, .K = OC, .accum = 1};
        done |= run_bf16(&s, dout16, weft_bf16_operand(weight, (size_t)OC * C, 1), NULL, dinp);
    } else {
        done |= 1;
    }
    if (dweight) {
        shape s = {.M = OC, .N = C, .K = N, .ta = 1, .accum = 1};
        done |= run_bf16(&s, dout16, weft_bf16_operand(inp, (size_t)N * C, 1), NULL, dweight) << 1;
    } else {
        done |= 2;
    }
    return done;
}

int weft_matmul_backward_bf16(float *dinp, float *dweight, const uint16_t *dout16, const float *inp,
                              const float *weight, int N, int C, int OC)
{
    pthread_mutex_lock(&dn.mu);
    apply_threads();
    int done = backward_bf16_run(dinp, dweight, dout16, inp, weight, N, C, OC);
    pthread_mutex_unlock(&dn.mu);
    return done;
}

void weft_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC)
{
    if (N <= 0 || OC <= 0 || C <= 0)
        return;
    pthread_mutex_lock(&dn.mu);
    apply_threads();
    /* In bf16, dout is rounded once for both products (it is A of each):
     * the largest operand a layer has -- the head's (N, V) logit gradient --
     * and dbias's column sums are taken in the same read of it. */
    int done = 0;
    if (dn.bf16) {
        const uint16_t *dout16 = weft_bf16_operand_colsum(dout, N, OC, 0, dbias);
        dbias = NULL; /* summed */
        done = backward_bf16_run(dinp, dweight, dout16, inp, weight, N, C, OC);
    }
    if (dinp && !(done & 1)) { /* dinp (N, C) += dout (N, OC) @ weight (OC, C) */
        shape s = {.M = N, .N = C, .K = OC, .accum = 1};
        run_f32(&s, dout, weight, NULL, dinp);
    }
    if (dweight && !(done & 2)) { /* dweight (OC, C) += dout^T (OC, N) @ inp (N, C); NULL: a frozen weight */
        shape s = {.M = OC, .N = C, .K = N, .ta = 1, .accum = 1};
        run_f32(&s, dout, inp, NULL, dweight);
    }
    pthread_mutex_unlock(&dn.mu);
    if (dbias)
        weft_colsum_acc(dbias, dout, N, OC);
}

/* --- rates ---------------------------------------------------------------------- */

/* FLOP/s of the forward product out (M, N) = A (M, K) @ B (N, K)^T through
 * a primitive of its own (not the table), over about `seconds` (at least 3
 * calls): the mean over the calls, or (best) the fastest single call -- on
 * a shared machine the one least disturbed by other processes. 0 when
 * oneDNN cannot run it or memory is short. */
static double rate_locked(int M, int N, int K, double seconds, int best, int bf16)
{
    float *a = malloc((size_t)M * K * sizeof(float)), *b = malloc((size_t)N * K * sizeof(float));
    float *c = malloc((size_t)M * N * sizeof(float));
    shape s = {.M = M, .N = N, .K = K, .tb = 1, .bf16 = bf16};
    product p;
    double rate = 0;
    if (a && b && c && engine_ready() && product_init(&p, &s) == dnnl_success) {
        for (size_t i = 0; i < (size_t)M * K; i++)
            a[i] = (float)((i * 7) % 13) * 0.01f;
        for (size_t i = 0; i < (size_t)N * K; i++)
            b[i] = (float)((i * 5) % 11) * 0.01f;
        if (bf16) { /* rounded in place: the first halves of a and b hold the bf16 operands */
            weft_bf16_round((uint16_t *)a, a, (size_t)M * K);
            weft_bf16_round((uint16_t *)b, b, (size_t)N * K);
        }
        product_run(&p, a, b, NULL, c); /* warm-up: first-touch, caches */
        int64_t t0 = weft_now_ns(), t = t0, t1, fastest = INT64_MAX;
        long calls = 0;
        do {
            product_run(&p, a, b, NULL, c);
            calls++;
            t1 = weft_now_ns();
            fastest = t1 - t < fastest ? t1 - t : fastest;
            t = t1;
        } while (calls < 3 || 1e-9 * (double)(t1 - t0) < seconds);
        double flop = 2.0 * M * N * K;
        rate = best ? flop / (1e-9 * (double)fastest) : flop * (double)calls / (1e-9 * (double)(t1 - t0));
        product_free(&p);
    }
    free(a); free(b); free(c);
    return rate;
}

double weft_matmul_rate_as(weft_dtype dt, int M, int N, int K, double seconds)
{
    pthread_mutex_lock(&dn.mu);
    apply_threads();
    double r = rate_locked(M, N, K, seconds, 0, dt == WEFT_BF16);
    pthread_mutex_unlock(&dn.mu);
    return r;
}

double weft_matmul_rate(int M, int N, int K, double seconds) { return weft_matmul_rate_as(WEFT_F32, M, N, K, seconds); }

double weft_matmul_peak(double seconds) { return weft_matmul_peak_as(WEFT_F32, seconds); }

double weft_matmul_peak_as(weft_dtype dt, double seconds)
{
    /* oneDNN is at its peak by 1024 on a core; 2048 cost most of the
     * measurement (three calls of 17 GFLOP) and every weft-train start pays
     * it on every rank */
    static const int sizes[] = {1024, 1536};
    const int n = sizeof sizes / sizeof sizes[0];
    double best = 0;
    pthread_mutex_lock(&dn.mu);
    apply_threads();
    for (int i = 0; i < n; i++) {
        double r = rate_locked(sizes[i], sizes[i], sizes[i], seconds / n, 1, dt == WEFT_BF16);
        best = r > best ? r : best;
    }
    pthread_mutex_unlock(&dn.mu);
    return best;
}

/* --- precision ------------------------------------------------------------------ */

int weft_matmul_set_precision(weft_dtype dt)
{
    char why[256];
    if (dt != WEFT_F32 && dt != WEFT_BF16)
        return weft_error(WEFT_EINVAL, "kernels: matmul precision %s: only f32 and bf16", weft_dtype_name(dt));
    if (dt == WEFT_BF16 && !weft_matmul_bf16_supported(why, sizeof why))
        return weft_error(WEFT_EUNSUPPORTED, "kernels: bf16 matmuls: %s", why);
    pthread_mutex_lock(&dn.mu);
    dn.bf16 = dt == WEFT_BF16;
    pthread_mutex_unlock(&dn.mu);
    return 0;
}

weft_dtype weft_matmul_precision(void) { return dn.bf16 ? WEFT_BF16 : WEFT_F32; }
