#!/bin/bash
# test_mlp.sh -- the custom-model example (examples/mlp) trains on 2 ranks
# with weft's runtime, collectives, data-parallel helper and optimizer, and
# beats the best linear fit by a wide margin.
. "$(dirname "$0")/../lib.sh"
weft_mpirun 2 "$WEFT_ROOT/$BUILD/examples/mlp" >"$TMPDIR_TEST/out" 2>&1
check "examples/mlp on 2 ranks: final loss below 0.1 (linear fit: 0.276)" python3 - "$TMPDIR_TEST/out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"final loss ([0-9.]+) on 2 ranks", text)
assert m and float(m.group(1)) < 0.1, text[-2000:]
PY
