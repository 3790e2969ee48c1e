/*
 * timer.c -- the clocks of timer.h, out of line so that the public header
 * needs nothing beyond ISO C from a program's compiler flags
 * (clock_gettime and CLOCK_MONOTONIC are POSIX).
 */
#include "runtime/timer.h"

#include <time.h>

int64_t weft_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double weft_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
