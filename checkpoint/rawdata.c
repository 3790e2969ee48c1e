/*
 * rawdata.c -- segments of contiguous datasets and whole-buffer pwrite /
 * pread (see rawdata.h for why checkpoints move their bytes this way).
 */
#include "checkpoint/rawdata.h"
#include "checkpoint/sum.h"
#include "runtime/error.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */

/* Linux moves at most 0x7ffff000 bytes per call; ask for less. */
#define MAX_CALL ((size_t)1 << 30)

static int push(weft_ckpt_segs *v, size_t off, size_t len, int dset)
{
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 256;
        weft_ckpt_seg *s = realloc(v->s, (size_t)cap * sizeof *s);
        if (!s)
            return weft_error(WEFT_ENOMEM, "checkpoint: out of memory for %d file segments", cap);
        v->s = s;
        v->cap = cap;
    }
    v->s[v->n++] = (weft_ckpt_seg){off, 0, len, dset};
    return 0;
}

static int by_off(const void *a, const void *b)
{
    size_t x = ((const weft_ckpt_seg *)a)->off, y = ((const weft_ckpt_seg *)b)->off;
    return x < y ? -1 : x > y;
}

int weft_ckpt_segs_add(weft_ckpt_segs *v, int ndim, const int64_t shape[2], size_t esize,
                       const weft_ckpt_rect *r, int n, size_t base, size_t mem, int dset)
{
    size_t cols = ndim == 2 ? (size_t)shape[1] : 1;
    int first = v->n;
    for (int k = 0; k < n; k++) {
        size_t r0 = (size_t)r[k].start[0], c0 = (size_t)r[k].start[1];
        size_t rows = (size_t)r[k].count[0], w = (size_t)r[k].count[1];
        if (w == cols) { /* whole rows: one run */
            WEFT_CHECK(push(v, base + r0 * cols * esize, rows * cols * esize, dset));
            continue;
        }
        for (size_t i = 0; i < rows; i++)
            WEFT_CHECK(push(v, base + ((r0 + i) * cols + c0) * esize, w * esize, dset));
    }
    /* The rank's elements are stored in global row-major order (region.h),
     * which is file order: sorted by offset, memory follows in turn. */
    qsort(v->s + first, (size_t)(v->n - first), sizeof *v->s, by_off);
    for (int i = first; i < v->n; i++) {
        v->s[i].mem = mem;
        mem += v->s[i].len;
    }
    return 0;
}

void weft_ckpt_segs_sort(weft_ckpt_segs *v)
{
    if (v->n > 1)
        qsort(v->s, (size_t)v->n, sizeof *v->s, by_off);
}

void weft_ckpt_segs_free(weft_ckpt_segs *v)
{
    free(v->s);
    *v = (weft_ckpt_segs){0};
}

int weft_ckpt_segs_run(const weft_ckpt_segs *v, int i, size_t *bytes)
{
    size_t b = v->s[i].len;
    int j = i + 1;
    while (j < v->n && v->s[j].off == v->s[j - 1].off + v->s[j - 1].len &&
           v->s[j].mem == v->s[j - 1].mem + v->s[j - 1].len)
        b += v->s[j++].len;
    *bytes = b;
    return j;
}

int weft_ckpt_pwrite_all(int fd, const void *buf, size_t len, size_t off, size_t *done)
{
    *done = 0;
    while (*done < len) {
        size_t want = len - *done < MAX_CALL ? len - *done : MAX_CALL;
        ssize_t w = pwrite(fd, (const char *)buf + *done, want, (off_t)(off + *done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        if (w == 0) /* a regular file takes no bytes: out of space or a limit */
            return EIO;
        *done += (size_t)w;
    }
    return 0;
}

int weft_ckpt_pread_all(int fd, void *buf, size_t len, size_t off, size_t *done)
{
    *done = 0;
    while (*done < len) {
        size_t want = len - *done < MAX_CALL ? len - *done : MAX_CALL;
        ssize_t r = pread(fd, (char *)buf + *done, want, (off_t)(off + *done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0) /* end of file: the file is shorter than its datasets */
            return EIO;
        *done += (size_t)r;
    }
    return 0;
}

int weft_ckpt_pread_hash(int fd, size_t off, size_t len, void *buf, size_t bufsize, size_t block, uint64_t *out)
{
    weft_ckpt_sum h;
    weft_ckpt_sum_begin(&h, block);
    for (size_t a = 0; a < len; a += bufsize) {
        size_t n = len - a < bufsize ? len - a : bufsize, done;
        int e = weft_ckpt_pread_all(fd, buf, n, off + a, &done);
        if (e)
            return e;
        weft_ckpt_sum_update(&h, buf, n);
    }
    *out = weft_ckpt_sum_end(&h);
    return 0;
}
