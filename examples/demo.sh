#!/bin/bash
# demo.sh -- what `make demo` runs. The trainer (weft-train) has not landed
# yet; until it does, the demo shows the foundation working on 2 ranks: the
# job as weft sees it, a collectives check, and a collective timing out
# cleanly instead of hanging.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
run=${WEFT_DEMO_DIR:-$BUILD/demo}
mkdir -p "$run"

echo "== weft-info on 2 ranks: launch, placement, collectives check"
mpirun -np 2 "$BUILD/bin/weft-info" --run.dir="$run"

if [ -x "$BUILD/bin/weft-data" ]; then
    echo
    echo "== weft-data: a small dataset from the project's own docs and sources"
    rm -rf "$run/dataset"
    "$BUILD/bin/weft-data" prepare --out "$run/dataset" README.md docs runtime collectives
    "$BUILD/bin/weft-data" info "$run/dataset"
fi

echo
echo "== a rank that never joins an allreduce: the job ends within comm.timeout, naming it"
set +e
timeout 120 mpirun -np 2 "$BUILD/tests/mpi/abort_job" timeout --comm.timeout=2 --run.dir="$run" 2>&1 |
    grep -E 'aborting|flight records'
set -e
echo
echo "demo done: flight records in $run/. Training (weft-train) arrives with the trainer issue."
