#!/bin/bash
# test_provenance.sh -- every checkpoint records its provenance, and weft-ckpt
# info follows its parents (docs/checkpoint-format.md, "Provenance, identity
# and signatures"):
#   - a run's checkpoint holds weft_version, source_commit (the build's git
#     describe), config_hash, the dataset's manifest hash, dataset hash and
#     tokenizer, job, host, user, time; no parent;
#   - --resume and --init-from name what they loaded as the parent, by its
#     identity (the one weft-ckpt info of that file prints), and the chain
#     runs back to the first checkpoint; an import's parent is its Hugging
#     Face files;
#   - a parent no longer on disk, or replaced by another file, ends the chain
#     with that said; a checkpoint without provenance (older weft) too;
#   - signing a checkpoint does not change its identity.
. "$(dirname "$0")/../lib.sh"
train="$WEFT_BIN/weft-train" ck="$WEFT_BIN/weft-ckpt"
numpy_python
cd "$TMPDIR_TEST" || exit 1
repeat_dataset ds
tiny=(--data.path=ds --model.n_layer=2 --model.n_head=2 --model.n_embd=32 --model.context=32
      --train.seq_len=32 --train.micro_batch=2 --train.global_batch=8 --train.eval_interval=0
      --checkpoint.every=2 --checkpoint.keep_last=10)
field() { sed -n "s/^$1 *//p" "$2" | head -1; }         # field NAME INFO_FILE
identity() { "$ck" info "$1" | sed -n 's/^identity *//p'; }

check "a run of 4 steps (2 ranks)" weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=4 --run.dir=r1
s4=r1/checkpoints/step-00000004.h5
"$ck" info "$s4" >info4 2>&1
commit=$(sed -n 's/^#define WEFT_SOURCE_COMMIT "\(.*\)"$/\1/p' "$WEFT_ROOT/$BUILD/gen/source_commit.h")
expect_grep "^provenance +weft 0\.1\.0, source $commit\$" info4 "source_commit is the build's git describe ($commit)"
check "... which is not empty" test -n "$commit"
expect_grep "^  written +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z by $(id -un)@$(hostname), job " info4 "time, user and host"
expect_grep "job mpirun local-[0-9a-f]+ ranks=2\$" info4 "the job: launcher, job id, ranks"
expect_grep "^  config_hash +[0-9a-f]{16}\$" info4 "config_hash"
dh=$(field dataset_hash info4)
th=$(sed -n 's/^tokenizer_hash //p' ds/manifest)
tok="tokenizer_hash=$th" && [ -z "$th" ] && tok="tokenizer_id=1"
expect_grep "^  dataset +$TMPDIR_TEST/ds manifest=[0-9a-f]{16} dataset_hash=$dh $tok\$" info4 \
    "the dataset: its path, manifest hash, dataset hash (= the root attribute) and tokenizer"
expect_grep "^identity +[0-9a-f]{16}\$" info4 "the identity"
expect_grep "^  \(the first: no parent\)\$" info4 "a fresh run's checkpoint has no parent"
id4=$(field identity info4)

check "--resume to step 6" weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=6 --run.dir=r1 --resume
s6=r1/checkpoints/step-00000006.h5
"$ck" info "$s6" >info6 2>&1
expect_grep "^  <- resume +$TMPDIR_TEST/$s4 \(step 4, identity $id4\)\$" info6 \
    "the resumed run's parent: the checkpoint resumed from, by its identity"
check "the same dataset line" test "$(grep -E '^  dataset' info4)" = "$(grep -E '^  dataset' info6)"
check "another config_hash (train.steps changed)" test "$(field '  config_hash' info4)" != "$(field '  config_hash' info6)"
id6=$(field identity info6)

check "--init-from r1 (a new run)" weft_mpirun 2 "$train" "${tiny[@]}" --train.steps=2 --run.dir=r2 --init-from r1
"$ck" info r2 >info2 2>&1
expect_grep "^  <- init-from +$TMPDIR_TEST/$s6 \(step 6, identity $id6\)\$" info2 "--init-from: the parent"
expect_grep "^  <- resume +$TMPDIR_TEST/$s4 \(step 4, identity $id4\)\$" info2 "... and its parent"
expect_grep "^  \(the first: no parent\)\$" info2 "... back to the first"

