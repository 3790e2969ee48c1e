/*
 * error.c -- the per-thread last-error message and the code -> name / exit
 * status tables. See error.h for the contract.
 */
#include "runtime/error.h"
#include "runtime/log.h"

#include <stdio.h>
#include <unistd.h>
#include <string.h>

#define MSG_MAX 2048

static _Thread_local char last_msg[MSG_MAX];
static _Thread_local int last_code;

static const char *const names[WEFT_NERRORS] = {
    "WEFT_OK", "WEFT_EINVAL", "WEFT_ECONFIG", "WEFT_ENOMEM", "WEFT_EIO",
    "WEFT_ENOENT", "WEFT_EDATA", "WEFT_ECOMM", "WEFT_ETIMEDOUT", "WEFT_EPEER",
    "WEFT_EUNSUPPORTED", "WEFT_EINTERNAL", "WEFT_ESTATE", "WEFT_EINTERRUPTED",
    "WEFT_EUNAVAILABLE",
};

const char *weft_strerror(int rc)
{
    if (rc > 0 || -rc >= WEFT_NERRORS)
        return "WEFT_E?";
    return names[-rc];
}

int weft_verror(int rc, const char *fmt, va_list ap)
{
    /* Formatted apart first: the arguments may be weft_last_error() itself. */
    char text[MSG_MAX];
    vsnprintf(text, sizeof text, fmt, ap);
    /* One "rank N: " per message, however many wrapped messages it holds. */
    weft_log_drop_rank(text);
    int rank = weft_log_rank(), n = rank >= 0 ? snprintf(last_msg, MSG_MAX, "rank %d: ", rank) : 0;
    size_t len = strlen(text), room = (size_t)(MSG_MAX - 1 - n); /* truncated, like any long message */
    len = len < room ? len : room;
    memcpy(last_msg + n, text, len);
    last_msg[n + (int)len] = '\0';
    last_code = rc;
    return rc;
}

int weft_error(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    weft_verror(rc, fmt, ap);
    va_end(ap);
    return rc;
}

const char *weft_last_error(void) { return last_msg; }
int weft_last_error_code(void) { return last_code; }

void weft_error_clear(void)
{
    last_msg[0] = '\0';
    last_code = 0;
}

int weft_exit_code(int rc)
{
    switch (rc) {
    case WEFT_OK: return WEFT_EXIT_OK;
    case WEFT_EINVAL:
    case WEFT_ECONFIG: return WEFT_EXIT_USAGE;
    case WEFT_EDATA: return WEFT_EXIT_DATAERR;
    case WEFT_ENOENT: return WEFT_EXIT_NOINPUT;
    case WEFT_EIO: return WEFT_EXIT_IOERR;
    case WEFT_EINTERRUPTED: return WEFT_EXIT_TEMPFAIL;
    case WEFT_EUNAVAILABLE: return WEFT_EXIT_UNAVAILABLE;
    default: return WEFT_EXIT_SOFTWARE;
    }
}

static void (*bug_handler)(int status, const char *msg);

void weft_set_bug_handler(void (*fn)(int status, const char *msg)) { bug_handler = fn; }

noreturn void weft_bug(const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (bug_handler)
        bug_handler(WEFT_EXIT_SOFTWARE, msg); /* does not return */
    WEFT_ERROR("bug: %s", msg);
    _exit(WEFT_EXIT_SOFTWARE);
}

void weft_error_trace(const char *file, int line, const char *expr, int rc)
{
    WEFT_DEBUG("%s:%d: %s failed (%s)", file, line, expr, weft_strerror(rc));
}
