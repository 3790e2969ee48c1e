#!/bin/bash
# test_hier.sh -- the hier backend on one machine: ranks grouped into
# pretend nodes of WEFT_HIER_RANKS_PER_NODE consecutive ranks (shm inside,
# tcp between leaders), so every multi-node path runs: even and uneven
# nodes (3 ranks in nodes of 2), one rank per node, split groups. The
# conformance suite and the communicator contract on 1-4 ranks. Real
# separate hosts (network namespaces) are in tests/net/test_multihost.sh.
. "$(dirname "$0")/../lib.sh"
for np in 1 2 3 4; do
    WEFT_HIER_RANKS_PER_NODE=2 mpi_tap hier "$np" conformance
    WEFT_HIER_RANKS_PER_NODE=2 mpi_tap hier "$np" comm_misc
done
WEFT_HIER_RANKS_PER_NODE=1 mpi_tap hier 3 conformance
WEFT_HIER_RANKS_PER_NODE=2 mpi_tap hier 4 conformance --comm.hier_net=mpi

# weft-bench on hier (two pretend nodes of 2): every row right.
json=$TMPDIR_TEST/bench.json
WEFT_HIER_RANKS_PER_NODE=2 expect_exit 0 "weft-bench --comm.backend=hier sweeps every operation" \
    weft_mpirun 4 "$WEFT_BIN/weft-bench" --comm.backend=hier --max=256K --step=16 --iters=2 --warmup=1 --json="$json"
check "weft-bench hier rows: backend hier, no wrong element" python3 - "$json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) >= 5, rows
for r in rows:
    assert r["backend"] == "hier" and r["ranks"] == 4 and r["wrong"] == 0 and r["mpi_wrong"] == 0, r
PY
