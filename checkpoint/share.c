/*
 * share.c -- replicated tensors read once per file and broadcast (share.h).
 */
#include "checkpoint/share.h"
#include "checkpoint/plan.h"
#include "runtime/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

/* MPI counts are ints: a tensor goes in pieces of at most this many floats. */
#define SHARE_PIECE ((size_t)1 << 30)

/* Whether every tensor's moments lie in one run of the moment buffers:
 * what broadcasting them tensor by tensor needs. */
static int moments_contiguous(const weft_ckpt_state *s)
{
    for (int i = 0; i < s->ntensors; i++) {
        const weft_tensor *t = &s->tensors[i];
        size_t pos = weft_ckpt_moment_pos(s, t->offset);
        if (t->numel && (pos == (size_t)-1 || weft_ckpt_moment_pos(s, t->offset + t->numel - 1) != pos + t->numel - 1))
            return 0;
    }
    return 1;
}

/* What the replicas must hold alike to share: the tensors' places and
 * sizes, and whether the moments go along. */
static uint64_t fingerprint(const weft_ckpt_state *s, int moments)
{
    XXH3_state_t st, *h = &st;
    XXH3_64bits_reset(h);
    XXH3_64bits_update(h, &moments, sizeof moments);
    XXH3_64bits_update(h, &s->n, sizeof s->n);
    for (int i = 0; i < s->ntensors; i++) {
        const weft_tensor *t = &s->tensors[i];
        XXH3_64bits_update(h, t->name, strlen(t->name) + 1);
        XXH3_64bits_update(h, &t->offset, sizeof t->offset);
        XXH3_64bits_update(h, &t->numel, sizeof t->numel);
    }
    return XXH3_64bits_digest(h);
}

/* The tensors cut into size runs as the save cuts them (weft_ckpt_cut_run):
 * a reader's tensors are adjacent in the file, so its reads are long runs. */
static void assign_readers(const weft_ckpt_state *s, int size, int *reader)
{
    size_t total = 0, done = 0;
    for (int i = 0; i < s->ntensors; i++)
        total += s->tensors[i].numel;
    for (int i = 0, r = 0; i < s->ntensors; done += s->tensors[i++].numel)
        reader[i] = r = weft_ckpt_cut_run(r, size, done, s->tensors[i].numel, total);
}

/* The replicas to share with: the ranks with this rank's tensor- and
 * pipeline-parallel coordinates on other nodes, one per node -- the
 * i-th such replica of each node with the i-th of the others. Replicas on
 * one node read the same tensors: the page cache serves their bytes once
 * (measured on one node: a broadcast there only adds its own time,
 * bench/README.md). */
static int replica_group(MPI_Comm file_comm, const weft_ckpt_layout *l, MPI_Comm *g)
{
    int frank, coord = l->pp_rank * l->tp_size + l->tp_rank, nth = 0;
    MPI_Comm node = MPI_COMM_NULL, same = MPI_COMM_NULL;
    int ok = MPI_Comm_rank(file_comm, &frank) == MPI_SUCCESS &&
             MPI_Comm_split_type(file_comm, MPI_COMM_TYPE_SHARED, frank, MPI_INFO_NULL, &node) == MPI_SUCCESS &&
             MPI_Comm_split(node, coord, frank, &same) == MPI_SUCCESS && MPI_Comm_rank(same, &nth) == MPI_SUCCESS &&
             MPI_Comm_split(file_comm, nth * l->tp_size * l->pp_size + coord, frank, g) == MPI_SUCCESS;
    if (same != MPI_COMM_NULL)
        MPI_Comm_free(&same);
    if (node != MPI_COMM_NULL)
        MPI_Comm_free(&node);
    return ok ? 0 : weft_error(WEFT_ECOMM, "checkpoint load: cannot make the communicator of the data-parallel "
                               "replicas on other nodes");
}

int weft_ckpt_share_plan(MPI_Comm file_comm, const weft_ckpt_layout *l, const weft_ckpt_state *s, int moments,
                         weft_ckpt_share *sh)
{
    memset(sh, 0, sizeof *sh);
    sh->group = MPI_COMM_NULL;
    sh->size = 1;
    MPI_Comm g = MPI_COMM_NULL;
    WEFT_CHECK(replica_group(file_comm, l, &g));
    int gsize, rc = 0;
    MPI_Comm_size(g, &gsize);
    int share_m = moments && l->zero == 0 && moments_contiguous(s);
    /* every replica must see the same tensors: the min and max of the
     * fingerprint (and of share_m) agree, or nothing is shared */
    uint64_t fp = fingerprint(s, share_m), lo_hi[2] = {fp, ~fp};
    if (gsize > 1 && MPI_Allreduce(MPI_IN_PLACE, lo_hi, 2, MPI_UINT64_T, MPI_MIN, g) != MPI_SUCCESS)
        rc = weft_error(WEFT_ECOMM, "checkpoint load: agreeing on the replicas' tensors failed");
    /* the reader array's allocation may fail on one rank only: that
     * rank's error makes the load fail on every rank (the caller agrees),
     * and the others' group is freed there */
    int share = rc == 0 && gsize > 1 && lo_hi[0] == ~lo_hi[1];
    int *reader = share ? calloc((size_t)s->ntensors + 1, sizeof *reader) : NULL;
    if (share && !reader)
        rc = weft_error(WEFT_ENOMEM, "checkpoint load: out of memory");
    if (!reader) {
        MPI_Comm_free(&g);
        return rc;
    }
    MPI_Comm_rank(g, &sh->rank);
    sh->group = g;
    sh->size = gsize;
    sh->reader = reader;
    sh->moments = share_m;
    assign_readers(s, gsize, reader);
    return 0;
}

int weft_ckpt_share_reads(const weft_ckpt_share *sh, int i, int moment)
{
    if (!sh || sh->group == MPI_COMM_NULL || (moment && !sh->moments))
        return 1;
    return sh->reader[i] == sh->rank;
}

static int bcast(float *p, size_t n, int root, MPI_Comm g)
{
    for (size_t a = 0; a < n; a += SHARE_PIECE) {
        size_t k = n - a < SHARE_PIECE ? n - a : SHARE_PIECE;
        if (MPI_Bcast(p + a, (int)k, MPI_FLOAT, root, g) != MPI_SUCCESS)
            return -1;
    }
    return 0;
}

int weft_ckpt_share_send(const weft_ckpt_share *sh, const weft_ckpt_state *s)
{
    if (sh->group == MPI_COMM_NULL)
        return 0;
    for (int i = 0; i < s->ntensors; i++) {
        const weft_tensor *t = &s->tensors[i];
        if (t->numel == 0)
            continue;
        int e = bcast(s->params + t->offset, t->numel, sh->reader[i], sh->group);
        if (e == 0 && sh->moments) {
            size_t pos = weft_ckpt_moment_pos(s, t->offset);
            e = bcast(s->m + pos, t->numel, sh->reader[i], sh->group);
            if (e == 0)
                e = bcast(s->v + pos, t->numel, sh->reader[i], sh->group);
        }
        if (e)
            return weft_error(WEFT_ECOMM, "checkpoint load: sharing tensor '%s' from replica %d failed", t->name,
                              sh->reader[i]);
    }
    return 0;
}

void weft_ckpt_share_free(weft_ckpt_share *sh)
{
    if (sh->group != MPI_COMM_NULL)
        MPI_Comm_free(&sh->group);
    free(sh->reader);
    memset(sh, 0, sizeof *sh);
    sh->group = MPI_COMM_NULL;
}
