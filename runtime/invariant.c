/*
 * invariant.c -- what happens when an object's invariant does not hold
 * (invariant.h): it is a bug, reported as every bug is (weft_bug,
 * runtime/error.h): the check's own message and where, then exit 70 --
 * in a job through weft_abort, so the whole job ends with its flight
 * records rather than one rank dying alone.
 */
#include "runtime/invariant.h"
#include "runtime/error.h"

noreturn void weft_invariant_failed(const char *file, int line, const char *what)
{
    weft_bug("invariant violated at %s:%d (%s): %s", file, line, what, weft_last_error());
}
