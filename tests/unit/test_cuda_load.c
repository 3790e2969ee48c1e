/*
 * test_cuda_load.c -- kernels/cuda_load.h on a machine with or without a
 * GPU: a cpu device is refused by name; a library that is not there is
 * WEFT_EUNAVAILABLE naming the path and how to build it; and, where `make`
 * built libweft-cuda.so (nvcc present), that library loads, its table has
 * this libweft's version and every entry. Loading needs no GPU (dlopen
 * only); creating a context does, and is left to tests/gpu/. Each case that
 * loads runs in a child: the loader loads once per process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels/cuda_load.h"
#include "runtime/error.h"

/* Run fn in a child with WEFT_CUDA_LIB = lib; its exit status. */
static int in_child(const char *lib, int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("WEFT_CUDA_LIB", lib, 1);
        _exit(fn());
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static int load_missing(void)
{
    const weft_cuda_ops *ops = (const weft_cuda_ops *)1;
    int rc = weft_cuda_ops_load(&ops, NULL, 0);
    if (rc != WEFT_EUNAVAILABLE || ops != NULL)
        return 1;
    const char *m = weft_last_error();
    if (!strstr(m, "/nonexistent/libweft-cuda.so") || !strstr(m, "WEFT_CUDA_LIB") || !strstr(m, "nvcc")) {
        fprintf(stderr, "message: %s\n", m);
        return 2;
    }
    return 0;
}

static void test_missing(void **state)
{
    (void)state;
    assert_int_equal(in_child("/nonexistent/libweft-cuda.so", load_missing), 0);
}

static void test_cpu_refused(void **state)
{
    (void)state;
    weft_dev *cpu = NULL;
    weft_device where = {WEFT_DEVICE_CPU, 0};
    assert_int_equal(weft_device_open(where, &cpu), 0);
    const weft_cuda_ops *ops = NULL;
    weft_cuda_ctx *ctx = (weft_cuda_ctx *)1;
    assert_int_equal(weft_cuda_kernels_open(cpu, 64, &ops, &ctx), WEFT_EINVAL);
    assert_null(ctx);
    assert_non_null(strstr(weft_last_error(), "need a cuda device, not cpu"));
    weft_device_close(cpu);
}

static char built[4200];

static int load_built(void)
{
    const weft_cuda_ops *ops = NULL;
    char path[4200];
    if (weft_cuda_ops_load(&ops, path, sizeof path) != 0) {
        fprintf(stderr, "%s\n", weft_last_error());
        return 1;
    }
    if (ops->abi != WEFT_CUDA_OPS_ABI || strcmp(path, built) != 0)
        return 2;
    /* every entry of the table is filled: the table is all function pointers after abi */
    const void *const *fn = (const void *const *)((const char *)ops + offsetof(weft_cuda_ops, ctx_new));
    size_t n = (sizeof *ops - offsetof(weft_cuda_ops, ctx_new)) / sizeof(void *);
    for (size_t i = 0; i < n; i++)
        if (!fn[i]) {
            fprintf(stderr, "entry %zu of the table is NULL\n", i);
            return 3;
        }
    return n == 5 + 40 ? 0 : 4; /* the context calls and the ops: update with WEFT_CUDA_OPS_ABI */
}

static void test_built_library(void **state)
{
    (void)state;
    const char *b = getenv("BUILD");
    snprintf(built, sizeof built, "%s/lib/libweft-cuda.so", b && *b ? b : "build");
    if (access(built, R_OK) != 0)
        skip(); /* no nvcc where this was built: nothing to load */
    assert_int_equal(in_child(built, load_built), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_cpu_refused),
        cmocka_unit_test(test_built_library),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
