/*
 * test_durable.c -- runtime/durable.h and runtime/runfiles.h on a real
 * file system: a committed file holds exactly its bytes with mode 0640
 * whatever the umask, replaces the old one, and leaves no temporary name;
 * a write that fails (the file-size limit, a real EFBIG) or a discarded
 * handle leaves the old file as it was; appends are whole lines; a file
 * another library created 0666 is published 0640; and the run-directory
 * table names what writers write and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/durable.h"
#include "runtime/error.h"
#include "runtime/runfiles.h"

static char dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/weft-durable.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    char p[600];
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    return rmdir(dir);
}

/* The whole of path, NUL-terminated, in buf. */
static void slurp(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = 0;
    fclose(f);
}

static int entries(void)
{
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_write_replace(void **state)
{
    (void)state;
    char p[300], buf[64];
    snprintf(p, sizeof p, "%s/a.json", dir);
    mode_t old = umask(0); /* 0640 must come from weft, not from the umask */
    assert_int_equal(weft_durable_write_file(p, "{\"v\":1}\n", 8, WEFT_DURABLE_SYNC), 0);
    assert_int_equal(weft_durable_write_file(p, "{\"v\":22}\n", 9, WEFT_DURABLE_BEST_EFFORT), 0);
    umask(old);
    slurp(p, buf, sizeof buf);
    assert_string_equal(buf, "{\"v\":22}\n");
    assert_int_equal(mode_of(p), 0640);
    assert_int_equal(entries(), 1); /* no temporary left */
}

static void test_stream_and_discard(void **state)
{
    (void)state;
    char p[300], buf[64];
    weft_durable d;
    snprintf(p, sizeof p, "%s/b.txt", dir);
    assert_int_equal(weft_durable_open(&d, p, WEFT_DURABLE_SYNC), 0);
    fprintf(d.f, "first %d\n", 1);
    assert_int_equal(weft_durable_commit(&d), 0);
    assert_int_equal(weft_durable_open(&d, p, WEFT_DURABLE_SYNC), 0);
    fprintf(d.f, "second\n");
    weft_durable_discard(&d);
    slurp(p, buf, sizeof buf);
    assert_string_equal(buf, "first 1\n");
    assert_int_equal(entries(), 1);
}

/* A real write failure: the process's file-size limit (EFBIG). The commit
 * fails naming the file, the old file stays whole, the temporary goes. */
static void test_failed_write_keeps_old(void **state)
{
    (void)state;
    char p[300], buf[64], big[8192];
    snprintf(p, sizeof p, "%s/c.json", dir);
    assert_int_equal(weft_durable_write_file(p, "old\n", 4, WEFT_DURABLE_SYNC), 0);
    memset(big, 'x', sizeof big);
    struct rlimit was, lim = {4096, 4096};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &was), 0);
    lim.rlim_max = was.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = weft_durable_write_file(p, big, sizeof big, WEFT_DURABLE_SYNC);
    weft_durable d;
    int rc2 = weft_durable_open(&d, p, WEFT_DURABLE_SYNC);
    for (int i = 0; rc2 == 0 && i < 4; i++)
        fwrite(big, 1, sizeof big, d.f);
    int rc3 = rc2 ? rc2 : weft_durable_commit(&d);
    setrlimit(RLIMIT_FSIZE, &was);
    assert_int_equal(rc, WEFT_EIO);
    assert_int_equal(rc2, 0);
    assert_int_equal(rc3, WEFT_EIO);
    assert_non_null(strstr(weft_last_error(), "c.json.tmp"));
    slurp(p, buf, sizeof buf);
    assert_string_equal(buf, "old\n");
    assert_int_equal(entries(), 1);
}

