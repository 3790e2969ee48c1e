/*
 * plan.h -- what a checkpoint file holds and which elements of it this rank
 * writes, computed once when the checkpointer is created.
 *
 * The datasets are the same, in the same order, on every rank (parallel
 * HDF5 creates them collectively): params/<name> for the union of every
 * rank's tensors (pipeline stages hold different ones), optim/m/<name> and
 * optim/v/<name> when there is an optimizer, loader/state and rng/state.
 * Data-parallel replicas split the writing: what they all hold the same
 * (the parameters below ZeRO-3, the moments without ZeRO) by whole tensors
 * spread over them by bytes, so such a dataset's checksum comes from its
 * one writer's read-back; what one rank holds (ZeRO shards: moments, and
 * parameters under ZeRO-3) by its flat ranges. A rank skips tensors whole
 * across tensor parallelism unless it is TP rank 0, and tied copies.
 * All of it is staged in one buffer: a list of copies fills it.
 * With a file per node (the local tier on several nodes) a rank writes all
 * it holds instead, so that the node's file alone resumes the node's ranks.
 */
#ifndef WEFT_CHECKPOINT_PLAN_H
#define WEFT_CHECKPOINT_PLAN_H

#include <mpi.h>
#include <stddef.h>

#include "checkpoint/ckpt.h"
#include "checkpoint/region.h"

enum { WEFT_CKPT_PARAM, WEFT_CKPT_M, WEFT_CKPT_V, WEFT_CKPT_LOADER, WEFT_CKPT_RNG };

/* A run of local elements [a, b) of a tensor piece, at stage_rel bytes
 * into the dataset's staging: what a rank reads back to verify its write. */
typedef struct weft_ckpt_run {
    weft_shard_spec spec;
    size_t a, b, stage_rel;
} weft_ckpt_run;

typedef struct weft_ckpt_dset {
    char path[96];           /* "params/h.0.ln_1.weight" */
    char name[64];           /* the tensor's name ("" for loader/rng) */
    int kind;                /* WEFT_CKPT_* */
    int ndim;
    int64_t shape[2];        /* global; [1] = 0 for one dimension */
    size_t esize;            /* bytes per element */
    /* this rank's part */
    size_t stage_off;        /* bytes into staging */
    size_t count;            /* elements written */
    weft_ckpt_rect *rects;
    int nrect;
    weft_ckpt_run *runs;
    int nruns;
    int whole;               /* this rank writes every element */
    int hasher;              /* this rank computes the checksum */
    int split;               /* no rank writes every element: its checksum comes from the ranks' block
                              * hashes (sum.h), block0.. in weft_ckpt_plan's list of them */
    size_t block0;
} weft_ckpt_dset;

typedef struct weft_ckpt_copy {
    const void *src;
    size_t stage_off, bytes;
} weft_ckpt_copy;

typedef struct weft_ckpt_plan {
    weft_ckpt_dset *d;
    int nd;
    weft_ckpt_copy *copies;
    int ncopies, cap_copies;
    size_t stage_bytes;
    size_t loader_off, rng_off;  /* in staging: loader bytes, this rank's rng */
    size_t max_read;             /* largest element size (checksum reads) */
    size_t nblocks;              /* the split datasets' checksum blocks, all of them */
} weft_ckpt_plan;

/* A global tensor: name and shape, the same list on every rank. */
typedef struct weft_ckpt_name {
    char name[64];
    int ndim;
    int64_t shape[2];
} weft_ckpt_name;

/* Collective over comm: the union of every rank's (non-tied) tensors, in
 * order of first appearance by rank. WEFT_EINTERNAL if two ranks disagree
 * on a tensor's shape. */
int weft_ckpt_names(MPI_Comm comm, const weft_ckpt_state *s, weft_ckpt_name **out, int *n);

/* Collective over comm. loader_len 0: no loader dataset. node: this
 * rank's node when each node writes a file of its own (checkpoint.local_dir
 * on several nodes; MPI_COMM_NULL: one file for the job): every rank then
 * writes all it holds, and the hashers are per node. */
int weft_ckpt_plan_build(MPI_Comm comm, MPI_Comm node, const weft_ckpt_layout *l, const weft_ckpt_state *s,
                         size_t loader_len, weft_ckpt_plan *p);
void weft_ckpt_plan_free(weft_ckpt_plan *p);

/* A dataset's bytes in the file: its global shape, all ranks' parts. */
size_t weft_ckpt_dset_bytes(const weft_ckpt_dset *d);

/* Which rank does a per-dataset job -- a save's checksum, a load's
 * verification -- for each of n datasets of bytes[i] bytes: among the ranks
 * that hold all of dataset i in memory (held[r * n + i] != 0, rank-major as an allgather leaves it; held NULL:
 * none does), else among all ranks, the one with the fewest bytes so far.
 * Datasets with the fewest candidates are placed first (a dataset only one
 * rank holds has no choice; the free ones then balance around it), the
 * largest first within those. Deterministic: the same inputs give the same
 * owners on every rank. Falls back to i % size when out of memory. */
void weft_ckpt_assign_by_bytes(const size_t *bytes, const unsigned char *held, int n, int size, int *owner);

/* The cut of items (tensors) in buffer order into size runs, each run
 * ending at the item boundary nearest its even share of total elements:
 * the run the next item (numel elements, done before it) goes to, given
 * r, the run of the item before (0 for the first). The save's replicas
 * split the writing this way (plan.c), a load's replicas on different
 * nodes the reading (share.c). */
int weft_ckpt_cut_run(int r, int size, size_t done, size_t numel, size_t total);

/* Where flat element x of the parameter buffer is in the moment buffers;
 * (size_t)-1 when this rank holds no moments for it. */
size_t weft_ckpt_moment_pos(const weft_ckpt_state *s, size_t x);

#endif
