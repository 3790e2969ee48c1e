/*
 * vexp_sse2.c -- the f32 exp loops of vexp_impl.h compiled for x86-64's
 * baseline (SSE2, 4 lanes): what vexp.c falls back to on a CPU with
 * neither AVX2 nor AVX-512.
 */
#include "kernels/fastmath.h"
#include "kernels/vexp.h"

#define REAL float
#define R_EXP weft_expf
#define R_FABS fabsf
#define R_SELECT weft_selectf
#define VX(name) sse2_##name
#define VX_LANES 8

#include "kernels/act_impl.h"
#include "kernels/vexp_impl.h"

const weft_vexp_ops weft_vexp_sse2 = {
    "sse2", VX(exp_shift), VX(sum_exp), VX(exp_affine), VX(exp_affine_inplace),
    VX(gelu_forward), VX(gelu_backward), VX(swiglu_forward), VX(swiglu_backward),
};
