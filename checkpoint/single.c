/*
 * single.c -- one process writes a whole checkpoint file (see single.h):
 * create PATH's temporary twin -> each tensor as params/NAME (f32, its
 * global shape, checksum from memory) -> rng/state -> root attributes and
 * provenance (seal.c) -> close -> fsync -> rename -> fsync the directory.
 */
#include "checkpoint/single.h"
#include "checkpoint/h5.h"
#include "checkpoint/seal.h"
#include "checkpoint/sum.h"
#include "checkpoint/writer_int.h"
#include "runtime/durable.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One whole dataset of n elements at path, with its checksum. */
static int put_dataset(hid_t f, const char *path, hid_t ftype, hid_t mtype, int ndim, const int64_t shape[2],
                       const void *data, size_t bytes)
{
    hid_t d = weft_h5_create(f, path, ftype, ndim, shape);
    if (d < 0)
        return weft_h5_error(WEFT_EIO, "cannot create dataset %s", path);
    int rc = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0
                 ? weft_h5_error(WEFT_EIO, "writing %s failed", path)
                 : weft_h5_attr_u64(d, "xxh3_64", weft_ckpt_sum_of(data, bytes, WEFT_CKPT_SUM_BLOCK));
    H5Dclose(d);
    return rc;
}

static int put_tensors(hid_t f, const weft_ckpt_state *s)
{
    for (int i = 0; i < s->ntensors; i++) {
        const weft_tensor *t = &s->tensors[i];
        if (t->flags & WEFT_TENSOR_TIED_COPY)
            continue;
        if (t->shard.ndim != t->ndim || weft_shard_local_numel(&t->shard) != t->numel ||
            t->numel != (size_t)t->shard.global_shape[0] * (size_t)(t->ndim == 2 ? t->shard.global_shape[1] : 1))
            return weft_error(WEFT_EINVAL, "checkpoint: tensor '%s' is a piece; one process writes whole tensors",
                              t->name);
        char path[160];
        snprintf(path, sizeof path, "params/%s", t->name);
        int64_t shape[2] = {t->shard.global_shape[0], t->ndim == 2 ? t->shard.global_shape[1] : 0};
        WEFT_CHECK(put_dataset(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim, shape, s->params + t->offset,
                               t->numel * sizeof(float)));
    }
    return 0;
}

static int write_file(const char *tmp, const weft_ckpt_state *s, const weft_ckpt_meta *m, const char *ini,
                      const char *source, const char *prov)
{
    size_t data = sizeof m->rng, text = (ini ? strlen(ini) : 0) + (source ? strlen(source) : 0) +
                                        (prov ? strlen(prov) : 0);
    for (int i = 0; i < s->ntensors; i++)
        data += s->tensors[i].flags & WEFT_TENSOR_TIED_COPY ? 0 : s->tensors[i].numel * sizeof(float);
    /* checkpoint.alignment's default; the metadata at the head (h5.c) */
    weft_h5_tuning tune = {0, 0, 1u << 20, weft_h5_meta_block(data, (size_t)s->ntensors + 1, text)};
    hid_t fapl = weft_h5_fapl(MPI_COMM_NULL, &tune);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return weft_h5_error(WEFT_EIO, "cannot create %s", tmp);
    weft_ckpt_layout one = {.dp_size = 1, .tp_size = 1, .pp_size = 1};
    int64_t n1[2] = {1, 0};
    int rc = put_tensors(f, s);
    if (rc == 0)
        rc = put_dataset(f, "rng/state", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, n1, &m->rng, sizeof m->rng);
    if (rc == 0)
        rc = weft_ckpt_root_attrs(f, m, &one, 1, ini);
    if (rc == 0 && source)
        rc = weft_h5_attr_str(f, "source", source);
    if (rc == 0)
        rc = weft_ckpt_seal_single(f, tmp, m->step, prov);
    if (H5Fclose(f) < 0 && rc == 0)
        rc = weft_h5_error(WEFT_EIO, "closing %s failed", tmp);
    return rc;
}

int weft_ckpt_write_single(const char *path, const weft_ckpt_state *s, const weft_ckpt_meta *m,
                           const char *config_ini, const char *source, const char *prov)
{
    if (s->m || s->v)
        return weft_error(WEFT_EINVAL, "checkpoint: one process writes weights only");
    char dir[4096], tmp[8400];
    const char *slash = strrchr(path, '/');
    weft_durable_dir_of(path, dir, sizeof dir);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%d", dir, slash ? slash + 1 : path, (int)getpid());
    int rc = write_file(tmp, s, m, config_ini, source, prov);
    if (rc == 0)
        rc = weft_durable_publish(tmp, path, WEFT_DURABLE_SYNC);
    if (rc)
        unlink(tmp);
    return rc;
}
