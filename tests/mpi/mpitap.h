/*
 * mpitap.h -- TAP for multi-rank tests. Every rank runs every case and keeps
 * going after a failed check, so all ranks always make the same collective
 * calls; at the end of a case the ranks agree (MPI_MAX over world) on
 * whether it passed and rank 0 prints one "ok"/"not ok" line. A failing rank
 * prints its first failure as a TAP comment.
 */
#ifndef WEFT_TESTS_MPITAP_H
#define WEFT_TESTS_MPITAP_H

#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_rank, tap_fails, tap_total_failed;
static char tap_first[1024];

static void tap_begin(void) { tap_fails = 0; tap_first[0] = '\0'; }

__attribute__((format(printf, 1, 2))) static void tap_fail(const char *fmt, ...)
{
    if (tap_fails++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tap_first, sizeof tap_first, fmt, ap);
        va_end(ap);
    }
}

#define TAP_CHECK(cond, ...) do { if (!(cond)) tap_fail(__VA_ARGS__); } while (0)

__attribute__((format(printf, 1, 2))) static void tap_end(const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int any = 0;
    MPI_Allreduce(&tap_fails, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    tap_n++;
    if (tap_fails) {
        printf("# rank %d: %d failed check%s, first: %s\n", tap_rank, tap_fails, tap_fails > 1 ? "s" : "",
               tap_first);
        fflush(stdout);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (tap_rank == 0) {
        printf("%s %d - %s\n", any ? "not ok" : "ok", tap_n, name);
        fflush(stdout);
    }
    tap_total_failed += any != 0;
}

#endif
