/*
 * dp_check.c -- weft_dp_check: the data-parallel state's documented
 * invariants (dp.h, dp_int.h, dp_zero3.c's unit states) as code, called
 * through WEFT_INVARIANT where dp.c and dp_zero3.c change that state.
 *
 * What must hold:
 *   - the buckets tile the flat buffer [0, n) from its end, in order,
 *     without gap or overlap (b[0] ends at n, b[i] ends where b[i - 1]
 *     starts, the last starts at 0), each non-empty; a rank's shard lies
 *     inside its bucket, and the pages ZeRO-2/3 give back lie outside the
 *     shard, inside the bucket;
 *   - within a step the buckets below `next` have been launched (LAUNCHED
 *     or DONE), the rest are IDLE; a LAUNCHED bucket has its request; under
 *     ZeRO-2/3 no more than WEFT_DP_IN_FLIGHT of them are still in flight
 *     after a hook returns (`bounded`), and once the gradients are reduced
 *     (`reduced`) every bucket is DONE;
 *   - ZeRO-3's units tile [0, n) in order, each made of whole buckets; a
 *     unit in use (users > 0) is GATHERED; under weft_dp_gather_all
 *     (`whole`) every unit is.
 * An error in the hook (dp->err) leaves the step's states as they were
 * when it failed, so only the layout is checked then.
 */
#include "parallel/dp_int.h"
#include "runtime/error.h"

static int check_layout(const weft_dp *dp, const char *when)
{
    if (dp->nb < 1)
        return weft_error(WEFT_EINTERNAL, "dp (%s): no buckets over %zu floats", when, dp->n);
    for (int i = 0; i < dp->nb; i++) {
        const bucket *k = &dp->b[i];
        size_t end = i == 0 ? dp->n : dp->b[i - 1].start;
        if (k->len == 0 || k->start + k->len != end)
            return weft_error(WEFT_EINTERNAL, "dp (%s): bucket %d is [%zu, %zu); the buckets must tile [0, %zu) "
                              "from its end, so it must end at %zu and be non-empty", when, i, k->start,
                              k->start + k->len, dp->n, end);
        if (k->shard_off + k->shard_len > k->len)
            return weft_error(WEFT_EINTERNAL, "dp (%s): bucket %d's shard [%zu, +%zu) is outside its %zu floats",
                              when, i, k->shard_off, k->shard_len, k->len);
        size_t s0 = k->start + k->shard_off, s1 = s0 + k->shard_len;
        for (int j = 0; j < 2; j++) {
            const size_t *d[2] = {k->drop[j], k->pdrop[j]};
            for (int g = 0; g < 2; g++) {
                if (d[g][1] <= d[g][0])
                    continue;
                size_t lo = j == 0 ? k->start : s1, hi = j == 0 ? s0 : k->start + k->len;
                if (d[g][0] < lo || d[g][1] > hi)
                    return weft_error(WEFT_EINTERNAL, "dp (%s): bucket %d gives back %s floats [%zu, %zu), not "
                                      "inside [%zu, %zu) (outside its shard [%zu, %zu))", when, i,
                                      g ? "parameter" : "gradient", d[g][0], d[g][1], lo, hi, s0, s1);
            }
        }
    }
    if (dp->b[dp->nb - 1].start != 0)
        return weft_error(WEFT_EINTERNAL, "dp (%s): the last bucket starts at %zu, not 0", when,
                          dp->b[dp->nb - 1].start);
    return 0;
}

static int check_buckets(const weft_dp *dp, int reduced, const char *when)
{
    if (dp->next < 0 || dp->next > dp->nb)
        return weft_error(WEFT_EINTERNAL, "dp (%s): next bucket %d of %d", when, dp->next, dp->nb);
    int in_flight = 0;
    for (int i = 0; i < dp->nb; i++) {
        const bucket *k = &dp->b[i];
        int launched = i < dp->next;
        if (launched ? k->state != LAUNCHED && k->state != DONE : k->state != IDLE)
            return weft_error(WEFT_EINTERNAL, "dp (%s): bucket %d is in state %d; expected %s (%d of %d launched)",
                              when, i, k->state, launched ? "LAUNCHED or DONE" : "IDLE", dp->next, dp->nb);
        if (k->state == LAUNCHED && !k->req)
            return weft_error(WEFT_EINTERNAL, "dp (%s): bucket %d is LAUNCHED without a request", when, i);
        in_flight += k->state == LAUNCHED;
        if (reduced > 0 && k->state != DONE)
            return weft_error(WEFT_EINTERNAL, "dp (%s): the gradients are reduced but bucket %d is in state %d, "
                              "not DONE", when, i, k->state);
    }
    if (reduced < 0 && dp->opts.zero >= 2 && in_flight > WEFT_DP_IN_FLIGHT)
        return weft_error(WEFT_EINTERNAL, "dp (%s): %d reductions in flight under ZeRO-%d; at most %d", when,
                          in_flight, dp->opts.zero, WEFT_DP_IN_FLIGHT);
    return 0;
}

static int check_units(const weft_dp *dp, const char *when)
{
    for (int i = 0; i < dp->nu; i++) {
        const unit *u = &dp->u[i];
        size_t end = i + 1 < dp->nu ? dp->u[i + 1].start : dp->n;
        if ((i == 0 && u->start != 0) || u->len == 0 || u->start + u->len != end)
            return weft_error(WEFT_EINTERNAL, "dp (%s): ZeRO-3 unit %d is [%zu, %zu); the units must tile [0, %zu)",
                              when, i, u->start, u->start + u->len, dp->n);
        if (u->nb < 1 || u->b0 < 0 || u->b0 + u->nb > dp->nb ||
            dp->b[u->b0 + u->nb - 1].start != u->start || dp->b[u->b0].start + dp->b[u->b0].len != end)
            return weft_error(WEFT_EINTERNAL, "dp (%s): ZeRO-3 unit %d [%zu, %zu) is not its buckets %d..%d", when,
                              i, u->start, end, u->b0, u->b0 + u->nb - 1);
        if (u->state != RELEASED && u->state != GATHERING && u->state != GATHERED)
            return weft_error(WEFT_EINTERNAL, "dp (%s): ZeRO-3 unit %d in state %d", when, i, u->state);
        if (u->users < 0 || (u->users > 0 && u->state != GATHERED) || (dp->whole && u->state != GATHERED))
            return weft_error(WEFT_EINTERNAL, "dp (%s): ZeRO-3 unit %d has %d users in state %d%s; a unit in use "
                              "is GATHERED", when, i, u->users, u->state, dp->whole ? " (all gathered)" : "");
    }
    return 0;
}

int weft_dp_check(const weft_dp *dp, int reduced, const char *when)
{
    WEFT_CHECK(check_layout(dp, when));
    if (!dp->err)
        WEFT_CHECK(check_buckets(dp, reduced, when));
    return dp->opts.zero >= 3 ? check_units(dp, when) : 0;
}
