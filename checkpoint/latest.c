/*
 * latest.c -- checkpoint names, `latest` and a local tier's owner mark
 * (see latest.h).
 */
#include "checkpoint/latest.h"
#include "runtime/error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void weft_ckpt_file_name(int64_t step, char *buf, size_t len) { snprintf(buf, len, "step-%08lld.h5", (long long)step); }

int weft_ckpt_parse_name(const char *name, int64_t *step)
{
    if (strncmp(name, "step-", 5) != 0)
        return 0;
    const char *p = name + 5, *q = p;
    while (isdigit((unsigned char)*q))
        q++;
    if (q - p < 8 || q - p > 15 || strcmp(q, ".h5") != 0)
        return 0;
    *step = strtoll(p, NULL, 10);
    return 1;
}

/* The first 40 of k bytes for a message, each unprintable one as '?'. */
static void excerpt(const char *buf, size_t k, char shown[41])
{
    size_t m = k < 40 ? k : 40, j;
    for (j = 0; j < m; j++)
        shown[j] = isprint((unsigned char)buf[j]) ? buf[j] : '?';
    shown[j] = '\0';
}

int weft_ckpt_parse_latest(const char *buf, size_t n, const char *origin, char *name, size_t len, int64_t *step)
{
    char text[40], shown[41];
    size_t k = n && buf[n - 1] == '\n' ? n - 1 : n;
    int good = k > 0 && k < sizeof text && memchr(buf, '\0', k) == NULL;
    if (good) {
        memcpy(text, buf, k);
        text[k] = '\0';
        good = weft_ckpt_parse_name(text, step) && k < len;
    }
    if (good) {
        memcpy(name, text, k + 1);
        return 0;
    }
    excerpt(buf, k, shown);
    return weft_error(WEFT_EDATA, "%s is malformed ('%s'%s): it must hold one checkpoint file name, "
                      "step-NNNNNNNN.h5", origin, shown, k > 40 ? "..." : "");
}

int weft_ckpt_parse_owner(const char *buf, size_t n, const char *origin, uint64_t *owner)
{
    size_t k = n && buf[n - 1] == '\n' ? n - 1 : n;
    int good = k == 22 && memcmp(buf, "owner ", 6) == 0;
    uint64_t v = 0;
    for (size_t i = 6; good && i < k; i++) {
        char c = buf[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        good = d >= 0;
        v = v << 4 | (uint64_t)(d & 15);
    }
    if (good && v != 0) {
        *owner = v;
        return 0;
    }
    char shown[41];
    excerpt(buf, k, shown);
    return weft_error(WEFT_EDATA, "%s is malformed ('%s'%s): it must hold 'owner' and a run identity of 16 "
                      "hex digits", origin, shown, k > 40 ? "..." : "");
}
