#!/bin/bash
# demo.sh -- what `make demo` runs: writes the demo corpus (no download),
# makes a dataset of it with weft-data, and trains a small GPT-2 on 2 ranks
# with mpirun for about two minutes: the loss falls, the validation loss is
# reported, and the model writes a few lines at the end; then weft-plot
# charts the run (paths printed) and weft-report summarises it.
# DEMO=llama (make demo-llama) trains examples/configs/llama-demo.ini, a
# Llama of the same size, instead.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
demo=$BUILD/demo
mkdir -p "$demo"

echo "== the corpus: generated text with a structure a small model can learn"
examples/corpus/make-corpus.sh "$demo/corpus.txt"
head -4 "$demo/corpus.txt" | sed 's/^/   /'

echo "== weft-data: tokenize it into a dataset (train + 5% validation)"
"$BUILD/bin/weft-data" prepare -o "$demo/dataset" --force --val-fraction 0.05 "$demo/corpus.txt"

if [ "${DEMO:-gpt2}" = llama ]; then
    config=examples/configs/llama-demo.ini run=$demo/run-llama what="Llama (4 layers, 128 channels, 2 KV heads)"
else
    config=examples/configs/demo.ini run=$demo/run what="GPT-2 (4 layers, 128 channels)"
fi
echo "== weft-train: $what on 2 data-parallel ranks"
# A demo run before this one is moved to $run/previous/ (run.overwrite).
mpirun -np 2 "$BUILD/bin/weft-train" --config "$config" --run.overwrite=true \
    --data.path="$demo/dataset" --run.dir="$run" --sample 400 --temperature 0.7 "$@"
echo "metrics of every logged step: $run/metrics.jsonl"

echo "== weft-plot: charts of the run"
if "$BUILD/bin/weft-plot" "$run"; then :; else
    rc=$?
    [ $rc -eq 69 ] || exit $rc
    echo "(no charts: gnuplot is missing; make deps installs gnuplot-nox)"
fi
echo "== weft-report: the run on one page"
"$BUILD/bin/weft-report" "$run"
