#!/bin/bash
# test_hang.sh -- a rank stopped (SIGSTOP) or killed (SIGKILL) mid-training
# (as step 21 begins: WEFT_FAULT=stall_step / kill_step, a registry point,
# not a moment) ends the whole job within comm.timeout + 30 s of the fault,
# every time (each fault twice), under mpirun:
#   - STOP: the waiting rank's timeout names the collective (op, sequence
#     number, communicator) and rank 1 as silent, from rank 1's heartbeat
#     file (out of band); hang-r0.txt, flight-r0.json and status.json
#     (failed) are written, and weft-doctor prints the diagnosis;
#     weft-doctor names rank 1 as stopped (heard again after the others
#     gave up) or silent, and one last completed step that no rank is said
#     to be behind;
#   - KILL: the job ends naming the dead rank; weft-doctor names it killed
#     and never says every rank reported until the end.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
# run.peak_flops given: no peak GEMMs at start-up, whose seconds of work on
# a loaded machine put one rank past the 3 s timeout before the first step
# (a false hang, seen beside other jobs at load 22)
timeout_s=3
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=4 --train.global_batch=8 --train.log_interval=1000000
      --train.eval_interval=0 --train.eval_batches=1 --comm.timeout=$timeout_s --sched.heartbeat=0.5
      --run.peak_flops=1e11)

# fault SIG N: train on 2 ranks; rank 1 sends itself SIG as step 21 begins
# (WEFT_FAULT, docs/operations.md "Fault injection"); sets run, log, rc and
# elapsed: whole seconds from the fault's logged wall-clock time to the end.
# Steps take at least 100 ms (slow_step), so the 20 before the fault span
# four heartbeats (0.5 s) or more: the verdicts can say the step a rank was
# last heard at. A loaded machine only makes that margin wider.
fault() {
    local sig=$1 n=$2 name=kill_step t1 tf
    [ "$sig" = STOP ] && name=stall_step
    run="$TMPDIR_TEST/$sig-$n"
    log="$TMPDIR_TEST/$sig-$n.log"
    WEFT_FAULT=slow_step:100,$name:21@1 WEFT_MPI_TIMEOUT=120 weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=100000000 \
        --run.dir="$run" >"$log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    tf=$(sed -n 's/.*fault injected: .*(unix time \([0-9.]*\)).*/\1/p' "$log" | head -1)
    elapsed=$(python3 -c 'import sys; print(int(float(sys.argv[1]) - float(sys.argv[2]) + 0.999))' "$t1" "${tf:-0}")
}

for n in 1 2; do
    fault STOP "$n"
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$elapsed" -le $((timeout_s + 30)) ]; then
        ok "SIGSTOP of rank 1 (run $n): the job ends in $elapsed s (exit $rc), within comm.timeout + 30 s"
    else
        not_ok "SIGSTOP of rank 1 (run $n): the job ends within comm.timeout + 30 s" "exit $rc after $elapsed s: $(tail -20 "$log")"
    fi
    expect_grep "r0/2 .*aborting the job: .*(allreduce|allgather|reduce_scatter) #[0-9]+ .*still pending after 3\.[0-9] s \(comm\.timeout = 3 s\); silent: rank 1 \([^)]*silent for [0-9.]+ s, stopped, hung or dead; last heard at step [0-9]+" \
        "$log" "run $n: rank 0's abort names the collective and rank 1 as silent (from its heartbeat)"
    check "run $n: hang-r0.txt records the collective and rank 1 as silent" python3 - "$run/hang-r0.txt" <<'PY'
import sys
kv = dict(l.rstrip("\n").split(" ", 1) for l in open(sys.argv[1]) if " " in l and not l.startswith("peer "))
# The data-parallel group or the world (both span ranks 0-1 here).
assert kv["comm"] in ("world.0", "dp.0") and kv["members"] == "0-1" and kv["silent"] == "1", kv
assert kv["op"] in ("allreduce", "allgather", "reduce_scatter") and int(kv["seq"]) > 20, kv
assert 3.0 <= float(kv["pending_s"]) < 4.5 and kv["timeout_s"] == "3", kv
PY
    check "run $n: rank 0's flight record shows that operation timed out" python3 - "$run/flight-r0.json" "$run/hang-r0.txt" <<'PY'
