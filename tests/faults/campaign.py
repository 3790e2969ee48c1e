#!/usr/bin/env python3
"""campaign.py -- the fault campaign: randomised trials from a seed, each a
fault injected at an exact registry point (WEFT_FAULT, docs/operations.md
"Fault injection") into a small 2-rank training job, then a resume.

A trial picks, from its own seeded generator, a rank, a fault and a step:
SIGKILL or SIGSTOP at start-up, at a steady step, mid-evaluation, before
a save's file is created (the others inside HDF5's MPI-IO), in a save's
data phase, after its fsync before the rename, between the rename
and `latest`, or mid-resume (after a first run killed at a step), or an
injected ENOSPC or EIO in a save's HDF5 writes (checkpoint.on_error = stop),
or -- kind `timed`, no registry point -- SIGKILL or SIGSTOP sent by the
campaign itself to a rank's pid (from its heartbeat file) at a random
moment: after a random number of steps (metrics.jsonl) plus a random
0-300 ms, wherever that lands (mid-step, mid-save, inside HDF5).
Then it checks what weft promises:
  1. the faulted job ended (never exit 0, never the outer timeout) within
     comm.timeout + 30 s, and its log names the failing rank;
  2. `latest`, if any, names a checkpoint `weft-ckpt verify` passes;
  3. `--resume=auto` then finishes the run, and its final checkpoint is
     bitwise equal to an uninterrupted run's (`weft-ckpt diff`, tol 0);
  4. metrics.jsonl holds every step once, in order.
A trial that fails 1 by running out of time is a hang; one that fails 2-4
a bad resume. Each prints one TAP line; the last line is the tally.

Usage: campaign.py [--seed S] [--trials N] [--bin DIR] [--only FAULT,...]
                   [--timeout SECS] [--keep DIR]
Exit 0 only if every trial passed; 64 for bad usage.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

STEPS, EVERY, EVAL = 12, 2, 4
TINY = ["--model.n_layer=2", "--model.n_head=2", "--model.n_embd=32", "--model.context=32",
        "--train.seq_len=32", "--train.micro_batch=2", "--train.global_batch=8", "--train.log_interval=1",
        f"--train.eval_interval={EVAL}", "--train.eval_batches=1", f"--train.steps={STEPS}",
        f"--checkpoint.every={EVERY}", "--checkpoint.keep_last=3", "--sched.heartbeat=0.5",
        "--run.peak_flops=1e11"]  # no peak GEMMs at start: their seconds on a loaded machine skew the ranks
KINDS = ["start", "step", "eval", "save_open", "save_data", "save_commit", "save_latest", "resume", "enospc_save",
         "eio_save", "timed"]
NP = 2
CALM_TIMEOUT = 120  # comm.timeout of the runs whose timing is not under test


class Parser(argparse.ArgumentParser):
    def error(self, message):  # bad usage: exit 64, as weft's programs do
        self.print_usage(sys.stderr)
        sys.stderr.write(f"campaign.py: {message}\n")
        sys.exit(64)


def opts():
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p.add_argument("--seed", type=int, default=1, help="the campaign's seed (default 1)")
    p.add_argument("--trials", type=int, default=10, help="number of trials (default 10)")
    p.add_argument("--bin", default=os.path.join(root, os.environ.get("BUILD", "build"), "bin"),
                   help="directory of weft-train, weft-ckpt, weft-data (default $BUILD/bin)")
    p.add_argument("--only", default="", help="comma-separated fault kinds to draw from: " + ",".join(KINDS))
    p.add_argument("--timeout", type=int, default=3, help="comm.timeout in seconds (default 3)")
    p.add_argument("--keep", default="", help="keep every trial's run directory and logs under DIR")
    return p.parse_args()


def mpirun(bin_dir, args, run_dir, fault, log, limit):
    """Run weft-train on NP ranks; (exit code, seconds). 124: the outer limit."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl_vader_single_copy_mechanism="none")
    env.pop("WEFT_FAULT", None)
    if fault:
        env["WEFT_FAULT"] = fault
    cmd = ["timeout", "-k", "5", str(limit), "mpirun", "-np", str(NP), "--oversubscribe",
           os.path.join(bin_dir, "weft-train")] + args + [f"--run.dir={run_dir}"]
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    return rc, t0, time.time()


