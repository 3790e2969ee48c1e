/*
 * test_ckpt_meta_block.c -- checkpoint/h5.c's metadata block: the size rule
 * (weft_h5_meta_block), and a file written the way a save writes one
 * (datasets created and written, then each one's checksum attribute, then
 * the root's text attributes) with every object header before the first
 * byte of raw data, where a cold open reads them in one place. The same
 * file with HDF5's default block (meta_block 0) is checked to scatter its
 * headers between the datasets: what the test would see if the block were
 * not set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/h5.h"

enum { NDSETS = 120, DSET_FLOATS = 65536, TEXT = 8192 };

static void test_rule(void **state)
{
    (void)state;
    /* a tiny model's file (test_size.sh: 416 KB of tensors) keeps HDF5's
     * default: any block would add to its 1.1x */
    assert_int_equal(weft_h5_meta_block(416256, 53, 4000), 0);
    /* a large one holds all its metadata: 16 KiB + 1 KiB per object + text */
    size_t b = weft_h5_meta_block((size_t)577 << 20, 195, 6000);
    assert_true(b >= 16384 + 195 * 1024 + 6000 - 4095 && b % 4096 == 0);
    /* capped at 1/256 of the data, a multiple of 4 KiB */
    b = weft_h5_meta_block((size_t)8 << 20, 1000, 0);
    assert_int_equal(b, ((size_t)8 << 20) / 256);
    b = weft_h5_meta_block(3000000, 1000, 0);
    assert_true(b <= 3000000 / 256 && b % 4096 == 0 && b > 0);
}

/* Write the file at path with meta_block; return the highest object header
 * address and the lowest raw-data offset. */
static void write_file(const char *path, size_t meta_block, haddr_t *top_header, haddr_t *first_data)
{
    weft_h5_tuning t = {0, 0, 1u << 20, meta_block};
    hid_t fapl = weft_h5_fapl(MPI_COMM_NULL, &t);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    assert_true(f >= 0);
    float *x = calloc(DSET_FLOATS, sizeof *x);
    assert_non_null(x);
    hid_t d[NDSETS];
    for (int i = 0; i < NDSETS; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s/h.%d.weight", i % 3 == 0 ? "params" : i % 3 == 1 ? "optim/m" : "optim/v",
                 i / 3);
        int64_t shape[2] = {DSET_FLOATS, 0};
        d[i] = weft_h5_create(f, name, H5T_IEEE_F32LE, 1, shape);
        assert_true(d[i] >= 0);
        assert_true(H5Dwrite(d[i], H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    }
    for (int i = 0; i < NDSETS; i++) {
        assert_int_equal(weft_h5_attr_u64(d[i], "xxh3_64", 0x1234u + (uint64_t)i), 0);
        H5Dclose(d[i]);
    }
    char *text = malloc(TEXT + 1);
    assert_non_null(text);
    memset(text, 'c', TEXT);
    text[TEXT] = 0;
    assert_int_equal(weft_h5_attr_str(f, "config", text), 0);
    assert_int_equal(weft_h5_attr_str(f, "provenance", text + TEXT / 2), 0);
    free(text);
    free(x);
    assert_true(H5Fclose(f) >= 0);

    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    *top_header = 0;
    *first_data = HADDR_UNDEF;
    for (int i = 0; i < NDSETS; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s/h.%d.weight", i % 3 == 0 ? "params" : i % 3 == 1 ? "optim/m" : "optim/v",
                 i / 3);
        H5O_info_t info;
        assert_true(H5Oget_info_by_name2(f, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) >= 0);
        if (info.addr > *top_header)
            *top_header = info.addr;
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        haddr_t off = H5Dget_offset(ds);
        H5Dclose(ds);
        if (off < *first_data)
            *first_data = off;
    }
    H5Fclose(f);
}

static void test_headers_at_head(void **state)
{
    (void)state;
    char path[4096];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/weft-meta-block-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    size_t data = (size_t)NDSETS * DSET_FLOATS * sizeof(float);
    size_t block = weft_h5_meta_block(data, NDSETS, 2 * TEXT);
    assert_true(block > 0);
    haddr_t top, first;
    write_file(path, block, &top, &first);
    assert_true(top < first);         /* every header before the data */
    assert_true(top < block + 4096);  /* in the block after the superblock */
    /* HDF5's default: headers between the datasets */
    write_file(path, 0, &top, &first);
    assert_true(top > first);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_headers_at_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
