/*
 * test_ckpt_flusher.c -- the write-back thread of a save (checkpoint/flusher.c):
 * what it asks the disk to write is exactly what the writer published, in
 * file offsets -- the runs of segments walked in the writer's order, never a
 * byte beyond what was published, every published byte once -- however the
 * writer cuts its pieces; a writer that stops early (a failed write) ends
 * it at once; a failed write-back is reported with the file and the range;
 * the real sync_file_range's refusal (a pipe) is reported the same way.
 * The check that trails the write-back is handed every position once, in
 * order, never one whose write-back was not started, in pieces no larger
 * than asked; the writer never leads it by more than the limit; a failed
 * check stops the writer (publish says so) and is reported as it said.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/flusher.h"
#include "runtime/error.h"

/* The file: 3 runs of segments, the first two segments adjacent in the
 * file and in memory (one run), the others apart. */
static weft_ckpt_seg segs_store[] = {
    {.off = 4096, .mem = 0, .len = 1000, .dset = 0},
    {.off = 5096, .mem = 1000, .len = 3000, .dset = 1}, /* continues run 0 */
    {.off = 20000, .mem = 4000, .len = 5000, .dset = 2},
    {.off = 90000, .mem = 9000, .len = 7, .dset = 3},
};
static const weft_ckpt_segs SEGS = {segs_store, 4, 4};
enum { TOTAL = 9007 };

/* The recorder: which file bytes were asked for, and how often. */
static unsigned char asked[100000];
static size_t published_now; /* file bytes the writer published, as the test counts them */
static int fail_at_call = -1, calls;
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;

/* How many bytes the writer has published once file byte b is in:
 * its position in run order + 1 (0: b is in no segment). */
static size_t needed_for(size_t b)
{
    size_t base = 0;
    for (int i = 0; i < SEGS.n; i++) {
        if (b >= SEGS.s[i].off && b < SEGS.s[i].off + SEGS.s[i].len)
            return base + (b - SEGS.s[i].off) + 1;
        base += SEGS.s[i].len;
    }
    return 0;
}

static int recorder(int fd, size_t off, size_t len)
{
    (void)fd;
    pthread_mutex_lock(&rec_mu);
    int e = calls++ == fail_at_call ? EIO : 0;
    for (size_t b = off; b < off + len && !e; b++)
        asked[b]++;
    /* never ahead of the writer: every byte asked for was published */
    size_t limit = published_now;
    pthread_mutex_unlock(&rec_mu);
    for (size_t b = off; b < off + len; b++) {
        size_t need = needed_for(b);
        if (need == 0 || need > limit)
            return ERANGE; /* a byte in no segment, or not yet written */
    }
    return e;
}

/* The checker: how often each position was checked, how far in order,
 * the largest piece, and the writer's largest lead over it. */
static unsigned char checked[TOTAL];
static size_t checked_upto, largest_piece, largest_lead;
static int check_fail_at = -1, check_calls, check_wrong;
static size_t trail_now;  /* the trail the flusher was given (0: not checked) */
static int closing;       /* the writer is done: the check may catch up */

/* The file byte at position pos (bytes in run order). */
static size_t file_byte_of(size_t pos)
{
    for (int i = 0; i < SEGS.n; pos -= SEGS.s[i++].len)
        if (pos < SEGS.s[i].len)
            return SEGS.s[i].off + pos;
    return (size_t)-1;
}

static int checker(void *ctx, size_t pos, size_t n)
{
    assert_ptr_equal(ctx, checked);
    pthread_mutex_lock(&rec_mu);
    int call = check_calls++;
    if (pos != checked_upto) /* in order: no gap, no repeat */
        check_wrong++;
    for (size_t q = pos; q < pos + n; q++) {
        if (q >= TOTAL || asked[file_byte_of(q)] != 1) /* its write-back started first */
            check_wrong++;
        else
            checked[q]++;
    }
    size_t started = 0; /* positions whose write-back was started */
    for (size_t b = 0; b < sizeof asked; b++)
        started += asked[b];
    if (trail_now && !closing && started < pos + trail_now) /* checked only a trail behind */
        check_wrong++;
    checked_upto = pos + n;
    largest_piece = n > largest_piece ? n : largest_piece;
    pthread_mutex_unlock(&rec_mu);
    return call == check_fail_at ? weft_error(WEFT_EIO, "lost at position %zu", pos) : 0;
}

