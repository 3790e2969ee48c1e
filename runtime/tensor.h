/*
 * tensor.h -- weft_tensor, the one description of a tensor that the model,
 * the optimizer, data parallelism and the checkpoint all share: its name,
 * element type, local shape, the device it lives on, where its elements are
 * stored, how its local piece relates to the global tensor (the shard spec),
 * and what kind of parameter it is (flags).
 *
 * Storage is one of two forms. A tensor may own a pointer (`data`), or live
 * at `offset` elements into an arena its owner holds: a model keeps all its
 * parameters in one flat buffer (and the gradients in a second of the same
 * layout), so a parameter's offset is its place in both, and data
 * parallelism and the optimizer work on ranges of those buffers. The model's
 * parameter tables use the arena form with data = NULL; weft_tensor_at gives
 * the address in a given arena.
 *
 * Letters as in the models: a tensor has at most WEFT_TENSOR_MAX_DIMS
 * dimensions, which is what the shard spec (runtime/shard.h) can split.
 */
#ifndef WEFT_RUNTIME_TENSOR_H
#define WEFT_RUNTIME_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/api.h"
#include "runtime/dtype.h"
#include "runtime/shard.h"

#define WEFT_TENSOR_MAX_DIMS 2
#define WEFT_TENSOR_NAME_MAX 64

/* Where a tensor's elements are: the host, or a GPU (index: its ordinal
 * among the visible ones). The device layer (runtime/device.h) allocates
 * and copies; training runs on the cpu until its step runs on CUDA. */
typedef enum { WEFT_DEVICE_CPU = 0, WEFT_DEVICE_CUDA = 1 } weft_device_kind;
typedef struct weft_device {
    weft_device_kind kind;
    int index;
} weft_device;

/* What a parameter is, for the optimizer, the gradient norm and the
 * checkpoint. */
enum {
    WEFT_TENSOR_TRAINABLE = 1 << 0, /* the optimizer updates it */
    WEFT_TENSOR_DECAY = 1 << 1,     /* weight decay applies (matrices, embeddings) */
    WEFT_TENSOR_TIED = 1 << 2,      /* shared between the first and last pipeline stage
                                     * (a tied embedding): its gradient is summed over
                                     * the mesh's embedding group every step */
    WEFT_TENSOR_TIED_COPY = 1 << 3, /* this rank's is the copy of a tied tensor another
                                     * rank owns: never saved, never counted twice */
};

typedef struct weft_tensor {
    char name[WEFT_TENSOR_NAME_MAX]; /* global name, e.g. "h.3.attn.c_attn.weight" */
    weft_dtype dtype;
    int ndim;
    int64_t shape[WEFT_TENSOR_MAX_DIMS]; /* local: the piece this rank holds */
    weft_device device;
    void *data;                  /* its own storage, or NULL: in its owner's arena */
    size_t offset;               /* arena form: elements from the arena's start */
    size_t numel;                /* elements of the local piece */
    weft_shard_spec shard;       /* local piece -> global tensor */
    unsigned flags;              /* WEFT_TENSOR_* */
} weft_tensor;

/* A parameter of the given shard spec at offset in an f32 arena on the CPU:
 * its local shape from the spec, trainable, decay for matrices. */
WEFT_API weft_tensor weft_tensor_param(const char *name, weft_shard_spec shard, size_t offset, unsigned flags);

/* The address of t's elements: its own data, or arena + offset elements. */
WEFT_API void *weft_tensor_at(const weft_tensor *t, void *arena);

WEFT_API size_t weft_tensor_bytes(const weft_tensor *t);

#endif
