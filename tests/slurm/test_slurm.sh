#!/bin/bash
# test_slurm.sh -- weft under a real local Slurm (tests/slurm/slurm.sh):
#   - the harness starts munged, slurmctld and slurmd and the node is idle;
#   - the same binary runs under srun --mpi=pmix, and under mpirun inside an
#     sbatch allocation (srun --mpi=pmi2: see below);
#   - examples/slurm/train.sbatch (with mpirun; srun below) trains a small
#     model to completion, and the
#     job comment (squeue -o %k) shows the progress while it runs and the
#     final state after;
#   - finetune.sbatch starts from that run's checkpoint on a new dataset and
#     another layout (LoRA on the frozen base, merged, exported); and from a
#     Hugging Face Llama directory (written by tests/ckpt/hf_model.py):
#     import -> tokenize -> LoRA -> merge -> export, the exported weights
#     differing from the source's in the adapted layers (q, v) only;
#     sweep.sbatch runs a job array, one run per rate;
#   - scancel --signal=USR1 of the batch shell reaches every rank through the
#     script's trap: all stop after the same step.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/slurm.sh"
slurm_start
info="$WEFT_BIN/weft-info"

out=$(timeout 60 srun -n2 --mpi=pmix "$info" 2>&1)
if grep -q "launcher srun-pmix, 2 ranks on 1 node" <<<"$out" && grep -q "collectives: .* ok on 2 ranks" <<<"$out"; then
    ok "srun --mpi=pmix: 2 ranks, collectives check passes"
else
    not_ok "srun --mpi=pmix: 2 ranks, collectives check passes" "$out"
fi

# Debian's Open MPI 4.1 is built against PMIx only: it has no Slurm PMI-1/2
# client (ompi_info lists no pmix s1/s2 component), so under srun
# --mpi=pmi2 its MPI_Init stops with "OMPI was not built with SLURM's PMI
# support". Tested for real where the MPI library can do it.
if ompi_info 2>/dev/null | grep -qE "MCA pmix: s2 "; then
    out=$(timeout 60 srun -n2 --mpi=pmi2 "$info" 2>&1)
    grep -q "launcher srun-pmi2, 2 ranks" <<<"$out" && ok "srun --mpi=pmi2: 2 ranks" || not_ok "srun --mpi=pmi2: 2 ranks" "$out"
else
    out=$(timeout 60 srun -n2 --mpi=pmi2 "$info" 2>&1)
    if grep -q "not built with SLURM's PMI support" <<<"$out"; then
        skip "srun --mpi=pmi2" "this Open MPI has no Slurm PMI-2 client (built with PMIx only); MPI_Init refuses"
    else
        not_ok "srun --mpi=pmi2 fails the known way on an Open MPI without PMI-2" "$out"
    fi
fi

cat >"$TMPDIR_TEST/info.sbatch" <<JOB
#!/bin/bash
#SBATCH --ntasks=2
mpirun "$info"
JOB
job=$(sbatch --parsable -o "$TMPDIR_TEST/info-%j.out" "$TMPDIR_TEST/info.sbatch")
slurm_wait_state "$job" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 60
if [ "$(slurm_job_field "$job" JobState)" = COMPLETED ] &&
    grep -q "launcher mpirun in a Slurm allocation, 2 ranks" "$TMPDIR_TEST/info-$job.out"; then
    ok "mpirun inside sbatch: 2 ranks, job $job sees its Slurm allocation"
else
    not_ok "mpirun inside sbatch" "$(slurm_job_field "$job" JobState): $(cat "$TMPDIR_TEST/info-$job.out")"
fi

