/*
 * agree.c -- all ranks learn whether any failed, and why (see agree.h).
 */
#include "checkpoint/agree.h"
#include "runtime/error.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* A message without its "rank N: " prefix. */
static const char *unranked(const char *m)
{
    if (strncmp(m, "rank ", 5) == 0 && strstr(m, ": "))
        return strstr(m, ": ") + 2;
    return m;
}

int weft_ckpt_wrap(int rc, const char *fmt, ...)
{
    char prefix[1024], msg[2048];
    snprintf(msg, sizeof msg, "%s", unranked(weft_last_error()));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    return weft_error(rc, "%s: %s", prefix, msg);
}

int weft_ckpt_rethrow(int rc, const char *msg)
{
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", unranked(msg));
    return weft_error(rc, "%s", copy);
}

typedef struct {
    int32_t rc;
    char msg[1020];
} verdict;

int weft_ckpt_agree(weft_comm *c, int rc)
{
    int32_t mine = rc, worst = 0, who, first;
    WEFT_CHECK(weft_comm_allreduce(c, &mine, &worst, 1, WEFT_I32, WEFT_MIN));
    if (worst == 0)
        return 0;
    int rank = weft_comm_rank(c);
    who = rc ? rank : weft_comm_size(c);
    WEFT_CHECK(weft_comm_allreduce(c, &who, &first, 1, WEFT_I32, WEFT_MIN));
    verdict v = {.rc = rc};
    if (rank == first)
        snprintf(v.msg, sizeof v.msg, "%s", weft_last_error());
    WEFT_CHECK(weft_comm_broadcast(c, &v, &v, sizeof v, WEFT_U8, first));
    if (rank == first)
        return rc;
    return weft_error(v.rc, "%s [on rank %d]", unranked(v.msg), first);
}
