/*
 * shm_segment.h -- the lifecycle of one POSIX shared-memory segment shared
 * by the ranks of a communicator on one node (used by backend_shm.c).
 *
 * Two ways to share the memory, both leak-proof on process death:
 *  - anonymous (preferred): rank 0 makes a memfd; the others open it through
 *    /proc/<pid of rank 0>/fd/<fd>. It never has a name in /dev/shm, and the
 *    kernel frees it when the last process that maps it exits, however it
 *    exits. Needs the ranks to see each other's /proc (same pid namespace
 *    and user), which is the normal case for the ranks of one job.
 *  - named (fallback): shm_open("/weft-<job>-<creator pid>-<counter>").
 * States and the function that moves between them:
 *   none --weft_shm_segment_create (rank 0) / _open (others)--> mapped+named
 *   mapped+named --weft_shm_segment_unlink (rank 0, once every rank has
 *                  mapped it: closes the memfd or shm_unlinks the name)--> mapped
 *   mapped --weft_shm_segment_unmap--> none
 * A segment without a name lives exactly as long as some process maps it,
 * so a process death (even SIGKILL) cannot leak a /dev/shm entry. A named
 * segment has its name only for the microseconds of communicator
 * creation; an entry left by a creator that died inside that window is
 * removed by weft_shm_segment_sweep, which the next creator on the node
 * runs (backend_shm.c: once per process and before every named segment).
 */
#ifndef WEFT_COLLECTIVES_SHM_SEGMENT_H
#define WEFT_COLLECTIVES_SHM_SEGMENT_H

#include <stddef.h>

/* Names are "/weft-<job>-<creator pid>-<counter>" (at most 95 chars). */
#define WEFT_SHM_PREFIX "weft-"
#define WEFT_SHM_NAME_MAX 96

typedef struct weft_shm_segment {
    char name[WEFT_SHM_NAME_MAX]; /* shm name, or /proc/<pid>/fd/<fd> path */
    int fd;                       /* the creator's memfd until unlink, else -1 */
    void *base;
    size_t bytes;
} weft_shm_segment;

/* Create, size (space reserved now, so a full /dev/shm fails here and not
 * with SIGBUS later) and map a new zero-filled segment; named = 0 makes an
 * anonymous one. */
int weft_shm_segment_create(weft_shm_segment *s, const char *job_id, size_t bytes, int named);
/* Map an existing segment by the name its creator announced. */
int weft_shm_segment_open(weft_shm_segment *s, const char *name, size_t bytes);
/* Remove the name (or close the memfd); the mapping stays. Idempotent. */
void weft_shm_segment_unlink(weft_shm_segment *s);
void weft_shm_segment_unmap(weft_shm_segment *s);
/* Unlink every weft segment on this node whose creator process is gone.
 * Returns how many it removed. */
int weft_shm_segment_sweep(void);

#endif