static void test_append_lines(void **state)
{
    (void)state;
    char p[300], buf[64];
    int fd;
    snprintf(p, sizeof p, "%s/m.jsonl", dir);
    assert_int_equal(weft_durable_append_open(p, 1, &fd), 0);
    assert_int_equal(weft_durable_append(fd, "{\"step\":1}\n", 11, p), 0);
    assert_int_equal(ftruncate(fd, 0), 0); /* a resume cuts back; appends go to the new end */
    assert_int_equal(weft_durable_append(fd, "{\"step\":2}\n", 11, p), 0);
    close(fd);
    assert_int_equal(weft_durable_append_open(p, 0, &fd), 0);
    assert_int_equal(weft_durable_append(fd, "{\"step\":3}\n", 11, p), 0);
    close(fd);
    slurp(p, buf, sizeof buf);
    assert_string_equal(buf, "{\"step\":2}\n{\"step\":3}\n");
    assert_int_equal(mode_of(p), 0640);
}

static void test_publish(void **state)
{
    (void)state;
    char tmp[300], p[300], buf[64];
    snprintf(tmp, sizeof tmp, "%s/.x.h5.tmp", dir);
    snprintf(p, sizeof p, "%s/x.h5", dir);
    mode_t old = umask(0);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666); /* as MPI-IO creates it */
    umask(old);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hdf", 3), 3);
    close(fd);
    assert_int_equal(weft_durable_publish(tmp, p, WEFT_DURABLE_SYNC), 0);
    assert_int_equal(mode_of(p), 0640);
    slurp(p, buf, sizeof buf);
    assert_string_equal(buf, "hdf");
    assert_int_equal(weft_durable_publish(tmp, p, WEFT_DURABLE_SYNC), WEFT_EIO); /* gone: named in the error */
    assert_non_null(strstr(weft_last_error(), ".x.h5.tmp"));
}

static void test_runfiles_table(void **state)
{
    (void)state;
    static const char *const named[] = {"metrics.jsonl", "config.ini", "run.json", "owner.json", "status.json",
                                        "heartbeat/rank-12", "hang-r3.txt", "flight-r0.json", "trace/rank-1.json",
                                        "checkpoints/step-00000010.h5", "checkpoints/latest",
                                        "checkpoints/.step-00000010.h5.tmp", ".status.json.tmp.4242",
                                        "heartbeat/.rank-0.tmp.77", "previous/20261205T030000Z/metrics.jsonl",
                                        "previous/20261205T030000Z/checkpoints/latest", NULL};
    static const char *const unnamed[] = {"notes.txt", "status.json.bak", "checkpoints/other.h5",
                                          ".status.json.tmp.12x", "heartbeat/rank-1/x", "previous/x.json",
                                          "trace/sub/rank-1.json", NULL};
    for (int i = 0; named[i]; i++)
        if (!weft_runfile_find(named[i]))
            fail_msg("%s is not named by runtime/runfiles.h", named[i]);
    for (int i = 0; unnamed[i]; i++)
        if (weft_runfile_find(unnamed[i]))
            fail_msg("%s is named by runtime/runfiles.h but no writer writes it", unnamed[i]);
    assert_int_equal(weft_runfile_find("checkpoints/latest")->format, WEFT_RUNFMT_LATEST);
    assert_int_equal(weft_runfile_find("status.json")->durability, WEFT_DURABLE_BEST_EFFORT);
    assert_int_equal(weft_runfile_find("metrics.jsonl")->append, 1);
    int r = -1;
    assert_true(weft_runfile_rank("flight-r17.json", WEFT_RUNFILE_FLIGHT_FMT, &r));
    assert_int_equal(r, 17);
    assert_false(weft_runfile_rank("flight-r17.json.tmp.3", WEFT_RUNFILE_FLIGHT_FMT, &r));
    assert_false(weft_runfile_rank("flight-r.json", WEFT_RUNFILE_FLIGHT_FMT, &r));
    assert_false(weft_runfile_rank("flight-r-1.json", WEFT_RUNFILE_FLIGHT_FMT, &r));
    assert_true(weft_runfile_rank("rank-0", WEFT_RUNFILE_HEARTBEAT_NAME, &r));
    assert_int_equal(r, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_and_discard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
        cmocka_unit_test(test_runfiles_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
