/*
 * abort.c -- weft_abort: end the whole job with a message instead of
 * letting it hang. Hooks registered by other layers (the collectives' flight
 * recorder dump) run once, in registration order, before MPI_Abort.
 */
#include "runtime/ctx.h"
#include "runtime/error.h"
#include "runtime/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define MAX_HOOKS 16

static struct {
    void (*fn)(void *);
    void *arg;
} hooks[MAX_HOOKS];
static atomic_int nhooks;
static atomic_flag aborting = ATOMIC_FLAG_INIT;
static char reason[2048]; /* the first abort's message, for the hooks */
static int reason_status = -1; /* and its exit status */

const char *weft_abort_reason(void) { return reason; }
int weft_abort_status(void) { return reason_status; }

int weft_at_abort(void (*fn)(void *arg), void *arg)
{
    int i = atomic_fetch_add(&nhooks, 1);
    if (i >= MAX_HOOKS) {
        atomic_fetch_sub(&nhooks, 1);
        return weft_error(WEFT_EINTERNAL, "more than %d abort hooks registered", MAX_HOOKS);
    }
    hooks[i].fn = fn;
    hooks[i].arg = arg;
    return 0;
}

static noreturn void vabort(int status, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    WEFT_ERROR("aborting the job: %s", msg);
    /* A second abort (from a hook, or another thread) must not rerun the
     * hooks; it goes straight to the exit below. */
    if (!atomic_flag_test_and_set(&aborting)) {
        snprintf(reason, sizeof reason, "%s", msg);
        reason_status = status;
        int n = atomic_load(&nhooks);
        for (int i = 0; i < n && i < MAX_HOOKS; i++)
            hooks[i].fn(hooks[i].arg);
    }
    int inited = 0, fin = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    if (inited && !fin)
        MPI_Abort(MPI_COMM_WORLD, status);
    _exit(status);
}

noreturn void weft_abort(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vabort(WEFT_EXIT_SOFTWARE, fmt, ap);
}

noreturn void weft_abort_with(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vabort(status, fmt, ap);
}
