/*
 * error.h -- weft's one status type, the last-error message, and the check
 * macros every module uses.
 *
 * A function that can fail returns int: 0 on success, a negative WEFT_E* code
 * on failure, after recording a message with weft_error(). The message names
 * what failed, on which rank, with which file/peer/key/value, and what to do;
 * weft_last_error() returns it (per thread). WEFT_CHECK propagates a failure
 * upward and logs file:line at debug level on the way, so a call site reads
 * straight down. Only a program's main() turns a code into an exit status,
 * with weft_exit_code().
 */
#ifndef WEFT_RUNTIME_ERROR_H
#define WEFT_RUNTIME_ERROR_H

#include "runtime/api.h"

#include <stdarg.h>
#include <stdnoreturn.h>

enum {
    WEFT_OK = 0,
    WEFT_EINVAL = -1,       /* bad argument from the caller (a bug or bad usage) */
    WEFT_ECONFIG = -2,      /* bad configuration: unknown key, bad value, bad layout */
    WEFT_ENOMEM = -3,       /* allocation failed */
    WEFT_EIO = -4,          /* a read, write, fsync or rename failed */
    WEFT_ENOENT = -5,       /* a required input file or directory is missing */
    WEFT_EDATA = -6,        /* input data is malformed or corrupt */
    WEFT_ECOMM = -7,        /* a communication call failed */
    WEFT_ETIMEDOUT = -8,    /* an operation did not finish within its timeout */
    WEFT_EPEER = -9,        /* a peer rank was lost or refused us */
    WEFT_EUNSUPPORTED = -10,/* valid request that this build or machine cannot do */
    WEFT_EINTERNAL = -11,   /* an invariant broke inside weft */
    WEFT_ESTATE = -12,      /* object is in the wrong state (e.g. failed earlier) */
    WEFT_EINTERRUPTED = -13,/* stopped by a signal (preemption) */
    WEFT_EUNAVAILABLE = -14,/* what the configuration asks for is not on this machine
                             * (run.device = cuda without a usable GPU) */
};
#define WEFT_NERRORS 15

/* Short symbolic name of a code: "WEFT_EINVAL". Never NULL. */
WEFT_API const char *weft_strerror(int rc);

/* Record a printf-style message for the calling thread and return rc, so that
 * a failure site reads:  return weft_error(WEFT_EIO, "write %s: %s", ...);
 * The message is prefixed with "rank N: " once the rank is known. */
WEFT_API int weft_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
WEFT_API int weft_verror(int rc, const char *fmt, va_list ap);

/* The calling thread's last recorded message ("" if none). */
WEFT_API const char *weft_last_error(void);
WEFT_API int weft_last_error_code(void);
WEFT_API void weft_error_clear(void);

/* Map a WEFT_E* code to the documented sysexits exit status of a program:
 * 0 ok, 64 usage/config, 65 bad data, 66 missing input, 70 internal/other,
 * 74 I/O error, 75 interrupted, 69 unavailable (see docs/operations.md). */
WEFT_API int weft_exit_code(int rc);

/* Exit statuses (sysexits.h values, named once; the table every program
 * uses, documented in docs/operations.md). */
enum {
    WEFT_EXIT_OK = 0,
    WEFT_EXIT_USAGE = 64,
    WEFT_EXIT_DATAERR = 65,
    WEFT_EXIT_NOINPUT = 66,
    WEFT_EXIT_UNAVAILABLE = 69, /* a program or device weft needs is missing (weft-plot: gnuplot; run.device = cuda) */
    WEFT_EXIT_SOFTWARE = 70,
    WEFT_EXIT_IOERR = 74,
    WEFT_EXIT_TEMPFAIL = 75,
};

/* A bug found where no code can be returned (a config getter asked for a
 * key no table declares): the message is logged and the job ends with exit
 * 70 (WEFT_EXIT_SOFTWARE) through the handler weft_init installs
 * (weft_abort: abort hooks, status.json, flight records, MPI_Abort), or
 * with _exit(70) in a program that has none. Never SIGABRT: the documented
 * exit status, and the whole job, not one rank. */
WEFT_API noreturn void weft_bug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The handler weft_bug ends the job through (it must not return). */
WEFT_API void weft_set_bug_handler(void (*fn)(int status, const char *msg));

/* Called by WEFT_CHECK on the way up; logs "file:line: call failed (CODE)" at
 * debug level. */
WEFT_API void weft_error_trace(const char *file, int line, const char *expr, int rc);

#define WEFT_CHECK(call)                                                      \
    do {                                                                      \
        int weft_rc_ = (call);                                                \
        if (weft_rc_ < 0) {                                                   \
            weft_error_trace(__FILE__, __LINE__, #call, weft_rc_);            \
            return weft_rc_;                                                  \
        }                                                                     \
    } while (0)

/* For functions with cleanup: stores the code in rc and jumps to label. */
#define WEFT_CHECK_GOTO(call, rc, label)                                      \
    do {                                                                      \
        (rc) = (call);                                                        \
        if ((rc) < 0) {                                                       \
            weft_error_trace(__FILE__, __LINE__, #call, (rc));                \
            goto label;                                                       \
        }                                                                     \
    } while (0)

#endif
