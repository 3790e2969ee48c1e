#!/bin/bash
# test_rundir.sh -- run directories are safe to start in (docs/operations.md,
# "Run directories"):
#   - a fresh start where a run exists exits 64 saying what is there, and
#     changes nothing (file list and checksums before and after);
#   - --run.overwrite=true moves the old run to run.dir/previous/<UTC time>/
#     and trains afresh;
#   - --resume=auto and --resume with checkpoints but no latest resume from
#     the newest checkpoint that loads; a corrupt newest one (dd) falls back
#     to the one before it;
#   - resuming at or past train.steps exits 0 with "nothing to do" and
#     touches nothing but status.json (done);
#   - --init-from RUN_DIR, and weft-ckpt info / verify / diff RUN_DIR, take
#     the checkpoint that run's latest names.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1 --train.steps=10 --checkpoint.every=5)
# snap DIR: every file under DIR with its checksum, and every directory
snap_all() { (cd "$1" && find . -type d | sort && find . -type f -print0 | sort -z | xargs -0 md5sum); }
# snap without heartbeat/: the watchdog rewrites it while a resume reads the checkpoint
snap() { (cd "$1" && find . -path ./heartbeat -prune -o -type d -print | sort &&
          find . -path ./heartbeat -prune -o -type f -print0 | sort -z | xargs -0 md5sum); }
# steps_of METRICS: the steps metrics.jsonl holds, space-separated
steps_of() { python3 -c 'import json, sys; print(*[json.loads(l)["step"] for l in open(sys.argv[1])])' "$1"; }

run="$TMPDIR_TEST/run"
weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$run" >"$run.log" 2>&1 || not_ok "the first run" "$(tail -5 "$run.log")"
check "a run claims its directory: owner.json names the job, the configuration hash and the start" python3 -c '
import json, sys; o = json.load(open(sys.argv[1])); assert o["job"] and len(o["config_hash"]) == 16 and o["started"], o' \
    "$run/owner.json"

# 1. A fresh start over it is refused and changes nothing.
snap_all "$run" >"$TMPDIR_TEST/before"
expect_exit 64 "a fresh start in a run directory that holds a run exits 64" \
    weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$run" --train.steps=3
check "  ... saying what is there and what to do" bash -c 'grep -q "already holds a run (metrics.jsonl, owner.json, 2 checkpoints .*steps 5 to 10" <<<"$1" &&
    grep -q -- "--resume (or --resume=auto).*--run.overwrite=true" <<<"$1"' _ "$LAST_OUT"
snap_all "$run" >"$TMPDIR_TEST/after"
check "  ... and leaves every file and checksum as it was" diff "$TMPDIR_TEST/before" "$TMPDIR_TEST/after"
cp -r "$run" "$TMPDIR_TEST/ckonly" && rm "$TMPDIR_TEST/ckonly/metrics.jsonl" "$TMPDIR_TEST/ckonly/owner.json"
expect_exit 64 "checkpoints alone (no metrics.jsonl, no owner.json) also refuse a fresh start" \
    weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/ckonly" --train.steps=3
expect_exit 64 "--init-from into a run directory that holds a run is a fresh start too: exit 64" \
    weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/ckonly" --init-from "$run"