import json, sys
kv = dict(l.rstrip("\n").split(" ", 1) for l in open(sys.argv[2]) if l.startswith(("seq ", "comm ")))
seq, group = int(kv["seq"]), kv["comm"].rsplit(".", 1)[0]
d = json.load(open(sys.argv[1]))
recs = {r["seq"]: r for c in d["comms"] if c["group"] == group for r in c["records"]}
assert recs[seq]["state"] == "timedout", recs[seq]
PY
    "$WEFT_BIN/weft-doctor" "$run" >"$run.doctor" 2>&1
    expect_grep "^hang: (allreduce|allgather|reduce_scatter) #[0-9]+ on communicator (world|dp).0 \(world ranks 0-1\) was pending 3\.[0-9] s on rank 0" \
        "$run.doctor" "run $n: weft-doctor names the collective"
    expect_grep "silent \(stopped, hung or dead\): rank 1$" "$run.doctor" "run $n: weft-doctor names rank 1"
    expect_grep "^job [^ ]+: failed at step [0-9]+ of 100000000: aborted: " "$run.doctor" \
        "run $n: status.json says failed, with the abort message"
    expect_grep "^    rank 1 \([^)]*\): (stopped|silent): " "$run.doctor" "run $n: weft-doctor's ranks name rank 1 as stopped or silent"
    check "run $n: one last completed step, no later than the job's, and no rank said to be behind it" \
        python3 - "$run.doctor" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
job = int(re.search(r"^job \S+: \w+ at step (\d+)", t, re.M).group(1))
last = re.findall(r"^last step every rank completed: (\d+)", t, re.M)
assert len(last) == 1 and int(last[0]) <= job, (last, job)
# Every step weft-doctor says of a rank now (not "then", when the hang was
# recorded; not in the job line, which quotes the abort message) is at or
# after the last step every rank completed.
said = "\n".join(l for l in t.splitlines() if not l.startswith("job "))
for m in re.findall(r"(?<!then )(?:last heard at step|after they gave up \(at step) (\d+)", said):
    assert int(m) >= int(last[0]), (m, last, t)
PY
done

# A new attempt in the same run directory (here: 1 rank, 5 steps; a fresh
# start, so run.overwrite moves the old attempt to previous/) starts
# without the last attempt's verdicts.
weft_mpirun 1 "$train" "${tiny[@]}" --train.steps=5 --run.dir="$TMPDIR_TEST/STOP-1" --run.overwrite=true >"$TMPDIR_TEST/STOP-1.again.log" 2>&1
"$WEFT_BIN/weft-doctor" "$TMPDIR_TEST/STOP-1" >"$TMPDIR_TEST/STOP-1.again" 2>&1
if grep -q "^job [^ ]*: done at step 5 of 5" "$TMPDIR_TEST/STOP-1.again" && ! grep -q "^hang:" "$TMPDIR_TEST/STOP-1.again" &&
    [ ! -e "$TMPDIR_TEST/STOP-1/heartbeat/rank-1" ] && [ ! -e "$TMPDIR_TEST/STOP-1/hang-r0.txt" ]; then
    ok "a new attempt in the run directory drops the old hang records and heartbeats"
else
    not_ok "a new attempt in the run directory drops the old hang records and heartbeats" "$(head -30 "$TMPDIR_TEST/STOP-1.again.log"; cat "$TMPDIR_TEST/STOP-1.again"; ls -R "$TMPDIR_TEST/STOP-1")"
fi

for n in 1 2; do
    fault KILL "$n"
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$elapsed" -le $((timeout_s + 30)) ]; then
        ok "SIGKILL of rank 1 (run $n): the job ends in $elapsed s (exit $rc), within comm.timeout + 30 s"
    else
        not_ok "SIGKILL of rank 1 (run $n): the job ends within comm.timeout + 30 s" "exit $rc after $elapsed s: $(tail -20 "$log")"
    fi
    expect_grep "process rank 1 with PID [0-9]+ on node [^ ]+ exited on signal 9|rank 1 of 'world' .*died" "$log" \
        "run $n: the job's output names rank 1 as killed"
    "$WEFT_BIN/weft-doctor" "$run" >"$run.doctor" 2>&1
    expect_grep "^job [^ ]+: (failed|running) at step [0-9]+" "$run.doctor" "run $n: weft-doctor reads the run"
    expect_grep "^    rank 1 \([^)]*\): killed: " "$run.doctor" "run $n: weft-doctor names rank 1 as killed"
    if grep -q "reported until the end" "$run.doctor"; then
        not_ok "run $n: weft-doctor does not say every rank reported until the end" "$(cat "$run.doctor")"
    else
        ok "run $n: weft-doctor does not say every rank reported until the end"
    fi
done

expect_exit 66 "weft-doctor on a missing directory exits 66" "$WEFT_BIN/weft-doctor" "$TMPDIR_TEST/nope"
mkdir -p "$TMPDIR_TEST/empty"
expect_exit 66 "weft-doctor on a directory without run files exits 66" "$WEFT_BIN/weft-doctor" "$TMPDIR_TEST/empty"
expect_exit 64 "weft-doctor without arguments exits 64" "$WEFT_BIN/weft-doctor"
check "weft-doctor --help" "$WEFT_BIN/weft-doctor" --help

