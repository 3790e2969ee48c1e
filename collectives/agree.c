/*
 * agree.c -- weft_comm_any: a MAX allreduce of one int. See agree.h.
 */
#include "collectives/agree.h"

#include <stdint.h>

int weft_comm_any(weft_comm *c, int local, int *any)
{
    int32_t in = local, out = 0;
    int rc = weft_comm_allreduce(c, &in, &out, 1, WEFT_I32, WEFT_MAX);
    *any = out;
    return rc;
}