def mpirun_timed(bin_dir, args, run_dir, spec, log, limit):
    """Run weft-train on NP ranks and signal one rank at a moment drawn by
    draw() ("kill|stall@RANK+STEPS+MS": once metrics.jsonl holds STEPS
    lines, MS ms later). (exit code, unix time of the signal or None, end)."""
    act, rest = spec.split("@")
    rank, steps, ms = (int(x) for x in rest.split("+"))
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl_vader_single_copy_mechanism="none")
    env.pop("WEFT_FAULT", None)
    cmd = ["timeout", "-k", "5", str(limit), "mpirun", "-np", str(NP), "--oversubscribe",
           os.path.join(bin_dir, "weft-train")] + args + [f"--run.dir={run_dir}"]
    t_sig = None
    with open(log, "w") as f:
        job = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + limit
        while job.poll() is None and time.time() < deadline:  # bounded: the job's own limit
            try:
                lines = sum(1 for _ in open(os.path.join(run_dir, "metrics.jsonl")))
            except OSError:
                lines = 0
            if lines >= steps:
                break
            time.sleep(0.02)  # polling a file the job writes, not waiting for time to pass
        time.sleep(ms / 1000.0)  # the random moment itself
        pid = None
        try:
            for line in open(os.path.join(run_dir, "heartbeat", f"rank-{rank}")):
                if line.startswith("pid "):
                    pid = int(line.split()[1])
        except OSError:
            pass
        if pid and job.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL if act == "kill" else signal.SIGSTOP)
                t_sig = time.time()
                f.write(f"campaign: {'SIGKILL' if act == 'kill' else 'SIGSTOP'} to rank {rank} (pid {pid}) "
                        f"after {steps} steps + {ms} ms (unix time {t_sig:.3f})\n")
                f.flush()
            except ProcessLookupError:
                pass
        rc = job.wait()
    return rc, t_sig, time.time()


def latest_of(run_dir):
    try:
        return open(os.path.join(run_dir, "checkpoints", "latest")).read().strip()
    except FileNotFoundError:
        return None


