#!/bin/bash
# test_sign.sh -- Ed25519 signatures of checkpoints (docs/checkpoint-format.md,
# "Provenance, identity and signatures"):
#   - weft-ckpt keygen writes KEY (0600) and KEY.pub (0644), never over a key;
#   - weft-train --checkpoint.signing_key signs at commit; weft-ckpt verify
#     --trusted accepts it; sign -> verify of an unsigned file too;
#   - refused, exit 65, each with its own message: unsigned; signed by
#     another key; one byte of a tensor flipped; one byte of the checksum
#     table flipped; one byte of the signature flipped;
#   - with checkpoint.trusted_keys, --resume and --init-from refuse the same
#     files (exit 65, naming why) and accept a good one;
#   - weft-generate --trusted and weft-eval with checkpoint.trusted_keys
#     accept the signed file and refuse an unsigned or tampered one;
#   - a secret key readable by others is refused.
# Bytes are changed by tests/ckpt/flip.py, with h5py (see there: a byte flipped in
# place in an attribute is caught by HDF5's metadata checksums first).
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
numpy_python
flip="$WEFT_ROOT/tests/ckpt/flip.py"
cd "$TMPDIR_TEST" || exit 1
repeat_dataset ds
tiny=(--data.path=ds --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.eval_interval=0
      --train.steps=2 --checkpoint.every=2)

# --- keys ---------------------------------------------------------------------
check "keygen -o k1" "$ck" keygen -o k1
check "keygen -o k2" "$ck" keygen -o k2
check "the secret key is mode 0600, the public one 0644" \
    test "$(stat -c %a k1)" = 600 -a "$(stat -c %a k1.pub)" = 644
expect_exit 64 "keygen never overwrites a key (exit 64)" "$ck" keygen -o k1

# --- a signed run ---------------------------------------------------------------
check "weft-train with checkpoint.signing_key (2 ranks)" \
    weft_mpirun 2 "$train" "${tiny[@]}" --run.dir=signed --checkpoint.signing_key=k1
good=signed/checkpoints/step-00000002.h5
expect_exit 0 "verify --trusted k1.pub: the job's signature holds" "$ck" verify "$good" --trusted k1.pub
check "... and says so" grep -q "signature by trusted key $(cut -c21-36 k1.pub) holds" <<<"$LAST_OUT"
expect_exit 0 "verify --trusted k2.pub,k1.pub: one trusted key is enough" "$ck" verify "$good" --trusted k2.pub,k1.pub

# Each case: a copy of the good file, broken one way; verify's exit and message.
refused() { # NAME PATTERN FILE
    expect_exit 65 "$1: verify --trusted refuses it (exit 65)" "$ck" verify "$3" --trusted k1.pub
    if grep -Eq -- "$2" <<<"$LAST_OUT"; then ok "$1: the message says so"; else not_ok "$1: the message says so" "$LAST_OUT"; fi
}
check "weft-train without a key (unsigned)" weft_mpirun 2 "$train" "${tiny[@]}" --run.dir=plain
unsigned=plain/checkpoints/step-00000002.h5
refused "unsigned" "is not signed" "$unsigned"
cp "$unsigned" other.h5
check "weft-ckpt sign --key k2" "$ck" sign other.h5 --key k2
refused "signed by another key" "signed by key $(cut -c21-36 k2.pub), which is not one of the trusted keys" other.h5
expect_exit 0 "sign -> verify: the signature by k2 holds with --trusted k2.pub" "$ck" verify other.h5 --trusted k2.pub

cp "$good" tensor.h5 && "$py" "$flip" tensor.h5 tensor params/wte
refused "one byte of a tensor flipped" "tensor 'params/wte' fails its checksum" tensor.h5
cp "$good" table.h5 && "$py" "$flip" table.h5 table params/wte
refused "one byte of the checksum table flipped" "has been modified since key .* signed it" table.h5
cp "$good" sig.h5 && "$py" "$flip" sig.h5 signature
refused "one byte of the signature flipped" "has an invalid signature" sig.h5
cp "$good" raw.h5 && "$py" "$flip" raw.h5 raw-table params/wte
expect_exit 65 "one byte of the checksum table flipped in place (HDF5's own metadata checksum): refused (exit 65)" \
    "$ck" verify raw.h5 --trusted k1.pub
