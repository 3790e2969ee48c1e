/*
 * nodepart.h -- whether a checkpoint file is one node's part of a
 * checkpoint (the local tier on several nodes, nodefile.c: root attributes
 * tier_node, tier_nodes, tier_ranks) and whether this rank may resume from
 * it: only with the layout that wrote it and this rank among the node's
 * (the file holds that node's ranks' state, and zeros for the others').
 */
#ifndef WEFT_CHECKPOINT_NODEPART_H
#define WEFT_CHECKPOINT_NODEPART_H

#include <stdint.h>

#include "checkpoint/ckpt.h"

/* Every rank, before the collective open: *node = -1 for a whole file, the
 * node index for a part this rank can read; WEFT_EDATA saying why not
 * otherwise (a resume then takes an older or the shared tier's). size < 0:
 * one process that reads the whole model, which no part serves. An
 * unreadable file is *node = -1, 0: the caller's open reports it. The
 * caller holds weft_h5_lock. */
int weft_ckpt_node_part(const char *path, const weft_ckpt_layout *l, int rank, int size, int64_t *node);

#endif