# train.sbatch on a small model.
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1
# The training keys alone, for fine-tuning an imported model (its model.*
# keys come from the checkpoint).
cat >"$TMPDIR_TEST/tiny-ft.ini" <<INI
[train]
seq_len = 32
micro_batch = 4
global_batch = 8
log_interval = 10
eval_interval = 0
eval_batches = 1
INI
cat >"$TMPDIR_TEST/tiny.ini" <<INI
[model]
n_layer = 2
n_head = 2
n_embd = 32
context = 32
[train]
seq_len = 32
micro_batch = 4
global_batch = 8
log_interval = 10
eval_interval = 0
eval_batches = 1
INI
submit() { # NAME EXTRA-SBATCH-ARGS... -- WEFT-ARGS...
    local name=$1; shift
    local sb=()
    while [ "$1" != -- ]; do sb+=("$1"); shift; done
    shift
    CONFIG="$TMPDIR_TEST/tiny.ini" DATA="$ds" RUN_DIR="$TMPDIR_TEST/$name" LOCAL="$TMPDIR_TEST" WEFT="$WEFT_ROOT" \
        sbatch --parsable -J "$name" -o "$TMPDIR_TEST/$name-%j.out" "${sb[@]}" \
        "$WEFT_ROOT/examples/slurm/train.sbatch" "$@"
}

job=$(LAUNCHER=mpirun submit done -- --train.steps=40 --sched.comment_interval=1)
slurm_wait_state "$job" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 120
state=$(slurm_job_field "$job" JobState)
log=$(cat "$TMPDIR_TEST/done-$job.out")
[ "$state" = COMPLETED ] && grep -q "done: 40 steps" <<<"$log" && grep -q "launcher mpirun in a Slurm allocation" <<<"$log" &&
    ok "train.sbatch (LAUNCHER=mpirun): 40 steps, job COMPLETED" ||
    not_ok "train.sbatch (LAUNCHER=mpirun): 40 steps, job COMPLETED" "$state: $log"
check "the final job comment says done, step 40/40" test "$(squeue -h -t all -j "$job" -o %k | cut -c1-24)" = "weft done step 40/40 los"
check "the staged dataset copy is removed at the end" test -z "$(ls -d "$TMPDIR_TEST"/weft-data-* 2>/dev/null)"

# A step that "succeeds" without training (a launcher reporting 0 for tasks
# that never ran, here a stand-in weft-train that exits 0) fails the job.
mkdir -p "$TMPDIR_TEST/fake/build/bin" "$TMPDIR_TEST/fake/examples/slurm"
cp "$WEFT_ROOT/examples/slurm/weft-job.sh" "$TMPDIR_TEST/fake/examples/slurm/"
printf '#!/bin/sh\nexit 0\n' >"$TMPDIR_TEST/fake/build/bin/weft-train"
chmod +x "$TMPDIR_TEST/fake/build/bin/weft-train"
job=$(CONFIG="$TMPDIR_TEST/tiny.ini" DATA="$ds" RUN_DIR="$TMPDIR_TEST/fake-run" STAGE=0 WEFT="$TMPDIR_TEST/fake" BUILD=build \
    sbatch --parsable -o "$TMPDIR_TEST/fake.out" "$WEFT_ROOT/examples/slurm/train.sbatch")
slurm_wait_state "$job" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 60
check "a step that exits 0 without status.json saying done fails the job with 70" \
    test "$(slurm_job_field "$job" JobState) $(slurm_job_field "$job" ExitCode)" = "FAILED 70:0"

# finetune.sbatch: from the finished run's latest checkpoint, on a new
# dataset, on 1 rank instead of 2.
for i in $(seq 200); do echo "pack my box with five dozen liquor jugs; how vexingly quick daft zebras jump"; done \
    >"$TMPDIR_TEST/new.txt"
"$WEFT_BIN/weft-data" prepare -o "$TMPDIR_TEST/new" --val-fraction 0.1 "$TMPDIR_TEST/new.txt" >/dev/null
job=$(INIT_FROM="$TMPDIR_TEST/done" CONFIG="$TMPDIR_TEST/tiny.ini" DATA="$TMPDIR_TEST/new" RUN_DIR="$TMPDIR_TEST/ft" \
    LOCAL="$TMPDIR_TEST" WEFT="$WEFT_ROOT" sbatch --parsable --ntasks-per-node=1 -o "$TMPDIR_TEST/ft.out" \
    "$WEFT_ROOT/examples/slurm/finetune.sbatch" --train.steps=20)
slurm_wait_state "$job" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 120
check "finetune.sbatch: 1 rank, LoRA on the 2-rank checkpoint of step 40 as the frozen base, 20 steps on the new dataset" \
    python3 - "$TMPDIR_TEST/ft.out" "$(slurm_job_field "$job" JobState)" <<'PY'
