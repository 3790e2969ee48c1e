/*
 * log.h -- one line per event, prefixed with who said it.
 *
 * Every line starts "[weft r3/8 node01]" once the runtime knows the rank
 * (before that, "[weft]"), is written with a single write(2) so lines from
 * threads and ranks never interleave mid-line, and goes to stderr. The level
 * comes from WEFT_LOG_LEVEL (error, warn, info, debug, trace) or the
 * log.level configuration key; the default is info.
 */
#ifndef WEFT_RUNTIME_LOG_H
#define WEFT_RUNTIME_LOG_H

#include "runtime/api.h"

#include <stdarg.h>

typedef enum {
    WEFT_LOG_ERROR = 0,
    WEFT_LOG_WARN,
    WEFT_LOG_INFO,
    WEFT_LOG_DEBUG,
    WEFT_LOG_TRACE,
} weft_log_level;

/* Set who is speaking; called by weft_init once placement is known. */
WEFT_API void weft_log_set_identity(int rank, int size, const char *host);

/* Parse "error".."trace" (or 0..4); returns 0 or WEFT_EINVAL. */
WEFT_API int weft_log_level_parse(const char *s, weft_log_level *out);
WEFT_API void weft_log_set_level(weft_log_level level);
WEFT_API weft_log_level weft_log_get_level(void);
/* Apply WEFT_LOG_LEVEL from the environment if set; a bad value is reported
 * as a warning and ignored. */
WEFT_API void weft_log_level_from_env(void);

/* Rank as set by weft_log_set_identity, or -1 before it. */
WEFT_API int weft_log_rank(void);

WEFT_API void weft_log(weft_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
WEFT_API void weft_vlog(weft_log_level level, const char *fmt, va_list ap);

/* Format the line prefix into buf (for tests and for other writers). */
WEFT_API int weft_log_prefix(char *buf, int len);
/* Remove this rank's "rank N: " from s where it starts s or follows ": "
 * (a message wrapping another's weft_last_error() repeats it). */
void weft_log_drop_rank(char *s);

#define WEFT_ERROR(...) weft_log(WEFT_LOG_ERROR, __VA_ARGS__)
#define WEFT_WARN(...)  weft_log(WEFT_LOG_WARN, __VA_ARGS__)
#define WEFT_INFO(...)  weft_log(WEFT_LOG_INFO, __VA_ARGS__)
#define WEFT_DEBUG(...) do { if (weft_log_get_level() >= WEFT_LOG_DEBUG) weft_log(WEFT_LOG_DEBUG, __VA_ARGS__); } while (0)
#define WEFT_TRACE(...) do { if (weft_log_get_level() >= WEFT_LOG_TRACE) weft_log(WEFT_LOG_TRACE, __VA_ARGS__); } while (0)

#endif