static void reset(void)
{
    memset(asked, 0, sizeof asked);
    memset(checked, 0, sizeof checked);
    published_now = checked_upto = largest_piece = largest_lead = trail_now = 0;
    closing = 0;
    fail_at_call = check_fail_at = -1;
    calls = check_calls = check_wrong = 0;
}

static int publish(weft_ckpt_flusher *f, size_t n)
{
    pthread_mutex_lock(&rec_mu);
    published_now += n;
    pthread_mutex_unlock(&rec_mu);
    int rc = weft_ckpt_flusher_publish(f, n);
    pthread_mutex_lock(&rec_mu);
    size_t lead = published_now - checked_upto;
    largest_lead = lead > largest_lead ? lead : largest_lead;
    pthread_mutex_unlock(&rec_mu);
    return rc;
}

/* The check's piece, trail and limit set small, before anything is published. */
static void set_sizes(weft_ckpt_flusher *f, size_t piece, size_t trail, size_t limit)
{
    pthread_mutex_lock(&f->mu);
    f->piece = piece, f->trail = trail, f->limit = limit;
    pthread_mutex_unlock(&f->mu);
    pthread_mutex_lock(&rec_mu);
    trail_now = trail;
    pthread_mutex_unlock(&rec_mu);
}

/* Every segment byte among the first `upto` published asked once; no other byte. */
static void check_asked(size_t upto)
{
    size_t base = 0;
    for (int i = 0; i < SEGS.n; i++) {
        for (size_t b = 0; b < SEGS.s[i].len; b++)
            assert_int_equal(asked[SEGS.s[i].off + b], base + b < upto ? 1 : 0);
        base += SEGS.s[i].len;
    }
    size_t in_segs = 0;
    for (size_t b = 0; b < sizeof asked; b++)
        in_segs += asked[b];
    assert_int_equal(in_segs, upto);
}

static void every_piece_size(void **state)
{
    (void)state;
    size_t pieces[] = {1, 7, 1000, 1001, 4096, TOTAL};
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
        reset();
        weft_ckpt_flusher f;
        assert_int_equal(weft_ckpt_flusher_start(&f, &SEGS, -1, recorder, NULL, NULL), 0);
        for (size_t done = 0; done < TOTAL;) {
            size_t n = TOTAL - done < pieces[k] ? TOTAL - done : pieces[k];
            publish(&f, n);
            done += n;
        }
        assert_int_equal(weft_ckpt_flusher_end(&f, "ck.tmp"), 0);
        check_asked(TOTAL);
    }
}

static void writer_stops_early(void **state)
{
    (void)state;
    reset();
    weft_ckpt_flusher f;
    assert_int_equal(weft_ckpt_flusher_start(&f, &SEGS, -1, recorder, NULL, NULL), 0);
    publish(&f, 4500); /* all of run 0, 500 bytes of run 1, then the write failed */
    assert_int_equal(weft_ckpt_flusher_end(&f, "ck.tmp"), 0);
    check_asked(4500);
    reset(); /* and one that published nothing */
    assert_int_equal(weft_ckpt_flusher_start(&f, &SEGS, -1, recorder, NULL, NULL), 0);
    assert_int_equal(weft_ckpt_flusher_end(&f, "ck.tmp"), 0);
    check_asked(0);
    /* ended without a start (the save failed before writing): nothing to join */
    weft_ckpt_flusher none = {0};
    assert_int_equal(weft_ckpt_flusher_end(&none, "ck.tmp"), 0);
}

