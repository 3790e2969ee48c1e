#!/bin/bash
# test_noalloc.sh -- the library's steady-state training step
# (weft_trainer_step) allocates nothing on the training thread (tests/mpi/noalloc_step.c counts malloc/calloc/realloc),
# with the shm backend weft picks on one node, with ZeRO-0, 1, 2 and 3 (its
# per-layer parameter gathers: in place, nothing allocated), on 1
# and 2 ranks, and on 4 ranks with tensor and pipeline parallelism (both
# schedules: stage-to-stage send/recv, TP allreduces, the tied embedding),
# for GPT-2 and for Llama (with key/value heads replicated over TP: their
# gradients' allreduce), and with LoRA adapters (model/lora.h) on every
# linear of both families under TP (their dh and h allreduces) and PP,
# with train.recompute = block (the recomputed blocks' TP allreduces),
# and in bf16 (train.precision: the operands' rounding scratch is grown
# during warm-up, the weights' bf16 copies refreshed in place each step).
# (The MPI backend is left out: Open MPI's non-blocking collectives
# allocate their schedules inside the library on every call.)
. "$(dirname "$0")/../lib.sh"
if [ -n "${SAN:-}" ]; then
    skip "no allocation in the steady-state step" "sanitizers replace malloc themselves (SAN=$SAN)"
    exit 0
fi
ds="$TMPDIR_TEST/ds"
repeat_dataset "$ds" 0
prog="$WEFT_ROOT/$BUILD/tests/mpi/noalloc_step"
# A GPT-2 of L 2, NH 2, C 32; T 32, micro-batch 2, global batch 8; 16 KiB
# buckets (several per step).
small=(--data.path="$ds" --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32 --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --optim.warmup=2
       --parallel.bucket_mb=0.015625 --run.dir="$TMPDIR_TEST/run")
for np in 1 2; do
    for zero in 0 1 2 3; do
        out="$TMPDIR_TEST/np$np-z$zero.log"
        weft_mpirun "$np" "$prog" "${small[@]}" --comm.backend=shm --parallel.zero=$zero >"$out" 2>&1
        if grep -q "^ok 1 - no allocation" "$out"; then
            ok "np=$np ZeRO-$zero: $(grep '^ok 1' "$out" | sed 's/^ok 1 - //')"
        else
            not_ok "np=$np ZeRO-$zero: no allocation in the steady-state step" "$(grep -E '^# rank|not ok|ERROR' "$out" | head -5)"
        fi
    done
done
for layout in "2 --parallel.tp=2" "2 --parallel.pp=2 --parallel.schedule=1f1b" \
              "4 --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b --parallel.zero=0" \
              "4 --parallel.pp=2 --parallel.schedule=gpipe --parallel.zero=1" \
              "4 --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b --parallel.zero=2" \
              "4 --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b --parallel.zero=3" \
              "4 --model.family=llama --parallel.dp=2 --parallel.pp=2 --parallel.zero=3 --parallel.zero_prefetch=2" \
              "2 --model.family=llama --parallel.zero=1" \
              "4 --model.family=llama --model.n_kv_head=1 --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b" \
              "4 --lora.rank=4 --lora.targets=qkv,proj,fc,fcproj --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b" \
              "2 --model.family=llama --lora.rank=4 --lora.targets=q,k,v,o,gate,up,down --parallel.tp=2 --parallel.zero=1" \
              "4 --train.recompute=block --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b" \
              "2 --train.recompute=block --model.family=llama --lora.rank=4 --parallel.tp=2 --parallel.zero=1" \
              "2 --train.precision=bf16 --parallel.zero=1" \
              "2 --train.precision=bf16 --model.family=llama --parallel.tp=2" \
              "4 --train.precision=bf16 --lora.rank=4 --lora.targets=qkv,proj,fc,fcproj --parallel.tp=2 --parallel.pp=2 --parallel.schedule=1f1b"; do
    case "$layout" in *bf16*)
        if ! grep -Eq 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
            skip "np=${layout%% *} $layout" "bf16 needs avx512_bf16 (this CPU has none)"; continue
        fi ;;
    esac
    np=${layout%% *}; layout=${layout#* }
    out="$TMPDIR_TEST/np$np.log"
    # shellcheck disable=SC2086
    weft_mpirun "$np" "$prog" "${small[@]}" --comm.backend=shm $layout >"$out" 2>&1
    if grep -q "^ok 1 - no allocation" "$out"; then
        ok "np=$np: $(grep '^ok 1' "$out" | sed 's/^ok 1 - //')"
    else
        not_ok "np=$np $layout: no allocation in the steady-state step" "$(grep -E '^# rank|not ok|ERROR' "$out" | head -5)"
    fi
done