# An import's parent is the Hugging Face files; a run from it chains to them.
"$py" "$WEFT_ROOT/tests/ckpt/hf_model.py" write hf --family gpt2 >/dev/null
check "weft-ckpt import" "$ck" import hf -o imported.h5
"$ck" info imported.h5 >infoi 2>&1
expect_grep "^  <- import +$TMPDIR_TEST/hf \(Hugging Face files, hash [0-9a-f]{16}\): the first\$" infoi \
    "an import's parent: its Hugging Face files"
expect_grep "^  written .*job none \(weft-ckpt import\)\$" infoi "an import's job"
check "--init-from the import" weft_mpirun 2 "$train" "${tiny[@]}" --model.n_head=4 --train.steps=2 --run.dir=r3 \
    --init-from imported.h5
"$ck" info r3 >info3 2>&1
expect_grep "^  <- init-from +$TMPDIR_TEST/imported.h5 \(step 0, identity $(identity imported.h5)\)\$" info3 \
    "a run from an import names it"
expect_grep "^  <- import +$TMPDIR_TEST/hf " info3 "... and the chain reaches the Hugging Face files"

# Signing adds a signature, not a new identity.
cp "$s6" signed.h5
"$ck" keygen -o key >/dev/null && "$ck" sign signed.h5 --key key >/dev/null
check "signing keeps the identity" test "$(identity signed.h5)" = "$id6"

# Parents gone or replaced end the chain, saying so.
mv "$s4" s4.h5
"$ck" info r2 >info2b 2>&1
expect_grep "^  <- resume +$TMPDIR_TEST/$s4: missing \(identity $id4; no longer on disk\): the chain ends here\$" \
    info2b "a parent no longer on disk: said, the chain ends"
cp r3/checkpoints/step-00000002.h5 "$s4"
"$ck" info r2 >info2c 2>&1
expect_grep "^  <- resume +$TMPDIR_TEST/$s4: on disk, but its identity is [0-9a-f]{16}, not the recorded $id4 \(replaced since\)" \
    info2c "a parent replaced by another file: said, the chain ends"
mv s4.h5 "$s4"
"$py" -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); del f.attrs['provenance']" "$s4"
"$ck" info "$s4" >info4b 2>&1
expect_grep "^provenance +none \(written before weft recorded provenance\)\$" info4b "a checkpoint without provenance"
"$ck" info r2 >info2d 2>&1
expect_grep "^  <- resume +$TMPDIR_TEST/$s4: on disk, but its identity" info2d \
    "... is not its parent any more (its seal changed)"
"$py" -c "
import h5py, numpy, sys
f = h5py.File(sys.argv[1], 'r+')
f.attrs.create('provenance', numpy.bytes_(b'weft_version 0.1.0\nno-value-line\n'))" "$s4"
expect_exit 0 "a malformed provenance: weft-ckpt info still works" "$ck" info "$s4"
check "... and says where" grep -q "^provenance *malformed: .*provenance line 2: expected 'key value'" <<<"$LAST_OUT"

# A manifest's tokenizer_hash line is what the dataset line records (instead of the id).
cp -r ds dst && sed -i -e '/^tokenizer_hash /d' -e 's/^tokenizer_id 1$/tokenizer_id 1\ntokenizer_hash 0123456789abcdef/' dst/manifest
check "a run on a dataset whose manifest has tokenizer_hash" \
    weft_mpirun 2 "$train" "${tiny[@]}" --data.path=dst --train.steps=2 --run.dir=rt
"$ck" info rt >infot 2>&1
expect_grep "^  dataset +$TMPDIR_TEST/dst manifest=[0-9a-f]{16} dataset_hash=$dh tokenizer_hash=0123456789abcdef\$" infot \
    "the dataset line names the tokenizer by its hash"
cp -r ds dsi && sed -i '/^tokenizer_hash /d' dsi/manifest
check "a run on a dataset whose manifest has no tokenizer_hash (older weft-data)" \
    weft_mpirun 2 "$train" "${tiny[@]}" --data.path=dsi --train.steps=2 --run.dir=ri
"$ck" info ri >infoi2 2>&1
expect_grep "^  dataset +$TMPDIR_TEST/dsi manifest=[0-9a-f]{16} dataset_hash=$dh tokenizer_id=1\$" infoi2 \
    "... names the tokenizer by its id"
