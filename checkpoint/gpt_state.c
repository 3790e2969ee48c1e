/*
 * gpt_state.c -- a GPT model, its data parallelism and its optimizer as a
 * checkpoint layout and state (see gpt_state.h).
 */
#include "checkpoint/gpt_state.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <stdlib.h>
#include <string.h>

int weft_ckpt_gpt_describe(weft_gpt *m, weft_dp *dp, weft_optim *opt, weft_comm *world, const weft_mesh *mesh,
                           int zero, weft_ckpt_gpt *out)
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
    int np = weft_gpt_nparams(m), ns = weft_dp_nshards(dp);
    out->tensors = calloc((size_t)np, sizeof *out->tensors);
    out->ranges = calloc((size_t)ns + 1, sizeof *out->ranges);
    if (!out->tensors || !out->ranges)
        return weft_error(WEFT_ENOMEM, "checkpoint: out of memory");
    for (int i = 0; i < np; i++) {
        const weft_gpt_param *p = weft_gpt_param_at(m, i);
        out->tensors[i] = (weft_ckpt_tensor){p->name, p->offset, p->numel, p->shard, p->tied_copy};
    }
    size_t total = 0;
    for (int i = 0; i < ns; i++) {
        weft_dp_shard(dp, i, &out->ranges[i][0], &out->ranges[i][1]);
        total += out->ranges[i][1];
    }
    if (opt && total != weft_optim_state_size(opt))
        return weft_error(WEFT_EINTERNAL, "checkpoint: the optimizer holds %zu moments, its shard ranges %zu",
                          weft_optim_state_size(opt), total);
    out->state = (weft_ckpt_state){.params = weft_gpt_params(m), .n = weft_gpt_num_params(m), .tensors = out->tensors,
                                   .ntensors = np, .m = opt ? weft_optim_m(opt) : NULL,
                                   .v = opt ? weft_optim_v(opt) : NULL, .ranges = (const size_t(*)[2])out->ranges,
                                   .nranges = ns};
    return 0;
}

void weft_ckpt_gpt_free(weft_ckpt_gpt *g)
{
    free(g->tensors);
    free(g->ranges);
    memset(g, 0, sizeof *g);
}

int weft_ckpt_gpt_resume(weft_ckpt_gpt *g, weft_optim *opt, weft_loader *train, const char *path, int weights_only,
                         int64_t *step)
{
    weft_ckpt_loaded L;
    WEFT_CHECK(weft_ckpt_load(&g->layout, &g->state, path, weights_only ? WEFT_CKPT_WEIGHTS_ONLY : 0, &L));
    int rc = 0;
    uint64_t have = weft_loader_dataset_hash(train);
    if (!weights_only && L.meta.dataset_hash != have)
        rc = weft_error(WEFT_EDATA, "checkpoint %s was trained on dataset %016llx, but data.path gives %016llx: "
                        "resume with the same data, or start from its weights with --init-from", path,
                        (unsigned long long)L.meta.dataset_hash, (unsigned long long)have);
    if (rc == 0 && !weights_only && L.meta.loader_state)
        rc = weft_loader_restore(train, L.meta.loader_state, L.meta.loader_len);
    if (rc == 0 && !weights_only) {
        weft_optim_set_t(opt, L.meta.optim_t);
        *step = L.meta.step;
    }
    if (rc == 0 && weft_comm_rank(g->layout.world) == 0)
        WEFT_INFO("%s %s (step %lld, written by world=%d dp=%d tp=%d pp=%d zero=%d)",
                  weights_only ? "initialised weights from" : "resumed from", path, (long long)L.meta.step, L.world,
                  L.dp, L.tp, L.pp, L.zero);
    weft_ckpt_loaded_free(&L);
    return rc;
}
