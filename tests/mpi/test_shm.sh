#!/bin/bash
# test_shm.sh -- the shm backend: the conformance suite and the communicator
# contract tests on 1-4 ranks with WEFT_TEST_BACKEND=shm, then kill-and-restart
# cycles: a 3-rank job creating shm communicators in a loop loses one rank
# to SIGKILL; the job must end within a bound and leave no /dev/shm entry.
# The rank is stopped at an exact operation (WEFT_FAULT=stall_op:N, docs/
# operations.md "Fault injection"), inspected, then killed: no moment is
# chosen by a timer.
. "$(dirname "$0")/../lib.sh"

for np in 1 2 3 4; do
    mpi_tap shm "$np" conformance
    mpi_tap shm "$np" comm_misc
done

victim="$WEFT_ROOT/$BUILD/tests/mpi/shm_victim"
# weft's segments in /dev/shm made by any of the given pids.
entries_of() {
    local pid
    for pid in "$@"; do ls /dev/shm 2>/dev/null | grep -E "^weft-.*-$pid-[0-9]+$"; done
}

# stopped PID: its state is T (stopped), polled (bounded).
stopped() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = T ]; }

# One cycle: start the job; rank KILL stops itself after posting its
# (200 + 37 x cycle)-th operation, mid-run, inside a collective of a live
# shm communicator; SIGKILL it there and check the job ends within 30 s.
kill_cycle() {
    local cycle=$1 kill_rank=$2 named=$3 dir=$TMPDIR_TEST/victim-$1 i
    mkdir -p "$dir"
    WEFT_FAULT=stall_op:$((200 + 37 * cycle))@$kill_rank WEFT_SHM_NAMED=$named timeout -k 5 120 \
        mpirun -np 3 --oversubscribe "$victim" "$dir" 10000000 60 --comm.timeout=20 >"$dir/log" 2>&1 &
    local job=$!
    wait_for 60 grep -q "fault injected: stall_op" "$dir/log"
    local pids=($(cat "$dir"/pid.0 "$dir"/pid.1 "$dir"/pid.2 2>/dev/null))
    local target=${pids[$kill_rank]:-} how=anonymous
    if [ -z "$target" ] || ! wait_for 30 stopped "$target"; then
        not_ok "cycle $cycle: rank $kill_rank stopped at its operation" "$(tail -20 "$dir/log")"
        kill -KILL "$job" 2>/dev/null; wait "$job"
        return
    fi
    [ "$named" = 1 ] && how=named
    if [ "$named" = 0 ]; then
        if grep -q "memfd:weft-shm" "/proc/$target/maps" 2>/dev/null; then
            ok "cycle $cycle: the segment is an anonymous memfd (no /dev/shm name)"
        else
            not_ok "cycle $cycle: rank $kill_rank, stopped inside an operation, maps no memfd:weft-shm segment"
        fi
    fi
    local t0=$SECONDS
    kill -KILL "$target"
    wait "$job"
    local rc=$? elapsed=$((SECONDS - t0))
    if [ "$rc" -ne 0 ] && [ "$elapsed" -le 30 ]; then
        ok "cycle $cycle ($how): SIGKILL of rank $kill_rank ends the job in ${elapsed}s (exit $rc)"
    else
        not_ok "cycle $cycle ($how): SIGKILL of rank $kill_rank: exit $rc after ${elapsed}s" "$(tail -20 "$dir/log")"
    fi
    for i in $(seq 50); do # every rank gone (bounded)
        local alive=0 p
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    LAST_PIDS="${pids[*]}"
}

for cycle in 1 2 3; do
    kill_cycle "$cycle" $((cycle % 3)) 0
    left=$(entries_of $LAST_PIDS)
    if [ -z "$left" ]; then ok "cycle $cycle: no /dev/shm entry left"; else not_ok "cycle $cycle: left $left"; fi
done

# Named segments (WEFT_SHM_NAMED=1) carry a name for the microseconds of
# creation; a kill inside that window may leave one, and the next job's
# creator sweeps it. After kill cycles and one clean run, none may remain.
all_pids=""
for cycle in 4 5; do
    kill_cycle "$cycle" $((cycle % 3)) 1
    all_pids="$all_pids $LAST_PIDS"
