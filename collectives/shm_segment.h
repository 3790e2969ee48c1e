/*
 * shm_segment.h -- the lifecycle of one POSIX shared-memory segment shared
 * by the ranks of a communicator on one node (used by backend_shm.c).
 *
 * States and the function that moves between them:
 *   none --weft_shm_segment_create (rank 0) / _open (others)--> mapped+named
 *   mapped+named --weft_shm_segment_unlink (rank 0, once every rank has
 *                  mapped it)--> mapped, nameless
 *   mapped --weft_shm_segment_unmap--> none
 * A nameless segment lives exactly as long as some process maps it, so a
 * process death (even SIGKILL) cannot leak a /dev/shm entry. The only
 * window with a name is the few microseconds of communicator creation; an
 * entry left by a creator that died inside it is removed by
 * weft_shm_segment_sweep, which the next creator on the node runs.
 */
#ifndef WEFT_COLLECTIVES_SHM_SEGMENT_H
#define WEFT_COLLECTIVES_SHM_SEGMENT_H

#include <stddef.h>

/* Names are "/weft-<job>-<creator pid>-<counter>" (at most 95 chars). */
#define WEFT_SHM_PREFIX "weft-"
#define WEFT_SHM_NAME_MAX 96

typedef struct weft_shm_segment {
    char name[WEFT_SHM_NAME_MAX];
    void *base;
    size_t bytes;
} weft_shm_segment;

/* Create, size (space reserved now, so a full /dev/shm fails here and not
 * with SIGBUS later) and map a new zero-filled segment. */
int weft_shm_segment_create(weft_shm_segment *s, const char *job_id, size_t bytes);
/* Map an existing segment by name. */
int weft_shm_segment_open(weft_shm_segment *s, const char *name, size_t bytes);
/* Remove the name; the mapping stays valid. Idempotent. */
void weft_shm_segment_unlink(weft_shm_segment *s);
void weft_shm_segment_unmap(weft_shm_segment *s);
/* Unlink every weft segment on this node whose creator process is gone.
 * Returns how many it removed. */
int weft_shm_segment_sweep(void);

#endif
