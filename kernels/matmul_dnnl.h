/*
 * matmul_dnnl.h -- what kernels.c needs from matmul_dnnl.c beyond
 * kernels.h: setting the thread count oneDNN runs with. Internal to
 * kernels/ (not installed).
 */
#ifndef WEFT_KERNELS_MATMUL_DNNL_H
#define WEFT_KERNELS_MATMUL_DNNL_H

/* oneDNN (OpenMP) threads for later products, on every calling thread;
 * n < 1: the library's default. */
void weft_matmul_set_threads(int n);

#endif
