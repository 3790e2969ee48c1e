/*
 * act_impl.h -- the element math of the activations (GELU, SiLU/SwiGLU),
 * one definition for every build that runs them: ops_impl.h's f64
 * reference and the f32 loops of vexp_impl.h at each vector width. Uses the
 * includer's REAL, R_EXP (x <= 0 only), R_FABS and R_SELECT.
 *
 * No include guard: included once per type or instruction set.
 */

#define GELU_S 0.7978845608028654   /* sqrt(2/pi) */
#define GELU_K 0.044715

/* GELU as x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), which equals
 * x/2 (1 + tanh u) without the cancellation of 1 + tanh u for x << 0.
 * With e = exp(-2|u|) in (0, 1] (never overflows) and q = 1 / (1 + e):
 * sigmoid(2u) = q for u >= 0, e q for u < 0, and
 * sigmoid(2u) (1 - sigmoid(2u)) = e q^2 on both sides. */
static inline REAL gelu(REAL x)
{
    REAL u = (REAL)GELU_S * (x + (REAL)GELU_K * x * x * x);
    REAL e = R_EXP((REAL)-2 * R_FABS(u));
    REAL q = (REAL)1 / ((REAL)1 + e);
    return x * R_SELECT(u >= 0, q, e * q);
}

/* d/dx [x sigmoid(2u)] = sigmoid(2u) + 2 x sigmoid'(2u) du/dx */
static inline REAL gelu_grad(REAL x)
{
    REAL u = (REAL)GELU_S * (x + (REAL)GELU_K * x * x * x);
    REAL du = (REAL)GELU_S * ((REAL)1 + (REAL)(3 * GELU_K) * x * x);
    REAL e = R_EXP((REAL)-2 * R_FABS(u));
    REAL q = (REAL)1 / ((REAL)1 + e);
    return R_SELECT(u >= 0, q, e * q) + (REAL)2 * x * e * q * q * du;
}

/* silu(x) = x sigmoid(x). With e = exp(-|x|) in (0, 1] (R_EXP's domain, and
 * never overflows) and q = 1 / (1 + e): sigmoid(x) = q for x >= 0, e q
 * below, and sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)) = e q^2 on both
 * sides, so silu'(x) = sigmoid(x) + x e q^2. */
static inline REAL silu(REAL x)
{
    REAL e = R_EXP(-R_FABS(x));
    REAL q = (REAL)1 / ((REAL)1 + e);
    return x * R_SELECT(x >= 0, q, e * q);
}

static inline void swiglu_back_elem(REAL *restrict dg, REAL *restrict du, REAL g, REAL u, REAL d)
{
    REAL e = R_EXP(-R_FABS(g));
    REAL q = (REAL)1 / ((REAL)1 + e);
    REAL sig = R_SELECT(g >= 0, q, e * q);
    *dg += d * u * (sig + g * e * q * q);
    *du += d * g * sig;
}

