#!/bin/bash
# test_requeue.sh -- preemption and time limits under a real Slurm, through
# examples/slurm/train.sbatch:
#   - scancel --batch --signal=USR1: every rank stops after the same step,
#     commits a checkpoint, rank 0 requeues the job (scontrol requeue), the
#     requeued job resumes from that checkpoint (--resume=auto) and its final
#     weights and AdamW moments equal an uninterrupted run's bit for bit
#     (weft-ckpt diff, tolerance 0);
#   - the same through a time limit (--time=1 --signal=B:USR1@60): Slurm's
#     own warning signal; the test, as an administrator would, extends the
#     requeued job's limit so that the second attempt can finish;
#   - sched.max_requeues bounds it: with 0 the job is not requeued and ends
#     with exit 138.
# Steps sleep (WEFT_FAULT=slow_step:MS) so that the first attempt is still running
# when the signal comes (the numbers do not change).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm.sh"
slurm_start
train="$WEFT_BIN/weft-train"
N=800
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
cat >"$TMPDIR_TEST/tiny.ini" <<INI
[model]
n_layer = 2
n_head = 2
n_embd = 32
context = 32
[train]
steps = $N
seq_len = 32
micro_batch = 4
global_batch = 8
log_interval = 100
eval_interval = 0
eval_batches = 1
INI
submit() { # NAME STEP_MS EXTRA-SBATCH-ARGS... -- WEFT-ARGS...
    local name=$1 ms=$2; shift 2
    local sb=()
    while [ "$1" != -- ]; do sb+=("$1"); shift; done
    shift
    WEFT_FAULT=slow_step:$ms CONFIG="$TMPDIR_TEST/tiny.ini" DATA="$ds" RUN_DIR="$TMPDIR_TEST/$name" \
        LOCAL="$TMPDIR_TEST" WEFT="$WEFT_ROOT" \
        sbatch --parsable -J "$name" -o "$TMPDIR_TEST/$name.out" "${sb[@]}" "$WEFT_ROOT/examples/slurm/train.sbatch" "$@"
}
# wait_step RUN_DIR STEP SECS: until rank 0's heartbeat shows STEP or more.
wait_step() {
    local i
    for i in $(seq $(($3 * 10))); do
        [ "$(awk '/^step/ {print $2}' "$1/heartbeat/rank-0" 2>/dev/null)" -ge "$2" ] 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
final() { echo "$1/checkpoints/step-$(printf %08d "$N").h5"; }

# The uninterrupted reference, under mpirun.
weft_mpirun 2 "$train" --config "$TMPDIR_TEST/tiny.ini" --data.path="$ds" --run.dir="$TMPDIR_TEST/ref" \
    >"$TMPDIR_TEST/ref.log" 2>&1
check "the uninterrupted reference run writes step $N" test -f "$(final "$TMPDIR_TEST/ref")"

# check_resumed NAME JOB WHAT: the common checks of a stopped, requeued and
# finished job.
check_resumed() {
    local name=$1 job=$2 what=$3 out="$TMPDIR_TEST/$1.out"
    check "$what: job $job COMPLETED with exit 0 after 1 restart" test \
        "$(slurm_job_field "$job" JobState) $(slurm_job_field "$job" ExitCode) $(slurm_job_field "$job" Restarts)" = "COMPLETED 0:0 1"
    check "$what: both ranks stopped after the same step K, committed step K, rank 0 requeued; the restart resumed from K" \
        python3 - "$out" "$job" <<'PY'
import re, sys
log, job = open(sys.argv[1]).read(), sys.argv[2]
first, _, second = log.partition("weft: job %s restart 1 " % job)
assert second, "no second attempt:\n" + log[-3000:]
stops = dict(re.findall(r"\[weft r(\d)/2 [^]]*\] .*all ranks stop after step (\d+)", first))
assert sorted(stops) == ["0", "1"] and stops["0"] == stops["1"], first[-3000:]
k = int(stops["0"])
assert 0 < k < 800, k
assert re.search(r"checkpoint step %d committed" % k, first), first[-3000:]
assert "requeued Slurm job %s (restart 1 of at most" % job in first, first[-3000:]
assert "step ended with exit status 138" in first, first[-3000:]
assert re.search(r"resumed from \S+step-%08d\.h5 \(step %d," % (k, k), second), second[-3000:]
assert "done: 800 steps" in second, second[-3000:]
print("stopped after step", k)
PY
    check "$what: final weights and moments equal the uninterrupted run's bit for bit" \
        "$WEFT_BIN/weft-ckpt" diff "$(final "$TMPDIR_TEST/ref")" "$(final "$TMPDIR_TEST/$name")"
    check "$what: status.json says done with 1 restart" python3 -c "
import json; st = json.load(open('$TMPDIR_TEST/$name/status.json'))
assert st['state'] == 'done' and st['restarts'] == 1 and st['step'] == $N, st"
}

# Time limit: --time=1 with the warning at 60 s before the end is due at
# once; slurmctld checks time limits every 30 s, so it comes within ~30 s.
tl=$(submit tlimit 50 --time=1 --signal=B:USR1@60 -- --sched.max_requeues=3)
# Preemption by hand, running beside it.
pre=$(submit preempt 10 -- --sched.max_requeues=3)
noreq=$(submit noreq 10 -- --sched.max_requeues=0)
if wait_step "$TMPDIR_TEST/preempt" 50 60; then
    if said=$(slurm_signal_batch "$pre" USR1 "$TMPDIR_TEST/preempt.out"); then
        ok "the preempted job is training (step >= 50); scancel --batch --signal=USR1 reached its trap"
    else
        not_ok "scancel --batch --signal=USR1 reaches the preempted job's trap" "$said"
    fi
else
    not_ok "the preempted job is training" "$(tail -20 "$TMPDIR_TEST/preempt.out")"
fi
if wait_step "$TMPDIR_TEST/noreq" 50 60; then slurm_signal_batch "$noreq" USR1 "$TMPDIR_TEST/noreq.out" >/dev/null; fi

# The requeued time-limit job keeps its 1-minute limit; extend it (as an
# administrator would) so that the second attempt can finish.
for i in $(seq 400); do [ "$(slurm_job_field "$tl" Restarts)" = 1 ] && break; sleep 0.25; done
scontrol update JobId="$tl" TimeLimit=10
check "the time-limit job was requeued after Slurm's warning signal" grep -q "weft: SIGUSR1: asking the ranks" "$TMPDIR_TEST/tlimit.out"

slurm_wait_state "$noreq" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 60
check "sched.max_requeues = 0: not requeued, the job ends FAILED with exit 138" \
    test "$(slurm_job_field "$noreq" JobState) $(slurm_job_field "$noreq" ExitCode) $(slurm_job_field "$noreq" Restarts)" = "FAILED 138:0 0"
expect_grep "not requeueing job $noreq: it has been restarted 0 times \(sched.max_requeues = 0\)" "$TMPDIR_TEST/noreq.out" \
    "the log says why it was not requeued"

for job in "$pre" "$tl"; do
    for i in $(seq 480); do
        [ "$(slurm_job_field "$job" Restarts)" = 1 ] && slurm_job_field "$job" JobState | grep -Eqx 'COMPLETED|FAILED|CANCELLED|TIMEOUT' && break
        sleep 0.25
    done
done
check_resumed preempt "$pre" "scancel --signal=USR1"
check_resumed tlimit "$tl" "time limit (--signal=B:USR1@60)"
