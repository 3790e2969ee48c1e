/*
 * share.h -- a load's reading of replicated tensors split between the
 * ranks that hold them the same, and the bytes then shared over MPI.
 *
 * Data-parallel replicas hold the same parameters (and, without ZeRO, the
 * same moments). Each reading all of them makes a shared file system serve
 * every replicated byte once per replica: 64 replicas of a 7 B model read
 * 14 GB 64 times. Instead the replicas on different nodes -- the ranks
 * with the same tensor- and pipeline-parallel coordinates, the i-th of
 * each node with the i-th of the others -- cut their tensors by bytes, in
 * buffer order, into one run per node (whole tensors, so each dataset a
 * rank reads it reads whole and hashes as it reads, load.c), and each
 * tensor is broadcast from its reader to the others: the file's bytes
 * cross the file system once, the rest moves over the network. Replicas
 * on one node all read their node's run: the page cache serves them from
 * one read (measured on one node, bench/README.md: the same read time
 * with or without a broadcast there, which only added its own 0.04 s).
 *
 * Only for state in host memory: a GPU's state is read piece by piece
 * through host buffers (load.c), and its tensors would need a
 * device-aware MPI; those loads read everything on every replica, as
 * before.
 */
#ifndef WEFT_CHECKPOINT_SHARE_H
#define WEFT_CHECKPOINT_SHARE_H

#include <mpi.h>

#include "checkpoint/ckpt.h"

typedef struct weft_ckpt_share {
    MPI_Comm group;   /* the replicas reading this file with this rank's tensors; MPI_COMM_NULL: no sharing */
    int rank, size;   /* in group */
    int *reader;      /* (ntensors) the group rank that reads tensor i from the file */
    int moments;      /* the moments are replicated too (no ZeRO) and read and shared the same way */
} weft_ckpt_share;

/* Collective over file_comm (the ranks opening the file). moments: the
 * load reads the moments. Replicas whose tensors differ (never for a
 * model's data-parallel replicas) share nothing: each reads all of its
 * own. 0, or WEFT_ECOMM / WEFT_ENOMEM (sh then shares nothing). */
int weft_ckpt_share_plan(MPI_Comm file_comm, const weft_ckpt_layout *l, const weft_ckpt_state *s, int moments,
                         weft_ckpt_share *sh);

/* Whether this rank reads tensor i's parameters (moment 0) or its moments
 * (moment 1) from the file. Always 1 when nothing is shared. */
int weft_ckpt_share_reads(const weft_ckpt_share *sh, int i, int moment);

/* Collective over the group: every tensor from its reader to the others,
 * after every reader has read its own. 0 or WEFT_ECOMM. */
int weft_ckpt_share_send(const weft_ckpt_share *sh, const weft_ckpt_state *s);

void weft_ckpt_share_free(weft_ckpt_share *sh);

#endif