# 2. run.overwrite = true moves the old run aside, never deletes it.
ow="$TMPDIR_TEST/ow"
cp -r "$run" "$ow"
snap_all "$ow" >"$TMPDIR_TEST/ow.before"
weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$ow" --train.steps=3 --run.overwrite=true >"$ow.log" 2>&1
check "--run.overwrite=true: exit 0, a new run of 3 steps" test "$(steps_of "$ow/metrics.jsonl")" = "1 2 3"
prev=$(ls -d "$ow"/previous/*/ 2>/dev/null | head -1)
check "  ... the old run is under previous/<UTC time>/ with every file and checksum" bash -c \
    "[[ '$prev' =~ /previous/[0-9]{8}T[0-9]{6}Z/\$ ]] && diff <(cd '$prev' && find . -type d | sort && find . -type f -print0 | sort -z | xargs -0 md5sum) '$TMPDIR_TEST/ow.before'"
check "  ... and the new run's checkpoints are its own (step 3 only, latest step 3)" bash -c \
    "[ \"\$(cd '$ow/checkpoints' && echo step-*.h5)\" = step-00000003.h5 ] && grep -qx step-00000003.h5 '$ow/checkpoints/latest'"
expect_grep "run.overwrite: moved the previous run in .* to .*/previous/" "$ow.log" "  ... and says where it went"

# 3. No latest: the newest checkpoint that loads; a corrupt one is skipped.
auto="$TMPDIR_TEST/auto"
cp -r "$run" "$auto" && rm "$auto/checkpoints/latest"
weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$auto" --train.steps=12 --resume=auto >"$auto.log" 2>&1
expect_grep "resumed from .*step-00000010.h5 \(step 10" "$auto.log" "--resume=auto without latest: resumes from the newest checkpoint (step 10)"
expect_grep "no latest in the checkpoint directory; resuming from the newest" "$auto.log" "  ... and says so"
check "  ... metrics.jsonl goes on from step 10" test "$(steps_of "$auto/metrics.jsonl")" = "1 2 3 4 5 6 7 8 9 10 11 12"
bad="$TMPDIR_TEST/bad"
cp -r "$run" "$bad" && rm "$bad/checkpoints/latest"
f="$bad/checkpoints/step-00000010.h5"
dd if=/dev/urandom of="$f" bs=1 count=64 seek=$(($(stat -c %s "$f") / 2)) conv=notrunc 2>/dev/null
expect_exit 65 "(the newest checkpoint is now corrupt: weft-ckpt verify exits 65)" "$ck" verify "$f"
weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$bad" --train.steps=7 --resume=auto >"$bad.log" 2>&1
expect_grep "resumed from .*step-00000005.h5 \(step 5" "$bad.log" "--resume=auto, newest corrupt: falls back to the one before it (step 5)"
expect_grep "cannot resume from .*step-00000010.h5" "$bad.log" "  ... naming the corrupt file"
check "  ... and trains on from step 5" test "$(steps_of "$bad/metrics.jsonl")" = "1 2 3 4 5 6 7"
plain="$TMPDIR_TEST/plain"
cp -r "$run" "$plain" && rm "$plain/checkpoints/latest"
weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$plain" --train.steps=11 --resume >"$plain.log" 2>&1
expect_grep "--resume: no latest in the checkpoint directory; resuming from the newest .*step-00000010.h5" "$plain.log" \
    "--resume without latest but with checkpoints: the newest, saying so"

# 4. Nothing left to train: exit 0, nothing touched but status.json (done) and heartbeat/.
rm "$run/status.json"
snap "$run" >"$TMPDIR_TEST/before"
expect_exit 0 "resuming a step-10 checkpoint with train.steps = 6 exits 0" \
    weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$run" --train.steps=6 --resume
check "  ... with 'nothing to do: checkpoint step 10 >= train.steps 6'" grep -q "nothing to do: checkpoint step 10 >= train.steps 6" <<<"$LAST_OUT"
check "  ... and no 'done' line" bash -c '! grep -q "done:" <<<"$1"' _ "$LAST_OUT"
expect_exit 0 "  ... the same at train.steps = 10 (--resume=auto)" \
    weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="$run" --train.steps=10 --resume=auto
check "  ... status.json says done" grep -q '"state":"done"' "$run/status.json"
rm "$run/status.json"
snap "$run" >"$TMPDIR_TEST/after"
check "  ... leaving every other file and checksum as it was" diff "$TMPDIR_TEST/before" "$TMPDIR_TEST/after"

# 5. A run directory names its latest checkpoint.
weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/ft" --train.steps=2 --init-from "$run" >"$TMPDIR_TEST/ft.log" 2>&1
expect_grep "initialised weights from .*/run/checkpoints/step-00000010.h5" "$TMPDIR_TEST/ft.log" "--init-from RUN_DIR: the run's latest checkpoint"
check "weft-ckpt info RUN_DIR: the latest checkpoint's step" bash -c "'$ck' info '$run' | grep -Eq '^step +10\$'"
check "weft-ckpt info CHECKPOINT_DIR: the same" bash -c "'$ck' info '$run/checkpoints' | grep -Eq '^step +10\$'"
check "weft-ckpt verify RUN_DIR" bash -c "'$ck' verify '$run' | grep -q 'step-00000010.h5: .* 0 corrupt'"
check "weft-ckpt diff RUN_DIR FILE: identical" "$ck" diff "$run" "$run/checkpoints/step-00000010.h5"
mkdir -p "$TMPDIR_TEST/corrupt/checkpoints" && cp "$f" "$TMPDIR_TEST/corrupt/checkpoints/"
echo step-00000010.h5 >"$TMPDIR_TEST/corrupt/checkpoints/latest"
expect_exit 65 "weft-ckpt verify of a run directory whose latest is corrupt exits 65" "$ck" verify "$TMPDIR_TEST/corrupt"
rm -f "$plain/checkpoints/latest"; rm -f "$plain/checkpoints/step-00000011.h5"
expect_exit 66 "weft-ckpt info RUN_DIR without latest exits 66, naming a file to use" "$ck" info "$plain"
check "  ... the message lists the checkpoints" grep -q "has no latest .* holds 2 checkpoints (steps 5 to 10): name one file" <<<"$LAST_OUT"
echo "1..$TAP_N"
