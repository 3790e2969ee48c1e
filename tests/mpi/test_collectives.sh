#!/bin/bash
# test_collectives.sh -- the conformance suite and the communicator contract
# tests on 1, 2, 3 and 4 ranks (oversubscribed on small machines).
. "$(dirname "$0")/../lib.sh"
for np in 1 2 3 4; do
    for prog in conformance comm_misc; do
        out=$TMPDIR_TEST/$prog-$np.log
        weft_mpirun "$np" "$WEFT_ROOT/$BUILD/tests/mpi/$prog" >"$out" 2>&1
        rc=$?
        # Renumber the rank-0 TAP lines into this script's sequence.
        while IFS= read -r line; do
            case "$line" in
            "ok "*) ok "np=$np ${line#* - }" ;;
            "not ok "*) not_ok "np=$np ${line#* - }" "$(grep '^# rank' "$out" | head -5)" ;;
            esac
        done <"$out"
        [ "$rc" -eq 0 ] || not_ok "$prog on $np ranks exited $rc" "$(tail -20 "$out")"
    done
done

for np in 1 2; do
    out=$TMPDIR_TEST/adopt-$np.log
    weft_mpirun "$np" "$WEFT_ROOT/$BUILD/tests/mpi/adopt_mpi" >"$out" 2>&1
    rc=$?
    while IFS= read -r line; do
        case "$line" in
        "ok "*) ok "np=$np ${line#* - }" ;;
        "not ok "*) not_ok "np=$np ${line#* - }" "$(grep '^# rank' "$out" | head -5)" ;;
        esac
    done <"$out"
    [ "$rc" -eq 0 ] || not_ok "adopt_mpi on $np ranks exited $rc" "$(tail -20 "$out")"
done