check "the four messages differ" test "$(for f in "$unsigned" other.h5 tensor.h5 table.h5 sig.h5; do
    "$ck" verify "$f" --trusted k1.pub 2>&1 | tail -1 | sed "s|$f||"; done | sort -u | wc -l)" -eq 5

# --- the trainer with checkpoint.trusted_keys ----------------------------------------
trust=(--checkpoint.trusted_keys=k1.pub)
for c in unsigned:"is not signed" other:"not one of the trusted keys" tensor:"fails its checksum" \
         table:"modified since" sig:"invalid signature"; do
    name=${c%%:*} why=${c#*:} file=$name.h5
    [ "$name" = unsigned ] && file=$unsigned
    expect_exit 65 "--init-from a checkpoint $name: refused (exit 65)" \
        weft_mpirun 2 "$train" "${tiny[@]}" --run.dir="init-$name" --init-from "$file" "${trust[@]}"
    if grep -q -- "$why" <<<"$LAST_OUT"; then ok "... naming why ($why)"; else not_ok "... naming why ($why)" "$LAST_OUT"; fi
done
rm -rf resume && cp -r signed resume && cp table.h5 resume/checkpoints/step-00000002.h5
expect_exit 65 "--resume from a tampered checkpoint: refused (exit 65)" \
    weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=4 --run.dir=resume --resume "${trust[@]}"
check "... naming it" grep -q "modified since" <<<"$LAST_OUT"
rm -rf resume && cp -r signed resume
check "--resume from the signed checkpoint with trusted_keys: accepted" \
    weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=4 --run.dir=resume --resume "${trust[@]}" --checkpoint.signing_key=k1
expect_exit 0 "the resumed run's checkpoint is signed too" "$ck" verify resume --trusted k1.pub
check "--init-from a signed checkpoint with trusted_keys: accepted" \
    weft_mpirun 2 "$train" "${tiny[@]}" --run.dir=init-good --init-from "$good" "${trust[@]}"

# --- weft-generate --trusted and weft-eval with trusted_keys -----------------------------
gen=("$WEFT_BIN/weft-generate" --prompt-ids 1,2 --max-new-tokens 2 --temperature 0)
expect_exit 0 "weft-generate --trusted k1.pub: a signed checkpoint loads" "${gen[@]}" --init-from "$good" --trusted k1.pub
check "... saying whose signature holds" grep -q "signature by trusted key $(cut -c21-36 k1.pub) holds" <<<"$LAST_OUT"
expect_exit 65 "weft-generate --trusted k1.pub: an unsigned checkpoint is refused (exit 65)" \
    "${gen[@]}" --init-from "$unsigned" --trusted k1.pub
check "... naming why" grep -q "is not signed" <<<"$LAST_OUT"
expect_exit 65 "weft-generate --trusted k1.pub: a tampered checksum table is refused (exit 65)" \
    "${gen[@]}" --init-from table.h5 --trusted k1.pub
expect_exit 0 "weft-generate without --trusted loads the unsigned one" "${gen[@]}" --init-from "$unsigned"
repeat_dataset dsval 0.1
evl=("$WEFT_BIN/weft-eval" --data.path=dsval --train.global_batch=8 --train.micro_batch=2 --batches 1)
expect_exit 0 "weft-eval with checkpoint.trusted_keys: a signed checkpoint loads" "${evl[@]}" --init-from "$good" "${trust[@]}"
expect_exit 65 "weft-eval with checkpoint.trusted_keys: an unsigned checkpoint is refused (exit 65)" \
    "${evl[@]}" --init-from "$unsigned" "${trust[@]}"
check "... naming why" grep -q "is not signed" <<<"$LAST_OUT"

# --- keys that are not usable ---------------------------------------------------------
cp k1 openkey && chmod 644 openkey
expect_exit 64 "a secret key readable by others is refused (exit 64)" \
    weft_mpirun 2 "$train" "${tiny[@]}" --run.dir=open --checkpoint.signing_key=openkey
check "... naming its mode" grep -q "has mode 0644" <<<"$LAST_OUT"
expect_exit 65 "a public key file that is not one (exit 65)" "$ck" verify "$good" --trusted ds/manifest
expect_exit 66 "a missing trusted key file (exit 66)" "$ck" verify "$good" --trusted nokey.pub