# An operation posted that no thread waits on: only the watchdog thread can
# see it; it ends the job naming it and rank 1 (alive, never arrived).
run="$TMPDIR_TEST/watchdog"
t0=$(date +%s)
WEFT_MPI_TIMEOUT=60 weft_mpirun 2 "$WEFT_ROOT/$BUILD/tests/mpi/watchdog_job" --comm.timeout=2 --run.dir="$run" \
    >"$TMPDIR_TEST/watchdog.log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - t0 ))
[ "$rc" -eq 70 ] && [ "$elapsed" -le 32 ] && ok "the watchdog ends a job whose pending operation nobody waits on (exit 70, $elapsed s)" ||
    not_ok "the watchdog ends a job whose pending operation nobody waits on" "exit $rc after $elapsed s: $(tail -5 "$TMPDIR_TEST/watchdog.log")"
expect_grep "r0/2 .*aborting the job: watchdog: allreduce #1 on communicator 'world.0' \(2 ranks\) pending for [0-9.]+ s \(comm.timeout = 2 s\); never reached it: rank 1 \([^)]*alive at step -1, its last operation #0\)" \
    "$TMPDIR_TEST/watchdog.log" "the message names the operation and rank 1 as alive but never arrived"
check "hang-r0.txt lists rank 1 as missing" grep -qx "missing 1" "$run/hang-r0.txt"

# At the very end: a rank stopped after its last step is named by the job's
# last barrier; one stopped or killed just before MPI_Finalize leaves the
# others inside it, where the watchdog, running until MPI_Finalize returns,
# names it (weft_finalize's own bound, twice comm.timeout + 5, is the
# backstop).
for f in stall_end@0 stall_finalize@1 kill_finalize@1; do
    log="$TMPDIR_TEST/end-$f.log"
    WEFT_FAULT=$f WEFT_MPI_TIMEOUT=60 weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=3 \
        --run.dir="$TMPDIR_TEST/end-$f" >"$log" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "fault injected: ${f%@*}" "$log" &&
        ok "$f: the job ends (exit $rc), not held in its shutdown" ||
        not_ok "$f: the job ends, not held in its shutdown" "exit $rc: $(tail -5 "$log")"
done
expect_grep "r1/2 .*aborting the job: communicator 'world' .*barrier #[0-9]+ .*silent: rank 0 " \
    "$TMPDIR_TEST/end-stall_end@0.log" "stall_end: the last barrier names rank 0 as silent"
expect_grep "r0/2 .*aborting the job: watchdog: this rank has waited [0-9.]+ s inside MPI_Finalize, the job's end .*silent: rank 1 " \
    "$TMPDIR_TEST/end-stall_finalize@1.log" "stall_finalize: rank 0's watchdog, still running, names rank 1 as silent"

# Inside raw MPI (HDF5's MPI-IO calls), where no weft operation is pending:
# a stopped peer ends the job, a late but live one does not.
run="$TMPDIR_TEST/raw"
WATCHDOG_JOB=raw WEFT_MPI_TIMEOUT=60 weft_mpirun 2 "$WEFT_ROOT/$BUILD/tests/mpi/watchdog_job" --comm.timeout=2 \
    --run.dir="$run" >"$TMPDIR_TEST/raw.log" 2>&1
rc=$?
[ "$rc" -eq 70 ] && ok "a peer stopped while rank 0 is inside raw MPI: the watchdog ends the job (exit 70)" ||
    not_ok "a peer stopped while rank 0 is inside raw MPI: the watchdog ends the job" "exit $rc: $(tail -5 "$TMPDIR_TEST/raw.log")"
expect_grep "r0/2 .*aborting the job: watchdog: this rank has waited [0-9.]+ s inside a test's raw MPI barrier .*silent: rank 1 \(" \
    "$TMPDIR_TEST/raw.log" "  ... saying where it waited and naming rank 1 as silent"
check "  ... and hang-r0.txt records it (communicator raw-mpi, rank 1 silent)" bash -c \
    "grep -qx 'comm raw-mpi' '$run/hang-r0.txt' && grep -qx 'silent 1' '$run/hang-r0.txt'"
WATCHDOG_JOB=raw_slow WEFT_MPI_TIMEOUT=60 weft_mpirun 2 "$WEFT_ROOT/$BUILD/tests/mpi/watchdog_job" --comm.timeout=2 \
    --run.dir="$TMPDIR_TEST/raw_slow" >"$TMPDIR_TEST/raw_slow.log" 2>&1
rc=$?
[ "$rc" -eq 0 ] && [ "$(grep -c 'passed the raw barrier' "$TMPDIR_TEST/raw_slow.log")" -eq 2 ] &&
    ok "a peer 5 s late but alive (comm.timeout 2 s) while rank 0 waits inside raw MPI: the job finishes" ||
    not_ok "a late but live peer does not end a job inside raw MPI" "exit $rc: $(tail -5 "$TMPDIR_TEST/raw_slow.log")"
