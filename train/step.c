/*
 * step.c -- one training step, and evaluation (trainer.h): the one path
 * from a batch to updated parameters, for every model and layout.
 *
 *   next batch -> pipeline schedule (forward and backward of k micro-
 *   batches; the last backward launches the data-parallel bucket
 *   reductions) -> tied-parameter sums -> finish the reductions -> mean
 *   loss over the mesh -> global gradient norm -> clip -> AdamW on this
 *   rank's shard -> (ZeRO) gather the parameters
 */
#include "train/trainer_int.h"
#include "collectives/agree.h"
#include "kernels/kernels.h"
#include "kernels/ops.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/stop.h"
#include "runtime/trace.h"

#include <math.h>

/* Tied tensors (a tied embedding): the first stage's gradient and the last
 * stage's summed on both, so their copies stay equal. */
static int reduce_tied(weft_trainer *t)
{
    weft_comm *e = weft_mesh_embed_comm(t->mesh);
    for (int i = 0; e && i < t->ntied; i++) {
        float *g = t->model->grad_data + t->tied[i][0];
        WEFT_CHECK(weft_comm_allreduce(e, g, g, t->tied[i][1], WEFT_F32, WEFT_SUM));
    }
    return 0;
}

/* The loss lives on the last stage (the same on its TP ranks): summed over
 * stages, averaged over replicas. */
static int reduce_loss(weft_trainer *t, double local, double *out)
{
    WEFT_CHECK(weft_comm_allreduce(weft_mesh_comm(t->mesh, WEFT_AXIS_PP), &local, &local, 1, WEFT_F64, WEFT_SUM));
    return weft_comm_allreduce(t->comm, &local, out, 1, WEFT_F64, WEFT_AVG);
}

/* Global gradient norm: each rank's share (trainer.c classify_params), over
 * every axis. */
static int grad_norm(weft_trainer *t, double *out)
{
    double sumsq;
    WEFT_CHECK(weft_dp_grad_sumsq_ranges(t->dp, (const size_t(*)[2])t->norm, t->nnorm, &sumsq));
    WEFT_CHECK(weft_comm_allreduce(weft_mesh_comm(t->mesh, WEFT_AXIS_TP), &sumsq, &sumsq, 1, WEFT_F64, WEFT_SUM));
    WEFT_CHECK(weft_comm_allreduce(weft_mesh_comm(t->mesh, WEFT_AXIS_PP), &sumsq, &sumsq, 1, WEFT_F64, WEFT_SUM));
    *out = sqrt(sumsq);
    return 0;
}

static int nonfinite(weft_trainer *t, weft_step_stats *s)
{
    if (isfinite(s->loss) && isfinite(s->grad_norm))
        return 0;
    if (t->o.skip_nonfinite) {
        if (t->rank == 0)
            WEFT_WARN("step %lld: loss %g, gradient norm %g: skipping the update (train.on_nonfinite = skip)",
                      (long long)s->step, s->loss, s->grad_norm);
        s->skipped = 1;
        return 0;
    }
    return weft_error(WEFT_EINTERNAL,
                      "step %lld: the loss (%g) or gradient norm (%g) is not finite; stopping rather than training "
                      "on. Lower optim.lr, check the data, or set train.on_nonfinite = skip",
                      (long long)s->step, s->loss, s->grad_norm);
}

/* part / whole in [0, 1] whatever the clocks said: a share is reported as
 * a share, never as -1.5 because two intervals were measured differently. */
static double share(int64_t part, int64_t whole)
{
    if (whole <= 0 || part <= 0)
        return 0.0;
    return part >= whole ? 1.0 : (double)part / (double)whole;
}

static double pipe_idle(const weft_trainer *t)
{
    weft_pipe_stats ps;
    weft_pipe_get_stats(t->pipe, &ps);
    if (weft_mesh_size(t->mesh, WEFT_AXIS_PP) < 2 || ps.total_ns <= 0)
        return NAN;
    return share(ps.wait_ns, ps.total_ns);
}

/* comm_hidden: the share of the reduction window (first bucket launched ->
 * finish_grads returned) not spent blocked in finish_grads. The blocked
 * time ends where the window ends, so only its part inside the window
 * counts; with pipeline stages the last backward (and so the first launch)
 * can come late, or inside finish_grads itself: then nothing was hidden. */
static double hidden_share(const weft_dp *dp)
{
    int64_t window = weft_dp_comm_span_ns(dp);
    return window > 0 ? 1.0 - share(weft_dp_exposed_ns(dp), window) : 0.0;
}

/* ZeRO-3: the time waited for parameter gathers, and the share of their
 * summed spans (launch to done) not waited for: hidden behind compute by
 * the prefetch. */
static void gather_stats(const weft_trainer *t, weft_step_stats *s)
{
    int64_t span, wait;
    weft_dp_gather_times(t->dp, &span, &wait);
    s->gather_ms = 1e-6 * (double)wait;
    s->gather_hidden = t->o.zero >= 3 ? (span > 0 ? 1.0 - share(wait, span) : 0.0) : NAN;
}

