#!/usr/bin/env python3
"""loss_compare.py -- the GPU check's comparison of two training runs
(tests/gpu/run.sh): the training loss of every step 1..STEPS in two
metrics.jsonl files (docs/operations.md) must be within REL of each other,
relative to the reference's. Prints one line saying the largest relative
difference and its step; exits 0 when within, 1 when not, 2 when a file
is missing steps or unreadable (a run that did not finish must not pass).

    loss_compare.py REFERENCE.jsonl CANDIDATE.jsonl --rel 1e-4 --steps 50
"""
import argparse
import json
import sys


def losses(path):
    """step -> loss of every line that has both (evaluation lines have no loss)."""
    out = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise SystemExit(f"{path}:{n}: not JSON ({e})")
            if "step" in rec and "loss" in rec:
                out[int(rec["step"])] = float(rec["loss"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference")
    ap.add_argument("candidate")
    ap.add_argument("--rel", type=float, required=True, help="largest relative difference allowed")
    ap.add_argument("--steps", type=int, required=True, help="steps 1..STEPS must be in both files")
    a = ap.parse_args()
    try:
        ref, got = losses(a.reference), losses(a.candidate)
    except OSError as e:
        print(f"cannot read: {e}")
        return 2
    for name, d in ((a.reference, ref), (a.candidate, got)):
        missing = [s for s in range(1, a.steps + 1) if s not in d]
        if missing:
            print(f"{name}: steps {missing[:5]}{'...' if len(missing) > 5 else ''} missing (want 1..{a.steps})")
            return 2
    worst, at = 0.0, 1
    for s in range(1, a.steps + 1):
        r, g = ref[s], got[s]
        rel = abs(g - r) / abs(r) if r != 0 else abs(g - r)
        if not rel <= worst:  # NaN counts as worst
            worst, at = rel if rel == rel else float("inf"), s
    ok = worst <= a.rel
    print(f"largest relative difference {worst:.3g} at step {at} (loss {got[at]:.8g} vs {ref[at]:.8g}), "
          f"{'within' if ok else 'over'} {a.rel:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
