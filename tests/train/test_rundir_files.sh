#!/bin/bash
# test_rundir_files.sh -- every file a run directory holds is named by
# runtime/runfiles.h, created 0640 or stricter, and parses as the table
# says (JSON with python3's json, metrics.jsonl line by line, config.ini
# with configparser, heartbeats and hang records by their first line,
# checkpoints with weft-ckpt verify, latest naming a file that is there):
#   1. after a run (with a trace, weft-trace's merge, weft-plot's files and
#      the Prometheus port file);
#   2. after a resume whose metrics.jsonl ended in a torn line (what a crash
#      mid-append leaves): the resume drops it and says so, and every step
#      is in metrics.jsonl once;
#   3. after a failure: a NaN at step 3 with train.on_nonfinite = stop
#      (exit 70), and a rank killed with SIGKILL mid-run;
#   4. after that killed run is taken up again: temporaries gone.
# A temporary name (a write cut short) is accepted only right after the kill.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" kind="$WEFT_ROOT/$BUILD/tests/train/runfile_kind"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=5 --train.eval_batches=1 --checkpoint.every=5)

# audit RUN_DIR WHAT [temporaries-ok]: one check per file, then a summary.
audit() {
    local run=$1 what=$2 tmp_ok=${3:-0} listing
    listing=$("$kind" "$run") || { not_ok "$what: list $run" "$listing"; return; }
    check "$what: the run directory holds files" test -n "$listing"
    while read -r mode fmt dur rel; do
        check "$what: $rel ($fmt, $dur, $mode) is named, 0640 or stricter, and parses" \
            python3 - "$run" "$rel" "$mode" "$fmt" "$tmp_ok" "$WEFT_BIN/weft-ckpt" <<'EOF'
import configparser, json, os, re, subprocess, sys
run, rel, mode, fmt, tmp_ok, ckpt = sys.argv[1:]
path = os.path.join(run, rel)
assert fmt != "unnamed", "not named by runtime/runfiles.h"
assert int(mode, 8) & 0o137 == 0, "mode %s is wider than 0640" % mode
base = os.path.basename(rel)
if re.match(r"^\..*\.tmp(\.\d+)?$", base):
    assert tmp_ok == "1", "a temporary file left behind by a run that ended cleanly"
    sys.exit(0)  # a write cut short: its content is whatever the writer had got to
data = open(path, "rb").read()
if fmt == "json":
    json.loads(data)
elif fmt == "jsonl":
    lines = data.decode().split("\n")
    assert lines[-1] == "", "the last line has no newline (torn)"
    steps = [json.loads(l)["step"] for l in lines[:-1]]
    assert steps == sorted(set(steps)), "steps not each once and in order: %s" % steps
elif fmt == "ini":
    configparser.ConfigParser(interpolation=None).read_string(data.decode())
elif fmt == "text":
    first = data.decode().split("\n")[0]
    assert re.match(r"^(weft-(heartbeat|hang) 1|\d+)$", first), "first line %r" % first
elif fmt == "latest":
    name = data.decode()
    assert re.match(r"^step-\d{8}\.h5\n$", name), "latest holds %r" % name
    assert os.path.exists(os.path.join(os.path.dirname(path), name.strip())), "latest names a missing file"
elif fmt == "hdf5":
    r = subprocess.run([ckpt, "verify", path], capture_output=True, text=True)
    assert r.returncode == 0, "weft-ckpt verify: %s" % (r.stdout + r.stderr)
EOF
    done <<<"$listing"
}

# 1. A run, its trace merged, its plots' data, its Prometheus port.
run="$TMPDIR_TEST/run"
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=10 --trace.steps=2:3 --sched.metrics_port=0 \
    --run.dir="$run" >"$run.log" 2>&1 || not_ok "the run" "$(tail -5 "$run.log")"
"$WEFT_BIN/weft-trace" "$run" >/dev/null || not_ok "weft-trace merges the run's traces"
"$WEFT_BIN/weft-plot" "$run" >/dev/null 2>&1 # 69 without gnuplot: its data files are written first
check "the run left its trace, Prometheus port, plot data and two checkpoints" bash -c \
    "cd '$run' && ls trace.json metrics.port plots/train.dat checkpoints/step-00000005.h5 checkpoints/step-00000010.h5"
audit "$run" "run"

# 2. A resume after a crash that tore the last metrics line.
printf '{"step":11,"loss":5.3' >>"$run/metrics.jsonl"
check "weft-report reads a run whose last metrics line is torn: exit 0, ignoring that line and saying so" bash -c \
    "'$WEFT_BIN/weft-report' '$run' >/dev/null 2>'$TMPDIR_TEST/report.err' &&
     grep -q 'metrics.jsonl:11: ignoring a torn last line' '$TMPDIR_TEST/report.err'"
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=15 --resume --run.dir="$run" >"$run.resume.log" 2>&1 ||
    not_ok "the resume" "$(tail -5 "$run.resume.log")"
expect_grep "metrics.jsonl: dropped a torn last line \(line 11, 21 bytes without a newline\)" "$run.resume.log" \
    "resume: the torn last line of metrics.jsonl is dropped, and the log says so"
check "resume: metrics.jsonl holds steps 1..15, each once" bash -c \
    "python3 -c 'import json,sys; print(*[json.loads(l)[\"step\"] for l in open(sys.argv[1])])' '$run/metrics.jsonl' |
     grep -qx '$(seq -s ' ' 15)'"
audit "$run" "resume"

# 3a. A NaN at step 3, on_nonfinite = stop: exit 70.
nan="$TMPDIR_TEST/nan"
expect_exit 70 "failure: a NaN loss at step 3 with train.on_nonfinite=stop exits 70" \
    env WEFT_FAULT=nan_step:3 timeout -k 5 300 mpirun -np 2 "$train" "${tiny[@]}" --train.steps=10 \
    --train.on_nonfinite=stop --run.dir="$nan"
audit "$nan" "NaN stop"

# 3b. Rank 1 killed (SIGKILL) at the start of step 3 (the fault registry,
# runtime/fault.h: an exact point, not a timed kill); the job must end by
# itself.
kill_run="$TMPDIR_TEST/kill"
WEFT_FAULT=kill_step:3@1 weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=200 --comm.timeout=20 \
    --run.dir="$kill_run" >"$kill_run.log" 2>&1 &
job=$!
wait $job
rc=$?
check "failure: the job with a killed rank ended with an error (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
audit "$kill_run" "killed rank" 1

# 4. The killed run taken up again (--resume=auto): the temporaries a writer
# cut short leaves (two planted, as a kill mid-write leaves them) are
# removed before any rank writes, and the directory is clean again.
touch "$kill_run/.status.json.tmp.4242" "$kill_run/heartbeat/.rank-1.tmp.4243"
chmod 0640 "$kill_run/.status.json.tmp.4242" "$kill_run/heartbeat/.rank-1.tmp.4243"
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=6 --resume=auto --run.dir="$kill_run" >"$kill_run.again.log" 2>&1 ||
    not_ok "the killed run taken up again" "$(tail -5 "$kill_run.again.log")"
expect_grep "removed 2 temporary files left by a run that stopped mid-write" "$kill_run.again.log" \
    "taken up again: the temporaries left behind are removed, and the log says so"
audit "$kill_run" "taken up again"
