/*
 * vexp_avx2.c -- the f32 exp loops of vexp_impl.h compiled for
 * AVX2 (8 lanes); no FMA, see vexp_impl.h.
 * vexp.c calls them only when cpu.h says this CPU runs them.
 */
#pragma GCC target("avx2")
#include "kernels/fastmath.h"
#include "kernels/vexp.h"

#define REAL float
#define R_EXP weft_expf
#define R_FABS fabsf
#define R_SELECT weft_selectf
#define VX(name) avx2_##name
#define VX_LANES 8

#include "kernels/act_impl.h"
#include "kernels/vexp_impl.h"

const weft_vexp_ops weft_vexp_avx2 = {
    "avx2", VX(exp_shift), VX(sum_exp), VX(exp_affine), VX(exp_affine_inplace),
    VX(gelu_forward), VX(gelu_backward), VX(swiglu_forward), VX(swiglu_backward),
};
