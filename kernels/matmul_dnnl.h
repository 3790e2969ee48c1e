/*
 * matmul_dnnl.h -- what kernels.c needs from matmul_dnnl.c beyond
 * kernels.h (setting the thread count oneDNN runs with), and what
 * matmul_dnnl.c needs from bf16.c (rounding, operands' bf16 forms).
 * Internal to kernels/ (not installed).
 */
#ifndef WEFT_KERNELS_MATMUL_DNNL_H
#define WEFT_KERNELS_MATMUL_DNNL_H

#include <stddef.h>
#include <stdint.h>

/* oneDNN (OpenMP) threads for later products, on every calling thread;
 * n < 1: the library's default. */
void weft_matmul_set_threads(int n);

/* out (n) = in (n) rounded to bf16, nearest even. out may alias in's
 * first half (each output element is written after its input is read). */
void weft_bf16_round(uint16_t *out, const float *in, size_t n);

/* The bf16 form of the n floats at p for one product: inside a mirror,
 * the mirror's copy; else rounded now into scratch buffer `slot` (0: A,
 * 1: B; grown on first need). NULL: no memory for the scratch. */
const uint16_t *weft_bf16_operand(const float *p, size_t n, int slot);

/* weft_bf16_operand of the (rows, cols) matrix at p, which also adds its
 * column sums to colsum (unless NULL) as weft_colsum_acc does, in the same
 * read of each row: the backward's dbias. The sums are taken even when
 * the result is NULL. */
const uint16_t *weft_bf16_operand_colsum(const float *p, int rows, int cols, int slot, float *colsum);

/* dbias (OC) += the column sums of dout (N, OC), row by row in order. */
void weft_colsum_acc(float *restrict dbias, const float *restrict dout, int N, int OC);

/* weft_matmul_backward's two products with the output gradient already
 * bf16 (dout16 (N, OC)), for an op that made it so (xent_head.c). Returns
 * the products done, 1 dinp and 2 dweight (either also when NULL); the
 * caller computes any other another way. */
int weft_matmul_backward_bf16(float *dinp, float *dweight, const uint16_t *dout16, const float *inp,
                              const float *weight, int N, int C, int OC);

/* C (M, N) [+]= op(A) (M, K) @ op(B) (K, N) on bf16 operands, each stored
 * densely (A (M, K), or (K, M) when ta; B (K, N), or (N, K) when tb), C f32
 * (M, N): a oneDNN primitive of the product table, so the library's best
 * bf16 kernel (AMX where there is one), made and run on one thread. 1:
 * done; 0: oneDNN cannot (the caller computes it another way). */
int weft_matmul_bf16_dense(float *c, const uint16_t *a, const uint16_t *b, int M, int N, int K, int ta, int tb,
                           int accum);

#endif
