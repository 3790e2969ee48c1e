/*
 * mesh.h -- the DP x TP x PP device mesh: how the world's ranks factor into
 * data-parallel replicas, tensor-parallel groups and pipeline stages, each
 * rank's coordinates, and one communicator per axis.
 *
 * Rank placement: tensor-parallel ranks are adjacent (world rank = tp +
 * TP * (dp + DP * pp)), so a TP group -- the chattiest, two allreduces per
 * block each way -- stays within a node whenever TP divides the ranks per
 * node; pipeline stages are the slowest-varying coordinate, so stage-to-
 * stage traffic (point-to-point, once per micro-batch) is what crosses
 * nodes first.
 *
 *   weft_mesh_layout_from_config   parallel.dp/tp/pp (dp inferred when 0)
 *   weft_mesh_new                  splits the world: one comm per axis
 *
 * Per axis a: weft_mesh_rank(m, a) in [0, weft_mesh_size(m, a)), and
 * weft_mesh_comm(m, a) the group of ranks that differ only in coordinate a
 * (ordered by it). The embedding group links the first and the last stage of
 * one (dp, tp) pipeline, which both hold the tied token embedding.
 */
#ifndef WEFT_PARALLEL_MESH_H
#define WEFT_PARALLEL_MESH_H

#include "runtime/api.h"

#include <stddef.h>

#include "collectives/comm.h"
#include "runtime/config.h"

typedef enum { WEFT_AXIS_DP = 0, WEFT_AXIS_TP, WEFT_AXIS_PP, WEFT_NAXES } weft_axis;

typedef struct weft_mesh_layout {
    int size[WEFT_NAXES]; /* DP, TP, PP: their product is the world size */
} weft_mesh_layout;

typedef struct weft_mesh weft_mesh;

/* parallel.dp, parallel.tp, parallel.pp, parallel.schedule. */
extern WEFT_API const weft_config_key weft_mesh_config_keys[];

/* The layout the configuration asks for on world ranks; parallel.dp = 0
 * means world / (tp * pp). WEFT_ECONFIG naming the keys when the product is
 * not the world size. */
WEFT_API int weft_mesh_layout_from_config(const weft_config *cfg, int world, weft_mesh_layout *out);

/* Coordinates of a world rank under a layout, and back. */
WEFT_API void weft_mesh_coords_of(const weft_mesh_layout *l, int world_rank, int coord[WEFT_NAXES]);
WEFT_API int weft_mesh_world_rank(const weft_mesh_layout *l, const int coord[WEFT_NAXES]);

/* Collective over world: split it into the axes' communicators. */
WEFT_API int weft_mesh_new(weft_comm *world, const weft_mesh_layout *l, weft_mesh **out);
/* Collective (frees the communicators). */
WEFT_API void weft_mesh_free(weft_mesh *m);

WEFT_API int weft_mesh_rank(const weft_mesh *m, weft_axis a);
WEFT_API int weft_mesh_size(const weft_mesh *m, weft_axis a);
WEFT_API weft_comm *weft_mesh_comm(const weft_mesh *m, weft_axis a);
/* First and last stage of this rank's pipeline (NULL on other stages and
 * when there is a single stage): where the tied embedding's gradient is
 * summed. Rank 0 in it is the first stage. */
WEFT_API weft_comm *weft_mesh_embed_comm(const weft_mesh *m);
WEFT_API const weft_mesh_layout *weft_mesh_layout_of(const weft_mesh *m);
/* 1 when some tensor-parallel group of the job spans more than one node
 * (the ranks were not placed node by node, or TP does not divide the ranks
 * per node): the same on every rank. */
WEFT_API int weft_mesh_tp_spans_nodes(const weft_mesh *m);
/* "dp 2 x tp 2 x pp 1 (this rank: dp 1, tp 0, pp 0)" into buf. */
WEFT_API void weft_mesh_describe(const weft_mesh *m, char *buf, size_t cap);

#endif
