#!/usr/bin/env python3
"""promcheck.py -- a strict checker of Prometheus text exposition format 0.0.4
(https://prometheus.io/docs/instrumenting/exposition_formats/), written from
the format's description, independent of weft's renderer.

    promcheck.py FILE [NAME=VALUE ...]

Checks every line is a HELP, TYPE or sample line; metric and label names
match the format's alphabets; label values are properly escaped; values
parse as Go floats (NaN, +Inf, -Inf allowed); each family has at most one
HELP and one TYPE, both before its samples; samples of a family are
contiguous; counters end in _total; no sample repeats its name and labels;
the text ends with a newline. Each NAME=VALUE asserts that the unlabelled-
by-phase sample NAME (first one) has that value (within 1e-9 relative),
NAME{phase="x"}=VALUE for labelled ones. Prints the samples as JSON.
"""
import json
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LVAL = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL}={LVAL})(?:,{LABEL}={LVAL})*,?)?\}})? (\S+)(?: (-?\d+))?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def fail(msg):
    print(f"promcheck: {msg}", file=sys.stderr)
    sys.exit(1)


def go_float(s):
    if s in ("NaN", "+Inf", "-Inf"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
        fail(f"value {s!r} is not a float")
    return float(s)


def parse(text):
    if not text.endswith("\n"):
        fail("the text does not end with a newline")
    helps, types, samples, seen, done, current = {}, {}, {}, set(), set(), None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("#"):
            m = re.fullmatch(rf"# (HELP|TYPE) ({NAME}) (.*)", line)
            if not m:
                if line.startswith("# HELP") or line.startswith("# TYPE"):
                    fail(f"line {n}: malformed {line!r}")
                continue  # a plain comment
            kind, name, rest = m.groups()
            table = helps if kind == "HELP" else types
            if name in table:
                fail(f"line {n}: second {kind} for {name}")
            if name in done or (name in samples and current != name):
                fail(f"line {n}: {kind} for {name} after its samples")
            if kind == "TYPE" and rest not in TYPES:
                fail(f"line {n}: unknown type {rest!r}")
            table[name] = rest
            continue
        m = SAMPLE.match(line)
        if not m:
            fail(f"line {n}: not a sample line: {line!r}")
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        if current != name:
            if name in done:
                fail(f"line {n}: samples of {name} are not contiguous")
            if current:
                done.add(current)
            current = name
        if name not in types:
            fail(f"line {n}: sample of {name} before (or without) its TYPE")
        if types[name] == "counter" and not name.endswith("_total"):
            fail(f"line {n}: counter {name} does not end in _total")
        key = (name, labels)
        if key in seen:
            fail(f"line {n}: duplicate sample {name}{{{labels}}}")
        seen.add(key)
        lab = dict(re.findall(rf"({LABEL})=({LVAL})", labels))
        samples.setdefault(name, []).append(({k: json.loads(v) for k, v in lab.items()}, go_float(value)))
    for name in types:
        if name not in helps:
            fail(f"{name} has a TYPE but no HELP")
    return samples


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    samples = parse(text)
    for want in sys.argv[2:]:
        key, value = want.rsplit("=", 1)
        m = re.fullmatch(rf"({NAME})(?:\{{(\w+)=\"([^\"]*)\"\}})?", key)
        name, lk, lv = m.groups()
        got = [v for lab, v in samples.get(name, []) if not lk or lab.get(lk) == lv]
        if not got:
            fail(f"no sample {key}")
        exp = float(value)
        if not (got[0] == exp or (math.isnan(exp) and math.isnan(got[0])) or
                abs(got[0] - exp) <= 1e-9 * max(1.0, abs(exp))):
            fail(f"{key} is {got[0]!r}, expected {exp!r}")
    print(json.dumps({k: [v for _, v in s] for k, s in samples.items()}))


main()
