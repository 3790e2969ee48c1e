/*
 * test_fused.c -- the norms fused with the residual add
 * (weft_layernorm_residual_*, weft_rmsnorm_residual_*,
 * kernels/norm_residual_impl.h) against independent references:
 *   - forward against a naive loop written here (a + b, then the norm in
 *     double);
 *   - backward against central finite differences of the f64 forward with
 *     L = <out, R> + <res, S>: S is the gradient res gets from the residual
 *     stream (the dres argument), so da and db must both be that plus the
 *     norm's; gradients start at G0 and backward runs twice (proves +=);
 *   - f32 against f64 on the same inputs, tolerances per dtype;
 *   - f32 fused against the unfused calls (residual_forward then the norm;
 *     the norm backward into a gradient holding dres, then
 *     residual_backward) bit for bit: what keeps training's stored losses;
 *   - the frozen form (no parameter gradients) gives the same da, db.
 * C = 12: a vectorised block of 8 and a scalar tail in every row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#define KF_SEED 0x2545F4914F6CDD1Dull
#include "tests/unit/kernel_fixtures.h"

enum { N = 9, C = 12, NC = N * C };
#define RMS_EPS 1e-6

typedef struct {
    int rms;                                      /* 0: LayerNorm, 1: RMSNorm */
    double *a, *b, *w, *bias, *R, *S;             /* inputs; R, S: the loss's weights */
    double *res, *out, *mean, *rstd;              /* forward's results */
} fu_ctx;

static double fu_loss(void *p)
{
    fu_ctx *c = p;
    if (c->rms)
        weft_rmsnorm_residual_forward_f64(c->res, c->out, c->rstd, c->a, c->b, c->w, N, C, RMS_EPS);
    else
        weft_layernorm_residual_forward_f64(c->res, c->out, c->mean, c->rstd, c->a, c->b, c->w, c->bias, N, C);
    double s = 0;
    for (int i = 0; i < NC; i++)
        s += c->out[i] * c->R[i] + c->res[i] * c->S[i];
    return s;
}

static fu_ctx fu_make(int rms)
{
    fu_ctx c = {rms, rnd(NC, 2), rnd(NC, 1), rnd(C, 1), rnd(C, 1), rnd(NC, 1), rnd(NC, 1),
                filled(NC, 0), filled(NC, 0), filled(N, 0), filled(N, 0)};
    for (int i = 0; i < C; i++)
        c.a[i] += 100;   // one row far from zero: LayerNorm's two-pass variance
    return c;
}

static void fu_free(fu_ctx *c)
{
    free(c->a); free(c->b); free(c->w); free(c->bias); free(c->R); free(c->S);
    free(c->res); free(c->out); free(c->mean); free(c->rstd);
}

static void unaccumulate(double *g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        g[i] = (g[i] - G0) / 2;
}

/* the forward in double by hand */
static void fu_reference(const fu_ctx *c, double *res, double *out)
{
    for (int n = 0; n < N; n++) {
        const double *a = c->a + n * C, *b = c->b + n * C;
        double *x = res + n * C, m = 0, v = 0;
        for (int i = 0; i < C; i++) {
            x[i] = a[i] + b[i];
            m += x[i] / C;
        }
        for (int i = 0; i < C; i++)
            v += c->rms ? x[i] * x[i] / C : (x[i] - m) * (x[i] - m) / C;
        double s = 1 / sqrt(v + (c->rms ? RMS_EPS : 1e-5));
        for (int i = 0; i < C; i++)
            out[n * C + i] = c->rms ? x[i] * s * c->w[i] : (x[i] - m) * s * c->w[i] + c->bias[i];
    }
}

static void fu_backward_f64(fu_ctx *c, double *da, double *db, double *dw, double *dbias)
{
    if (c->rms)
        weft_rmsnorm_residual_backward_f64(da, db, dw, c->R, c->S, c->res, c->w, c->rstd, N, C);
    else
        weft_layernorm_residual_backward_f64(da, db, dw, dbias, c->R, c->S, c->res, c->w, c->mean, c->rstd, N, C);
}

static void check_f64(fu_ctx *c, const char *name)
{
    char what[64];
    fu_loss(c);
    double res[NC], out[NC];
    fu_reference(c, res, out);
    assert_true(rel_err(c->res, res, NC) < 1e-15);
    assert_true(rel_err(c->out, out, NC) < 1e-13);
    double *da = filled(NC, G0), *db = filled(NC, G0), *dw = filled(C, G0), *dbias = filled(C, G0);
    for (int k = 0; k < 2; k++)
        fu_backward_f64(c, da, db, dw, dbias);
    unaccumulate(da, NC); unaccumulate(db, NC); unaccumulate(dw, C); unaccumulate(dbias, C);
    snprintf(what, sizeof what, "%s da", name);
    assert_true(fd_check(what, c->a, NC, da, fu_loss, c, 1) < FD_TOL);
    snprintf(what, sizeof what, "%s db", name);
    assert_true(fd_check(what, c->b, NC, db, fu_loss, c, 1) < FD_TOL);
    snprintf(what, sizeof what, "%s dweight", name);
    assert_true(fd_check(what, c->w, C, dw, fu_loss, c, 1) < FD_TOL);
    if (!c->rms) {
        snprintf(what, sizeof what, "%s dbias", name);
        assert_true(fd_check(what, c->bias, C, dbias, fu_loss, c, 1) < FD_TOL);
    }
    free(da); free(db); free(dw); free(dbias);
}

