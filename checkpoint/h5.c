/*
 * h5.c -- HDF5 helpers for checkpoints (see h5.h): one lock, errors with
 * HDF5's reason, property lists with the parallel-I/O practices, hyperslab
 * unions, attributes and dataset checksums.
 */
#include "checkpoint/h5.h"
#include "checkpoint/sum.h"
#include "runtime/error.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

static pthread_mutex_t h5_mutex = PTHREAD_MUTEX_INITIALIZER;

void weft_h5_lock(void)
{
    pthread_mutex_lock(&h5_mutex);
    /* HDF5 prints its error stack to stderr by default; weft reports errors
     * itself, with the innermost HDF5 reason (see weft_h5_error). */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void weft_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }

/* The innermost error's description: the root cause. */
static herr_t walk(unsigned n, const H5E_error2_t *e, void *arg)
{
    (void)n;
    char *out = arg;
    if (!*out && e->desc && *e->desc) /* walking upward: the first is the innermost */
        snprintf(out, 256, "%s (in %s)", e->desc, e->func_name ? e->func_name : "?");
    return 0;
}

int weft_h5_error(int rc, const char *fmt, ...)
{
    char msg[1024], why[256] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, why);
    H5Eclear2(H5E_DEFAULT);
    if (*why)
        return weft_error(rc, "%s: HDF5: %s", msg, why);
    return weft_error(rc, "%s", msg);
}

/* HDF5 places metadata (object headers, attributes, the group's links) in
 * blocks of the aggregator's size, 2 KiB by default, each taken where the
 * file ends when the last is full: between the datasets, every few headers.
 * A cold resume of a 577 MB file then read its 199 headers from ~100 places
 * (h5ls -r of it cold: 0.09 s, warm 0.02 s); one block at the head holds
 * them all (68 KB there) and made the load 0.47 s instead of 0.51 s
 * (bench_ckpt, docs/checkpoint-format.md "Tuning"). Sized from what the file
 * will hold: about 350 bytes of metadata per dataset measured, 1 KiB
 * allowed, plus the text attributes; a block too short only means a second
 * one. */
size_t weft_h5_meta_block(size_t data_bytes, size_t nobjects, size_t text_bytes)
{
    size_t want = 16384 + 1024 * nobjects + text_bytes, cap = data_bytes / 256;
    size_t b = (want < cap ? want : cap) & ~(size_t)4095;
    return b >= 4096 ? b : 0;
}

hid_t weft_h5_fapl(MPI_Comm comm, const weft_h5_tuning *t)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return fapl;
    if (comm != MPI_COMM_NULL) {
        H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
        if (t && t->coll_metadata) {
            /* Metadata read once by rank 0 and broadcast, written by all
             * collectively: no metadata read storm, no small writes. */
            H5Pset_all_coll_metadata_ops(fapl, 1);
            H5Pset_coll_metadata_write(fapl, 1);
        }
    }
    /* Only objects at least 16 alignment units long are aligned: padding
     * then costs at most 1/16 of the object, so a file stays within 1.1x
     * its tensors' bytes for models of any size (a 64 KiB threshold padded
     * every 64 KiB tensor to 1 MiB: 15 MiB files for 1.5 MB of state). */
    if (t && t->alignment > 1)
        H5Pset_alignment(fapl, WEFT_H5_ALIGN_MIN(t->alignment), t->alignment);
    if (t && t->meta_block)
        H5Pset_meta_block_size(fapl, t->meta_block);
    H5Pset_sieve_buf_size(fapl, 0); /* raw data straight to the file, never cached */
    /* The 1.8 file format: groups keep their links in their own header (no
     * B-tree and heap per group), less metadata for a tiny model;
     * every HDF5 since 1.8 (2008), h5py and h5dump read it. */
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    return fapl;
}

hid_t weft_h5_create(hid_t file, const char *path, hid_t type, int ndim, const int64_t shape[2])
{
    hsize_t dims[2] = {(hsize_t)shape[0], (hsize_t)shape[1]};
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    H5Pset_layout(dcpl, H5D_CONTIGUOUS);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER); /* every element is written: no fill pass */
    hid_t d = H5Dcreate2(file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
    return d;
}

hid_t weft_h5_select(int ndim, const int64_t shape[2], const weft_ckpt_rect *r, int n)
{
    hsize_t dims[2] = {(hsize_t)shape[0], (hsize_t)shape[1]};
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    if (space < 0 || n == 0) {
        if (space >= 0)
            H5Sselect_none(space);
        return space;
    }
    for (int i = 0; i < n; i++) {
        hsize_t start[2] = {(hsize_t)r[i].start[0], (hsize_t)r[i].start[1]};
        hsize_t count[2] = {(hsize_t)r[i].count[0], (hsize_t)r[i].count[1]};
        if (H5Sselect_hyperslab(space, i == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, start, NULL, count, NULL) < 0) {
            H5Sclose(space);
            return -1;
        }
    }
    return space;
}

hid_t weft_h5_memspace(size_t count)
{
    hsize_t n = count ? count : 1;
    hid_t space = H5Screate_simple(1, &n, NULL);
    if (space >= 0 && count == 0)
        H5Sselect_none(space);
    return space;
}

/* --- attributes --------------------------------------------------------------- */

static int attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    if (H5Aexists(obj, name) > 0)
        H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t w = a >= 0 ? H5Awrite(a, mtype, value) : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    if (w < 0)
        return weft_h5_error(WEFT_EIO, "cannot write attribute '%s'", name);
    return 0;
}

int weft_h5_attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = attr_write(obj, name, t, t, value);
    H5Tclose(t);
    return rc;
}

