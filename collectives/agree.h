/*
 * agree.h -- small agreements across a communicator's ranks, for decisions
 * every rank must take together (stop after this step, skip this
 * evaluation). One tiny allreduce each: cheap enough to run every step.
 */
#ifndef WEFT_COLLECTIVES_AGREE_H
#define WEFT_COLLECTIVES_AGREE_H

#include "collectives/comm.h"

/* *any = the largest `local` over the ranks of c (0 when all are 0).
 * Passing a signal number as local gives every rank the same non-zero
 * answer as soon as one rank has seen a signal. Collective. */
int weft_comm_any(weft_comm *c, int local, int *any);

#endif
