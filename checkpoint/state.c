/*
 * state.c -- a model, its data parallelism and its optimizer as a
 * checkpoint layout and state (see state.h).
 */
#include "checkpoint/state.h"
#include "runtime/error.h"

#include <stdlib.h>
#include <string.h>

/* Where the model's buffers are: its arena's device (the optimizer's
 * moments are made on the same one, the process's: model/optim.h). */
weft_dev *weft_ckpt_model_device(const weft_model *m)
{
    return m->arena ? weft_device_arena_device(m->arena) : NULL;
}

int weft_ckpt_model_describe(weft_model *m, weft_dp *dp, weft_optim *opt, weft_comm *world, const weft_mesh *mesh,
                             int zero, weft_ckpt_model *out)
{
    memset(out, 0, sizeof *out);
    weft_comm *dpc = weft_dp_comm(dp);
    out->layout = (weft_ckpt_layout){.world = world, .dp_rank = weft_comm_rank(dpc), .dp_size = weft_comm_size(dpc),
                                     .tp_rank = 0, .tp_size = 1, .pp_rank = 0, .pp_size = 1, .zero = zero};
    if (mesh) {
        out->layout.tp_rank = weft_mesh_rank(mesh, WEFT_AXIS_TP);
        out->layout.tp_size = weft_mesh_size(mesh, WEFT_AXIS_TP);
        out->layout.pp_rank = weft_mesh_rank(mesh, WEFT_AXIS_PP);
        out->layout.pp_size = weft_mesh_size(mesh, WEFT_AXIS_PP);
    }
    int ns = weft_dp_nshards(dp);
    out->ranges = calloc((size_t)ns + 1, sizeof *out->ranges);
    if (!out->ranges)
        return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
    size_t total = 0;
    for (int i = 0; i < ns; i++) {
        weft_dp_shard(dp, i, &out->ranges[i][0], &out->ranges[i][1]);
        total += out->ranges[i][1];
    }
    if (opt && total != weft_optim_state_size(opt))
        return weft_error(WEFT_EINTERNAL, "checkpoint: the optimizer holds %zu moments, its shard ranges %zu",
                          weft_optim_state_size(opt), total);
    out->state = (weft_ckpt_state){.params = m->param_data, .n = m->n, .tensors = m->params,
                                   .ntensors = m->nparams, .m = opt ? weft_optim_m(opt) : NULL,
                                   .v = opt ? weft_optim_v(opt) : NULL, .ranges = (const size_t(*)[2])out->ranges,
                                   .nranges = ns, .dev = weft_ckpt_model_device(m)};
    return 0;
}

void weft_ckpt_model_free(weft_ckpt_model *g)
{
    free(g->ranges);
    memset(g, 0, sizeof *g);
}
