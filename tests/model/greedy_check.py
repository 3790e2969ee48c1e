#!/usr/bin/env python3
"""greedy_check.py DUMP [--tol X] -- weft-generate's greedy tokens (the
dump's tokens after prompt_len, written by tests/model/ckpt_dump.c from a
checkpoint) against
  1. weft's full forward over the same tokens (the dump's logits: the model
     interface's forward, not the key/value cache weft-generate used), and
  2. for Llama, the independent numpy float64 forward of llama_ref.py, which
     shares no code with weft.
Teacher-forced: at every position from the prompt's last one on, the token
that follows must be the most likely one, or within TOL of it (relative to
the largest |logit|: a near tie float32 may break either way). Prints how
many were the argmax exactly and the smallest margin to the runner-up;
exits 1 on a token that is not the greedy choice.
"""
import argparse
import sys

import numpy as np

import llama_ref


def check(name, logits, tokens, start, tol):
    """Each tokens[i + 1] for i >= start against the argmax of logits[i]."""
    scale = np.abs(logits[start:]).max()
    exact, worst, margins = 0, 0.0, []
    for i in range(start, len(tokens) - 1):
        row, tok = logits[i], tokens[i + 1]
        best = row.max()
        short = (best - row[tok]) / scale  # 0 when tok is the argmax
        if short > tol:
            print(f"FAIL {name}: position {i}: generated {tok} (logit {row[tok]:.6g}) but {int(row.argmax())} has "
                  f"{best:.6g} ({short:.2e} of the scale {scale:.3g} more)")
            return False
        exact += int(row.argmax()) == tok
        worst = max(worst, short)
        margins.append((best - np.sort(row)[-2]) / scale)
    n = len(tokens) - 1 - start
    print(f"{name}: {exact}/{n} the argmax, the rest within {worst:.1e}, runner-up {min(margins):.1e} behind")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    c, arrays = llama_ref.read_dump(args.dump)
    tokens = arrays["tokens"][0].astype(np.int64)
    start = int(arrays["prompt_len"][0]) - 1
    ok = check("weft full forward", arrays["logits"][0].astype(np.float64), tokens, start, args.tol)
    if c["family"] == "llama":
        P = {k: v.astype(np.float64) for k, v in arrays.items() if k not in ("tokens", "prompt_len", "logits")}
        want = llama_ref.expected_shapes(c)
        if {k: v.shape for k, v in P.items()} != want:
            print(f"FAIL parameters: {sorted(P)} vs {sorted(want)}")
            return 1
        ref = llama_ref.forward(c, P, tokens[None, :], None)[0]
        ok = check("numpy float64 reference", ref, tokens, start, args.tol) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