static void failed_writeback_is_reported(void **state)
{
    (void)state;
    reset();
    fail_at_call = 0;
    weft_ckpt_flusher f;
    assert_int_equal(weft_ckpt_flusher_start(&f, &SEGS, -1, recorder, NULL, NULL), 0);
    publish(&f, TOTAL);
    assert_int_equal(weft_ckpt_flusher_end(&f, "/ck/.step-00000007.h5.tmp"), WEFT_EIO);
    const char *msg = weft_last_error();
    assert_non_null(strstr(msg, "/ck/.step-00000007.h5.tmp"));
    assert_non_null(strstr(msg, "at offset 4096"));
    assert_non_null(strstr(msg, strerror(EIO)));
}

/* The real call on a descriptor it cannot write back: a pipe (ESPIPE). */
static void real_call_refused(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    weft_ckpt_flusher f;
    assert_int_equal(weft_ckpt_flusher_start(&f, &SEGS, p[1], NULL, NULL, NULL), 0);
    weft_ckpt_flusher_publish(&f, 100);
    assert_int_equal(weft_ckpt_flusher_end(&f, "pipe"), WEFT_EIO);
    assert_non_null(strstr(weft_last_error(), "writing pipe back to disk failed"));
    close(p[0]);
    close(p[1]);
}

static void check_trails_writeback(void **state)
{
    (void)state;
    size_t pieces[] = {1, 7, 1000, TOTAL};
    for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
        for (int small = 0; small < 2; small++) {
            reset();
            weft_ckpt_flusher f;
            assert_int_equal(weft_ckpt_flusher_start(&f, &SEGS, -1, recorder, checker, checked), 0);
            if (small) /* else the real sizes: all of it checked at the end, in one piece */
                set_sizes(&f, 64, 128, 512);
            for (size_t done = 0; done < TOTAL;) {
                size_t n = TOTAL - done < pieces[k] ? TOTAL - done : pieces[k];
                assert_int_equal(publish(&f, n), 0);
                done += n;
            }
            pthread_mutex_lock(&rec_mu);
            closing = 1;
            pthread_mutex_unlock(&rec_mu);
            assert_int_equal(weft_ckpt_flusher_end(&f, "ck.tmp"), 0);
            check_asked(TOTAL);
            assert_int_equal(check_wrong, 0);
            assert_int_equal(checked_upto, TOTAL);
            for (size_t q = 0; q < TOTAL; q++)
                assert_int_equal(checked[q], 1);
            assert_true(largest_piece <= (small ? 64 : TOTAL));
            if (small) /* a lead of one publish beyond the limit at most */
                assert_true(largest_lead <= 512);
        }
    }
}

static void failed_check_stops_writer(void **state)
{
    (void)state;
    reset();
    check_fail_at = 1; /* the second piece, positions 50..99 */
    weft_ckpt_flusher f;
    assert_int_equal(weft_ckpt_flusher_start(&f, &SEGS, -1, recorder, checker, checked), 0);
    set_sizes(&f, 50, 50, 100);
    size_t done = 0;
    int rc = 0;
    while (done < TOTAL && rc == 0)
        rc = publish(&f, 1), done++;
    /* the writer waits once 100 ahead of position 50, then learns of the stop */
    assert_int_equal(rc, -1);
    assert_true(done <= 50 + 100 + 1);
    assert_int_equal(weft_ckpt_flusher_end(&f, "ck.tmp"), WEFT_EIO);
    assert_non_null(strstr(weft_last_error(), "lost at position 50"));
    assert_int_equal(checked_upto, 100);
    assert_int_equal(check_wrong, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_piece_size),
        cmocka_unit_test(writer_stops_early),
        cmocka_unit_test(failed_writeback_is_reported),
        cmocka_unit_test(real_call_refused),
        cmocka_unit_test(check_trails_writeback),
        cmocka_unit_test(failed_check_stops_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
