/*
 * tensor.c -- building and addressing weft_tensor descriptions (tensor.h).
 */
#include "runtime/tensor.h"

#include <stdio.h>

weft_tensor weft_tensor_param(const char *name, weft_shard_spec shard, size_t offset, unsigned flags)
{
    weft_tensor t = {.dtype = WEFT_F32, .ndim = shard.ndim, .device = {WEFT_DEVICE_CPU, 0}, .offset = offset,
                     .shard = shard, .flags = flags};
    snprintf(t.name, sizeof t.name, "%s", name);
    weft_shard_local_shape(&shard, t.shape);
    t.numel = weft_shard_local_numel(&shard);
    return t;
}

void *weft_tensor_at(const weft_tensor *t, void *arena)
{
    if (t->data)
        return t->data;
    return (char *)arena + t->offset * weft_dtype_size(t->dtype);
}

size_t weft_tensor_bytes(const weft_tensor *t) { return t->numel * weft_dtype_size(t->dtype); }
