/*
 * model.c -- the parts of the model interface every implementation shares:
 * the parameter table and the flat parameter and gradient buffers (model.h).
 */
#include "model/model.h"
#include "runtime/error.h"

#include <stdlib.h>
#include <string.h>

int weft_model_add_param(weft_model *m, int cap, const char *name, weft_shard_spec shard, unsigned flags)
{
    if (!m->params) {
        m->params = calloc((size_t)cap, sizeof *m->params);
        if (!m->params)
            return weft_error(WEFT_ENOMEM, "model: out of memory for %d parameters", cap);
    }
    if (m->nparams >= cap)
        return weft_error(WEFT_EINTERNAL, "model: more than %d parameters (adding %s)", cap, name);
    weft_tensor *t = &m->params[m->nparams++];
    *t = weft_tensor_param(name, shard, m->n, flags);
    m->n += t->numel;
    return 0;
}

int weft_model_alloc(weft_model *m)
{
    m->param_data = calloc(m->n ? m->n : 1, sizeof(float));
    m->grad_data = calloc(m->n ? m->n : 1, sizeof(float));
    if (!m->param_data || !m->grad_data)
        return weft_error(WEFT_ENOMEM, "model: out of memory for %zu parameters", m->n);
    return 0;
}

void weft_model_release(weft_model *m)
{
    free(m->params);
    free(m->param_data);
    free(m->grad_data);
    m->params = NULL;
    m->param_data = m->grad_data = NULL;
}

const weft_tensor *weft_model_param(const weft_model *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return &m->params[i];
    return NULL;
}

void weft_model_zero_grad(weft_model *m) { memset(m->grad_data, 0, m->n * sizeof(float)); }

void weft_model_free(weft_model *m)
{
    if (m)
        m->ops->free(m);
}
