/*
 * norm_residual_impl.h -- LayerNorm and RMSNorm fused with the residual add
 * before them, forward and backward: the pre-norm block's
 *     res = a + b;  out = norm(res)
 * in one sweep over each row, and its backward's
 *     g = dres + norm's input gradient of dout;  da += g;  db += g
 * likewise. Unfused, the step reads and writes the (N, C) residual stream
 * three more times (the add, the norm's own read, and the residual
 * backward's two accumulations after the norm backward's); fused, each row
 * is added, normalised and written while it sits in L1.
 *
 * Compiled twice like ops_impl.h (included by ops_f32.c and ops_f64.c right
 * after it, whose static row helpers it uses). Every sum is taken in the
 * order the unfused ops take it -- the forward runs their row helpers on
 * one row at a time (the add, then the statistics: folding the sum into
 * the add's loop made gcc keep the partial sums in memory, slower than a
 * second pass over the row in L1), and the backward's g is dres + term
 * exactly as the norm backward accumulating into a zeroed gradient that
 * holds dres -- so the fused ops give the unfused ones' results bit for
 * bit, and training with them reproduces the stored losses of tests/train.
 *
 * No include guard: included once per type.
 */

void SFX(weft_layernorm_residual_forward)(REAL *res, REAL *out, REAL *mean, REAL *rstd, const REAL *a,
                                          const REAL *b, const REAL *weight, const REAL *bias, int N, int C)
{
    for (int n = 0; n < N; n++) {
        size_t off = (size_t)n * C;
        REAL *x = res + off;   // (C), in L1 from here on
        row_add(x, a + off, b + off, (size_t)C);
        REAL m = row_sum(x, C) / (REAL)C;
        REAL v = row_sqdev(x, C, m) / (REAL)C;   // two passes, as weft_layernorm_forward
        REAL s = (REAL)1 / R_SQRT(v + (REAL)LN_EPS);
        ln_row(out + off, x, weight, bias, m, s, C);
        mean[n] = m;
        rstd[n] = s;
    }
}

/* One row of the fused backward: g = dres + LayerNorm's input gradient,
 * da += g, db += g; dw, db_ln += the parameters' gradients (both NULL:
 * frozen). The expression for g is ln_back_elem's accumulated onto dres. */
static void ln_res_back_row(REAL *restrict da, REAL *restrict db, REAL *restrict dw, REAL *restrict dbias,
                            const REAL *restrict dy, const REAL *restrict dres, const REAL *restrict x,
                            const REAL *restrict w, REAL mean, REAL rstd, int C)
{
    REAL g_mean, gx_mean;
    ln_back_means(dy, x, w, mean, rstd, C, &g_mean, &gx_mean);
    if (dw) {
        int i = 0;
        for (; i + VB <= C; i += VB)
            for (int k = 0; k < VB; k++) {
                REAL xhat = (x[i + k] - mean) * rstd;
                dbias[i + k] += dy[i + k];
                dw[i + k] += xhat * dy[i + k];
            }
        for (; i < C; i++) {
            REAL xhat = (x[i] - mean) * rstd;
            dbias[i] += dy[i];
            dw[i] += xhat * dy[i];
        }
    }
    int i = 0;
    for (; i + VB <= C; i += VB)
        for (int k = 0; k < VB; k++) {
            REAL xhat = (x[i + k] - mean) * rstd;
            REAL g = dres[i + k] + (w[i + k] * dy[i + k] - g_mean - xhat * gx_mean) * rstd;
            da[i + k] += g;
            db[i + k] += g;
        }
    for (; i < C; i++) {
        REAL xhat = (x[i] - mean) * rstd;
        REAL g = dres[i] + (w[i] * dy[i] - g_mean - xhat * gx_mean) * rstd;
        da[i] += g;
        db[i] += g;
    }
}

void SFX(weft_layernorm_residual_backward)(REAL *da, REAL *db, REAL *dweight, REAL *dbias, const REAL *dout,
                                           const REAL *dres, const REAL *res, const REAL *weight,
                                           const REAL *mean, const REAL *rstd, int N, int C)
{
    if (!dweight || !dbias)   // frozen: both NULL
        dweight = dbias = NULL;
    for (int n = 0; n < N; n++) {
        size_t off = (size_t)n * C;
        ln_res_back_row(da + off, db + off, dweight, dbias, dout + off, dres + off, res + off, weight, mean[n],
                        rstd[n], C);
    }
}

void SFX(weft_rmsnorm_residual_forward)(REAL *res, REAL *out, REAL *rstd, const REAL *a, const REAL *b,
                                        const REAL *weight, int N, int C, double eps)
{
    for (int n = 0; n < N; n++) {
        size_t off = (size_t)n * C;
        row_add(res + off, a + off, b + off, (size_t)C);
        REAL ms = row_dot(res + off, res + off, C) / (REAL)C;
        REAL s = (REAL)1 / R_SQRT(ms + (REAL)eps);
        rms_row(out + off, res + off, weight, s, C);
        rstd[n] = s;
    }
}

/* rms_back_row's gradient, added to dres and then to both inputs */
static void rms_res_back_row(REAL *restrict da, REAL *restrict db, REAL *restrict dw, const REAL *restrict dy,
                             const REAL *restrict dres, const REAL *restrict x, const REAL *restrict w,
                             REAL rstd, int C)
{
    REAL gx_mean = row_dot3(w, dy, x, C) * rstd / (REAL)C;
    if (dw)
        for (int i = 0; i < C; i++)
            dw[i] += x[i] * rstd * dy[i];
    int i = 0;
    for (; i + VB <= C; i += VB)
        for (int k = 0; k < VB; k++) {
            REAL xhat = x[i + k] * rstd;
            REAL g = dres[i + k] + (w[i + k] * dy[i + k] - xhat * gx_mean) * rstd;
            da[i + k] += g;
            db[i + k] += g;
        }
    for (; i < C; i++) {
        REAL xhat = x[i] * rstd;
        REAL g = dres[i] + (w[i] * dy[i] - xhat * gx_mean) * rstd;
        da[i] += g;
        db[i] += g;
    }
}

void SFX(weft_rmsnorm_residual_backward)(REAL *da, REAL *db, REAL *dweight, const REAL *dout, const REAL *dres,
                                         const REAL *res, const REAL *weight, const REAL *rstd, int N, int C)
{
    for (int n = 0; n < N; n++) {
        size_t off = (size_t)n * C;
        rms_res_back_row(da + off, db + off, dweight, dout + off, dres + off, res + off, weight, rstd[n], C);
    }
}