/* The f32 fused ops: against f64, and bit for bit against the unfused calls. */
static void check_f32(fu_ctx *c)
{
    fu_loss(c);   // f64 forward at the unperturbed inputs
    double *da = filled(NC, 0), *db = filled(NC, 0), *dw = filled(C, 0), *dbias = filled(C, 0);
    fu_backward_f64(c, da, db, dw, dbias);
    float *a = to_f32(c->a, NC), *b = to_f32(c->b, NC), *w = to_f32(c->w, C), *bias = to_f32(c->bias, C);
    float *R = to_f32(c->R, NC), *S = to_f32(c->S, NC);
    float res[NC], out[NC], mean[N], rstd[N], fda[NC] = {0}, fdb[NC] = {0}, fdw[C] = {0}, fdbias[C] = {0};
    if (c->rms) {
        weft_rmsnorm_residual_forward(res, out, rstd, a, b, w, N, C, RMS_EPS);
        weft_rmsnorm_residual_backward(fda, fdb, fdw, R, S, res, w, rstd, N, C);
    } else {
        weft_layernorm_residual_forward(res, out, mean, rstd, a, b, w, bias, N, C);
        weft_layernorm_residual_backward(fda, fdb, fdw, fdbias, R, S, res, w, mean, rstd, N, C);
        assert_true(rel_err_f32(fdbias, dbias, C) < 1e-5);
    }
    assert_true(rel_err_f32(out, c->out, NC) < 1e-5);
    assert_true(rel_err_f32(fda, da, NC) < 1e-4);
    assert_true(rel_err_f32(fdb, db, NC) < 1e-4);
    assert_true(rel_err_f32(fdw, dw, C) < 1e-5);

    // the unfused calls the models made before: the same bits
    float ures[NC], uout[NC], umean[N], urstd[N], ug[NC] = {0}, uda[NC] = {0}, udb[NC] = {0};
    float udw[C] = {0}, udbias[C] = {0};
    weft_residual_forward(ures, a, b, NC);
    memcpy(ug, S, sizeof ug);   // the norm's input gradient starts at dres, as in the models
    if (c->rms) {
        weft_rmsnorm_forward(uout, urstd, ures, w, N, C, RMS_EPS);
        weft_rmsnorm_backward(ug, udw, R, ures, w, urstd, N, C);
    } else {
        weft_layernorm_forward(uout, umean, urstd, ures, w, bias, N, C);
        weft_layernorm_backward(ug, udw, udbias, R, ures, w, umean, urstd, N, C);
        assert_memory_equal(mean, umean, sizeof mean);
        assert_memory_equal(fdbias, udbias, sizeof udbias);
    }
    weft_residual_backward(uda, udb, ug, NC);
    assert_memory_equal(res, ures, sizeof res);
    assert_memory_equal(out, uout, sizeof out);
    assert_memory_equal(rstd, urstd, sizeof rstd);
    assert_memory_equal(fda, uda, sizeof fda);
    assert_memory_equal(fdb, udb, sizeof fdb);
    assert_memory_equal(fdw, udw, sizeof fdw);

    // frozen: no parameter gradients, the same input gradients
    float zda[NC] = {0}, zdb[NC] = {0};
    if (c->rms)
        weft_rmsnorm_residual_backward(zda, zdb, NULL, R, S, res, w, rstd, N, C);
    else
        weft_layernorm_residual_backward(zda, zdb, NULL, NULL, R, S, res, w, mean, rstd, N, C);
    assert_memory_equal(zda, fda, sizeof zda);
    assert_memory_equal(zdb, fdb, sizeof zdb);
    free(da); free(db); free(dw); free(dbias);
    free(a); free(b); free(w); free(bias); free(R); free(S);
}

static void test_layernorm_residual(void **state)
{
    (void)state;
    fu_ctx c = fu_make(0);
    check_f64(&c, "layernorm+residual");
    check_f32(&c);
    fu_free(&c);
}

static void test_rmsnorm_residual(void **state)
{
    (void)state;
    fu_ctx c = fu_make(1);
    check_f64(&c, "rmsnorm+residual");
    check_f32(&c);
    fu_free(&c);
}

/* The check can fail: the residual path's gradient left out of db. */
static void test_checker_catches_missing_dres(void **state)
{
    (void)state;
    fu_ctx c = fu_make(0);
    fu_loss(&c);
    double *da = filled(NC, 0), *db = filled(NC, 0), *dw = filled(C, 0), *dbias = filled(C, 0);
    fu_backward_f64(&c, da, db, dw, dbias);
    for (int i = 0; i < NC; i++)
        db[i] -= c.S[i];
    assert_true(fd_check("(expected failure)", c.b, NC, db, fu_loss, &c, 1) > FD_TOL);
    free(da); free(db); free(dw); free(dbias);
    fu_free(&c);
}

int main(void)
{
    weft_kernels_init(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layernorm_residual),
        cmocka_unit_test(test_rmsnorm_residual),
        cmocka_unit_test(test_checker_catches_missing_dres),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