import re, sys
log, state = open(sys.argv[1]).read(), sys.argv[2]
assert state == "COMPLETED", state + log[-2000:]
assert re.search(r"frozen weights \(\d+ tensors\) from \S+/done/checkpoints/step-00000040\.h5", log), log[-2000:]
assert "1 rank on 1 node" in log and "done: 20 steps" in log, log[-2000:]
assert re.search(r"lora: \d+ trainable of \d+", log) and "fine-tuned model in" in log, log[-2000:]
PY
check "finetune.sbatch: the merged model exported in Hugging Face's layout" \
    test -f "$TMPDIR_TEST/ft.work/hf/config.json" -a -f "$TMPDIR_TEST/ft.work/hf/model.safetensors"

# finetune.sbatch from a Hugging Face directory and raw text.
numpy_python
"$py" "$WEFT_ROOT/tests/ckpt/hf_model.py" write "$TMPDIR_TEST/hf-llama" --family llama --context 32 >/dev/null
job=$(INIT_FROM="$TMPDIR_TEST/hf-llama" TEXT="$TMPDIR_TEST/new.txt" LORA_RANK=4 CONFIG="$TMPDIR_TEST/tiny-ft.ini" \
    RUN_DIR="$TMPDIR_TEST/ft-hf" LOCAL="$TMPDIR_TEST" WEFT="$WEFT_ROOT" sbatch --parsable -o "$TMPDIR_TEST/ft-hf.out" \
    "$WEFT_ROOT/examples/slurm/finetune.sbatch" --train.steps=20)
slurm_wait_state "$job" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 180
check "finetune.sbatch from a Hugging Face Llama: import, tokenize, LoRA on 2 ranks, merge, export" \
    python3 - "$TMPDIR_TEST/ft-hf.out" "$(slurm_job_field "$job" JobState)" <<'PY'
import re, sys
log, state = open(sys.argv[1]).read(), sys.argv[2]
assert state == "COMPLETED", state + log[-3000:]
assert "base.h5: llama (LlamaForCausalLM)" in log and "model: Llama, L=2 NH=4 NKV=2 C=32" in log, log[-3000:]
assert "2 ranks on 1 node" in log and "done: 20 steps" in log and "fine-tuned model in" in log, log[-3000:]
PY
check "... the export differs from the source model in the LoRA targets (q_proj, v_proj) only" "$py" - \
    "$TMPDIR_TEST/hf-llama" "$TMPDIR_TEST/ft-hf.work/hf" "$WEFT_ROOT/tests/ckpt" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
import hf_model
_, a = hf_model.read_model(sys.argv[1])
cfg, b = hf_model.read_model(sys.argv[2])
assert cfg["architectures"] == ["LlamaForCausalLM"], cfg
changed = sorted(n for n in a if a[n][2] != b[n][2])
assert changed and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed), changed
assert set(a) == set(b), set(a) ^ set(b)
PY

# sweep.sbatch: a job array of two learning rates, each in its own run dir.
job=$(LRS="1e-3 3e-3" CONFIG="$TMPDIR_TEST/tiny.ini" DATA="$ds" SWEEP_DIR="$TMPDIR_TEST/sweep" LOCAL="$TMPDIR_TEST" \
    WEFT="$WEFT_ROOT" sbatch --parsable --array=0-1 -o "$TMPDIR_TEST/sweep-%a.out" \
    "$WEFT_ROOT/examples/slurm/sweep.sbatch" --train.steps=20)
for t in 0 1; do slurm_wait_state "${job}_$t" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 120; done
check "sweep.sbatch: array tasks 0 and 1 COMPLETED" test "$(slurm_job_field "${job}_0" JobState) $(slurm_job_field "${job}_1" JobState)" = "COMPLETED COMPLETED"
check "sweep.sbatch: each task trained its own learning rate in its own run directory" python3 - "$TMPDIR_TEST/sweep" <<'PY'
import json, sys
for lr in ("1e-3", "3e-3"):
    ini = open(f"{sys.argv[1]}/lr-{lr}/config.ini").read()
    assert f"lr = {lr}" in ini or f"lr = {float(lr):g}" in ini, ini
    rows = [json.loads(l) for l in open(f"{sys.argv[1]}/lr-{lr}/metrics.jsonl")]
    assert rows[-1]["step"] == 20, rows[-1]
