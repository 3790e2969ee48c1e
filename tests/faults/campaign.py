#!/usr/bin/env python3
"""campaign.py -- the fault campaign: randomised trials from a seed, each a
fault injected at an exact registry point (WEFT_FAULT, docs/operations.md
"Fault injection") into a small 2-rank training job, then a resume.

A trial picks, from its own seeded generator, a rank, a fault and a step:
SIGKILL or SIGSTOP at start-up, at a steady step, mid-evaluation, at the
end (the run done, before the job's last barrier), before
a save's file is created (the others inside HDF5's MPI-IO), in a save's
data phase, after its fsync before the rename, between the rename
and `latest`, or mid-resume (after a first run killed at a step), or an
injected ENOSPC, EIO or short write in a save's data writes (checkpoint.on_error = stop);
or -- kind `timed`, no registry point -- SIGKILL or SIGSTOP sent by the
campaign itself to a rank's pid (from its heartbeat file) at a random
moment: after a random number of steps (metrics.jsonl) plus a random
0-300 ms, wherever that lands (mid-step, mid-save, inside HDF5).
With two checkpoint tiers (checkpoint.local_dir drained to checkpoint.dir):
a kill or stall of the draining rank mid-copy (drain), or failed drain
attempts (drain_fail: every one, on_error = stop; or one, retried, on_error
= continue). Across two network-namespace hosts (tests/faults/netns.py,
root only; skipped elsewhere): every rank held at a step's gradient
reduction, in flight (hold_grad), one host's data link cut, the ranks
released (link). Then it checks what weft promises:
  1. the faulted job ended (never exit 0, never the outer timeout) within
     comm.timeout + 30 s, and its log names the failing rank (link: the
     rank whose link was cut, with its address); a drain failed once ends
     exit 0 with the failure retried and reported;
  2. `latest`, if any, names a checkpoint `weft-ckpt verify` passes (two
     tiers: the shared tier's, if any, and the local tier's);
  3. `--resume=auto` then finishes the run (link: with the link restored),
     and its final checkpoint is bitwise equal to an uninterrupted run's
     (`weft-ckpt diff`, tol 0); two tiers: the log says which tier it
     resumed from;
  4. metrics.jsonl holds every step once, in order.
A trial that fails 1 by running out of time is a hang; one that fails 2-4
a bad resume. Each prints one TAP line; the last line is the tally.

Usage: campaign.py [--seed S] [--trials N] [--bin DIR] [--only KIND,...]
                   [--round-robin] [--timeout SECS] [--keep DIR]
Exit 0 only if every trial passed or was skipped; 64 for bad usage.
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

import netns

STEPS, EVERY, EVAL = 12, 2, 4
WRITE_ERRORS = ("enospc_save", "eio_save", "short_save", "lost_save")  # a save's data write fails: exit 74
TINY = ["--model.n_layer=2", "--model.n_head=2", "--model.n_embd=32", "--model.context=32",
        "--train.seq_len=32", "--train.micro_batch=2", "--train.global_batch=8", "--train.log_interval=1",
        f"--train.eval_interval={EVAL}", "--train.eval_batches=1", f"--train.steps={STEPS}",
        f"--checkpoint.every={EVERY}", "--checkpoint.keep_last=3", "--sched.heartbeat=0.5",
        "--run.peak_flops=1e11"]  # no peak GEMMs at start: their seconds on a loaded machine skew the ranks
KINDS = ["start", "step", "eval", "end", "save_open", "save_data", "save_commit", "save_latest", "resume", "enospc_save",
         "eio_save", "short_save", "lost_save", "timed", "drain", "drain_fail", "link"]
TIERS = ("drain", "drain_fail")
NP = 2
CALM_TIMEOUT = 120  # comm.timeout of the runs whose timing is not under test
RUNNING = []  # jobs started and not yet waited for: ended with the campaign


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
    p.add_argument("--round-robin", action="store_true",
                   help="take the kinds in turn (trial n: kind n mod K) instead of drawing them")
    p.add_argument("--timeout", type=int, default=3, help="comm.timeout in seconds (default 3)")
    p.add_argument("--keep", default="", help="keep every trial's run directory and logs under DIR")
    return p.parse_args()


def start(bin_dir, args, run_dir, fault, log, limit, hosts=None):
    """Start weft-train on NP ranks (hosts: one per namespace host); the
    process, its log file and its start time."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl_vader_single_copy_mechanism="none")
    env.pop("WEFT_FAULT", None)
    if fault:
        env["WEFT_FAULT"] = fault
    head = hosts.mpirun(env) if hosts else ["mpirun", "-np", str(NP), "--oversubscribe"]
    extra = hosts.weft_args() if hosts else []
    cmd = ["timeout", "-k", "5", str(limit)] + head + [os.path.join(bin_dir, "weft-train")] + args + extra + \
        [f"--run.dir={run_dir}"]
    f = open(log, "w")
    RUNNING.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env))
    return RUNNING[-1], f, time.time()


