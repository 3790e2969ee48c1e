#!/bin/bash
# test_recompute.sh -- train.recompute = block: the same gradients, losses,
# norms and parameters as none, bit for bit (tests/mpi/recompute_grads.c),
# on 1 rank and on tp2 x pp2 (1F1B and GPipe), for GPT-2, Llama (key/value
# heads replicated over TP) and LoRA on every linear, with gradient
# accumulation (4 micro-batches a step).
. "$(dirname "$0")/../lib.sh"
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0
small=(--data.path="$ds" --model.n_layer=4 --model.n_head=4 --model.n_embd=32 --model.context=32
       --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --optim.warmup=2
       --run.dir="$TMPDIR_TEST/run")
while read -r np layout; do
    # shellcheck disable=SC2086
    mpi_tap "" "$np" recompute_grads "${small[@]}" $layout </dev/null
done <<'LAYOUTS'
1 --model.family=gpt2
1 --model.family=llama
4 --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b
4 --parallel.tp=2 --parallel.pp=2 --parallel.schedule=gpipe --parallel.zero=1
4 --model.family=llama --model.n_kv_head=1 --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b
2 --lora.rank=4 --lora.targets=qkv,proj,fc,fcproj --lora.dropout=0.1 --parallel.tp=2
2 --model.family=llama --lora.rank=4 --lora.targets=q,k,v,o,gate,up,down --parallel.pp=2
LAYOUTS
