#!/bin/bash
# test_cli.sh -- every program's command line (runtime/cli.h, weft-train
# aside): --help exits 0 with the usage; an unknown option exits 64 naming
# it and pointing at --help (the benchmarks: naming it); "--opt value" and "--opt=value" give the same
# result; options work after the operands; configuration overrides keep
# working between options. Each tool's results are compared across the
# spellings (dataset hashes, merged traces, exported files, bench rows).
. "$(dirname "$0")/../lib.sh"
T=$TMPDIR_TEST
cd "$T" || exit 1
B=$WEFT_BIN

# ---- every tool: --help, unknown options ------------------------------------
for tool in weft-data weft-ckpt weft-info weft-bench weft-plot weft-report weft-trace weft-doctor weft-generate; do
    expect_exit 0 "$tool --help exits 0" "$B/$tool" --help
    grep -q '^usage: ' <<<"$LAST_OUT" && ok "  ... and prints the usage" || not_ok "  ... and prints the usage" "$LAST_OUT"
    expect_exit 64 "$tool --no-such-option exits 64" "$B/$tool" --no-such-option
    grep -q "$tool: unknown option '--no-such-option'" <<<"$LAST_OUT" && grep -q -- "--help" <<<"$LAST_OUT" \
        && ok "  ... naming the option and pointing at --help" \
        || not_ok "  ... naming the option and pointing at --help" "$LAST_OUT"
done

# ---- every benchmark: --help, unknown options (nothing is measured) -----------------
BB="$WEFT_ROOT/$BUILD/bench"
for b in bench_allreduce bench_ckpt bench_durable bench_gather bench_kernels bench_loader bench_pipeline \
         bench_recompute bench_sched bench_tokenizer bench_train; do
    expect_exit 0 "$b --help exits 0" "$BB/$b" --help
    grep -q '^usage: ' <<<"$LAST_OUT" && ok "  ... and prints the usage" || not_ok "  ... and prints the usage" "$LAST_OUT"
    expect_exit 64 "$b --no-such-option exits 64" "$BB/$b" --no-such-option
    grep -q -- "no-such-option" <<<"$LAST_OUT" && ok "  ... naming the option" || not_ok "  ... naming the option" "$LAST_OUT"
done

# ---- weft-data --------------------------------------------------------------------
for i in $(seq 200); do echo "the quick brown fox jumps over the lazy dog. line $i"; done >corpus.txt
hash_of() { "$B/weft-data" info "$1" 2>/dev/null | awk '$1 == "hash" { print $2 }'; }
check "weft-data prepare corpus.txt -o ds (option after the input)" "$B/weft-data" prepare corpus.txt -o ds
check "weft-data prepare --output=ds2 corpus.txt" "$B/weft-data" prepare --output=ds2 corpus.txt
check "weft-data prepare --out ds3 corpus.txt (abbreviated, space)" "$B/weft-data" prepare --out ds3 corpus.txt
check "weft-data prepare -ods4 corpus.txt" "$B/weft-data" prepare -ods4 corpus.txt
h=$(hash_of ds)
[ -n "$h" ] && [ "$h" = "$(hash_of ds2)" ] && [ "$h" = "$(hash_of ds3)" ] && [ "$h" = "$(hash_of ds4)" ] \
    && ok "  ... all four spellings make the same dataset" \
    || not_ok "  ... all four spellings make the same dataset" "$h $(hash_of ds2) $(hash_of ds3) $(hash_of ds4)"
check "weft-data prepare corpus.txt --val-fraction 0.25 -o v1 --shard-size 1K" \
    "$B/weft-data" prepare corpus.txt --val-fraction 0.25 -o v1 --shard-size 1K
check "weft-data prepare --val-fraction=0.25 --shard-size=1K corpus.txt --output v2" \
    "$B/weft-data" prepare --val-fraction=0.25 --shard-size=1K corpus.txt --output v2
[ -n "$(hash_of v1)" ] && [ "$(hash_of v1)" = "$(hash_of v2)" ] && ok "  ... the same dataset either way" \
    || not_ok "  ... the same dataset either way" "$(hash_of v1) $(hash_of v2)"
