#!/bin/bash
# test_llama_ref.sh -- weft's Llama forward against an independent numpy
# float64 forward written from Hugging Face's LlamaForCausalLM
# (tests/model/llama_ref.py), on random weights and tokens dumped by
# tests/model/llama_dump.c: the logits within 1e-6 of the largest logit and
# the loss within 1e-6 relative, for grouped-query (NH 4, NKV 2), multi-query
# (NKV 1) and multi-head (NKV = NH) attention, tied and untied heads,
# rope_theta 10000 and 500000, RMSNorm eps 1e-5 and 1e-6, T = 13 and 29 (not
# powers of two) and T = the whole context, head sizes 8, 12 and 16, a run
# shorter than the model was built for, the training initialisation and
# wider weights (llama_dump --wide). The parameters must carry Hugging
# Face's names at their shapes. weft's float32 forward lands at 2-5e-7 here.
#
# The comparison can fail: references broken on purpose (interleaved RoPE
# pairs, no causal mask, query head h on kv head h % NKV, ten times the
# RMSNorm eps, the embedding as the head of an untied model) must each miss
# the tolerance.
. "$(dirname "$0")/../lib.sh"
dump="$WEFT_ROOT/$BUILD/tests/model/llama_dump"
ref="$WEFT_ROOT/tests/model/llama_ref.py"

numpy_python
if [ ! -x "$dump" ]; then
    not_ok "$dump exists" "build it: make BUILD=$BUILD tests (or make $BUILD/tests/model/llama_dump)"
    exit 1
fi

# case_ NAME V L NH NKV C F CONTEXT THETA EPS TIE B T SEED [llama_dump options]
case_() {
    local name=$1 out="$TMPDIR_TEST/$1.bin" res; shift
    local what="$name (V $1 L $2 NH $3 NKV $4 C $5 F $6 theta $8 eps $9 tie ${10} B ${11} T ${12}${14:+ ${*:14}})"
    if ! res=$("$dump" "${@:1:13}" "$out" "${@:14}" 2>&1); then
        not_ok "$what: weft's forward" "$res"
        return
    fi
    if res=$("$py" "$ref" "$out" 2>&1); then
        ok "$what == f64 reference: ${res%% (*}"
    else
        not_ok "$what == f64 reference" "$res"
    fi
}
case_ gqa      64 2 4 2 32 80 16 10000  1e-5 0 2 13 1 --wide
case_ mqa      64 2 4 1 32 80 16 10000  1e-5 1 2 13 2 --wide
case_ mha      64 2 4 4 32 80 16 500000 1e-6 0 2 13 3 --wide
case_ gqa-tied 64 2 4 2 32 80 32 500000 1e-6 1 2 13 4 --wide --alloc 3 24
case_ hs16-mqa 96 3 2 1 32 56 32 500000 1e-5 0 1 29 5 --wide
case_ hs12-full 97 2 4 2 48 72 16 10000 1e-6 0 2 16 8 --wide
case_ init-gqa 128 2 8 2 64 96 16 10000 1e-5 1 2 13 6
case_ init-mha 128 2 4 4 32 64 16 500000 1e-6 0 2 13 7

# A broken reference must miss: each --break against a dump it affects.
broken() { # WHAT DUMP
    local res
    if res=$("$py" "$ref" --break "$1" "$TMPDIR_TEST/$2.bin" 2>&1); then
        not_ok "the reference with --break $1 fails the comparison ($2)" "$res"
    else
        ok "the reference with --break $1 fails the comparison ($2: ${res%% (*})"
    fi
}
broken rope gqa
broken rope init-gqa
broken mask gqa
broken kvmap gqa
broken eps init-gqa
broken untie mha