/* Clip, AdamW on this rank's shard, and (ZeRO) the parameters gathered. */
static int update(weft_trainer *t, const weft_step_stats *s)
{
    double clip = weft_optim_clip_scale(t->opt, s->grad_norm);
    int64_t tw = weft_trace_begin();
    WEFT_CHECK(weft_optim_step(t->opt, t->model->param_data, t->model->grad_data, s->lr, clip));
    weft_trace_end("optimizer", "optim", WEFT_TRACE_COMPUTE, -1, tw);
    tw = weft_trace_begin();
    WEFT_CHECK(weft_dp_gather_params(t->dp));
    weft_trace_end("params.gather", "comm", WEFT_TRACE_COMPUTE, -1, tw);
    weft_trainer_weights_changed(t);
    return 0;
}

void weft_trainer_weights_changed(weft_trainer *t)
{
    if (!t->bf16 || !t->model)
        return;
    int64_t tw = weft_trace_begin();
    weft_ops *o = t->model->kops; /* the weights are the device's memory */
    o->bf16_refresh(o, t->model->param_data, t->model->n);
    o->bf16_refresh(o, t->model->frozen_data, t->model->frozen_n);
    weft_trace_end("bf16.refresh", "optim", WEFT_TRACE_COMPUTE, -1, tw);
}

int weft_trainer_step(weft_trainer *t, weft_step_stats *s)
{
    int64_t t0 = weft_now_ns(), tt = weft_trace_begin(), tw = tt;
    const void *batch;
    WEFT_CHECK(t->train->ops->next(t->train, &batch));
    weft_trace_end("data.wait", "data", WEFT_TRACE_COMPUTE, -1, tw);
    s->data_ms = 1e-6 * (double)t->train->ops->last_wait_ns(t->train);
    s->lr = weft_optim_lr(t->opt, s->step);
    weft_dp_zero_grads(t->dp);
    weft_dp_begin(t->dp);
    double loss_sum;
    t->model->step = s->step;
    t->model->training = 1;
    int rc = weft_pipe_train(t->pipe, batch, &loss_sum);
    t->model->training = 0;
    WEFT_CHECK(rc);
    s->pipe_idle = pipe_idle(t);
    tw = weft_trace_begin();
    WEFT_CHECK(reduce_tied(t));
    WEFT_CHECK(weft_dp_finish_grads(t->dp));
    weft_trace_end("grads.wait", "comm", WEFT_TRACE_COMPUTE, -1, tw);
    double loss = loss_sum / (double)t->o.k;
    if (weft_fault_at(WEFT_FAULT_LOSS, s->step + 1))
        loss = NAN; /* nan_step: this rank's loss goes bad; the allreduce spreads it */
    WEFT_CHECK(reduce_loss(t, loss, &s->loss));
    WEFT_CHECK(grad_norm(t, &s->grad_norm));
    WEFT_CHECK(nonfinite(t, s));
    if (!s->skipped)
        WEFT_CHECK(update(t, s));
    gather_stats(t, s);
    s->comm_ms = 1e-6 * (double)weft_dp_exposed_ns(t->dp);
    s->hidden = hidden_share(t->dp);
    s->ms = 1e-6 * (double)(weft_now_ns() - t0);
    weft_trace_end("step %d", "step", WEFT_TRACE_COMPUTE, (int)s->step + 1, tt);
    return 0;
}

int64_t weft_trainer_val_batches(const weft_trainer *t)
{
    if (!t->val)
        return 0;
    int64_t samples = t->val->ops->samples(t->val);
    return samples < 0 ? -1 : samples / t->o.G;
}

/* Mean loss over `batches` (train.eval_batches when <= 0) global batches
 * from the start of the validation split, so evaluations are comparable. */
int weft_trainer_evaluate(weft_trainer *t, int64_t batches, double *val_loss)
{
    if (batches <= 0)
        batches = t->o.eval_batches;
    *val_loss = NAN;
    if (!t->val || batches <= 0)
        return 0;
    int64_t tt = weft_trace_begin();
    WEFT_CHECK(t->val->ops->seek(t->val, 0));
    double loss_sum = 0;
    for (int64_t i = 0; i < batches; i++) {
        int stop;
        WEFT_CHECK(weft_comm_any(t->world, weft_stop_requested(), &stop));
        if (stop) { /* every rank abandons the evaluation at the same batch */
            if (t->rank == 0)
                WEFT_INFO("evaluation abandoned after %lld of %lld batches: stop requested", (long long)i,
                          (long long)batches);
            return 0;
        }
        if (t->sched) /* started: tell the scheduler the job is alive */
            weft_sched_heartbeat(t->sched);
        const void *batch;
        WEFT_CHECK(t->val->ops->next(t->val, &batch));
        WEFT_CHECK(weft_pipe_forward(t->pipe, batch, (int)t->o.k, &loss_sum));
        if (i == 0) /* kill_eval, stall_eval: mid-evaluation, its step as the logs count it */
            weft_fault_at(WEFT_FAULT_EVAL, t->model->step + 1);
    }
    WEFT_CHECK(weft_dp_release_params(t->dp)); /* ZeRO-3: a prefetched unit may still be in place */
    int rc = reduce_loss(t, loss_sum / (double)(batches * t->o.k), val_loss);
    weft_trace_end("eval", "eval", WEFT_TRACE_COMPUTE, -1, tt);
    return rc;
}