done
WEFT_SHM_NAMED=1 weft_mpirun 2 "$victim" "$TMPDIR_TEST" 20 10 >"$TMPDIR_TEST/clean.log" 2>&1
rc=$?
[ "$rc" -eq 0 ] && ok "a clean named-segment job after the kills runs" || not_ok "clean job exited $rc" \
    "$(tail -20 "$TMPDIR_TEST/clean.log")"
left=$(entries_of $all_pids)
if [ -z "$left" ]; then ok "no named /dev/shm entry of the killed jobs remains"; else not_ok "left: $left"; fi
left=$(entries_of $(cat "$TMPDIR_TEST"/pid.0 "$TMPDIR_TEST"/pid.1 2>/dev/null))
if [ -z "$left" ]; then ok "the clean job left no /dev/shm entry"; else not_ok "clean job left: $left"; fi

# A peer that dies inside a shm wait: mpirun told not to end the job itself
# (orte_abort_on_non_zero_status 0), the survivors must notice the dead pid,
# name it (WEFT_EPEER) and abort the job well before comm.timeout (20 s).
# Rank 1 kills itself right after posting its 500th allreduce (kill_op).
dir=$TMPDIR_TEST/steady
mkdir -p "$dir"
WEFT_FAULT=kill_op:500@1 timeout -k 5 120 mpirun -np 3 --oversubscribe --mca orte_abort_on_non_zero_status 0 \
    "$victim" "$dir" 100000000 60 steady --comm.timeout=20 --run.dir="$dir/run" >"$dir/log" 2>&1
rc=$?
t1=$(date +%s.%N)
tf=$(sed -n 's/.*fault injected: .*(unix time \([0-9.]*\)).*/\1/p' "$dir/log" | head -1)
elapsed=$(python3 -c 'import sys; print(int(float(sys.argv[1]) - float(sys.argv[2]) + 0.999))' "$t1" "${tf:-0}")
dead=$(cat "$dir/pid.1" 2>/dev/null)
if [ -n "$dead" ] && [ "$rc" -ne 0 ] && [ "$elapsed" -lt 15 ]; then
    ok "a rank killed inside a shm allreduce ends the job in ${elapsed}s (comm.timeout 20 s)"
else
    not_ok "killed rank inside a shm wait: exit $rc after ${elapsed}s" "$(tail -20 "$dir/log")"
fi
expect_grep "rank 1 of 'world' \(pid $dead on this node\) died while rank [02] waited" "$dir/log" \
    "the survivors name the dead rank and its pid"

# weft-bench on shm: a short sweep of every operation, every row right and
# valid JSON; usage errors exit 64.
bench="$WEFT_BIN/weft-bench"
json=$TMPDIR_TEST/bench.json
expect_exit 0 "weft-bench --comm.backend=shm sweeps every operation" \
    weft_mpirun 2 "$bench" --comm.backend=shm --max=64K --step=8 --iters=2 --warmup=1 --json="$json"
echo "$LAST_OUT" >"$TMPDIR_TEST/bench.txt"
expect_grep "^  allreduce +32768 +8192 +f32 \|" "$TMPDIR_TEST/bench.txt" "the table has an allreduce row at 32 KiB"
check "every JSON row parses, has both columns and no wrong element" python3 - "$json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ops = {r["op"] for r in rows}
assert ops == {"allreduce", "reduce_scatter", "allgather", "broadcast", "alltoall"}, ops
for r in rows:
    assert r["backend"] == "shm" and r["ranks"] == 2, r
    assert r["wrong"] == 0 and r["mpi_wrong"] == 0, r
    assert r["time_us"] > 0 and r["busbw"] >= 0 and r["bound_busbw"] > 0, r
PY
expect_exit 0 "weft-bench --dtype=bf16 (no MPI reduction columns) is right" \
    weft_mpirun 2 "$bench" --comm.backend=shm --op=allreduce,reduce_scatter --dtype=bf16 --max=64K --step=64 --iters=2
expect_exit 0 "weft-bench --help" "$bench" --help
expect_exit 64 "weft-bench rejects an unknown option" weft_mpirun 1 "$bench" --op=allreduce --frobnicate
