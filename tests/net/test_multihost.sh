#!/bin/bash
# test_multihost.sh -- weft across three "hosts" on one machine: network
# namespaces wnet<pid>a/b/c, each with its own veth and address in a private
# subnet, joined by a bridge; mpirun launches into them through an rsh agent
# that runs `ip netns exec` (DESIGN.md section 7). Checks:
#   - the conformance suite on tcp and on hier across the hosts (4 ranks:
#     2 + 1 + 1, so hier has a real shm node and real leaders), and auto
#     picking hier for a group spanning hosts;
#   - taking host c's link down in the middle of allreduces ends the job
#     within comm.timeout, naming the unreachable peer and its address.
# Skips (with the reason) where namespaces cannot be made (no CAP_NET_ADMIN).
# Everything it creates is removed at exit, also on failure.
. "$(dirname "$0")/../lib.sh"

. "$(dirname "$0")/../netns.sh"
netns_init "wnet$$" 10.213.77 "$TMPDIR_TEST"
SUBNET=$NETNS_SUBNET
cleanup() {
    netns_down
    rm -rf "$TMPDIR_TEST"
}
trap cleanup EXIT
netns_up
case $? in
1) skip "multi-host tests" "$NETNS_WHY"; exit 0 ;;
2) not_ok "namespaces, veths and bridge set up, each host reaching the bridge" "$NETNS_WHY"; exit 0 ;;
esac
ok "three namespace hosts $SUBNET.1-3 on bridge $BR, each reaching it"
mh_mpirun() { # NP PROG ARGS...: bounded mpirun across the namespace hosts
    local np=$1; shift
    netns_mpirun "$np" -x WEFT_TEST_BACKEND "$@"
}
# mh_tap BACKEND PROG ARGS...: like mpi_tap, across the hosts on 4 ranks.
mh_tap() {
    local backend=$1 prog=$2 out=$TMPDIR_TEST/mh-$1-$2-$TAP_N.log rc line
    shift 2
    WEFT_TEST_BACKEND=$backend mh_mpirun 4 "$WEFT_ROOT/$BUILD/tests/mpi/$prog" "$@" >"$out" 2>&1
    rc=$?
    while IFS= read -r line; do
        case "$line" in
        "ok "*) ok "3 hosts ${backend:-auto} ${line#* - }" ;;
        "not ok "*) not_ok "3 hosts ${backend:-auto} ${line#* - }" "$(grep '^# rank' "$out" | head -5)" ;;
        esac
    done <"$out"
    [ "$rc" -eq 0 ] || not_ok "$prog (${backend:-auto}) across 3 hosts exited $rc" "$(tail -20 "$out")"
    LAST_LOG=$out
}

mh_tap tcp conformance --comm.tcp_ifname=wnet0
mh_tap tcp comm_misc
mh_tap "" conformance
expect_grep "weft .* 4 ranks on 3 nodes" "$LAST_LOG" "weft sees 3 nodes"
expect_grep "^ok .*on 'world' \(4 ranks, backend hier\)" "$LAST_LOG" "auto picks hier for the world spanning hosts"
mh_tap hier comm_misc --comm.algo=ring

# Link down mid-collective: host c (rank 3) loses its link while the ranks
# run checked allreduces; with comm.timeout = 5 s the job must fail, naming
# rank 3 and its address, soon after 5 s.
for backend in tcp hier; do
    dir=$TMPDIR_TEST/down-$backend
    mkdir -p "$dir"
    WEFT_TEST_BACKEND= mh_mpirun 4 "$WEFT_ROOT/$BUILD/tests/mpi/tcp_guard" "$dir" --comm.backend=$backend \
        --comm.timeout=5 --run.dir="$dir/run" >"$dir/log" 2>&1 &
    job=$!
    for i in $(seq 300); do [ -e "$dir/ready" ] && break; sleep 0.1; done
    sleep 1 # let allreduces run across the hosts before the cut
    t0=$(date +%s.%N)
    ip netns exec "${NS[2]}" ip link set wnet0 down
    named=""
    for i in $(seq 400); do # bounded: 40 s
        grep -q "still pending after" "$dir/log" && { named=$(date +%s.%N); break; }
        kill -0 "$job" 2>/dev/null || break
        sleep 0.1
    done
    # Every rank process ends (weft_abort), on the cut-off host too; mpirun
    # itself then waits on its daemon there, which is Open MPI's business.
    gone=""
    for i in $(seq 300); do # bounded: 30 s
        pgrep -f "^$WEFT_ROOT/$BUILD/tests/mpi/tcp_guard $dir" >/dev/null || { gone=$(date +%s.%N); break; }
        sleep 0.1
    done
    kill -TERM "$job" 2>/dev/null; sleep 1; kill -KILL "$job" 2>/dev/null
    wait "$job" 2>/dev/null
    for ns in "${NS[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    done
    ip netns exec "${NS[2]}" ip link set wnet0 up
    if [ -n "$named" ]; then
        secs=$(echo "$named - $t0" | bc)
        if [ "$(echo "$secs < 15" | bc)" = 1 ]; then
            ok "$backend: link down -> timeout reported after ${secs}s (comm.timeout 5 s)"
        else
            not_ok "$backend: timeout reported only after ${secs}s"
        fi
    else
        not_ok "$backend: link down -> a timeout is reported" "$(tail -20 "$dir/log")"
    fi
    if [ -n "$gone" ] && [ "$(echo "$gone - $t0 < 25" | bc)" = 1 ]; then
        ok "$backend: every rank process ended $(echo "$gone - $t0" | bc)s after the cut"
    else
        not_ok "$backend: rank processes still running 25 s after the cut" "$(pgrep -af tcp_guard)"
    fi
    expect_grep "aborting the job" "$dir/log" "$backend: the ranks abort the job (weft_abort)"
    expect_grep "still pending after [0-9.]+ s .*waits on rank 3 \($SUBNET\.3:[0-9]+\)" "$dir/log" \
        "$backend: the timeout names the unreachable peer, rank 3, and its address"
done