def ckpt(bin_dir, *args):
    r = subprocess.run([os.path.join(bin_dir, "weft-ckpt")] + list(args), capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def draw(rng, kinds):
    """One trial's fault: (kind, WEFT_FAULT for the faulted run, first run's WEFT_FAULT or None, rank).
    For kind `timed` the second item is not a WEFT_FAULT but "kill|stall@RANK+STEPS+MS"."""
    kind, rank = rng.choice(kinds), rng.randrange(NP)
    act = rng.choice(["kill", "stall"])
    if kind == "timed":
        return kind, f"{act}@{rank}+{rng.randint(1, STEPS - 2)}+{rng.randrange(300)}", None, rank
    if kind == "start":
        return kind, f"{act}_start@{rank}", None, rank
    if kind == "step":
        return kind, f"{act}_step:{rng.randint(1, STEPS)}@{rank}", None, rank
    if kind == "eval":
        return kind, f"{act}_eval:{rng.choice(range(EVAL, STEPS + 1, EVAL))}@{rank}", None, rank
    if kind == "resume":
        first = f"kill_step:{rng.randint(2 * EVERY + 2, STEPS)}@{rng.randrange(NP)}"
        return kind, f"{act}_resume@{rank}", first, rank
    save = rng.choice(range(EVERY, STEPS + 1, EVERY))
    if kind in ("enospc_save", "eio_save"):
        return kind, f"{kind}:{save}@{rank}", None, rank
    return kind, f"{act}_{kind}:{save}@{rank}", None, rank


def names_rank(log_text, rank, fault):
    """The failing rank is named by weft's abort or error, or by mpirun."""
    pats = [rf"process rank {rank} with PID", rf"aborting the job: .*\brank {rank}\b",
            rf"\[weft r{rank}/{NP} [^]]*\] ERROR", rf"ERROR rank {rank}:"]
    return any(re.search(p, log_text) for p in pats)


def metrics_ok(run_dir):
    try:
        steps = [json.loads(l)["step"] for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    except (OSError, ValueError, KeyError) as e:
        return f"metrics.jsonl unreadable: {e}"
    return None if steps == list(range(1, STEPS + 1)) else f"metrics.jsonl steps {steps}"


def trial(a, rng, base, ref, n, kinds):
    kind, fault, first, rank = draw(rng, kinds)
    d = os.path.join(base, f"t{n:04d}")
    run = os.path.join(d, "run")
    os.makedirs(d)
    common = [f"--data.path={base}/ds", f"--comm.timeout={a.timeout}"] + TINY
    if kind in ("enospc_save", "eio_save"):
        common.append("--checkpoint.on_error=stop")
    limit = a.timeout + 30
    # Runs whose timing is not under test (the first run of a resume trial,
    # the resume after the fault) get a generous comm.timeout: a rank
    # starved for a few seconds on a loaded machine must not end them.
    calm = [f"--comm.timeout={CALM_TIMEOUT}"]
    if first:  # something to resume from
        rc, _, _ = mpirun(a.bin, common + calm, run, first, f"{d}/first.log", 600)
        if rc in (0, 124):
            return "fail", kind, fault, f"the first run ({first}) exited {rc}"
    args = common + (["--resume=auto"] if first else [])
    # The outer limit leaves room for start-up on a loaded machine; the
    # promise (comm.timeout + 30 s) is timed from the fault's own log line.
    if kind == "timed":
        rc, t_sig, t1 = mpirun_timed(a.bin, args, run, fault, f"{d}/fault.log", 600)
        t0 = t_sig or t1
    else:
        rc, t0, t1 = mpirun(a.bin, args, run, fault, f"{d}/fault.log", 600)
    frc = rc
    text = open(f"{d}/fault.log", errors="replace").read()
    m = re.search(r"(?:fault injected: .*|campaign: SIG[A-Z]+ to rank .*)\(unix time ([0-9.]+)\)", text)
    secs = t1 - float(m.group(1)) if m else t1 - t0
    if rc == 124 or secs > limit:
        return "hang", kind, fault, f"the job ended {secs:.0f} s after the fault (exit {rc}), past comm.timeout + 30 s"
    if not m:
        return "fail", kind, fault, f"the fault point was never reached (exit {rc})"
    if rc == 0:
        return "fail", kind, fault, "the faulted job exited 0"
    if not names_rank(text, rank, fault):
        return "fail", kind, fault, f"the log does not name rank {rank}: {text[-600:]}"
    name = latest_of(run)
    if name:
        vrc, out = ckpt(a.bin, "verify", os.path.join(run, "checkpoints", name))
        if vrc != 0:
            return "bad", kind, fault, f"latest names {name}, which does not verify: {out[-400:]}"
    rc, _, _ = mpirun(a.bin, common + calm + ["--resume=auto"], run, None, f"{d}/resume.log", 600)
    if rc != 0:
        return "bad", kind, fault, f"the resumed run exited {rc}: {open(f'{d}/resume.log').read()[-600:]}"
    final = os.path.join(run, "checkpoints", f"step-{STEPS:08d}.h5")
    drc, out = ckpt(a.bin, "diff", ref, final)
    if drc != 0:
        return "bad", kind, fault, f"final weights differ from the uninterrupted run: {out[-400:]}"
    why = metrics_ok(run)
    if why:
        return "bad", kind, fault, why
    return "ok", kind, fault, f"ended {secs:.1f} s after the fault (exit {frc}), latest {name}; resumed run bitwise equal"


def main():
    a = opts()
    kinds = [k for k in a.only.split(",") if k] or KINDS
    for k in kinds:
        if k not in KINDS:
            sys.stderr.write(f"campaign.py: --only: unknown fault kind '{k}' (kinds: {', '.join(KINDS)})\n")
            return 64
    base = tempfile.mkdtemp(prefix="weft-faults.")
    try:
        with open(f"{base}/ds.txt", "w") as f:
            f.write("the quick brown fox jumps over the lazy dog. a stitch in time saves nine\n" * 300)
        subprocess.check_call([os.path.join(a.bin, "weft-data"), "prepare", "-o", f"{base}/ds", "--val-fraction",
                               "0.1", f"{base}/ds.txt"], stdout=subprocess.DEVNULL)
        common = [f"--data.path={base}/ds", f"--comm.timeout={a.timeout}"] + TINY
        rc, _, _ = mpirun(a.bin, common + [f"--comm.timeout={CALM_TIMEOUT}"], f"{base}/ref", None,
                          f"{base}/ref.log", 600)
        if rc != 0:
            print(f"not ok 1 - the uninterrupted reference run exited {rc}")
            print(open(f"{base}/ref.log").read()[-2000:])
            return 1
        ref = os.path.join(base, "ref", "checkpoints", f"step-{STEPS:08d}.h5")
        rng = random.Random(a.seed)
        tally = {"ok": 0, "bad": 0, "hang": 0, "fail": 0}
        for n in range(1, a.trials + 1):
            verdict, kind, fault, why = trial(a, rng, base, ref, n, kinds)
            tally[verdict] += 1
            head = "ok" if verdict == "ok" else "not ok"
            print(f"{head} {n} - trial {n} ({kind}): WEFT_FAULT={fault}: {why if verdict == 'ok' else verdict}",
                  flush=True)
            if verdict != "ok":
                print("\n".join("# " + l for l in why.splitlines()[-8:]), flush=True)
                if a.keep:
                    shutil.copytree(os.path.join(base, f"t{n:04d}"), os.path.join(a.keep, f"t{n:04d}"))
            shutil.rmtree(os.path.join(base, f"t{n:04d}"), ignore_errors=True)
        print(f"1..{a.trials}")
        print(f"# campaign seed {a.seed}: {a.trials} trials, {tally['ok']} passed, {tally['bad']} bad resumes, "
              f"{tally['hang']} hangs, {tally['fail']} other failures", flush=True)
        return 0 if tally["ok"] == a.trials else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
