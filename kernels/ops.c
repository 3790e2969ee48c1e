/*
 * ops.c -- what both ops tables share (kernels/ops.h): choosing the
 * implementation for a device, and the sticky first error.
 */
#include "kernels/ops.h"
#include "runtime/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int weft_ops_open(weft_dev *d, int max_cols, weft_ops **out)
{
    *out = NULL;
    if (!d)
        return weft_error(WEFT_EINVAL, "weft_ops_open: no device");
    switch (weft_device_where(d).kind) {
    case WEFT_DEVICE_CPU:
        return weft_ops_cpu_new(d, out);
    case WEFT_DEVICE_CUDA:
        return weft_ops_cuda_new(d, max_cols, out);
    }
    return weft_error(WEFT_EINVAL, "weft_ops_open: unknown device kind %d", (int)weft_device_where(d).kind);
}

void weft_ops_close(weft_ops *o)
{
    if (!o)
        return;
    if (o->close)
        o->close(o);
    free(o);
}

int weft_ops_status(const weft_ops *o)
{
    if (!o->status)
        return 0;
    /* Again now: the thread's message may have been replaced since the op
     * failed, and the caller reports weft_last_error. */
    return weft_error(o->status, "%s", o->msg);
}

void weft_ops_clear(weft_ops *o)
{
    o->status = 0;
    o->msg[0] = '\0';
}

int weft_ops_fail(weft_ops *o, int rc, const char *op, const char *fmt, ...)
{
    if (o->status) /* the first failure is the one that explains the rest */
        return rc;
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(o->msg, sizeof o->msg, "op %s: %s", op, what);
    o->status = rc;
    return weft_error(rc, "%s", o->msg);
}