"$B/weft-data" info v1 >v1.info
expect_grep 'val +[0-9]+ shards' v1.info "  ... --val-fraction after the input took effect"
check "weft-data prepare --force after the input replaces" "$B/weft-data" prepare corpus.txt -o ds --force
check "weft-data prepare -o dd -- -dash.txt (after --, only operands)" bash -c \
    "cp corpus.txt ./-dash.txt && '$B/weft-data' prepare -o dd -- -dash.txt"
python3 -c "import struct; open('raw.u16','wb').write(struct.pack('<3000H', *[(i * 7) % 3000 for i in range(3000)]))"
check "weft-data import raw.u16 -o imp1 --vocab 4000 --dtype u16" \
    "$B/weft-data" import raw.u16 -o imp1 --vocab 4000 --dtype u16
check "weft-data import --vocab=4000 --dtype=u16 --output=imp2 raw.u16" \
    "$B/weft-data" import --vocab=4000 --dtype=u16 --output=imp2 raw.u16
"$B/weft-data" info imp2 >imp2.info
expect_grep 'vocab +4000,' imp2.info "  ... --vocab=4000 took effect"
[ "$(hash_of imp1)" = "$(hash_of imp2)" ] && ok "  ... the same dataset either way" || not_ok "  ... the same dataset either way"
check "weft-data verify ds ds2 (several operands)" "$B/weft-data" verify ds ds2
expect_exit 0 "weft-data info ds --help (help after an operand)" "$B/weft-data" info ds --help
grep -q '^usage: weft-data info' <<<"$LAST_OUT" && ok "  ... prints info's usage" || not_ok "  ... prints info's usage" "$LAST_OUT"
expect_exit 64 "weft-data prepare corpus.txt -o x --bogus" "$B/weft-data" prepare corpus.txt -o x --bogus
grep -q "weft-data prepare: unknown option '--bogus'" <<<"$LAST_OUT" && grep -q "weft-data prepare --help" <<<"$LAST_OUT" \
    && ok "  ... names --bogus and 'weft-data prepare --help'" || not_ok "  ... names --bogus and 'weft-data prepare --help'" "$LAST_OUT"
expect_exit 64 "weft-data prepare corpus.txt -o (no value)" "$B/weft-data" prepare corpus.txt -o
grep -q "option '-o' needs a value" <<<"$LAST_OUT" && ok "  ... says -o needs a value" || not_ok "  ... says -o needs a value" "$LAST_OUT"
expect_exit 64 "weft-data prepare --force=yes" "$B/weft-data" prepare --force=yes -o x corpus.txt
grep -q "option '--force' takes no value" <<<"$LAST_OUT" && ok "  ... says --force takes no value" || not_ok "  ... says --force takes no value" "$LAST_OUT"
expect_exit 64 "weft-data import --v 5 (ambiguous)" "$B/weft-data" import --v 5 -o x raw.u16
grep -q "option '--v' is ambiguous" <<<"$LAST_OUT" && ok "  ... says --v is ambiguous" || not_ok "  ... says --v is ambiguous" "$LAST_OUT"
expect_exit 64 "weft-data prepare --val-fraction=2" "$B/weft-data" prepare --val-fraction=2 -o x corpus.txt
grep -q -- "--val-fraction '2': expected a number in \[0, 1)" <<<"$LAST_OUT" && ok "  ... names the option and value" \
    || not_ok "  ... names the option and value" "$LAST_OUT"
expect_exit 64 "weft-data info --bogus ds" "$B/weft-data" info --bogus ds

# ---- weft-info: options and configuration overrides in any order ------------------
"$B/weft-info" --print-config --comm.timeout=45 >pc1 2>/dev/null
expect_grep "^timeout = 45" pc1 "weft-info --print-config --comm.timeout=45"
"$B/weft-info" --comm.timeout=45 --print-config --config /dev/null >pc2 2>/dev/null
check "weft-info --comm.timeout=45 --print-config --config FILE: the same" cmp pc1 pc2
expect_exit 64 "weft-info an-operand exits 64" "$B/weft-info" --no-check an-operand
grep -q "unexpected operand 'an-operand'" <<<"$LAST_OUT" && ok "  ... naming it" || not_ok "  ... naming it" "$LAST_OUT"
expect_exit 64 "weft-info --no-check=1" "$B/weft-info" --no-check=1

