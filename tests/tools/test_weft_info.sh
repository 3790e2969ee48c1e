#!/bin/bash
# test_weft_info.sh -- weft-info under mpirun and as a singleton; --help
# generated from the key tables; configuration errors exit 64 (66 for a
# missing file) naming file, line, key and value; docs/config.md current.
. "$(dirname "$0")/../lib.sh"
info="$WEFT_BIN/weft-info"

expect_exit 0 "--help exits 0" "$info" --help
echo "$LAST_OUT" >"$TMPDIR_TEST/help"
for key in log.level run.dir comm.backend comm.timeout comm.flight_records comm.check_args; do
    expect_grep "^ *$key " "$TMPDIR_TEST/help" "--help lists $key"
done

expect_exit 0 "weft-info on 3 ranks" weft_mpirun 3 "$info"
echo "$LAST_OUT" >"$TMPDIR_TEST/np3"
expect_grep "launcher mpirun, 3 ranks on 1 node \(3 on this node\)" "$TMPDIR_TEST/np3" "job summary from rank 0"
[ "$(grep -c 'job local-' "$TMPDIR_TEST/np3")" -eq 1 ] && ok "summary printed once" || not_ok "summary printed once"
expect_grep "rank 2: node 0 .*local rank 2 of 3" "$TMPDIR_TEST/np3" "placement of every rank"
expect_grep "collectives: .* ok on 3 ranks \(backend (shm|mpi)" "$TMPDIR_TEST/np3" "collectives check passes"

expect_exit 0 "weft-info as a singleton" "$info"
echo "$LAST_OUT" >"$TMPDIR_TEST/single"
expect_grep "launcher none, 1 rank on 1 node" "$TMPDIR_TEST/single" "singleton detected"
SLURM_JOB_ID=4242 "$info" --no-check >"$TMPDIR_TEST/slurm" 2>&1
expect_grep "job 4242," "$TMPDIR_TEST/slurm" "job id from SLURM_JOB_ID"

cfg="$TMPDIR_TEST/bad.ini"
printf '[comm]\nbackend = mpi\n\ntimeout = soon\n' >"$cfg"
expect_exit 64 "a non-number exits 64" "$info" --config "$cfg"
echo "$LAST_OUT" >"$TMPDIR_TEST/e1"
expect_grep "bad.ini:4: .*comm.timeout.*soon" "$TMPDIR_TEST/e1" "message names file:line, key and value"
printf '[comm]\ntimout = 5\n' >"$cfg"
expect_exit 64 "an unknown key exits 64" "$info" --config "$cfg"
echo "$LAST_OUT" >"$TMPDIR_TEST/e2"
expect_grep "did you mean 'comm.timeout'" "$TMPDIR_TEST/e2" "unknown key suggests the closest"
expect_exit 64 "out of range on the command line exits 64" "$info" --comm.flight_records=3
echo "$LAST_OUT" >"$TMPDIR_TEST/e3"
expect_grep "command line.*comm.flight_records.*3" "$TMPDIR_TEST/e3" "range error names origin, key, value"
expect_exit 64 "a bad config exits 64 under mpirun too" weft_mpirun 2 "$info" --comm.backend=carrier-pigeon
echo "$LAST_OUT" >"$TMPDIR_TEST/e4"
[ "$(grep -c 'carrier-pigeon' "$TMPDIR_TEST/e4")" -eq 1 ] && ok "config error printed once, by rank 0" \
    || not_ok "config error printed once, by rank 0" "$(cat "$TMPDIR_TEST/e4")"
expect_exit 66 "a missing config file exits 66" "$info" --config "$TMPDIR_TEST/nope.ini"
expect_exit 64 "an unknown argument exits 64" "$info" --frobnicate

printf '[comm]\ntimeout = 30\n' >"$cfg"
"$info" --config "$cfg" --comm.timeout=45 --print-config >"$TMPDIR_TEST/resolved" 2>/dev/null
expect_grep "^timeout = 45" "$TMPDIR_TEST/resolved" "command line overrides the file"

"$WEFT_BIN/weft-train" --config-markdown >"$TMPDIR_TEST/config.md"
check "docs/config.md is generated from the key tables (run: weft-train --config-markdown > docs/config.md)" \
    diff -u "$WEFT_ROOT/docs/config.md" "$TMPDIR_TEST/config.md"
for key in model.n_layer train.global_batch optim.lr parallel.zero data.path comm.timeout; do
    expect_grep "\`$key\`" "$WEFT_ROOT/docs/config.md" "docs/config.md documents $key"
done

WEFT_LOG_LEVEL=debug "$info" --config "$TMPDIR_TEST/nope.ini" >"$TMPDIR_TEST/debug" 2>&1
expect_grep "debug runtime/ctx.c:[0-9]+: .*failed \(WEFT_ENOENT\)" "$TMPDIR_TEST/debug" \
    "WEFT_LOG_LEVEL=debug shows the file:line chain of a failure"
"$info" --config "$TMPDIR_TEST/nope.ini" >"$TMPDIR_TEST/nodebug" 2>&1
if grep -q "debug " "$TMPDIR_TEST/nodebug"; then not_ok "no debug lines by default"; else ok "no debug lines by default"; fi

# The nccl backend serves GPU buffers only when asked for by name; on a
# machine without a usable CUDA device (this one, and CI) the request is a
# configuration error that says why, never a loader crash.
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    skip "comm.backend=nccl without a GPU exits 64 with the reason" "this machine has a GPU (tests/gpu/run.sh covers nccl)"
else
    expect_exit 64 "comm.backend=nccl without a GPU exits 64" "$info" --comm.backend=nccl
    echo "$LAST_OUT" >"$TMPDIR_TEST/nccl"
    expect_grep "comm.backend 'nccl' cannot serve .*: (.* )?(no CUDA device|cannot load lib|built without CUDA)" \
        "$TMPDIR_TEST/nccl" "the nccl refusal names its reason"
fi
expect_exit 0 "auto never picks nccl" "$info"
echo "$LAST_OUT" >"$TMPDIR_TEST/auto"
if grep -q "backend nccl" "$TMPDIR_TEST/auto"; then not_ok "auto never picks nccl"; else ok "auto picked a host backend"; fi
