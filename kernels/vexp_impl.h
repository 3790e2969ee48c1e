/*
 * vexp_impl.h -- the loops whose cost is exp: softmax rows (flash
 * attention, cross-entropy), the cross-entropy gradient, GELU and SwiGLU.
 * Written once, compiled for each vector width: ops_impl.h includes it for
 * f64 (the reference, 8-element blocks), and vexp_sse2.c, vexp_avx2.c and
 * vexp_avx512.c for f32 with the instruction set of their file, from which
 * vexp.c picks the widest this CPU runs.
 *
 * The includer defines REAL, R_EXP, R_FABS, R_SELECT, VX(name) (the names
 * of this copy) and VX_LANES (8, or 16 for AVX-512: the fixed inner trip
 * count gcc's -O2 vectoriser needs, see ops_impl.h), and includes
 * act_impl.h first.
 *
 * Every copy does the same arithmetic in the same order -- element-wise
 * operations, and sums kept in 8 partial sums whatever the width (a 16-wide
 * block adds its two halves into them one after the other, as two 8-wide
 * blocks would) -- and the files are compiled without FMA contraction
 * (-std=c11), so each instruction set gives the same bits: training's
 * results do not depend on the CPU that ran them.
 *
 * No include guard: included once per copy.
 */

/* x[i] = exp(x[i] - shift) */
static void VX(exp_shift)(REAL *restrict x, int n, REAL shift)
{
    int i = 0;
    for (; i + VX_LANES <= n; i += VX_LANES)
        for (int k = 0; k < VX_LANES; k++)
            x[i + k] = R_EXP(x[i + k] - shift);
    for (; i < n; i++)
        x[i] = R_EXP(x[i] - shift);
}

/* sum of exp(x[i] - shift), x untouched, in 8 partial sums */
static REAL VX(sum_exp)(const REAL *restrict x, int n, REAL shift)
{
    REAL acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
#if VX_LANES == 16
    for (; i + 16 <= n; i += 16) {
        REAL e[16];
        for (int k = 0; k < 16; k++)
            e[k] = R_EXP(x[i + k] - shift);
        for (int k = 0; k < 8; k++)
            acc[k] += e[k];
        for (int k = 0; k < 8; k++)
            acc[k] += e[k + 8];
    }
#endif
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += R_EXP(x[i + k] - shift);
    REAL s = 0;
    for (; i < n; i++)
        s += R_EXP(x[i] - shift);
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

/* d = exp((x - hi) - lo) * s: the cross-entropy's gradient row (see
 * xent_row_grad in ops_impl.h for why lse comes in two parts) */
static void VX(exp_affine)(REAL *restrict d, const REAL *restrict x, int n, REAL hi, REAL lo, REAL s)
{
    int i = 0;
    for (; i + VX_LANES <= n; i += VX_LANES)
        for (int k = 0; k < VX_LANES; k++)
            d[i + k] = R_EXP((x[i + k] - hi) - lo) * s;
    for (; i < n; i++)
        d[i] = R_EXP((x[i] - hi) - lo) * s;
}

/* the same in place (its own restrict loop) */
static void VX(exp_affine_inplace)(REAL *restrict d, int n, REAL hi, REAL lo, REAL s)
{
    int i = 0;
    for (; i + VX_LANES <= n; i += VX_LANES)
        for (int k = 0; k < VX_LANES; k++)
            d[i + k] = R_EXP((d[i + k] - hi) - lo) * s;
    for (; i < n; i++)
        d[i] = R_EXP((d[i] - hi) - lo) * s;
}

static void VX(gelu_forward)(REAL *restrict out, const REAL *restrict inp, size_t n)
{
    size_t i = 0;
    for (; i + VX_LANES <= n; i += VX_LANES)
        for (int k = 0; k < VX_LANES; k++)
            out[i + k] = gelu(inp[i + k]);
    for (; i < n; i++)
        out[i] = gelu(inp[i]);
}

static void VX(gelu_backward)(REAL *restrict dinp, const REAL *restrict inp, const REAL *restrict dout, size_t n)
{
    size_t i = 0;
    for (; i + VX_LANES <= n; i += VX_LANES)
        for (int k = 0; k < VX_LANES; k++)
            dinp[i + k] += gelu_grad(inp[i + k]) * dout[i + k];
    for (; i < n; i++)
        dinp[i] += gelu_grad(inp[i]) * dout[i];
}

static void VX(swiglu_forward)(REAL *restrict out, const REAL *restrict gate, const REAL *restrict up, size_t n)
{
    size_t i = 0;
    for (; i + VX_LANES <= n; i += VX_LANES)
        for (int k = 0; k < VX_LANES; k++)
            out[i + k] = silu(gate[i + k]) * up[i + k];
    for (; i < n; i++)
        out[i] = silu(gate[i]) * up[i];
}

static void VX(swiglu_backward)(REAL *restrict dgate, REAL *restrict dup, const REAL *restrict gate,
                                const REAL *restrict up, const REAL *restrict dout, size_t n)
{
    size_t i = 0;
    for (; i + VX_LANES <= n; i += VX_LANES)
        for (int k = 0; k < VX_LANES; k++)
            swiglu_back_elem(dgate + i + k, dup + i + k, gate[i + k], up[i + k], dout[i + k]);
    for (; i < n; i++)
        swiglu_back_elem(dgate + i, dup + i, gate[i], up[i], dout[i]);
}