int weft_h5_attr_i64(hid_t obj, const char *name, int64_t v) { return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v); }
int weft_h5_attr_u64(hid_t obj, const char *name, uint64_t v) { return attr_write(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v); }
int weft_h5_attr_f64(hid_t obj, const char *name, double v) { return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v); }

/* Open attribute name of class cls, scalar; WEFT_EDATA otherwise. */
static hid_t attr_open(hid_t obj, const char *name, H5T_class_t cls)
{
    if (H5Aexists(obj, name) <= 0) {
        weft_h5_error(WEFT_EDATA, "attribute '%s' is missing", name);
        return -1;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, s = a >= 0 ? H5Aget_space(a) : -1;
    int good = t >= 0 && H5Tget_class(t) == cls && s >= 0 && H5Sget_simple_extent_npoints(s) == 1;
    if (t >= 0)
        H5Tclose(t);
    if (s >= 0)
        H5Sclose(s);
    if (!good) {
        if (a >= 0)
            H5Aclose(a);
        weft_h5_error(WEFT_EDATA, "attribute '%s' is not a single value of the expected type", name);
        return -1;
    }
    return a;
}

static int attr_read(hid_t obj, const char *name, H5T_class_t cls, hid_t mtype, void *out)
{
    hid_t a = attr_open(obj, name, cls);
    if (a < 0)
        return WEFT_EDATA;
    herr_t r = H5Aread(a, mtype, out);
    H5Aclose(a);
    if (r < 0)
        return weft_h5_error(WEFT_EDATA, "cannot read attribute '%s'", name);
    return 0;
}

int weft_h5_get_i64(hid_t obj, const char *name, int64_t *v) { return attr_read(obj, name, H5T_INTEGER, H5T_NATIVE_INT64, v); }
int weft_h5_get_u64(hid_t obj, const char *name, uint64_t *v) { return attr_read(obj, name, H5T_INTEGER, H5T_NATIVE_UINT64, v); }
int weft_h5_get_f64(hid_t obj, const char *name, double *v) { return attr_read(obj, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, v); }

int weft_h5_get_str(hid_t obj, const char *name, char **value)
{
    *value = NULL;
    hid_t a = attr_open(obj, name, H5T_STRING);
    if (a < 0)
        return WEFT_EDATA;
    hid_t ft = H5Aget_type(a);
    int rc = 0;
    if (H5Tis_variable_str(ft) > 0) {
        rc = weft_h5_error(WEFT_EDATA, "attribute '%s': variable-length strings are not written by weft", name);
    } else {
        size_t n = H5Tget_size(ft);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n + 1);
        H5Tset_cset(mt, H5Tget_cset(ft)); /* HDF5 converts no character sets */
        *value = calloc(n + 2, 1);
        if (!*value)
            rc = weft_error(WEFT_ENOMEM, "attribute '%s': out of memory", name);
        else if (H5Aread(a, mt, *value) < 0)
            rc = weft_h5_error(WEFT_EDATA, "cannot read attribute '%s'", name);
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    if (rc) {
        free(*value);
        *value = NULL;
    }
    return rc;
}

int weft_h5_shape(hid_t dset, const char *path, int *ndim, int64_t shape[2])
{
    hid_t s = H5Dget_space(dset);
    int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
    hsize_t dims[2] = {0, 0};
    if (nd == 1 || nd == 2)
        H5Sget_simple_extent_dims(s, dims, NULL);
    if (s >= 0)
        H5Sclose(s);
    if (nd != 1 && nd != 2)
        return weft_h5_error(WEFT_EDATA, "dataset '%s' has %d dimensions; weft stores 1 or 2", path, nd);
    *ndim = nd;
    shape[0] = (int64_t)dims[0];
    shape[1] = nd == 2 ? (int64_t)dims[1] : 0;
    return 0;
}

uint64_t weft_h5_hash(const void *data, size_t bytes) { return XXH3_64bits(data, bytes); }

int weft_h5_checksum(hid_t dset, const char *path, void *buf, size_t bufsize, size_t block, uint64_t *out)
{
    int ndim;
    int64_t shape[2];
    WEFT_CHECK(weft_h5_shape(dset, path, &ndim, shape));
    hid_t type = H5Dget_type(dset);
    size_t es = type >= 0 ? H5Tget_size(type) : 0;
    if (es == 0 || es > bufsize) {
        if (type >= 0)
            H5Tclose(type);
        return weft_h5_error(WEFT_EDATA, "dataset '%s': cannot read its type", path);
    }
    weft_shard_spec whole = weft_shard_whole(shape[0], shape[1]);
    size_t total = weft_shard_local_numel(&whole), step = bufsize / es;
    weft_ckpt_sum st;
    weft_ckpt_sum_begin(&st, block);
    int rc = 0;
    weft_ckpt_rect rects[16];
    for (size_t a = 0; a < total && rc == 0; a += step) {
        size_t b = a + step < total ? a + step : total;
        int n = weft_ckpt_region(&whole, a, b, rects);
        hid_t fs = weft_h5_select(ndim, shape, rects, n), ms = weft_h5_memspace(b - a);
        if (fs < 0 || ms < 0 || H5Dread(dset, type, ms, fs, H5P_DEFAULT, buf) < 0)
            rc = weft_h5_error(WEFT_EDATA, "tensor '%s': cannot read elements %zu..%zu (truncated file?)", path, a,
                               b);
        else
            weft_ckpt_sum_update(&st, buf, (b - a) * es);
        if (fs >= 0)
            H5Sclose(fs);
        if (ms >= 0)
            H5Sclose(ms);
    }
    H5Tclose(type);
    *out = weft_ckpt_sum_end(&st);
    return rc;
}
