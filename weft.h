/*
 * weft.h -- the umbrella header a program written against weft includes:
 * every public header of the library (the list is PUBLIC_HDRS in the
 * Makefile; `make install` installs exactly these, under include/weft/).
 * Only what these headers declare with WEFT_API is exported by libweft.so.
 */
#ifndef WEFT_WEFT_H
#define WEFT_WEFT_H

#include "runtime/api.h"
#include "runtime/config.h"
#include "runtime/ctx.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "runtime/rng.h"
#include "runtime/shard.h"
#include "runtime/timer.h"
#include "runtime/trace.h"
#include "runtime/tensor.h"
#include "runtime/device.h"
#include "runtime/cli.h"
#include "runtime/sched.h"
#include "collectives/comm.h"
#include "kernels/kernels.h"
#include "data/manifest.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "parallel/mesh.h"
#include "parallel/dp.h"
#include "parallel/pipeline.h"
#include "model/model.h"
#include "model/lora.h"
#include "model/gpt.h"
#include "model/llama.h"
#include "model/lm.h"
#include "model/generate.h"
#include "model/optim.h"
#include "checkpoint/ckpt.h"
#include "checkpoint/state.h"
#include "train/source.h"
#include "train/token_source.h"
#include "train/synthetic_source.h"
#include "train/trainer.h"
#include "train/memory.h"

#endif
