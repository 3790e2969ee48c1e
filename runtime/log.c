/*
 * log.c -- the line logger. Each line is formatted into one buffer and
 * written with a single write(2) to stderr, so concurrent writers (threads,
 * ranks sharing a terminal) never split each other's lines.
 */
#include "runtime/log.h"
#include "runtime/error.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096

static int id_rank = -1, id_size = 0;
static char id_host[64];
static atomic_int cur_level = WEFT_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};
static const char *const level_tags[] = {"ERROR ", "WARN ", "", "debug ", "trace "};

void weft_log_set_identity(int rank, int size, const char *host)
{
    id_rank = rank;
    id_size = size;
    snprintf(id_host, sizeof id_host, "%s", host ? host : "");
}

int weft_log_rank(void) { return id_rank; }

int weft_log_level_parse(const char *s, weft_log_level *out)
{
    if (!s)
        return WEFT_EINVAL;
    for (int i = 0; i <= WEFT_LOG_TRACE; i++) {
        if (strcasecmp(s, level_names[i]) == 0 || (s[0] == '0' + i && s[1] == '\0')) {
            *out = (weft_log_level)i;
            return 0;
        }
    }
    return WEFT_EINVAL;
}

void weft_log_set_level(weft_log_level level) { atomic_store(&cur_level, (int)level); }
weft_log_level weft_log_get_level(void) { return (weft_log_level)atomic_load(&cur_level); }

void weft_log_level_from_env(void)
{
    const char *s = getenv("WEFT_LOG_LEVEL");
    weft_log_level lv;
    if (!s || !*s)
        return;
    if (weft_log_level_parse(s, &lv) == 0)
        weft_log_set_level(lv);
    else
        WEFT_WARN("WEFT_LOG_LEVEL=%s is not one of error, warn, info, debug, trace; keeping %s",
                  s, level_names[weft_log_get_level()]);
}

int weft_log_prefix(char *buf, int len)
{
    if (id_rank < 0)
        return snprintf(buf, (size_t)len, "[weft]");
    return snprintf(buf, (size_t)len, "[weft r%d/%d %s]", id_rank, id_size, id_host);
}

void weft_log_drop_rank(char *s)
{
    char tag[32];
    if (id_rank < 0)
        return;
    int tn = snprintf(tag, sizeof tag, "rank %d: ", id_rank);
    for (char *p = s; (p = strstr(p, tag));) {
        if (p == s || (p - s >= 2 && p[-2] == ':' && p[-1] == ' '))
            memmove(p, p + tn, strlen(p + tn) + 1);
        else
            p += tn;
    }
}

/* The line's prefix names the rank once; messages built from
 * weft_last_error() carry "rank N: " too (error.c), so it is dropped from
 * the text rather than printed twice or more. */
void weft_vlog(weft_log_level level, const char *fmt, va_list ap)
{
    char line[LINE_MAX_LEN];
    if ((int)level > atomic_load(&cur_level))
        return;
    int n = weft_log_prefix(line, LINE_MAX_LEN - 2);
    n += snprintf(line + n, (size_t)(LINE_MAX_LEN - 2 - n), " %s", level_tags[level]);
    int m = vsnprintf(line + n, (size_t)(LINE_MAX_LEN - 2 - n), fmt, ap);
    n = (m < 0 || n + m > LINE_MAX_LEN - 2) ? LINE_MAX_LEN - 2 : n + m;
    line[n] = '\0';
    char *text = strchr(line, ']');
    if (text && id_rank >= 0) {
        weft_log_drop_rank(text + 1);
        n = (int)strlen(line);
    }
    line[n++] = '\n';
    /* Best effort: a log line that cannot be written has nowhere to go. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void weft_log(weft_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    weft_vlog(level, fmt, ap);
    va_end(ap);
}
