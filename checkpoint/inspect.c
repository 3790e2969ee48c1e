/*
 * inspect.c -- single-process checkpoint reading (see inspect.h).
 */
#include "checkpoint/inspect.h"
#include "checkpoint/agree.h"
#include "checkpoint/h5.h"
#include "checkpoint/sum.h"
#include "runtime/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int check_format(hid_t f, const char *path)
{
    char *fmt = NULL;
    int rc = weft_h5_get_str(f, "format", &fmt);
    if (rc != 0 || strcmp(fmt, "weft-checkpoint") != 0) {
        free(fmt);
        return weft_error(WEFT_EDATA, "%s is an HDF5 file but not a weft checkpoint (no attribute format = "
                          "\"weft-checkpoint\")", path);
    }
    free(fmt);
    int64_t v;
    WEFT_CHECK(weft_h5_get_i64(f, "format_version", &v));
    if (v != 1 && v != 2)
        return weft_error(WEFT_EDATA, "checkpoint %s has format version %lld; this weft reads versions 1 and 2",
                          path, (long long)v);
    return 0;
}

int weft_ckpt_open_file(const char *path, hid_t *out)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "checkpoint %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return weft_error(WEFT_EDATA, "checkpoint %s is not a regular file", path);
    if (H5Fis_hdf5(path) <= 0)
        return weft_error(WEFT_EDATA, "checkpoint %s is not an HDF5 file (%lld bytes, no HDF5 signature)", path,
                          (long long)st.st_size);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return weft_h5_error(WEFT_EDATA, "checkpoint %s cannot be opened (truncated or damaged?)", path);
    int rc = check_format(f, path);
    if (rc) {
        H5Fclose(f);
        return rc;
    }
    *out = f;
    return 0;
}

static herr_t collect_path(hid_t obj, const char *name, const H5O_info_t *info, void *arg)
{
    (void)obj;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    char ***list = arg;
    size_t n = 0;
    while ((*list)[n])
        n++;
    char **g = realloc(*list, (n + 2) * sizeof *g);
    if (!g)
        return -1;
    g[n] = strdup(name);
    g[n + 1] = NULL;
    *list = g;
    return g[n] ? 0 : -1;
}

int weft_ckpt_list_datasets(hid_t f, const char *path, char ***list)
{
    *list = calloc(1, sizeof **list);
    if (!*list)
        return weft_error(WEFT_ENOMEM, "out of memory");
    if (H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, collect_path, list) < 0) {
        weft_ckpt_free_list(*list);
        *list = NULL;
        return weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot list its datasets", path);
    }
    return 0;
}

void weft_ckpt_free_list(char **list)
{
    for (int i = 0; list && list[i]; i++)
        free(list[i]);
    free(list);
}

int weft_ckpt_verify_dataset(hid_t f, const char *path, const char *dpath, void *scratch)
{
    hid_t d = H5Dopen2(f, dpath, H5P_DEFAULT);
    if (d < 0)
        return weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot open '%s'", path, dpath);
    uint64_t want = 0, have = 0;
    size_t block;
    int rc = weft_ckpt_sum_block_of(f, path, &block);
    if (rc == 0)
        rc = weft_h5_get_u64(d, "xxh3_64", &want);
    if (rc == 0)
        rc = weft_h5_checksum(d, dpath, scratch, WEFT_CKPT_SCRATCH, block, &have);
    H5Dclose(d);
    if (rc)
        return weft_ckpt_wrap(rc, "checkpoint %s: tensor '%s'", path, dpath);
    if (want != have)
        return weft_error(WEFT_EDATA, "checkpoint %s: tensor '%s' fails its checksum (stored xxh3 %016llx, data "
                          "gives %016llx): the file is corrupt", path, dpath, (unsigned long long)want,
                          (unsigned long long)have);
    return 0;
}

int weft_ckpt_read_f32(hid_t f, const char *dpath, float **data, int *ndim, int64_t shape[2])
{
    *data = NULL;
    hid_t d = H5Dopen2(f, dpath, H5P_DEFAULT);
    if (d < 0)
        return weft_h5_error(WEFT_EDATA, "cannot open '%s'", dpath);
    int rc = weft_h5_shape(d, dpath, ndim, shape);
    hid_t t = H5Dget_type(d);
    if (rc == 0 && !(H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4))
        rc = weft_error(WEFT_EDATA, "'%s' is not float32", dpath);
    H5Tclose(t);
    size_t n = rc ? 0 : (size_t)shape[0] * (size_t)(*ndim == 2 ? shape[1] : 1);
    if (rc == 0 && !(*data = malloc(n * sizeof(float) + 1)))
        rc = weft_error(WEFT_ENOMEM, "'%s': out of memory", dpath);
    if (rc == 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0)
        rc = weft_h5_error(WEFT_EDATA, "cannot read '%s' (truncated file?)", dpath);
    H5Dclose(d);
    if (rc) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

int weft_ckpt_params_hash(const char *path, uint64_t *out)
{
    hid_t f;
    weft_h5_lock();
    int rc = weft_ckpt_open_file(path, &f);
    char **list = NULL;
    if (rc == 0) {
        rc = weft_ckpt_list_datasets(f, path, &list);
        /* the names and stored checksums of params/ only, in sorted order */
        size_t cap = 4096, len = 0;
        char *text = rc == 0 ? malloc(cap) : NULL;
        rc = rc || text ? rc : weft_error(WEFT_ENOMEM, "out of memory");
        for (int i = 0; rc == 0 && list[i]; i++) {
            if (strncmp(list[i], "params/", 7) != 0)
                continue;
            hid_t d = H5Dopen2(f, list[i], H5P_DEFAULT);
            uint64_t h = 0;
            rc = d < 0 ? weft_h5_error(WEFT_EDATA, "checkpoint %s: cannot open '%s'", path, list[i])
                       : weft_h5_get_u64(d, "xxh3_64", &h);
            if (d >= 0)
                H5Dclose(d);
            size_t need = strlen(list[i]) + 20;
            if (rc == 0 && len + need > cap) {
                char *t = realloc(text, cap = 2 * cap + need);
                rc = t ? 0 : weft_error(WEFT_ENOMEM, "out of memory");
                text = t ? t : text;
            }
            if (rc == 0)
                len += (size_t)snprintf(text + len, cap - len, "%s %016llx\n", list[i], (unsigned long long)h);
        }
        if (rc == 0)
            *out = weft_h5_hash(text, len);
        free(text);
        weft_ckpt_free_list(list);
        H5Fclose(f);
    }
    weft_h5_unlock();
    return rc;
}
