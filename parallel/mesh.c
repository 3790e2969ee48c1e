/*
 * mesh.c -- the DP x TP x PP factorisation of the world and its
 * communicators. See mesh.h for the placement and why.
 */
#include "parallel/mesh.h"
#include "runtime/error.h"

#include <stdio.h>
#include <stdlib.h>

const weft_config_key weft_mesh_config_keys[] = {
    {"parallel.dp", WEFT_CFG_INT, "0", 0, 1 << 20, NULL,
     "data-parallel replicas; 0: the world size / (parallel.tp x parallel.pp)"},
    {"parallel.tp", WEFT_CFG_INT, "1", 1, 1024, NULL,
     "tensor-parallel ranks per layer (adjacent ranks); must divide model.n_head and the vocabulary"},
    {"parallel.pp", WEFT_CFG_INT, "1", 1, 1024, NULL, "pipeline stages; must divide model.n_layer"},
    {"parallel.schedule", WEFT_CFG_ENUM, "1f1b", WEFT_UNBOUNDED, "1f1b|gpipe",
     "pipeline schedule over the micro-batches: 1f1b holds at most parallel.pp micro-batches of "
     "activations, gpipe all of them"},
    WEFT_CONFIG_END,
};

struct weft_mesh {
    weft_mesh_layout l;
    int coord[WEFT_NAXES];
    weft_comm *axis[WEFT_NAXES];
    weft_comm *embed; /* first + last stage, pp > 1 only */
    int tp_spans;     /* some TP group of the job spans nodes */
};

int weft_mesh_layout_from_config(const weft_config *cfg, int world, weft_mesh_layout *out)
{
    int dp = (int)weft_config_int(cfg, "parallel.dp");
    int tp = (int)weft_config_int(cfg, "parallel.tp");
    int pp = (int)weft_config_int(cfg, "parallel.pp");
    if (dp == 0) {
        if (world % (tp * pp) != 0)
            return weft_error(WEFT_ECONFIG,
                              "parallel.tp (%d) x parallel.pp (%d) = %d does not divide the world size %d, so no "
                              "data-parallel size fits: launch a multiple of %d ranks or change the layout",
                              tp, pp, tp * pp, world, tp * pp);
        dp = world / (tp * pp);
    }
    if ((long)dp * tp * pp != world)
        return weft_error(WEFT_ECONFIG,
                          "parallel.dp (%d) x parallel.tp (%d) x parallel.pp (%d) = %ld is not the world size %d: "
                          "their product must equal the number of ranks (leave parallel.dp at 0 to infer it)",
                          dp, tp, pp, (long)dp * tp * pp, world);
    *out = (weft_mesh_layout){.size = {dp, tp, pp}};
    return 0;
}

void weft_mesh_coords_of(const weft_mesh_layout *l, int world_rank, int coord[WEFT_NAXES])
{
    int tp = l->size[WEFT_AXIS_TP], dp = l->size[WEFT_AXIS_DP];
    coord[WEFT_AXIS_TP] = world_rank % tp;
    coord[WEFT_AXIS_DP] = world_rank / tp % dp;
    coord[WEFT_AXIS_PP] = world_rank / (tp * dp);
}

int weft_mesh_world_rank(const weft_mesh_layout *l, const int coord[WEFT_NAXES])
{
    int tp = l->size[WEFT_AXIS_TP], dp = l->size[WEFT_AXIS_DP];
    return coord[WEFT_AXIS_TP] + tp * (coord[WEFT_AXIS_DP] + dp * coord[WEFT_AXIS_PP]);
}

/* Colour of the group along axis a: the rank's other two coordinates. */
static int color_along(const weft_mesh *m, weft_axis a)
{
    int c = 0;
    for (int b = 0; b < WEFT_NAXES; b++)
        if (b != (int)a)
            c = c * m->l.size[b] + m->coord[b];
    return c;
}

static int split_axes(weft_mesh *m, weft_comm *world)
{
    static const char *const names[WEFT_NAXES] = {"dp", "tp", "pp"};
    for (int a = 0; a < WEFT_NAXES; a++)
        WEFT_CHECK(weft_comm_split(world, color_along(m, (weft_axis)a), m->coord[a], names[a], &m->axis[a]));
    int pp = m->l.size[WEFT_AXIS_PP], s = m->coord[WEFT_AXIS_PP];
    int in_embed = pp > 1 && (s == 0 || s == pp - 1);
    return weft_comm_split(world, in_embed ? color_along(m, WEFT_AXIS_PP) : -1, s, "embed", &m->embed);
}

/* Does any TP group span nodes? Its members' node indices differ. */
static int check_tp_nodes(weft_mesh *m, weft_comm *world)
{
    const weft_ctx *ctx = weft_ctx_current();
    int node[2] = {ctx ? ctx->node : 0, ctx ? -ctx->node : 0}; /* max of node and of -node */
    WEFT_CHECK(weft_comm_allreduce(m->axis[WEFT_AXIS_TP], node, node, 2, WEFT_I32, WEFT_MAX));
    int spans = node[0] != -node[1];
    WEFT_CHECK(weft_comm_allreduce(world, &spans, &m->tp_spans, 1, WEFT_I32, WEFT_MAX));
    return 0;
}

int weft_mesh_new(weft_comm *world, const weft_mesh_layout *l, weft_mesh **out)
{
    int world_size = weft_comm_size(world), prod = 1;
    for (int a = 0; a < WEFT_NAXES; a++)
        prod *= l->size[a];
    if (prod != world_size)
        return weft_error(WEFT_EINVAL, "mesh: layout %d x %d x %d does not cover the %d ranks of '%s'",
                          l->size[0], l->size[1], l->size[2], world_size, weft_comm_name(world));
    weft_mesh *m = calloc(1, sizeof *m);
    if (!m)
        return weft_error(WEFT_ENOMEM, "mesh: out of memory");
    m->l = *l;
    weft_mesh_coords_of(l, weft_comm_rank(world), m->coord);
    int rc = split_axes(m, world);
    if (rc == 0)
        rc = check_tp_nodes(m, world);
    if (rc) {
        weft_mesh_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void weft_mesh_free(weft_mesh *m)
{
    if (!m)
        return;
    weft_comm_free(m->embed);
    for (int a = WEFT_NAXES - 1; a >= 0; a--)
        weft_comm_free(m->axis[a]);
    free(m);
}

int weft_mesh_rank(const weft_mesh *m, weft_axis a) { return m->coord[a]; }
int weft_mesh_size(const weft_mesh *m, weft_axis a) { return m->l.size[a]; }
weft_comm *weft_mesh_comm(const weft_mesh *m, weft_axis a) { return m->axis[a]; }
weft_comm *weft_mesh_embed_comm(const weft_mesh *m) { return m->embed; }
int weft_mesh_tp_spans_nodes(const weft_mesh *m) { return m->tp_spans; }
const weft_mesh_layout *weft_mesh_layout_of(const weft_mesh *m) { return &m->l; }

void weft_mesh_describe(const weft_mesh *m, char *buf, size_t cap)
{
    snprintf(buf, cap, "dp %d x tp %d x pp %d (this rank: dp %d, tp %d, pp %d)", m->l.size[0], m->l.size[1],
             m->l.size[2], m->coord[0], m->coord[1], m->coord[2]);
}
