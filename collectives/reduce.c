/*
 * reduce.c -- element-wise helpers every backend's reductions share:
 * widening bf16/f16 to f32 (and small integers to i64 for AVG) so a sum is
 * accumulated wide and rounded once, narrowing back, and AVG's division.
 */
#include "collectives/backend.h"
#include "collectives/reduce_simd.h"

#include <string.h>

weft_dtype weft_reduce_wide_type(weft_dtype dt, weft_redop op)
{
    if (dt == WEFT_BF16 || dt == WEFT_F16)
        return WEFT_F32;
    if (op == WEFT_AVG && (dt == WEFT_I32 || dt == WEFT_U8))
        return WEFT_I64;
    return dt;
}

void weft_reduce_widen(const void *src, weft_dtype dt, void *dst, weft_dtype wide, size_t n)
{
    if (dt == wide) {
        memmove(dst, src, n * weft_dtype_size(dt));
    } else if (wide == WEFT_F32) {
        weft_half_to_f32(dt, src, dst, n);
    } else if (dt == WEFT_I32) {
        const int32_t *s = src;
        int64_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = s[i];
    } else {
        const uint8_t *s = src;
        int64_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = s[i];
    }
}

void weft_reduce_narrow(const void *src, weft_dtype wide, void *dst, weft_dtype dt, size_t n)
{
    if (dt == wide) {
        memmove(dst, src, n * weft_dtype_size(dt));
    } else if (wide == WEFT_F32) {
        weft_f32_to_half(dt, src, dst, n);
    } else if (dt == WEFT_I32) {
        const int64_t *s = src;
        int32_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = (int32_t)s[i];
    } else {
        const int64_t *s = src;
        uint8_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = (uint8_t)s[i];
    }
}

void weft_reduce_avg_inplace(void *buf, size_t n, weft_dtype dt, int nranks)
{
    switch (dt) {
    case WEFT_F32: {
        float *b = buf;
        /* Multiplying by 1/n is exact only for powers of two; divide so the
         * result is the correctly rounded quotient for every n. */
        for (size_t i = 0; i < n; i++) b[i] /= (float)nranks;
        break;
    }
    case WEFT_F64: {
        double *b = buf;
        for (size_t i = 0; i < n; i++) b[i] /= (double)nranks;
        break;
    }
    case WEFT_I64: {
        int64_t *b = buf;
        for (size_t i = 0; i < n; i++) b[i] /= nranks;
        break;
    }
    case WEFT_I32: {
        int32_t *b = buf;
        for (size_t i = 0; i < n; i++) b[i] /= nranks;
        break;
    }
    case WEFT_U8: {
        uint8_t *b = buf;
        for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(b[i] / nranks);
        break;
    }
    default: /* halves are averaged in their f32 form, before narrowing */
        break;
    }
}

void weft_reduce_finish_wide(weft_request *r)
{
    const weft_op *op = &r->op;
    weft_comm *c = r->comm;
    size_t off = 0, len = op->count, wes = weft_dtype_size(r->wide);
    if (op->kind == WEFT_OP_REDUCE && op->peer != c->rank)
        return;
    if (op->kind == WEFT_OP_REDUCE_SCATTER)
        weft_comm_chunk(op->count, c->size, c->rank, &off, &len);
    char *res = (char *)r->res + off * wes;
    if (op->redop == WEFT_AVG)
        weft_reduce_avg_inplace(res, len, r->wide, c->size);
    if (res != op->recv)
        weft_simd_narrow(res, r->wide, op->recv, op->dtype, len);
}
