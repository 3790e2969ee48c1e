/*
 * nodepart.c -- is a file one node's part of a checkpoint, and may this
 * rank read it (see nodepart.h). Opened alone (sec2), attributes only.
 */
#include "checkpoint/nodepart.h"
#include "checkpoint/agree.h"
#include "checkpoint/h5.h"
#include "runtime/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* rank is one of the comma-separated ranks in list. */
static int listed(const char *list, int rank)
{
    for (const char *p = list; *p;) {
        char *end;
        long r = strtol(p, &end, 10);
        if (end == p)
            return 0;
        if (r == rank)
            return 1;
        p = *end == ',' ? end + 1 : end;
    }
    return 0;
}

/* The layout attributes against l; 0 when they match. */
static int same_layout(hid_t f, const weft_ckpt_layout *l, int size, char *why, size_t len)
{
    static const char *const key[] = {"world_size", "dp", "tp", "pp", "zero"};
    int64_t want[] = {size, l->dp_size, l->tp_size, l->pp_size, l->zero};
    for (int k = 0; k < 5; k++) {
        int64_t v;
        if (weft_h5_get_i64(f, key[k], &v) != 0 || v != want[k]) {
            snprintf(why, len, "it was written with %s = %lld, this job has %lld", key[k], (long long)v,
                     (long long)want[k]);
            return 1;
        }
    }
    return 0;
}

static int probe(hid_t f, const char *path, const weft_ckpt_layout *l, int rank, int size, int64_t *node)
{
    if (H5Aexists(f, "tier_nodes") <= 0)
        return 0;
    int64_t nodes = 0;
    char *ranks = NULL, why[256] = "";
    int rc = weft_h5_get_i64(f, "tier_node", node);
    rc = rc ? rc : weft_h5_get_i64(f, "tier_nodes", &nodes);
    rc = rc ? rc : weft_h5_get_str(f, "tier_ranks", &ranks);
    if (rc)
        return weft_ckpt_wrap(rc, "checkpoint %s", path);
    if (size < 0) /* one process reading all of it */
        snprintf(why, sizeof why, "holds only the state of ranks %s", ranks);
    else if (same_layout(f, l, size, why, sizeof why) == 0 && !listed(ranks, rank))
        snprintf(why, sizeof why, "it holds the state of ranks %s, and this rank (%d) was on another node", ranks,
                 rank);
    free(ranks);
    if (!why[0])
        return 0;
    return weft_error(WEFT_EDATA, "checkpoint %s is node %lld's part of a checkpoint written on %lld nodes, and %s: "
                      "a node's part resumes only the same ranks on the same layout", path, (long long)*node,
                      (long long)nodes, why);
}

int weft_ckpt_node_part(const char *path, const weft_ckpt_layout *l, int rank, int size, int64_t *node)
{
    *node = -1;
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY
    int rc = f < 0 ? 0 : probe(f, path, l, rank, size, node); /* unreadable: the caller's open says why */
    if (f >= 0)
        H5Fclose(f);
    if (rc)
        *node = -1;
    return rc;
}
