#!/bin/bash
# test_mlp.sh -- the custom-model example (examples/mlp) on the library
# trainer, with no parallelism code of its own: on 2 ranks it beats the best
# linear fit by a wide margin; stopped by SIGUSR1 mid-run it commits a
# checkpoint and exits 138 like weft-train, and --resume then ends bitwise
# equal to an uninterrupted run of the same train.steps (every tensor of the
# final checkpoint, parameters and AdamW moments, and every loss in
# metrics.jsonl); ZeRO-1 and a pipeline layout it cannot have are handled.
. "$(dirname "$0")/../lib.sh"
mlp="$WEFT_ROOT/$BUILD/examples/mlp"
ckpt="$WEFT_BIN/weft-ckpt"

weft_mpirun 2 "$mlp" --run.dir="$TMPDIR_TEST/plain" >"$TMPDIR_TEST/out" 2>&1
check "examples/mlp on 2 ranks: final loss below 0.1 (linear fit: 0.276)" python3 - "$TMPDIR_TEST/out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"final loss ([0-9.]+) on 2 ranks", text)
assert m and float(m.group(1)) < 0.1, text[-2000:]
PY

# The same options as weft-train: --section.key=value, --run.dir, --resume.
steps=(--train.steps=1500 --train.log_interval=1 --checkpoint.every=0 --sched.status_interval=0)
ref="$TMPDIR_TEST/ref" run="$TMPDIR_TEST/stopped"
weft_mpirun 2 "$mlp" "${steps[@]}" --run.dir="$ref" >"$ref.log" 2>&1 || not_ok "uninterrupted reference run" "$(tail -5 "$ref.log")"

# Rank 1 gets SIGUSR1 as step 700 begins (WEFT_FAULT=usr1_step, a registry
# point, not a moment): the ranks agree to stop after that step.
WEFT_FAULT=usr1_step:700@1 weft_mpirun 2 "$mlp" "${steps[@]}" --run.dir="$run" >"$run.log" 2>&1
rc=$?
[ "$rc" -eq 138 ] && ok "SIGUSR1 to one rank: examples/mlp commits a checkpoint and exits 138" ||
    not_ok "SIGUSR1: exit 138" "exit $rc: $(tail -20 "$run.log")"
stopped=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$run/status.json")
check "the stop step ($stopped) is mid-run and committed" bash -c \
    "[ '$stopped' -eq 700 ] && grep -qx step-\$(printf %08d '$stopped').h5 '$run/checkpoints/latest'"
weft_mpirun 2 "$mlp" "${steps[@]}" --run.dir="$run" --resume >"$run.resume.log" 2>&1
expect_grep "resumed from .*step-$(printf %08d "$stopped").h5" "$run.resume.log" "--resume continues from the stop step"
check "resumed run == uninterrupted run: every tensor of the final checkpoint bitwise" \
    "$ckpt" diff "$ref/checkpoints/step-00001500.h5" "$run/checkpoints/step-00001500.h5"
check "resumed run == uninterrupted run: all 1500 losses in metrics.jsonl bitwise" python3 - "$ref" "$run" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(d + "/metrics.jsonl")] for d in sys.argv[1:])
assert [r["step"] for r in b] == list(range(1, 1501)), [r["step"] for r in b][:5]
assert [r["loss"] for r in a] == [r["loss"] for r in b]
PY

weft_mpirun 2 "$mlp" --train.steps=50 --parallel.zero=1 --run.dir="$TMPDIR_TEST/zero" >"$TMPDIR_TEST/zero.log" 2>&1
expect_grep "ZeRO-1" "$TMPDIR_TEST/zero.log" "ZeRO-1 from the trainer, for a model that knows nothing of it"
expect_exit 64 "parallel.pp = 2: the MLP has no stages; exit 64 naming the constraint" \
    weft_mpirun 2 "$mlp" --parallel.pp=2 --run.dir="$TMPDIR_TEST/pp"
expect_grep "no pipeline stages|parallel.tp = parallel.pp = 1" <(echo "$LAST_OUT") "the refusal says why"