# ---- weft-bench: --op=X and --op X give the same rows -----------------------------------
rows() { python3 -c 'import json,sys; print(sorted((r["op"], r["size"], r["count"], r["type"], r["wrong"]) for r in map(json.loads, open(sys.argv[1]))))' "$1"; }
expect_exit 0 "weft-bench --op=allreduce --max=256 --iters=1 --warmup=0 --json=b1.json" weft_mpirun 2 "$B/weft-bench" \
    --comm.backend=shm --op=allreduce --max=256 --iters=1 --warmup=0 --no-mpi --json=b1.json
expect_exit 0 "weft-bench --op allreduce --max 256 (a config override between) --json b2.json" weft_mpirun 2 "$B/weft-bench" \
    --op allreduce --max 256 --comm.backend=shm --iters 1 --warmup 0 --no-mpi --json b2.json
[ -s b1.json ] && [ "$(rows b1.json)" = "$(rows b2.json)" ] && ok "  ... the same rows either way" \
    || not_ok "  ... the same rows either way" "$(rows b1.json) / $(rows b2.json)"
grep -q '"op":"allreduce"' b2.json && ! grep -q '"op":"allgather"' b2.json && ok "  ... and only allreduce" \
    || not_ok "  ... and only allreduce" "$(head -3 b2.json)"
expect_exit 64 "weft-bench --op bogus" "$B/weft-bench" --op bogus
grep -q -- "--op 'bogus': expected" <<<"$LAST_OUT" && ok "  ... names the option and value" || not_ok "  ... names the option and value" "$LAST_OUT"
expect_exit 64 "weft-bench --iters (no value)" "$B/weft-bench" --iters
grep -q "option '--iters' needs a value" <<<"$LAST_OUT" && ok "  ... says it needs a value" || not_ok "  ... says it needs a value" "$LAST_OUT"

# ---- a tiny run for the run-directory tools ----------------------------------------------
repeat_dataset "$T/rds" 0.1
run=$T/run
"$B/weft-train" --data.path="$T/rds" --model.n_layer=1 --model.n_head=2 --model.n_embd=16 --model.context=32 \
    --train.seq_len=32 --train.micro_batch=2 --train.global_batch=2 --train.log_interval=1 --train.eval_interval=0 \
    --train.eval_batches=1 --train.steps=2 --trace.steps=1:2 --run.dir="$run" >train.log 2>&1
ck=$run/checkpoints/step-00000002.h5
check "a 2-step run leaves metrics, a trace and a checkpoint" test -s "$run/metrics.jsonl" -a -s "$run/trace/rank-0.json" -a -s "$ck"

# weft-trace: -o OUT, --output=OUT, before or after RUN_DIR
check "weft-trace RUN_DIR -o t1.json" "$B/weft-trace" "$run" -o t1.json
check "weft-trace --output=t2.json RUN_DIR" "$B/weft-trace" --output=t2.json "$run"
check "weft-trace --output t3.json RUN_DIR" "$B/weft-trace" --output t3.json "$run"
check "  ... the same merged trace each way" bash -c "cmp t1.json t2.json && cmp t1.json t3.json"
expect_exit 64 "weft-trace RUN_DIR extra" "$B/weft-trace" "$run" extra
grep -q "unexpected operand 'extra'" <<<"$LAST_OUT" && ok "  ... naming it" || not_ok "  ... naming it" "$LAST_OUT"

# weft-report, weft-doctor, weft-plot: RUN_DIR with --help anywhere
check "weft-report RUN_DIR" "$B/weft-report" "$run"
check "weft-report -- RUN_DIR" "$B/weft-report" -- "$run"
expect_exit 0 "weft-report RUN_DIR --help" "$B/weft-report" "$run" --help
check "weft-doctor RUN_DIR" "$B/weft-doctor" "$run"
expect_exit 64 "weft-doctor RUN_DIR --bogus" "$B/weft-doctor" "$run" --bogus
grep -q "weft-doctor: unknown option '--bogus'" <<<"$LAST_OUT" && ok "  ... naming it" || not_ok "  ... naming it" "$LAST_OUT"
expect_exit 64 "weft-plot A B" "$B/weft-plot" "$run" "$run"
expect_exit 64 "weft-plot (no RUN_DIR)" "$B/weft-plot"
grep -q "weft-plot: expected one RUN_DIR" <<<"$LAST_OUT" && ok "  ... says what it expected" || not_ok "  ... says what it expected" "$LAST_OUT"

