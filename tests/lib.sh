# lib.sh -- TAP helpers for shell tests; source it from tests/*/test_*.sh.
#
#   check NAME CMD...           ok if CMD exits 0
#   expect_exit CODE NAME CMD...  ok if CMD exits with CODE
#   expect_grep PATTERN FILE NAME ok if FILE matches the extended regex
#   ok NAME / not_ok NAME [WHY] / skip NAME WHY
#   repeat_dataset DIR [VAL]   a dataset of one 75-byte line repeated
#   wait_for SECS CMD...       poll CMD until it succeeds, at most SECS seconds
#   ranks_of PROG RUN_DIR      pids of PROG's ranks running with --run.dir=RUN_DIR
#   numpy_python               $py := a python3 with numpy, or not_ok and exit 1
#   owner_mark RUN_DIR         the .weft-owner line a local checkpoint tier of RUN_DIR must
#                              hold, from its owner.json with python3-xxhash (no weft code)
#   kill_naming STRING...      SIGKILL the processes whose command line names one (procs.sh)
# Each test gets its own scratch directory in $TMPDIR_TEST, removed at exit.
set -u
BUILD=${BUILD:-build}
WEFT_ROOT=${WEFT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
WEFT_BIN=${WEFT_BIN:-$WEFT_ROOT/$BUILD/bin}
. "$WEFT_ROOT/tests/procs.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
TAP_N=0
TMPDIR_TEST=$(mktemp -d "${TMPDIR:-/tmp}/weft-test.XXXXXX")
# tests/run.sh sweeps what the test leaves running there once it is over
[ -n "${WEFT_TEST_TMPDIR_NOTE:-}" ] && echo "$TMPDIR_TEST" >"$WEFT_TEST_TMPDIR_NOTE"
[ -n "${WEFT_TEST_KEEP:-}" ] || trap 'rm -rf "$TMPDIR_TEST"' EXIT

ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $1"; }
not_ok() {
    TAP_N=$((TAP_N + 1)); echo "not ok $TAP_N - $1"
    [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/# /'
    return 0
}
skip() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $1 # SKIP $2"; }
check() {
    local name=$1; shift
    local out
    if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}
expect_exit() {
    local code=$1 name=$2; shift 2
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -eq "$code" ]; then ok "$name"; else not_ok "$name" "exit $rc, wanted $code: $out"; fi
    LAST_OUT=$out
}
expect_grep() {
    if grep -Eq -- "$1" "$2"; then ok "$3"; else not_ok "$3" "no match for /$1/ in $2: $(head -c 2000 "$2")"; fi
}
# weft_mpirun NP CMD...: mpirun bounded in time, so a hang fails the test.
weft_mpirun() {
    local np=$1; shift
    timeout -k 5 "${WEFT_MPI_TIMEOUT:-300}" mpirun -np "$np" --oversubscribe "$@"
}
# mpi_tap BACKEND NP PROG [ARGS...]: run tests/mpi/PROG on NP ranks with the
# collectives backend BACKEND ("" for the configured default) and relay its
# rank-0 TAP lines into this script's numbering, prefixed "BACKEND np=NP".
mpi_tap() {
    local backend=$1 np=$2 prog=$3 out=$TMPDIR_TEST/${1:-default}-$3-$2-$TAP_N.log rc line
    shift 3
    WEFT_TEST_BACKEND=$backend weft_mpirun "$np" "$WEFT_ROOT/$BUILD/tests/mpi/$prog" "$@" >"$out" 2>&1
    rc=$?
    while IFS= read -r line; do
        case "$line" in
        "ok "*) ok "${backend:+$backend }np=$np${1:+ $*} ${line#* - }" ;;
        "not ok "*) not_ok "${backend:+$backend }np=$np${1:+ $*} ${line#* - }" "$(grep '^# rank' "$out" | head -5)" ;;
        esac
    done <"$out"
    [ "$rc" -eq 0 ] || not_ok "$prog (${backend:-default}) on $np ranks exited $rc" "$(tail -20 "$out")"
}

# repeat_dataset DIR [VAL_FRACTION]: a byte-level dataset of one 75-byte
# line repeated 300 times. 75 is coprime with the tests' seq_len of 32, so
# training windows see every phase of the text (and validation ones too).
repeat_dataset() {
    local dir=$1 val=${2:-0} i
    for i in $(seq 300); do echo "the quick brown fox jumps over the lazy dog. a stitch in time saves nine"; done \
        >"$dir.txt"
    "$WEFT_BIN/weft-data" prepare -o "$dir" --val-fraction "$val" "$dir.txt" >/dev/null
}

# wait_for SECS CMD...: poll a condition every 0.05 s (it waits for the
# condition, not for time to pass), at most SECS seconds; 1 if it never held.
wait_for() {
    local secs=$1 i; shift
    for i in $(seq $((secs * 20))); do "$@" 2>/dev/null && return 0; sleep 0.05; done
    return 1
}

# ranks_of PROG RUN_DIR: the pids of PROG's processes started with
# --run.dir=RUN_DIR (the ranks of one job, to signal or kill).
ranks_of() { pgrep -f "^$1 .*--run.dir=$2( |\$)"; }

# numpy_python: set py to a python3 that has numpy (the system one first:
# python3 on PATH may be another), or report the failure and end the test.
owner_mark() {
    /usr/bin/python3 -c "import sys, xxhash; print('owner %016x' % xxhash.xxh3_64_intdigest(open(sys.argv[1], 'rb').read()))" \
        "$1/owner.json"
}
numpy_python() {
    local p
    py=""
    for p in /usr/bin/python3 python3; do
        if "$p" -c 'import numpy' 2>/dev/null; then py=$p; return 0; fi
    done
    not_ok "numpy for the reference" "no python3 with numpy (Debian: python3-numpy, mk/debian-packages.txt)"
    exit 1
}
