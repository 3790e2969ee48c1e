#!/usr/bin/env python3
"""pattern_check.py -- read a checkpoint written by tests/mpi/ckpt_pattern.c
with h5py (no weft code) and compare every tensor, both AdamW moments and
rng/state with the values the program put there, computed here from its
formula: element (r, c) of tensor number t holds t * 1e4 + r * C + c, m the
negative, v twice it; rng/state[k] = 42 + k.

    pattern_check.py FILE RANKS    -> exit 0, or 1 naming the first mismatch
"""
import sys

import h5py
import numpy as np

TENSORS = [("a.weight", (6, 10)), ("b.weight", (8, 6)), ("c.bias", (7,)), ("d.weight", (4, 12)),
           ("e.weight", (1024, 2304)), ("f.bias", (12,)), ("g.weight", (256, 2048))]


def main():
    path, ranks = sys.argv[1], int(sys.argv[2])
    bad = []
    with h5py.File(path, "r") as f:
        for t, (name, shape) in enumerate(TENSORS):
            want = (t * 10000 + np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape)
            for group, scale in (("params", 1), ("optim/m", -1), ("optim/v", 2)):
                have = f[f"{group}/{name}"][...]
                if have.dtype != np.float32 or have.shape != shape:
                    bad.append(f"{group}/{name}: {have.dtype} {have.shape}, wanted float32 {shape}")
                    continue
                diff = np.nonzero(have.astype(np.float64) != scale * want)
                if diff[0].size:
                    at = tuple(int(d[0]) for d in diff)
                    bad.append(f"{group}/{name}: {diff[0].size} elements differ, first at {at}: "
                               f"{have[at]} != {scale * want[at]}")
        rng = f["rng/state"][...]
        if list(rng) != [42 + k for k in range(ranks)]:
            bad.append(f"rng/state: {list(rng)}")
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