# The job's configuration in place of RUN_DIR: the run.dir weft-train used,
# from --config FILE (with sections of other programs in it) or --run.dir=DIR.
printf '[model]\nn_layer = 2\n[train]\nsteps = 2\n[run]\ndir = %s\n' "$run" >job.ini
"$B/weft-report" "$run" >r1 2>&1
"$B/weft-report" --config job.ini >r2 2>&1
cmp -s r1 r2 && ok "weft-report --config JOB.ini = weft-report RUN_DIR" || not_ok "weft-report --config JOB.ini" "$(diff r1 r2)"
check "weft-doctor --config=JOB.ini" "$B/weft-doctor" --config=job.ini
check "weft-report --run.dir=RUN_DIR" "$B/weft-report" --run.dir="$run"
check "weft-trace --config JOB.ini -o t4.json (the run's trace)" "$B/weft-trace" --config job.ini -o t4.json
cmp -s t1.json t4.json && ok "  ... the same trace as weft-trace RUN_DIR" || not_ok "  ... the same trace as weft-trace RUN_DIR"
expect_exit 64 "weft-report --config JOB.ini A B" "$B/weft-report" --config job.ini "$run" "$run"
printf '[run]\ndri = x\n' >typo.ini
expect_exit 64 "weft-report --config with a typo in [run]" "$B/weft-report" --config typo.ini
grep -q "run.dir" <<<"$LAST_OUT" && ok "  ... suggesting run.dir" || not_ok "  ... suggesting run.dir" "$LAST_OUT"

# weft-ckpt: each command's options before or after its operands
"$B/weft-ckpt" info "$ck" --config >i1 2>&1
"$B/weft-ckpt" info --config "$ck" >i2 2>&1
grep -q -- '--- config ---' i1 && cmp -s i1 i2 && ok "weft-ckpt info FILE --config = info --config FILE" \
    || not_ok "weft-ckpt info FILE --config = info --config FILE" "$(diff i1 i2 | head)"
check "weft-ckpt diff A B --tol=0" "$B/weft-ckpt" diff "$ck" "$ck" --tol=0
check "weft-ckpt diff --tol 0 A B" "$B/weft-ckpt" diff --tol 0 "$ck" "$ck"
expect_exit 64 "weft-ckpt diff A B --tol abc" "$B/weft-ckpt" diff "$ck" "$ck" --tol abc
grep -q -- "--tol 'abc': expected a number" <<<"$LAST_OUT" && ok "  ... names the option and value" || not_ok "  ... names the option and value" "$LAST_OUT"
check "weft-ckpt export FILE -o e1.st --format=safetensors" "$B/weft-ckpt" export "$ck" -o e1.st --format=safetensors
check "weft-ckpt export --format safetensors --output=e2.st FILE" "$B/weft-ckpt" export --format safetensors --output=e2.st "$ck"
check "  ... the same file either way" cmp e1.st e2.st
check "weft-ckpt ls RUN_DIR" "$B/weft-ckpt" ls "$run"
expect_exit 0 "weft-ckpt verify FILE --help" "$B/weft-ckpt" verify "$ck" --help
expect_exit 64 "weft-ckpt verify --tol 1 FILE (diff's option)" "$B/weft-ckpt" verify --tol 1 "$ck"
grep -q "option '--tol' does not apply to 'verify'" <<<"$LAST_OUT" && ok "  ... says so" || not_ok "  ... says so" "$LAST_OUT"
expect_exit 64 "weft-ckpt diff A (one file)" "$B/weft-ckpt" diff "$ck"
expect_exit 64 "weft-ckpt export FILE (no -o)" "$B/weft-ckpt" export "$ck" --format safetensors
expect_exit 64 "weft-ckpt frobnicate" "$B/weft-ckpt" frobnicate
grep -q "unknown command 'frobnicate'" <<<"$LAST_OUT" && ok "  ... naming it" || not_ok "  ... naming it" "$LAST_OUT"
expect_exit 64 "weft-ckpt release (no directory)" "$B/weft-ckpt" release
expect_exit 64 "weft-ckpt release DIR --tol 1 (diff's option)" "$B/weft-ckpt" release "$run" --tol 1

echo "1..$TAP_N"
