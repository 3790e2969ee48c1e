#!/bin/bash
# test_abort.sh -- weft_abort ends the whole job (no hang), and a collective
# that some rank never reaches times out, dumps the flight record, and ends
# the job with a message naming the operation.
. "$(dirname "$0")/../lib.sh"
prog="$WEFT_ROOT/$BUILD/tests/mpi/abort_job"
run="$TMPDIR_TEST/run"

t0=$(date +%s)
expect_exit 70 "weft_abort on rank 1 ends a 3-rank job with exit 70" \
    weft_mpirun 3 "$prog" abort --run.dir="$run"
echo "$LAST_OUT" >"$TMPDIR_TEST/abort.log"
expect_grep 'r1/3 .*aborting the job: deliberate abort from rank 1' "$TMPDIR_TEST/abort.log" \
    "the abort message names the rank and the reason"
[ $(( $(date +%s) - t0 )) -lt 60 ] && ok "abort took under 60 s" || not_ok "abort took $(( $(date +%s) - t0 )) s"
check "the aborting rank's flight record is valid JSON" python3 -m json.tool "$run/flight-r1.json"

rm -rf "$run"
t0=$(date +%s)
expect_exit 70 "an allreduce rank 1 never joins times out and ends the job" \
    weft_mpirun 2 "$prog" timeout --comm.timeout=1 --run.dir="$run"
echo "$LAST_OUT" >"$TMPDIR_TEST/timeout.log"
elapsed=$(( $(date +%s) - t0 ))
[ "$elapsed" -lt 60 ] && ok "timeout abort took under 60 s ($elapsed s)" || not_ok "timeout abort took $elapsed s"
expect_grep "r0/2 .*allreduce #1 \(f32, 1 elements\) still pending after 1\.[0-9] s \(comm.timeout = 1 s\)" \
    "$TMPDIR_TEST/timeout.log" "the message names the operation, its sequence number and the timeout"
check "rank 0's flight record is valid JSON" python3 -m json.tool "$run/flight-r0.json"
check "the flight record shows #0 done and #1 timed out" python3 - "$run/flight-r0.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
recs = {r["seq"]: r for c in d["comms"] for r in c["records"] if c["group"] == "world"}
assert recs[0]["state"] == "done" and recs[1]["state"] == "timedout", recs
assert recs[1]["op"] == "allreduce" and recs[1]["count"] == 1, recs[1]
PY
if grep -q "reached the end" "$TMPDIR_TEST/timeout.log" "$TMPDIR_TEST/abort.log"; then
    not_ok "no rank ran past the failure"
else
    ok "no rank ran past the failure"
fi
