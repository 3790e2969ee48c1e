#!/bin/bash
# test_report.sh -- what weft-train tells the scheduler, under mpirun:
#   - status.json: state, step, loss as metrics.jsonl has them, replaced
#     atomically (no temporary file left), state done at the end;
#   - Prometheus metrics scraped with curl while training: Content-Type,
#     strict exposition-format check (tests/sched/promcheck.py), 404/405,
#     bound to 127.0.0.1 only; the node_exporter textfile at the end;
#   - a stop signal sent to ONE rank stops every rank after the same step,
#     commits a checkpoint (weft_ckpt_save_wait), exits 138 (requeue me),
#     and status.json says preempted with that checkpoint;
#   - bad sched.* keys exit 64 naming the key.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train"
promcheck="$WEFT_ROOT/tests/sched/promcheck.py"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=4 --train.global_batch=8 --train.log_interval=1
      --train.eval_interval=0 --train.eval_batches=1)


# 1. A finished run: status.json and the textfile agree with metrics.jsonl.
run="$TMPDIR_TEST/done"
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=30 --run.dir="$run" \
    --sched.textfile="$run/weft.prom" >"$TMPDIR_TEST/done.log" 2>&1
check "a 30-step run exits 0" test -s "$run/status.json"
check "status.json: state done, step 30 of 30, loss = metrics.jsonl's last, the end-of-training checkpoint, 0 restarts" \
    python3 - "$run/status.json" "$run/metrics.jsonl" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
last = [json.loads(l) for l in open(sys.argv[2])][-1]
assert st["state"] == "done" and st["step"] == 30 and st["total_steps"] == 30, st
assert st["loss"] == float("%.9g" % last["loss"]), (st["loss"], last["loss"])
ck = st["last_checkpoint"]
assert ck["step"] == 30 and ck["path"].endswith("/checkpoints/step-00000030.h5"), st
assert st["restarts"] == 0 and st["tokens"] == 30 * 8 * 32, st
assert st["eta_s"] == 0 and st["updated"] >= st["heartbeat"], st
PY
loss=$(tail -1 "$run/metrics.jsonl" | python3 -c 'import json,sys; print(repr(json.load(sys.stdin)["loss"]))')
check "the textfile passes the strict format check: step 30, tokens 7680, loss as metrics.jsonl, state done" \
    "$promcheck" "$run/weft.prom" weft_step=30 weft_steps_planned=30 weft_tokens_total=7680 "weft_loss=$loss" \
    'weft_state{state="done"}=1' 'weft_state{state="running"}=0' weft_checkpoint_step=30 weft_restarts=0
if ls -A "$run" | grep -q '\.tmp\.'; then not_ok "no temporary files left in run.dir" "$(ls "$run")"; else ok "no temporary files left in run.dir"; fi

# 2. Scrape a running job with curl, then stop it with a signal to one rank.
run="$TMPDIR_TEST/live"
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=1000000 --run.dir="$run" --sched.metrics_port=0 \
    --sched.status_interval=0 >"$TMPDIR_TEST/live.log" 2>&1 &
bg=$!
if wait_for 60 grep -q '"step":[1-9][0-9]' "$run/status.json" && [ -s "$run/metrics.port" ]; then
    ok "status.json shows the running job's progress"
else
    not_ok "status.json shows the running job's progress" "$(cat "$run/status.json" "$TMPDIR_TEST/live.log")"
fi
port=$(cat "$run/metrics.port")
url="http://127.0.0.1:$port/metrics"
curl -sS -D "$TMPDIR_TEST/head" -o "$TMPDIR_TEST/scrape" "$url" 2>"$TMPDIR_TEST/curl.err"
check "curl GET /metrics: 200 with Content-Type text/plain; version=0.0.4" \
    grep -qiE '^Content-Type: text/plain; version=0\.0\.4; charset=utf-8'$'\r''?$' "$TMPDIR_TEST/head"
check "the scrape passes the strict exposition-format check, state running" \
    "$promcheck" "$TMPDIR_TEST/scrape" 'weft_state{state="running"}=1' weft_steps_planned=1000000
