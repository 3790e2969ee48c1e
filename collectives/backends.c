/*
 * backends.c -- the backend registry: every transport weft can use, in the
 * order "auto" tries them. A backend joins by adding one line here. Those
 * after mpi (which serves any group) are chosen only by name; hier serves
 * auto only for groups that span nodes.
 */
#include "collectives/backend.h"

extern const weft_backend weft_backend_shm;  /* backend_shm.c */
extern const weft_backend weft_backend_nccl; /* backend_nccl.c: by name only */
extern const weft_backend weft_backend_tcp;  /* backend_net.c: by name only */
extern const weft_backend weft_backend_ib;   /* backend_net.c: by name only */
extern const weft_backend weft_backend_hier; /* backend_hier.c: auto for groups spanning nodes */

const weft_backend *const weft_backends[] = {
    &weft_backend_shm,
    &weft_backend_hier,
    &weft_backend_mpi,
    &weft_backend_nccl,
    &weft_backend_tcp,
    &weft_backend_ib,
    NULL,
};
