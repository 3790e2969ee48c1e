/*
 * ops_f64.c -- the double instantiation of ops_impl.h: the same algorithms
 * in float64, for finite-difference gradient checks and as the reference
 * the float ops are compared against. Public names end in _f64.
 */
#define REAL double
#define SFX(name) name##_f64
#define GEMM cblas_dgemm
#define R_EXP exp
#define R_SQRT sqrt
#define R_FABS fabs
#define R_SELECT(c, a, b) ((c) ? (a) : (b))

#include "kernels/ops_impl.h"
#include "kernels/norm_residual_impl.h"
