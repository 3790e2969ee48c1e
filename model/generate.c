/*
 * generate.c -- the sampler and the generation loop (generate.h).
 *
 * Sampling: with temperature X the probability of token v is proportional
 * to exp((logit[v] - max) / X), computed in double. Top-k and top-p sort
 * the tokens by logit (descending, ties by id) and keep a prefix; without
 * them the draw walks the vocabulary in id order. One uniform draw per
 * sampled token, none for greedy, so a seed fixes the whole sequence.
 */
#include "model/generate.h"
#include "runtime/error.h"
#include "runtime/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct weft_sampler {
    int V;
    weft_sample_opts o;
    weft_rng rng;
    int32_t *idx; /* (V) candidate ids, best first when filtering */
    double *p;    /* (V) their unnormalised probabilities */
};

int weft_sampler_new(int V, const weft_sample_opts *o, weft_sampler **out)
{
    if (V < 1 || !(o->temperature >= 0 && isfinite(o->temperature)) || o->top_k < 0 || !(o->top_p > 0 && o->top_p <= 1))
        return weft_error(WEFT_EINVAL, "sampler: temperature %g (>= 0), top_k %d (>= 0) and top_p %g (in (0, 1]) "
                          "for %d tokens", o->temperature, o->top_k, o->top_p, V);
    weft_sampler *s = calloc(1, sizeof *s);
    if (s) {
        s->idx = malloc((size_t)V * sizeof *s->idx);
        s->p = malloc((size_t)V * sizeof *s->p);
    }
    if (!s || !s->idx || !s->p) {
        weft_sampler_free(s);
        return weft_error(WEFT_ENOMEM, "sampler: out of memory for %d tokens", V);
    }
    s->V = V;
    s->o = *o;
    weft_rng_seed(&s->rng, o->seed);
    *out = s;
    return 0;
}

void weft_sampler_free(weft_sampler *s)
{
    if (!s)
        return;
    free(s->idx);
    free(s->p);
    free(s);
}

static int32_t argmax(const float *x, int V)
{
    int32_t best = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > x[best])
            best = v;
    return best;
}

/* qsort_r order: larger logit first, then smaller id (a total order, so the
 * kept set is the same on every machine). */
static int by_logit(const void *a, const void *b, void *arg)
{
    const float *x = arg;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (x[i] != x[j])
        return x[i] > x[j] ? -1 : 1;
    return (i > j) - (i < j);
}

/* How many of the sorted candidates p (n, summing to z) top-p keeps: the
 * fewest whose probability reaches top_p. */
static int nucleus(const double *p, int n, double z, double top_p)
{
    double c = 0;
    for (int i = 0; i < n; i++) {
        c += p[i] / z;
        if (c >= top_p)
            return i + 1;
    }
    return n;
}

int32_t weft_sampler_pick(weft_sampler *s, const float *logits)
{
    int V = s->V, n = V;
    int32_t best = argmax(logits, V);
    if (s->o.temperature <= 0 || s->o.top_k == 1)
        return best;
    for (int v = 0; v < V; v++)
        s->idx[v] = v;
    int filter = (s->o.top_k > 0 && s->o.top_k < V) || s->o.top_p < 1;
    if (filter) {
        qsort_r(s->idx, (size_t)V, sizeof *s->idx, by_logit, (void *)logits);
        if (s->o.top_k > 0 && s->o.top_k < V)
            n = s->o.top_k;
    }
    double z = 0, inv = 1.0 / s->o.temperature;
    for (int i = 0; i < n; i++)
        z += s->p[i] = exp(((double)logits[s->idx[i]] - (double)logits[best]) * inv);
    if (s->o.top_p < 1) {
        n = nucleus(s->p, n, z, s->o.top_p);
        z = 0;
        for (int i = 0; i < n; i++)
            z += s->p[i];
    }
    double r = weft_rng_uniform(&s->rng) * z;
    for (int i = 0; i < n; i++) {
        r -= s->p[i];
        if (r < 0)
            return s->idx[i];
    }
    return s->idx[n - 1]; /* rounding left r a hair above 0 */
}

/* The next token's logits after t at position pos of the window win (the
 * cache holds win[0..pos)); at the end of the positions, slide: rebuild the
 * cache from the last context / 2 tokens, t the last of them. */
static int advance(weft_model *m, int32_t *win, int *pos, int context, int32_t t, const float **lg)
{
    if (*pos < context) {
        int p = (*pos)++;
        win[p] = t;
        return m->ops->decode(m, win + p, 1, p, lg);
    }
    int keep = context / 2 > 1 ? context / 2 : 1;
    memmove(win, win + context - (keep - 1), (size_t)(keep - 1) * sizeof *win);
    win[keep - 1] = t;
    *pos = keep;
    return m->ops->decode(m, win, keep, 0, lg);
}

int weft_generate(weft_model *m, weft_sampler *s, const int32_t *prompt, int np, const weft_generate_opts *o,
                  int32_t *out, int *nout)
{
    *nout = 0;
    if (!m->ops->decode)
        return weft_error(WEFT_EINVAL, "generate: the %s model cannot decode (not a language model)", m->ops->family);
    if (np < 1 || np > o->context)
        return weft_error(WEFT_EINVAL, "generate: a prompt of %d tokens; it must hold 1 to %d (model.context)", np,
                          o->context);
    int32_t *win = malloc((size_t)o->context * sizeof *win);
    if (!win)
        return weft_error(WEFT_ENOMEM, "generate: out of memory");
    memcpy(win, prompt, (size_t)np * sizeof *win);
    int pos = np, rc;
    const float *lg;
    WEFT_CHECK_GOTO(m->ops->decode(m, win, np, 0, &lg), rc, done);
    while (*nout < o->max_new) {
        int32_t t = weft_sampler_pick(s, lg);
        out[(*nout)++] = t;
        if (o->on_token)
            o->on_token(o->arg, t);
        if (t == o->eot || *nout == o->max_new)
            break;
        WEFT_CHECK_GOTO(advance(m, win, &pos, o->context, t, &lg), rc, done);
    }
    rc = 0;
done:
    free(win);
    return rc;
}
