/*
 * timer.h -- monotonic and wall clocks, in the units weft reports.
 */
#ifndef WEFT_RUNTIME_TIMER_H
#define WEFT_RUNTIME_TIMER_H

#include "runtime/api.h"

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds: for durations and timeouts. */
WEFT_API int64_t weft_now_ns(void);

/* Wall-clock seconds since the epoch: for records people read. */
WEFT_API double weft_wall_s(void);

#endif
