/*
 * weft.h -- the umbrella header a program written against weft includes.
 */
#ifndef WEFT_WEFT_H
#define WEFT_WEFT_H

#include "runtime/config.h"
#include "runtime/ctx.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/timer.h"
#include "runtime/trace.h"
#include "collectives/comm.h"

#endif
