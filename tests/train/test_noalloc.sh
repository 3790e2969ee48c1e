#!/bin/bash
# test_noalloc.sh -- the steady-state training step allocates nothing on the
# training thread (tests/mpi/noalloc_step.c counts malloc/calloc/realloc),
# with the shm backend weft picks on one node, with and without ZeRO-1, on 1
# and 2 ranks, and on 4 ranks with tensor and pipeline parallelism (both
# schedules: stage-to-stage send/recv, TP allreduces, the tied embedding). (The MPI backend is left out: Open MPI's non-blocking
# collectives allocate their schedules inside the library on every call.)
. "$(dirname "$0")/../lib.sh"
if [ -n "${SAN:-}" ]; then
    skip "no allocation in the steady-state step" "sanitizers replace malloc themselves (SAN=$SAN)"
    exit 0
fi
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0
prog="$WEFT_ROOT/$BUILD/tests/mpi/noalloc_step"
for np in 1 2; do
    for zero in 0 1; do
        out="$TMPDIR_TEST/np$np-z$zero.log"
        weft_mpirun "$np" "$prog" "$ds" --comm.backend=shm --parallel.zero=$zero >"$out" 2>&1
        if grep -q "^ok 1 - no allocation" "$out"; then
            ok "np=$np ZeRO-$zero: $(grep '^ok 1' "$out" | sed 's/^ok 1 - //')"
        else
            not_ok "np=$np ZeRO-$zero: no allocation in the steady-state step" "$(grep -E '^# rank|not ok|ERROR' "$out" | head -5)"
        fi
    done
done
for layout in "--parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b --parallel.zero=0" \
              "--parallel.pp=2 --parallel.schedule=gpipe --parallel.zero=1"; do
    out="$TMPDIR_TEST/np4.log"
    # shellcheck disable=SC2086
    weft_mpirun 4 "$prog" "$ds" --comm.backend=shm $layout >"$out" 2>&1
    if grep -q "^ok 1 - no allocation" "$out"; then
        ok "np=4: $(grep '^ok 1' "$out" | sed 's/^ok 1 - //')"
    else
        not_ok "np=4 $layout: no allocation in the steady-state step" "$(grep -E '^# rank|not ok|ERROR' "$out" | head -5)"
    fi
done