def mpirun(bin_dir, args, run_dir, fault, log, limit, hosts=None):
    """Run weft-train on NP ranks; (exit code, start, end). 124: the outer limit."""
    p, f, t0 = start(bin_dir, args, run_dir, fault, log, limit, hosts)
    rc = p.wait()
    RUNNING.remove(p)
    f.close()
    if hosts:
        hosts.kill_all()
    return rc, t0, time.time()


def faulted_timed(a, args, run_dir, spec, log):
    """The timed kind's faulted run: signal one rank at the moment draw()
    chose ("kill|stall@RANK+STEPS+MS": once metrics.jsonl holds STEPS
    lines, MS ms later). (exit code, unix time of the signal or None, end)."""
    act, rest = spec.split("@")
    rank, steps, ms = (int(x) for x in rest.split("+"))
    # slow_step stretches the run's tiny steps (a few ms each) so that the
    # moment lands mid-run: without it, 6 of 13 timed trials of seed 28 hit
    # the shutdown. At least 25 ms a step, and enough that the steps left
    # after STEPS outlast the draw's delay by half a second (a loaded
    # machine may wake this process late): with 25 ms alone, seed 30's
    # trial 187 (step 9 + 298 ms of 12) found the job already done.
    left = STEPS - steps
    slow = max(25, -(-(ms + 500) // left))
    p, f, t0 = start(a.bin, args, run_dir, f"slow_step:{slow}", log, 600)
    end, t_sig = time.time() + 300, None
    while p.poll() is None and time.time() < end:  # bounded; polls a file the job writes
        try:
            lines = sum(1 for _ in open(os.path.join(run_dir, "metrics.jsonl")))
        except OSError:
            lines = 0
        if lines >= steps:
            break
        time.sleep(0.02)
    time.sleep(ms / 1000.0)  # the random moment itself
    pid = None
    try:
        for line in open(os.path.join(run_dir, "heartbeat", f"rank-{rank}")):
            if line.startswith("pid "):
                pid = int(line.split()[1])
    except OSError:
        pass
    if pid and p.poll() is None:
        try:
            os.kill(pid, signal.SIGKILL if act == "kill" else signal.SIGSTOP)
            t_sig = time.time()
            f.write(f"campaign: {'SIGKILL' if act == 'kill' else 'SIGSTOP'} to rank {rank} (pid {pid}) after "
                    f"{steps} steps + {ms} ms (unix time {t_sig:.3f})\n")
            f.flush()
        except ProcessLookupError:
            pass
    rc = p.wait()
    RUNNING.remove(p)
    f.close()
    return rc, t_sig, time.time()


def latest_of(run_dir):
    try:
        return open(os.path.join(run_dir, "checkpoints", "latest")).read().strip()
    except FileNotFoundError:
        return None


def ckpt(bin_dir, *args):
    r = subprocess.run([os.path.join(bin_dir, "weft-ckpt")] + list(args), capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def draw(rng, kinds, n):
    """One trial's fault: (kind, WEFT_FAULT for the faulted run, first run's
    WEFT_FAULT or None, the failing rank). For kind `timed` the second item
    is not a WEFT_FAULT but "kill|stall@RANK+STEPS+MS"."""
    kind, rank = kinds[(n - 1) % len(kinds)] if n else rng.choice(kinds), rng.randrange(NP)
    act = rng.choice(["kill", "stall"])
    if kind == "timed":
        return kind, f"{act}@{rank}+{rng.randint(1, STEPS - 2)}+{rng.randrange(300)}", None, rank
    if kind in ("start", "end"):
        return kind, f"{act}_{kind}@{rank}", None, rank
    if kind == "step":
        return kind, f"{act}_step:{rng.randint(1, STEPS)}@{rank}", None, rank
    if kind == "eval":
        return kind, f"{act}_eval:{rng.choice(range(EVAL, STEPS + 1, EVAL))}@{rank}", None, rank
    if kind == "resume":
        first = f"kill_step:{rng.randint(2 * EVERY + 2, STEPS)}@{rng.randrange(NP)}"
        return kind, f"{act}_resume@{rank}", first, rank
    if kind == "drain":  # rank 0 drains; the first drain, or the last step's (both always run)
        return kind, f"{act}_drain{rng.choice(['', f':{STEPS}'])}@0", None, 0
    if kind == "drain_fail":  # every attempt, or the job's K-th only
        return kind, f"fail_drain{rng.choice(['', f':{rng.randint(1, 3)}'])}@0", None, 0
    if kind == "link":  # every rank held at step N's reduction; then `rank`'s link is cut
        return kind, f"hold_grad:{rng.randint(1, STEPS)}", None, rank
    save = rng.choice(range(EVERY, STEPS + 1, EVERY))
    if kind in WRITE_ERRORS:
        return kind, f"{kind}:{save}@{rank}", None, rank
    return kind, f"{act}_{kind}:{save}@{rank}", None, rank


def names_rank(log_text, rank, kind):
    """The failing rank is named by weft's abort or error, or by mpirun; a
    cut link by its address: a peer's "waits on rank R (ADDR:port)", or the
    cut host's own "interface wdata (ADDR) is down"."""
    if kind == "link":
        addr = re.escape(netns.DATA) + rf"\.{rank + 1}"
        return bool(re.search(rf"rank {rank} \({addr}:\d+\)|interface wdata \({addr}\) is down", log_text))
    pats = [rf"process rank {rank} with PID", rf"aborting the job: .*\brank {rank}\b",
            rf"\[weft r{rank}/{NP} [^]]*\] ERROR", rf"ERROR rank {rank}:"]
    return any(re.search(p, log_text) for p in pats)


def metrics_ok(run_dir):
    try:
        steps = [json.loads(l)["step"] for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    except (OSError, ValueError, KeyError) as e:
        return f"metrics.jsonl unreadable: {e}"
    return None if steps == list(range(1, STEPS + 1)) else f"metrics.jsonl steps {steps}"


def faulted_link(a, args, run, fault, log, hosts, rank):
    """The link kind's faulted run: wait (bounded) until every rank is held
    at the reduction, cut `rank`'s data link, release them. (exit code,
    time of the cut or None, end)."""
    p, f, t0 = start(a.bin, args, run, fault, log, 600, hosts)
    held = [os.path.join(run, f"fault-held-r{r}") for r in range(NP)]
    end, cut = time.time() + 300, None
    while p.poll() is None and time.time() < end and not all(os.path.exists(h) for h in held):
        time.sleep(0.05)
    if p.poll() is None and all(os.path.exists(h) for h in held):
        hosts.cut(rank)
        cut = time.time()
        for r in range(NP):
            open(os.path.join(run, f"fault-release-r{r}"), "w").close()
    rc = p.wait()
    RUNNING.remove(p)
    f.close()
    hosts.kill_all()
    return rc, cut, time.time()


def tier_of(log):
    m = re.search(r"resuming from the (local|shared) tier", open(log, errors="replace").read())
    return f"from the {m.group(1)} tier" if m else "from no tier named"


def drained_once(text, run):
    """drain_fail:K: the job finished, its failed attempt retried (or
    superseded by a newer checkpoint) and reported, the last step drained."""
    if not re.search(r"checkpoint drain of step \d+ to .* failed \(attempt 1 of 2\)", text):
        return "the failed drain attempt is not reported in the log"
    name = latest_of(run)
    if name != f"step-{STEPS:08d}.h5":
        return f"the shared tier's latest is {name}, not the last step's"
    try:
        st = json.load(open(os.path.join(run, "status.json")))["shared_tier"]
    except (OSError, ValueError, KeyError) as e:
        return f"status.json has no shared_tier: {e}"
    if st["retried"] + st["failed"] < 1:
        return f"status.json does not count the failed attempt: {st}"
    return None


def verify_tiers(a, run, kind):
    """Promise 2: each tier's latest (shared: if any) verifies; None or why."""
    tiers = [("shared", os.path.join(run, "checkpoints"), False)]
    if kind in TIERS:
        tiers.append(("local", os.path.join(run, "local"), True))
    for tier, path, needed in tiers:
        try:
            name = open(os.path.join(path, "latest")).read().strip()
        except FileNotFoundError:
            if needed:
                return f"the {tier} tier has no latest"
            continue
        vrc, out = ckpt(a.bin, "verify", os.path.join(path, name))
        if vrc != 0:
            return f"the {tier} tier's latest names {name}, which does not verify: {out[-400:]}"
    return None


def trial(a, rng, base, refs, n, kinds, hosts):
    kind, fault, first, rank = draw(rng, kinds, n if a.round_robin else 0)
    d = os.path.join(base, f"t{n:04d}")
    run = os.path.join(d, "run")
    os.makedirs(d)
    common = [f"--data.path={base}/ds", f"--comm.timeout={a.timeout}"] + TINY
    once = kind == "drain_fail" and ":" in fault.split("@")[0]
    if kind in WRITE_ERRORS:
        common.append("--checkpoint.on_error=stop")
    if kind in TIERS:
        common += [f"--checkpoint.local_dir={run}/local", "--checkpoint.drain_retries=1",
                   f"--checkpoint.on_error={'continue' if once else 'stop'}"]
    if kind == "link":
        if isinstance(hosts, str):
            return "skip", kind, fault, hosts
        ref = refs.get("link") or link_reference(a, base, common, hosts, refs)
        if not ref:
            return "fail", kind, fault, "the uninterrupted run across the namespace hosts failed"
    else:
        ref = refs["local"]
    h = hosts if kind == "link" else None
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
    # promise (comm.timeout + 30 s) is timed from the fault's own log line
    # (link: from the cut).
    if kind == "link":
        rc, cut, t1 = faulted_link(a, args, run, fault, f"{d}/fault.log", hosts, rank)
        if not hosts.restore(rank):  # whatever the verdict: the next trial needs the link
            return "fail", kind, fault, f"rank {rank}'s data link did not come back"
    elif kind == "timed":
        rc, t_sig, t1 = faulted_timed(a, args, run, fault, f"{d}/fault.log")
        t0 = t_sig or t1
    else:
        rc, t0, t1 = mpirun(a.bin, args, run, fault, f"{d}/fault.log", 600)
    frc = rc
    text = open(f"{d}/fault.log", errors="replace").read()
    m = re.search(r"(?:fault injected: .*|campaign: SIG[A-Z]+ to rank .*)\(unix time ([0-9.]+)\)", text)
    if kind == "link":
        m = m and cut
        secs = t1 - cut if cut else 0
    else:
        secs = t1 - float(m.group(1)) if m else t1 - t0
    if rc == 124 or secs > limit:
        return "hang", kind, fault, f"the job ended {secs:.0f} s after the fault (exit {rc}), past comm.timeout + 30 s"
    if not m:
        return "fail", kind, fault, f"the fault point was never reached (exit {rc}): {text[-600:]}"
    if once:
        if rc != 0:
            return "fail", kind, fault, f"a drain failed once (on_error = continue) but the job exited {rc}"
        why = drained_once(text, run)
        if why:
            return "fail", kind, fault, why
    elif rc == 0:
        return "fail", kind, fault, "the faulted job exited 0"
    elif not names_rank(text, rank, kind):
        return "fail", kind, fault, f"the log does not name rank {rank}: {text[-600:]}"
    name = latest_of(run)
    why = verify_tiers(a, run, kind)
    if why:
        return "bad", kind, fault, why
    rc, _, _ = mpirun(a.bin, common + calm + ["--resume=auto"], run, None, f"{d}/resume.log", 600, h)
    if rc != 0:
        return "bad", kind, fault, f"the resumed run exited {rc}: {open(f'{d}/resume.log').read()[-600:]}"
    finals = [os.path.join(run, "checkpoints", f"step-{STEPS:08d}.h5")]
    if kind in TIERS:  # the local tier always holds it; the shared one once drained
        finals = [os.path.join(run, "local", f"step-{STEPS:08d}.h5")] + [f for f in finals if os.path.exists(f)]
    for final in finals:
        drc, out = ckpt(a.bin, "diff", ref, final)
        if drc != 0:
            return "bad", kind, fault, f"final weights ({final}) differ from the uninterrupted run: {out[-400:]}"
    why = metrics_ok(run)
    if why:
        return "bad", kind, fault, why
    what = f"ended {secs:.1f} s after the cut" if kind == "link" else f"ended {secs:.1f} s after the fault"
    where = f", resumed {tier_of(f'{d}/resume.log')}" if kind in TIERS else ""
    return "ok", kind, fault, (f"{what} (exit {frc}{f', rank {rank} cut' if kind == 'link' else ''}), latest {name}"
                               f"{where}; resumed run bitwise equal")


def link_reference(a, base, common, hosts, refs):
    """The link kind's uninterrupted run: across the hosts, tcp transport."""
    rc, _, _ = mpirun(a.bin, common + [f"--comm.timeout={CALM_TIMEOUT}"], f"{base}/ref-link", None,
                      f"{base}/ref-link.log", 600, hosts)
    if rc != 0:
        sys.stdout.write("# " + open(f"{base}/ref-link.log").read()[-1500:].replace("\n", "\n# ") + "\n")
        return None
    refs["link"] = os.path.join(base, "ref-link", "checkpoints", f"step-{STEPS:08d}.h5")
    return refs["link"]


def main():
    a = opts()
    kinds = [k for k in a.only.split(",") if k] or KINDS
    for k in kinds:
        if k not in KINDS:
            sys.stderr.write(f"campaign.py: --only: unknown fault kind '{k}' (kinds: {', '.join(KINDS)})\n")
            return 64
    base = tempfile.mkdtemp(prefix="weft-faults.")
    hosts = None
    # A SIGTERM (an outer timeout, a kill) still runs the cleanup below: the
    # namespaces and bridges would otherwise outlive the campaign.
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    try:
        if "link" in kinds:  # the hosts, or why not (each link trial is then skipped)
            hosts = netns.Hosts(base)
            why = hosts.up()
            if why:
                hosts.close()
                hosts = why
        with open(f"{base}/ds.txt", "w") as f:
            f.write("the quick brown fox jumps over the lazy dog. a stitch in time saves nine\n" * 300)
        subprocess.check_call([os.path.join(a.bin, "weft-data"), "prepare", "-o", f"{base}/ds", "--val-fraction",
                               "0.1", f"{base}/ds.txt"], stdout=subprocess.DEVNULL)
        common = [f"--data.path={base}/ds", f"--comm.timeout={a.timeout}"] + TINY
        refs = {}
        if any(k != "link" for k in kinds):
            rc, _, _ = mpirun(a.bin, common + [f"--comm.timeout={CALM_TIMEOUT}"], f"{base}/ref", None,
                              f"{base}/ref.log", 600)
            if rc != 0:
                print(f"not ok 1 - the uninterrupted reference run exited {rc}")
                print(open(f"{base}/ref.log").read()[-2000:])
                return 1
            refs["local"] = os.path.join(base, "ref", "checkpoints", f"step-{STEPS:08d}.h5")
        rng = random.Random(a.seed)
        tally = {"ok": 0, "bad": 0, "hang": 0, "fail": 0, "skip": 0}
        for n in range(1, a.trials + 1):
            verdict, kind, fault, why = trial(a, rng, base, refs, n, kinds, hosts)
            tally[verdict] += 1
            head = "not ok" if verdict not in ("ok", "skip") else "ok"
            tail = why if verdict == "ok" else f"# SKIP {why}" if verdict == "skip" else verdict
            print(f"{head} {n} - trial {n} ({kind}): WEFT_FAULT={fault}: {tail}", flush=True)
            if head == "not ok":
                print("\n".join("# " + l for l in why.splitlines()[-8:]), flush=True)
                if a.keep:
                    shutil.copytree(os.path.join(base, f"t{n:04d}"), os.path.join(a.keep, f"t{n:04d}"))
            shutil.rmtree(os.path.join(base, f"t{n:04d}"), ignore_errors=True)
        print(f"1..{a.trials}")
        print(f"# campaign seed {a.seed}: {a.trials} trials, {tally['ok']} passed, {tally['bad']} bad resumes, "
              f"{tally['hang']} hangs, {tally['fail']} other failures, {tally['skip']} skipped", flush=True)
        return 0 if tally["ok"] + tally["skip"] == a.trials else 1
    finally:
        for p in RUNNING:  # `timeout` passes the SIGTERM on to its mpirun
            p.terminate()
            p.wait()
        if isinstance(hosts, netns.Hosts):
            hosts.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
