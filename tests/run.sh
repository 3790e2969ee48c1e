#!/bin/bash
# run.sh -- runs every test program and script, counts TAP results, and ends
# with the line "N passed, N failed".
#
# Every test speaks TAP on stdout: one "ok N - name" or "not ok N - name" per
# check (cmocka does with CMOCKA_MESSAGE_OUTPUT=TAP; shell tests use
# tests/lib.sh; MPI tests print from rank 0). A program that exits non-zero
# without reporting a failure, or that reports nothing at all, counts as one
# failure: a test that cannot run must not pass.
#
#   tests/run.sh [PATTERN]   only programs whose path contains PATTERN (or T=);
#                            PATTERN may list several, comma-separated: any
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD WEFT_BIN="$PWD/$BUILD/bin" WEFT_ROOT="$PWD"
export CMOCKA_MESSAGE_OUTPUT=TAP
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# Containers forbid the cross-memory-attach syscalls vader would use.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_btl="self,vader,tcp"
if [ -n "${SAN:-}" ]; then
    # Open MPI's own allocations outlive MPI_Finalize; leaks are checked in
    # the unit tests (no MPI) only.
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
pattern=${1:-${T:-}}
logdir="$BUILD/test-logs"
mkdir -p "$logdir"
per_test_timeout=${WEFT_TEST_TIMEOUT:-900}

progs=()
for f in "$BUILD"/tests/unit/test_*; do [ -x "$f" ] && [ ! -d "$f" ] && progs+=("$f"); done
for f in tests/*/test_*.sh; do [ -f "$f" ] && progs+=("$f"); done

# sweep NOTE: what a shell test started and left running -- daemons that
# detached (Slurm's, munged), a job step, an mpirun -- once the test is
# over, also when timeout had to SIGKILL it and its own traps never ran:
# every process whose command line names the test's scratch directory
# (tests/lib.sh writes its path to NOTE), then the directory.
. tests/procs.sh
sweep() {
    local dir
    dir=$(cat "$1" 2>/dev/null) && [ -n "$dir" ] || return 0
    kill_naming "$dir"
    [ -n "${WEFT_TEST_KEEP:-}" ] || rm -rf "$dir"
    rm -f "$1"
}

passed=0 failed=0 skipped=0
t_all=$(date +%s)
for p in "${progs[@]}"; do
    if [ -n "$pattern" ]; then
        hit=0
        IFS=, read -ra pats <<<"$pattern"
        for pat in "${pats[@]}"; do [ -n "$pat" ] && [[ "$p" == *"$pat"* ]] && hit=1; done
        [ "$hit" -eq 1 ] || continue
    fi
    name=${p//\//_}
    log="$logdir/$name.log"
    t0=$(date +%s)
    if [[ "$p" == *.sh ]]; then
        rm -f "$logdir/$name.tmpdir"
        WEFT_TEST_TMPDIR_NOTE="$logdir/$name.tmpdir" timeout -k 10 "$per_test_timeout" bash "$p" >"$log" 2>&1
    else
        timeout -k 10 "$per_test_timeout" "$p" >"$log" 2>&1
    fi
    rc=$?
    [[ "$p" == *.sh ]] && sweep "$logdir/$name.tmpdir"
    ok=$(grep -Ec '^ok [0-9]+' "$log")
    bad=$(grep -Ec '^not ok [0-9]+' "$log")
    # A SKIP directive makes either line a skip: cmocka's skip() prints
    # "not ok N # SKIP name" (TAP), tests/lib.sh "ok N # SKIP reason".
    ok_sk=$(grep -Eic '^ok [0-9]+.*# skip' "$log")
    bad_sk=$(grep -Eic '^not ok [0-9]+.*# skip' "$log")
    ok=$((ok - ok_sk)) bad=$((bad - bad_sk)) sk=$((ok_sk + bad_sk))
    note=""
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        bad=1; note=" (exit $rc without a reported failure)"
    elif [ $((ok + bad + sk)) -eq 0 ]; then
        bad=1; note=" (reported no checks)"
    fi
    [ "$rc" -eq 124 ] && note=" (timed out after ${per_test_timeout}s)"
    passed=$((passed + ok)); failed=$((failed + bad)); skipped=$((skipped + sk))
    status=PASS; [ "$bad" -gt 0 ] && status=FAIL
    printf '%-4s %-48s %4d ok %3d failed %3d skipped %4ds%s\n' \
        "$status" "$p" "$ok" "$bad" "$sk" $(( $(date +%s) - t0 )) "$note"
    if [ "$bad" -gt 0 ]; then
        grep -E -A12 '^not ok' "$log" | head -60 | sed 's/^/    | /'
        [ -n "$note" ] && tail -20 "$log" | sed 's/^/    | /'
    fi
done
echo "total time $(( $(date +%s) - t_all ))s; logs in $logdir/"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
