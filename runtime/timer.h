/*
 * timer.h -- monotonic and wall clocks, in the units weft reports.
 */
#ifndef WEFT_RUNTIME_TIMER_H
#define WEFT_RUNTIME_TIMER_H

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds: for durations and timeouts. */
static inline int64_t weft_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wall-clock seconds since the epoch: for records people read. */
static inline double weft_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
