/*
 * mesh_comms.c -- the mesh's communicators on a real world (4 ranks, every
 * layout of 4, or 1-3 ranks): each axis group has the layout's size, this
 * rank's coordinate as its rank, and exactly the members that differ only
 * along that axis (an allreduce of the members' world ranks equals the sum
 * computed from the layout here); the embedding group joins the first and
 * last stage of a pipeline; on one node no TP group spans nodes. Prints TAP
 * from rank 0.
 */
#include "parallel/mesh.h"
#include "weft.h"
#include "tests/mpi/mpitap.h"

/* Sum of world ranks of the group along axis a holding coordinates c. */
static long expected_sum(const weft_mesh_layout *l, const int c[WEFT_NAXES], int a)
{
    long s = 0;
    int k[WEFT_NAXES] = {c[0], c[1], c[2]};
    for (k[a] = 0; k[a] < l->size[a]; k[a]++)
        s += weft_mesh_world_rank(l, k);
    return s;
}

static void check_layout(weft_comm *world, int dp, int tp, int pp)
{
    weft_mesh_layout l = {.size = {dp, tp, pp}};
    weft_mesh *m = NULL;
    tap_begin();
    int rc = weft_mesh_new(world, &l, &m), me = weft_comm_rank(world);
    TAP_CHECK(rc == 0, "mesh_new: %s", weft_last_error());
    if (rc == 0) {
        int c[WEFT_NAXES];
        weft_mesh_coords_of(&l, me, c);
        for (int a = 0; a < WEFT_NAXES; a++) {
            weft_comm *g = weft_mesh_comm(m, (weft_axis)a);
            long mine = me, sum = -1;
            TAP_CHECK(weft_comm_size(g) == l.size[a], "axis %d: size %d", a, weft_comm_size(g));
            TAP_CHECK(weft_comm_rank(g) == c[a] && weft_mesh_rank(m, (weft_axis)a) == c[a], "axis %d: rank", a);
            rc = weft_comm_allreduce(g, &mine, &sum, 1, WEFT_I64, WEFT_SUM);
            TAP_CHECK(rc == 0 && sum == expected_sum(&l, c, a), "axis %d: members sum %ld, want %ld", a, sum,
                      expected_sum(&l, c, a));
        }
        TAP_CHECK(!weft_mesh_tp_spans_nodes(m), "one node, yet a TP group is said to span nodes");
        weft_comm *e = weft_mesh_embed_comm(m);
        int want_embed = pp > 1 && (c[WEFT_AXIS_PP] == 0 || c[WEFT_AXIS_PP] == pp - 1);
        TAP_CHECK((e != NULL) == want_embed, "embed group membership");
        if (e) {
            int k[WEFT_NAXES] = {c[0], c[1], 0};
            long mine = me, sum = -1, want = weft_mesh_world_rank(&l, k);
            k[WEFT_AXIS_PP] = pp - 1;
            want += weft_mesh_world_rank(&l, k);
            rc = weft_comm_allreduce(e, &mine, &sum, 1, WEFT_I64, WEFT_SUM);
            TAP_CHECK(rc == 0 && sum == want && weft_comm_size(e) == 2, "embed group: sum %ld want %ld", sum, want);
        }
    }
    weft_mesh_free(m);
    tap_end("mesh dp %d x tp %d x pp %d: axis groups and embedding group", dp, tp, pp);
}

int main(int argc, char **argv)
{
    weft_ctx *ctx;
    const weft_config_key *const keys[] = {weft_comm_config_keys, NULL};
    int rc = weft_init(&argc, argv, keys, &ctx);
    if (rc)
        return weft_exit_code(rc);
    tap_rank = ctx->rank;
    weft_comm *world;
    if (weft_comm_world(ctx, NULL, &world) != 0) {
        printf("not ok 1 - create world communicator: %s\n", weft_last_error());
        return 1;
    }
    int n = ctx->size;
    for (int tp = 1; tp <= n; tp++)
        for (int pp = 1; pp <= n / tp; pp++)
            if (n % (tp * pp) == 0)
                check_layout(world, n / (tp * pp), tp, pp);
    weft_comm_free(world);
    weft_finalize(ctx);
    return tap_total_failed ? 1 : 0;
}
