#!/bin/bash
# test_tcp.sh -- the tcp backend on plain loopback: the conformance suite and
# the communicator contract on 1-4 ranks (auto algorithm: trees for small
# messages, rings for large), then the suite with every algorithm forced
# (comm.algo=ring on tiny messages, tree on large ones) on 3 ranks.
. "$(dirname "$0")/../lib.sh"
for np in 1 2 3 4; do
    mpi_tap tcp "$np" conformance
    mpi_tap tcp "$np" comm_misc
done
mpi_tap tcp 3 conformance --comm.algo=ring
mpi_tap tcp 3 conformance --comm.algo=tree

# Strangers: while 3 ranks run checked allreduces over tcp, a foreign process
# connects to rank 1's port twice (an HTTP request; weft's magic with a tag
# from a wrong secret). Each must be refused (closed, never answered) and
# logged with the stranger's address and port; the job's results stay right.
dir=$TMPDIR_TEST/guard
mkdir -p "$dir"
WEFT_LOG_LEVEL=debug weft_mpirun 3 "$WEFT_ROOT/$BUILD/tests/mpi/tcp_guard" "$dir" --run.dir="$dir/run" >"$dir/log" 2>&1 &
job=$!
for i in $(seq 300); do [ -e "$dir/ready" ] && break; sleep 0.1; done
addr=$(sed -n "s/.*communicator 'world' rank 1 listening on \([0-9.]*:[0-9]*\).*/\1/p" "$dir/log" | head -1)
if [ -z "$addr" ]; then
    not_ok "tcp_guard came up and logged rank 1's address" "$(tail -20 "$dir/log")"
else
    for mode in garbage forged; do
        out=$(timeout 30 python3 "$WEFT_ROOT/tests/mpi/tcp_stranger.py" "${addr%:*}" "${addr#*:}" "$mode" 2>&1)
        cport=$(echo "$out" | sed -n 's/^client //p')
        if echo "$out" | grep -qx closed; then
            ok "a $mode stranger is hung up on without an answer"
        else
            not_ok "a $mode stranger is hung up on without an answer" "$out"
        fi
        for i in $(seq 100); do grep -q "from ${addr%:*}:$cport:" "$dir/log" && break; sleep 0.1; done
        expect_grep "rank 1 refused a connection from ${addr%:*}:$cport: .*(bad magic|authentication failed)" \
            "$dir/log" "the $mode stranger is logged with its address and port"
    done
fi
touch "$dir/go"
wait "$job"
rc=$?
[ "$rc" -eq 0 ] && ok "the job's allreduces stayed right throughout (exit 0)" \
    || not_ok "tcp_guard exited $rc" "$(tail -20 "$dir/log")"

# weft-bench on tcp: a short sweep, every row right (weft and MPI columns).
json=$TMPDIR_TEST/bench.json
expect_exit 0 "weft-bench --comm.backend=tcp sweeps every operation" \
    weft_mpirun 3 "$WEFT_BIN/weft-bench" --comm.backend=tcp --max=256K --step=16 --iters=2 --warmup=1 --json="$json"
check "weft-bench tcp rows: backend tcp, no wrong element" python3 - "$json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert {r["op"] for r in rows} == {"allreduce", "reduce_scatter", "allgather", "broadcast", "alltoall"}, rows
for r in rows:
    assert r["backend"] == "tcp" and r["ranks"] == 3 and r["wrong"] == 0 and r["mpi_wrong"] == 0, r
PY

# A peer that dies: rank 1 of a 3-rank tcp job SIGKILLs itself right after
# posting its 300th operation (WEFT_FAULT=kill_op, docs/operations.md "Fault
# injection"; mpirun told not to end the job itself). Its connections end;
# the survivors must fail at once with WEFT_EPEER naming rank 1 and its
# address, well before comm.timeout. Timed from the fault's logged time.
since_fault() { # LOG END: whole seconds from the fault's log line to END
    python3 -c 'import sys; print(int(float(sys.argv[2]) - float(sys.argv[1]) + 0.999))' \
        "$(sed -n 's/.*fault injected: .*(unix time \([0-9.]*\)).*/\1/p' "$1" | head -1)" "$2" 2>/dev/null || echo 9999
}
dir=$TMPDIR_TEST/kill
mkdir -p "$dir"
WEFT_FAULT=kill_op:300@1 WEFT_LOG_LEVEL=debug timeout -k 5 120 mpirun -np 3 --oversubscribe \
    --mca orte_abort_on_non_zero_status 0 "$WEFT_ROOT/$BUILD/tests/mpi/tcp_guard" "$dir" --comm.timeout=60 \
    --run.dir="$dir/run" >"$dir/log" 2>&1
rc=$? elapsed=$(since_fault "$dir/log" "$(date +%s.%N)")
addr=$(sed -n "s/.*communicator 'world' rank 1 listening on \([0-9.]*:[0-9]*\).*/\1/p" "$dir/log" | head -1)
if [ "$rc" -ne 0 ] && [ "$elapsed" -lt 30 ]; then
    ok "SIGKILL of rank 1 (kill_op:300@1) ends the tcp job in ${elapsed}s (comm.timeout 60 s)"
else
    not_ok "SIGKILL of rank 1: exit $rc after ${elapsed}s" "$(tail -20 "$dir/log")"
fi
expect_grep "rank 1 \(${addr:-none}\) closed its connection|receiving from rank 1 \(${addr:-none}\) failed|sending to rank 1 \(${addr:-none}\) failed" \
    "$dir/log" "the survivors name the lost peer, rank 1, and its address"

# A link that breaks: rank 1 shuts its connection to a peer down before its
# 300th send (WEFT_FAULT=close_tcp): the job ends naming the broken
# connection, well before comm.timeout, and never hangs.
dir=$TMPDIR_TEST/close
mkdir -p "$dir"
WEFT_FAULT=close_tcp:300@1 timeout -k 5 120 mpirun -np 3 --oversubscribe "$WEFT_ROOT/$BUILD/tests/mpi/tcp_guard" \
    "$dir" --comm.timeout=60 --run.dir="$dir/run" >"$dir/log" 2>&1
rc=$? elapsed=$(since_fault "$dir/log" "$(date +%s.%N)")
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$elapsed" -lt 30 ]; then
    ok "close_tcp:300@1 (a connection shut down) ends the tcp job in ${elapsed}s (comm.timeout 60 s)"
else
    not_ok "close_tcp:300@1: exit $rc after ${elapsed}s" "$(tail -20 "$dir/log")"
fi
expect_grep "rank [0-2] \([0-9.]+:[0-9]+\) closed its connection|(sending to|receiving from) rank [0-2] \([0-9.]+:[0-9]+\) failed" \
    "$dir/log" "close_tcp: the failure names the peer of the broken connection and its address"
