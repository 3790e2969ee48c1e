/*
 * cuda_load.c -- finding and opening libweft-cuda.so (cuda_load.h).
 */
#include "kernels/cuda_load.h"
#include "runtime/error.h"

#include <dlfcn.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIB_NAME "libweft-cuda.so"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const weft_cuda_ops *table;
static char loaded_from[4096];
static char failure[2048]; /* empty once loaded */

/* Try one path; on failure append why to `failure`. */
static int try_open(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(failure + strlen(failure), sizeof failure - strlen(failure), "%s%s", failure[0] ? "; " : "",
                 e ? e : path);
        return 0;
    }
    weft_cuda_ops_get_fn get = (weft_cuda_ops_get_fn)dlsym(h, "weft_cuda_ops_get");
    if (!get) {
        snprintf(failure + strlen(failure), sizeof failure - strlen(failure), "%s%s: no weft_cuda_ops_get",
                 failure[0] ? "; " : "", path);
        dlclose(h);
        return 0;
    }
    table = get();
    snprintf(loaded_from, sizeof loaded_from, "%s", path);
    return 1;
}

static void load(void)
{
    const char *env = getenv("WEFT_CUDA_LIB");
    if (env && *env) {
        try_open(env);
        return; /* named explicitly: nothing else stands in for it */
    }
    Dl_info info;
    if (dladdr((void *)&weft_cuda_ops_load, &info) && info.dli_fname && strchr(info.dli_fname, '/')) {
        char self[4096], dir[4096], path[4200];
        snprintf(self, sizeof self, "%s", info.dli_fname);
        snprintf(dir, sizeof dir, "%s", dirname(self));
        snprintf(path, sizeof path, "%s/" LIB_NAME, dir);
        if (try_open(path))
            return;
        snprintf(path, sizeof path, "%s/../lib/" LIB_NAME, dir);
        if (try_open(path))
            return;
    }
    try_open(LIB_NAME);
}

int weft_cuda_ops_load(const weft_cuda_ops **out, char *path, size_t len)
{
    pthread_once(&once, load);
    *out = NULL;
    if (!table)
        return weft_error(WEFT_EUNAVAILABLE, "the CUDA kernels (" LIB_NAME ") cannot be loaded: %s; build them with "
                          "`make` on a machine with CUDA (nvcc at CUDA_HOME) or name the file in WEFT_CUDA_LIB",
                          failure);
    if (table->abi != WEFT_CUDA_OPS_ABI)
        return weft_error(WEFT_EUNSUPPORTED, "%s has kernel table version %d, this libweft needs %d: rebuild them "
                          "together", loaded_from, table->abi, WEFT_CUDA_OPS_ABI);
    if (path)
        snprintf(path, len, "%s", loaded_from);
    *out = table;
    return 0;
}

int weft_cuda_kernels_open(weft_dev *d, int max_cols, const weft_cuda_ops **ops, weft_cuda_ctx **ctx)
{
    *ctx = NULL;
    weft_device where = weft_device_where(d);
    char name[32];
    if (where.kind != WEFT_DEVICE_CUDA)
        return weft_error(WEFT_EINVAL, "the CUDA kernels need a cuda device, not %s",
                          weft_device_name(where, name, sizeof name));
    WEFT_CHECK(weft_cuda_ops_load(ops, NULL, 0));
    char err[512];
    int rc = (*ops)->ctx_new(weft_device_stream_handle(d, WEFT_STREAM_COMPUTE), max_cols, ctx, err, sizeof err);
    if (rc)
        return weft_error(WEFT_EUNAVAILABLE, "%s: the CUDA kernels' context: %s",
                          weft_device_name(where, name, sizeof name), err);
    return 0;
}
