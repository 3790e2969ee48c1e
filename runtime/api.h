/*
 * api.h -- WEFT_API marks the functions and data of weft's public API. The
 * library is built with -fvisibility=hidden, so only what a public header
 * declares with WEFT_API is exported from libweft.so; everything else,
 * weft_-prefixed or not, stays internal to the library (tools and tests
 * that link libweft.a still reach it).
 */
#ifndef WEFT_RUNTIME_API_H
#define WEFT_RUNTIME_API_H

#if defined(__GNUC__) || defined(__clang__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#endif
