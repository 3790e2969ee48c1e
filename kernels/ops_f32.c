/*
 * ops_f32.c -- the float instantiation of ops_impl.h: the ops the model
 * trains with. Public names carry no suffix (weft_matmul_forward, ...).
 */
#define REAL float
#define SFX(name) name
#define GEMM cblas_sgemm
#define R_EXP expf
#define R_LOG logf
#define R_SQRT sqrtf
#define R_TANH tanhf

#include "kernels/ops_impl.h"
