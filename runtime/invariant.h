/*
 * invariant.h -- the documented invariants of weft's stateful objects,
 * enforced at their state transitions.
 *
 * Each stateful object has one check function stating, as code, the
 * invariants its header documents: weft_request_queue_check (the
 * communicators' FIFO), weft_pipe_plan_check (a pipeline stage's schedule),
 * weft_dp_check (the data-parallel buckets and ZeRO-3 units),
 * weft_device_arena_check (the device layer's arenas),
 * the loader's slots (loader.c), the checkpoint writer (writer.c). A check
 * function returns 0, or WEFT_EINTERNAL with a message naming the object,
 * the invariant and the values that break it (so tests can feed it broken
 * states); the object's code calls it through WEFT_INVARIANT where its
 * state changes.
 *
 * A violated invariant is a bug in weft, never bad input (bad input gets an
 * error and an exit code, runtime/error.h): it goes to weft_bug, which says
 * what broke and where and ends the job with exit 70 (through weft_abort in
 * a job), because going on could write a wrong checkpoint or hang a job. The checks cost O(the
 * object's size) per transition, never per tensor element, so they are
 * built in by default; `make INVARIANTS=0` compiles them out.
 */
#ifndef WEFT_RUNTIME_INVARIANT_H
#define WEFT_RUNTIME_INVARIANT_H

#include <stdnoreturn.h>

#ifndef WEFT_INVARIANTS
#define WEFT_INVARIANTS 1
#endif

/* WEFT_INVARIANT(check_call, what): check_call is an expression that is 0
 * when the invariants hold (a *_check function); what names the
 * transition ("after claiming a row"). */
#if WEFT_INVARIANTS
#define WEFT_INVARIANT(check_call, what)                                                                        \
    do {                                                                                                        \
        if ((check_call) != 0)                                                                                  \
            weft_invariant_failed(__FILE__, __LINE__, (what));                                                  \
    } while (0)
#else
#define WEFT_INVARIANT(check_call, what) ((void)0)
#endif

/* weft_bug("invariant violated at FILE:LINE (what): <the last error>"). */
noreturn void weft_invariant_failed(const char *file, int line, const char *what);

#endif
