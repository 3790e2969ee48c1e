/*
 * ops_f32.c -- the float instantiation of ops_impl.h: the ops the model
 * trains with. Public names carry no suffix (weft_matmul_forward, ...).
 * exp is the vectorisable polynomial of fastmath.h; the loops dominated
 * by it run at the CPU's widest vectors (vexp.h). The linear layer
 * (weft_matmul_forward/backward) is not taken from ops_impl.h but from
 * matmul_dnnl.c (oneDNN); GEMM is what attention's products use in f32
 * (in bf16 the flash tiles run on oneDNN: flash_bf16_impl.h).
 */
#define REAL float
#define SFX(name) name
#define GEMM cblas_sgemm
#define R_EXP weft_expf
#define R_SQRT sqrtf
#define R_FABS fabsf
#define R_SELECT weft_selectf
#define OPS_MATMUL_ELSEWHERE 1
#define OPS_FLASH_BF16 1 /* flash attention's tiles follow weft_matmul_precision (flash_bf16_impl.h) */

#include "kernels/fastmath.h"
#include "kernels/vexp.h"

/* the exp loops at this CPU's widest vectors (vexp.c), not ops_impl.h's copy */
#define EXP_LOOP(name) (weft_vexp()->name)

#include "kernels/ops_impl.h"
#include "kernels/norm_residual_impl.h"
