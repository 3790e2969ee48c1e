/*
 * state.h -- any model trained with data parallelism (ZeRO or not) and
 * AdamW, as the checkpoint sees it: the layout (the world communicator and
 * this rank's DP x TP x PP coordinates) and the state (the model's
 * parameter table with its shard specs, the flat parameter buffer, the
 * optimizer's moments over the ranges this rank updates) that
 * weft_ckpt_new and weft_ckpt_load take. Nothing here knows which model it
 * is: the tensors' shard specs say everything the file needs.
 */
#ifndef WEFT_CHECKPOINT_STATE_H
#define WEFT_CHECKPOINT_STATE_H

#include "runtime/api.h"
#include "checkpoint/ckpt.h"
#include "model/model.h"
#include "model/optim.h"
#include "parallel/dp.h"
#include "parallel/mesh.h"

typedef struct weft_ckpt_model {
    weft_ckpt_layout layout;
    weft_ckpt_state state;
    size_t (*ranges)[2];
} weft_ckpt_model;

/* world: the training thread's communicator over every rank; mesh: its
 * DP x TP x PP coordinates (NULL: data parallel only, over dp's group).
 * opt may be NULL (weights only). */
WEFT_API int weft_ckpt_model_describe(weft_model *m, weft_dp *dp, weft_optim *opt, weft_comm *world,
                                      const weft_mesh *mesh, int zero, weft_ckpt_model *out);
WEFT_API void weft_ckpt_model_free(weft_ckpt_model *g);
/* The device the model's parameters (and frozen tensors) live on, for
 * weft_ckpt_state.dev; NULL for a model without an arena (host memory). */
WEFT_API weft_dev *weft_ckpt_model_device(const weft_model *m);

#endif