PY

job=$(submit stop -- --train.steps=10000000 --sched.comment_interval=1 --sched.requeue=false)
comment=""
for i in $(seq 240); do
    comment=$(squeue -h -j "$job" -o %k 2>/dev/null)
    grep -qE "^weft running step [0-9]+/10000000 loss [0-9.]+ [0-9.]+k? tok/s" <<<"$comment" && break
    sleep 0.25
done
grep -qE "^weft running step [0-9]+/10000000" <<<"$comment" && ok "squeue -o %k shows the running job's progress ($comment)" ||
    not_ok "squeue -o %k shows the running job's progress" "comment '$comment': $(cat "$TMPDIR_TEST"/stop-*.out)"
if said=$(slurm_signal_batch "$job" USR1 "$TMPDIR_TEST/stop-$job.out"); then
    ok "scancel --signal=USR1 reaches the ranks through the script's trap"
else
    not_ok "scancel --signal=USR1 reaches the ranks through the script's trap" "$said"
fi
slurm_wait_state "$job" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 60
check "both ranks stop after the same step, commit a checkpoint and exit 138" python3 - "$job" <<PY
import re
log = open("$TMPDIR_TEST/stop-$job.out").read()
stops = dict(re.findall(r"\[weft r(\d)/2 [^]]*\] .*all ranks stop after step (\d+)", log))
assert sorted(stops) == ["0", "1"] and stops["0"] == stops["1"], log[-3000:]
assert "step ended with exit status 138" in log, log[-2000:]
assert re.search(r"checkpoint step %s committed" % stops["0"], log), log[-2000:]
PY

# A rank killed or stopped under srun ends the job within comm.timeout + 30 s,
# and weft-doctor explains it from the run directory.
for sig in KILL STOP; do
    name=fault-$sig
    job=$(submit "$name" -- --train.steps=100000000 --comm.timeout=3 --sched.heartbeat=0.5 --train.log_interval=1000000)
    hb="$TMPDIR_TEST/$name/heartbeat"
    for i in $(seq 600); do
        [ "$(awk '/^step/ {print $2}' "$hb/rank-1" 2>/dev/null)" -ge 20 ] 2>/dev/null && break
        sleep 0.1
    done
    pid=$(awk '/^pid/ {print $2}' "$hb/rank-1" 2>/dev/null)
    t0=$(date +%s)
    kill -"$sig" "$pid"
    slurm_wait_state "$job" 'COMPLETED|FAILED|CANCELLED|TIMEOUT' 40
    elapsed=$(( $(date +%s) - t0 ))
    state=$(slurm_job_field "$job" JobState)
    kill -CONT "$pid" 2>/dev/null
    if [ "$state" = FAILED ] && [ "$elapsed" -le 33 ]; then
        ok "SIG$sig of rank 1 under srun: job $job FAILED after $elapsed s (comm.timeout 3 s + 30 s allowed)"
    else
        not_ok "SIG$sig of rank 1 under srun: the job fails within comm.timeout + 30 s" \
            "state $state after $elapsed s: $(tail -20 "$TMPDIR_TEST/$name-$job.out")"
    fi
    "$WEFT_BIN/weft-doctor" "$TMPDIR_TEST/$name" >"$TMPDIR_TEST/$name.doctor" 2>&1
    if [ $sig = STOP ]; then
        expect_grep "silent \(stopped, hung or dead\): rank 1$" "$TMPDIR_TEST/$name.doctor" \
            "weft-doctor names the stopped rank 1"
        expect_grep "^hang: (allreduce|allgather|reduce_scatter) #[0-9]+ on communicator (world|dp).0" \
            "$TMPDIR_TEST/$name.doctor" "weft-doctor names the collective the job hung in"
    else
        expect_grep "rank 1 of '(world|dp)' \(pid $pid on this node\) died" "$TMPDIR_TEST/$name.doctor" \
            "weft-doctor reports rank 1 (pid $pid) died"
    fi
done
