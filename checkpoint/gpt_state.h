/*
 * gpt_state.h -- the checkpoint's view of a GPT model trained with data
 * parallelism (and ZeRO-1) and AdamW: the layout and the state (tensors with
 * their shard specs, the flat buffers, the optimizer's ranges) that
 * weft_ckpt_new and weft_ckpt_load take, built from the model, the data-
 * parallel object and the optimizer. Tensor and pipeline parallelism fill
 * in the tp/pp fields and the specs; the checkpoint code does not change.
 */
#ifndef WEFT_CHECKPOINT_GPT_STATE_H
#define WEFT_CHECKPOINT_GPT_STATE_H

#include "checkpoint/ckpt.h"
#include "model/gpt.h"
#include "model/optim.h"
#include "data/loader.h"
#include "parallel/dp.h"
#include "parallel/mesh.h"

typedef struct weft_ckpt_gpt {
    weft_ckpt_layout layout;
    weft_ckpt_state state;
    weft_ckpt_tensor *tensors;
    size_t (*ranges)[2];
} weft_ckpt_gpt;

/* world: the training thread's communicator over every rank; mesh: its
 * DP x TP x PP coordinates (NULL: data parallel only, over dp's group).
 * opt may be NULL (weights only). */
int weft_ckpt_gpt_describe(weft_gpt *m, weft_dp *dp, weft_optim *opt, weft_comm *world, const weft_mesh *mesh,
                           int zero, weft_ckpt_gpt *out);
void weft_ckpt_gpt_free(weft_ckpt_gpt *g);

/* Collective. Load path into the model (and unless weights_only, the
 * optimizer, *step and the training loader's position; the dataset must be
 * the one the checkpoint was trained on). Logs what it resumed from. */
int weft_ckpt_gpt_resume(weft_ckpt_gpt *g, weft_optim *opt, weft_loader *train, const char *path, int weights_only,
                         int64_t *step);

#endif
