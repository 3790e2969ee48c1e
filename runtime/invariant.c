/*
 * invariant.c -- what happens when an object's invariant does not hold
 * (invariant.h): say so, with the check's own message, and abort.
 *
 * Deliberately not weft_abort (runtime/ctx.h): that one ends an MPI job in
 * order, with its hooks; a broken invariant means this process's state can
 * no longer be trusted, so it stops here, with a core to debug, and the
 * launcher ends the job (mpirun and srun do when a rank dies of a signal).
 */
#include "runtime/invariant.h"
#include "runtime/error.h"

#include <stdio.h>
#include <stdlib.h>

noreturn void weft_invariant_failed(const char *file, int line, const char *what)
{
    fprintf(stderr, "weft: invariant violated at %s:%d (%s): %s\n", file, line, what, weft_last_error());
    fflush(stderr);
    abort();
}