check "step and tokens in the scrape agree (tokens = step x 256)" python3 - "$TMPDIR_TEST/scrape" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
step = float(re.search(r"^weft_step\{[^}]*\} (\S+)$", t, re.M).group(1))
tok = float(re.search(r"^weft_tokens_total\{[^}]*\} (\S+)$", t, re.M).group(1))
assert step >= 10 and tok == step * 256, (step, tok)
PY
check "another path answers 404" test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/other")" = 404
check "POST answers 405" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url")" = 405
check "the server listens on 127.0.0.1 only" test "$(ss -ltnH "sport = :$port" | awk '{print $4}')" = "127.0.0.1:$port"
victim=$(ranks_of "$train" "$run" | tail -1)
kill -USR1 "$victim"
wait "$bg"
rc=$?
[ "$rc" -eq 138 ] && ok "SIGUSR1 to one rank: the job commits a checkpoint and exits 138 (requeue me)" ||
    not_ok "SIGUSR1 to one rank: exit 138" "exit $rc: $(tail -20 "$TMPDIR_TEST/live.log")"
check "both ranks stop after the same step, the last one in metrics.jsonl" python3 - "$TMPDIR_TEST/live.log" "$run/metrics.jsonl" <<'PY'
import json, re, sys
log = open(sys.argv[1]).read()
stops = dict(re.findall(r"\[weft r(\d)/2 [^]]*\] .*all ranks stop after step (\d+)", log))
assert sorted(stops) == ["0", "1"], log[-2000:]
assert stops["0"] == stops["1"], stops
last = [json.loads(l) for l in open(sys.argv[2])][-1]["step"]
assert int(stops["0"]) == last, (stops, last)
PY
check "status.json: preempted, with the signal, the step and its committed checkpoint" python3 - "$run/status.json" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
assert st["state"] == "preempted" and "after step %d" % st["step"] in st["message"], st
assert "checkpoint committed" in st["message"] and st["last_checkpoint"]["step"] == st["step"], st
PY
check "latest names the checkpoint of the stop step" bash -c "grep -qx \"step-\$(printf %08d \$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"step\"])' '$run/status.json')).h5\" '$run/checkpoints/latest'"
if curl -s -m 2 -o /dev/null "$url"; then not_ok "the metrics server is gone with the job"; else ok "the metrics server is gone with the job"; fi

# 3. Bad keys.
expect_exit 64 "sched.signals = KILL is refused (exit 64)" \
    weft_mpirun 1 "$train" "${tiny[@]}" --train.steps=1 --run.dir="$TMPDIR_TEST/bad" --sched.signals=USR1,KILL
expect_grep "sched.signals: 'KILL' cannot be caught" <(echo "$LAST_OUT") "the message names the key and the signal"
expect_exit 64 "sched.metrics_bind = localhost6 is refused (exit 64)" \
    weft_mpirun 1 "$train" "${tiny[@]}" --train.steps=1 --run.dir="$TMPDIR_TEST/bad" --sched.metrics_port=0 \
    --sched.metrics_bind=localhost6
expect_grep "sched.metrics_bind: 'localhost6' is not an IPv4 address" <(echo "$LAST_OUT") "the message names the key and the value"

# 4. A stop during a long evaluation: the ranks abandon it together at the
# next batch instead of finishing it (100000 batches would take minutes).
run="$TMPDIR_TEST/eval"
weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=1000 --train.eval_interval=5 --train.eval_batches=100000 \
    --run.dir="$run" --sched.status_interval=0 >"$TMPDIR_TEST/eval.log" 2>&1 &
bg=$!
# Step 5 is reported after its evaluation, so status.json shows step 4
# while that evaluation (about a minute) runs.
wait_for 60 grep -q '"step":4,' "$run/status.json"
sleep 1 # well inside the evaluation after step 5
t0=$(date +%s)
kill -USR1 $(ranks_of "$train" "$run" | head -1)
wait "$bg"
rc=$?
elapsed=$(( $(date +%s) - t0 ))
[ "$rc" -eq 138 ] && [ "$elapsed" -le 10 ] && ok "a stop during evaluation ends the job in $elapsed s with 138" ||
    not_ok "a stop during evaluation ends the job promptly with 138" "exit $rc after $elapsed s: $(tail -5 "$TMPDIR_TEST/eval.log")"
expect_grep "r0/2 .*evaluation abandoned after [0-9]+ of 100000 batches: stop requested" "$TMPDIR_TEST/eval.log" \
    "rank 0 says the evaluation was abandoned"
expect_grep "r1/2 .*all ranks stop after step 5$" "$TMPDIR_TEST/eval.log" "every rank stops after step 5, the step before the evaluation"
