/*
 * vexp_avx512.c -- the f32 exp loops of vexp_impl.h compiled for
 * AVX-512F (16 lanes); no FMA contraction, see vexp_impl.h.
 * vexp.c calls them only when cpu.h says this CPU runs them.
 */
#pragma GCC target("avx512f,prefer-vector-width=512")
#include "kernels/fastmath.h"
#include "kernels/vexp.h"

#define REAL float
#define R_EXP weft_expf
#define R_FABS fabsf
#define R_SELECT weft_selectf
#define VX(name) avx512_##name
#define VX_LANES 16

#include "kernels/act_impl.h"
#include "kernels/vexp_impl.h"

const weft_vexp_ops weft_vexp_avx512 = {
    "avx512", VX(exp_shift), VX(sum_exp), VX(exp_affine), VX(exp_affine_inplace),
    VX(gelu_forward), VX(gelu_backward), VX(swiglu_forward), VX(swiglu_backward),
};
