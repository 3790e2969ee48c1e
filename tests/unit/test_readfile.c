/*
 * test_readfile.c -- runtime/readfile.h on a real file system: a file of
 * any size comes back byte for byte with a '\0' after it; a pipe is read to
 * its end; the size limit holds at exactly max and max + 1; a missing file
 * or a directory is WEFT_ENOENT and a real read error (the kernel's EIO
 * from /proc/self/mem) is WEFT_EIO, each message naming the path and what
 * the file was meant to be.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/error.h"
#include "runtime/readfile.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/weft-readfile.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A file of n pseudo-random bytes (zeros among them); returns the bytes. */
static unsigned char *make_file(const char *path, size_t n, unsigned seed)
{
    unsigned char *b = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((seed = seed * 1103515245u + 12345u) >> 16);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    close(fd);
    return b;
}

static void test_sizes(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 1, 4094, 4095, 4096, 4097, 65536, 300001};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        char p[300];
        snprintf(p, sizeof p, "%s/f%zu", dir, k);
        unsigned char *want = make_file(p, sizes[k], (unsigned)k + 1);
        char *got = NULL;
        size_t len = 99;
        assert_int_equal(weft_read_file(p, 1u << 20, "the test file", &got, &len), 0);
        assert_int_equal(len, sizes[k]);
        if (sizes[k])
            assert_memory_equal(got, want, sizes[k]);
        assert_int_equal(got[len], '\0');
        free(got);
        free(want);
    }
}

static void test_limit(void **state)
{
    (void)state;
    char p[300];
    snprintf(p, sizeof p, "%s/limit", dir);
    const size_t sizes[] = {10, 5000, 70000};
    for (size_t k = 0; k < 3; k++) {
        free(make_file(p, sizes[k], 7));
        char *got = NULL;
        size_t len = 0;
        assert_int_equal(weft_read_file(p, sizes[k], "the test file", &got, &len), 0);
        assert_int_equal(len, sizes[k]);
        free(got);
        got = (char *)1;
        assert_int_equal(weft_read_file(p, sizes[k] - 1, "the test file", &got, &len), WEFT_EDATA);
        assert_null(got);
        assert_non_null(strstr(weft_last_error(), p));
        assert_non_null(strstr(weft_last_error(), "more than the test file may have"));
    }
}

static void test_missing_and_directory(void **state)
{
    (void)state;
    char p[300], *got = (char *)1;
    size_t len = 5;
    snprintf(p, sizeof p, "%s/none", dir);
    assert_int_equal(weft_read_file(p, 100, "the manifest", &got, &len), WEFT_ENOENT);
    assert_null(got);
    assert_int_equal(len, 0);
    assert_non_null(strstr(weft_last_error(), p));
    assert_non_null(strstr(weft_last_error(), "cannot open the manifest"));
    assert_int_equal(weft_read_file(dir, 100, "the manifest", &got, &len), WEFT_ENOENT);
    assert_non_null(strstr(weft_last_error(), "is a directory, not the manifest"));
    snprintf(p, sizeof p, "%s/none/deeper", dir);
    assert_int_equal(weft_read_file(p, 100, "the manifest", &got, &len), WEFT_ENOENT);
}

/* A FIFO: no size to trust, read until the writer closes it. */
static void test_pipe(void **state)
{
    (void)state;
    char p[300];
    snprintf(p, sizeof p, "%s/fifo", dir);
    assert_int_equal(mkfifo(p, 0600), 0);
    const size_t n = 200003;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(p, O_WRONLY);
        for (size_t i = 0; i < n; i++) {
            char c = (char)('a' + i % 26);
            if (write(fd, &c, 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    char *got = NULL;
    size_t len = 0;
    assert_int_equal(weft_read_file(p, 1u << 20, "the text to encode", &got, &len), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(len, n);
    for (size_t i = 0; i < n; i++)
        if (got[i] != (char)('a' + i % 26))
            fail_msg("byte %zu is %d", i, got[i]);
    assert_int_equal(got[n], '\0');
    free(got);
}

/* /proc/self/mem at offset 0 (an unmapped address) fails every read with
 * EIO: a real read error, not a simulated one. */
static void test_read_error(void **state)
{
    (void)state;
    char *got = (char *)1;
    size_t len = 0;
    assert_int_equal(weft_read_file("/proc/self/mem", 100, "the config file", &got, &len), WEFT_EIO);
    assert_null(got);
    assert_non_null(strstr(weft_last_error(), "/proc/self/mem: reading the config file failed after 0 bytes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_missing_and_directory),
        cmocka_unit_test(test_pipe),
        cmocka_unit_test(test_read_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
