#!/usr/bin/env python3
"""torch_ddp.py -- the PyTorch reference for bench_train: the same GPT-2
(L 4, NH 4, C 256, T 256, V 8192, tied head, GELU tanh, pre-LayerNorm),
the same batch (micro-batch 8 per rank, 2 ranks) and the same optimizer
(AdamW), trained with DistributedDataParallel over gloo, one thread per
rank, on uniform random tokens, in f32.

Prints one line bench_train reads:
  torch_ddp ms_per_step=... tokens_per_s=... flops_per_s_per_rank=... torch=VERSION
with model FLOPs counted as weft counts them (docs/model.md): 6 per weight
that multiplies, per token, plus attention's 12 L T C.

Needs Debian's python3-torch (1.13: no fused attention kernel, so both
sides materialise the (T, T) scores). Not installed: exits 69 quietly.
"""
import os
import socket
import statistics
import sys
import time

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit(69)

L, NH, C, T, V, MB, RANKS = 4, 4, 256, 256, 8192, 8, 2


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        # a plain tensor, not a buffer: DDP broadcasts buffers, and gloo has no bool
        self.mask = torch.tril(torch.ones(T, T, dtype=torch.bool))

    def forward(self, x):
        B = x.shape[0]
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (C // NH) ** -0.5
        att = F.softmax(att.masked_fill(~self.mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied head
        return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def flops_per_token():
    return 6 * (L * 12 * C * C + V * C) + 12 * L * T * C


def run(rank, port, steps, out):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=RANKS)
    torch.manual_seed(1)
    model = nn.parallel.DistributedDataParallel(GPT())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    g = torch.Generator().manual_seed(100 + rank)
    times = []
    for step in range(steps):
        tok = torch.randint(0, V, (MB, T + 1), generator=g)
        t0 = time.perf_counter()
        loss = model(tok[:, :-1], tok[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dist.barrier()
        times.append(time.perf_counter() - t0)
    if rank == 0:
        ms = statistics.median(times[2:]) * 1e3
        tps = RANKS * MB * T / (ms / 1e3)
        out.put(f"torch_ddp ms_per_step={ms:.2f} tokens_per_s={tps:.0f} "
                f"flops_per_s_per_rank={tps / RANKS * flops_per_token():.4g} torch={torch.__version__}")
    dist.destroy_process_group()


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    with socket.socket() as s:  # a free port on loopback for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=run, args=(r, port, max(steps, 4), out)) for r in range(RANKS)]
    for p in procs:
        p.start()
    try:
        line = out.get(timeout=900)
    except Exception:  # a rank died before reporting: say so, never wait on
        line = None
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
    if line is None:
        print("torch_ddp: no result (a rank failed or took over 15 minutes)", file=sys.stderr)
        return 70
    print(line)
    return 0 if all(p.exitcode == 0 for p in procs) else 70


if __name__ == "__main__":
    sys.exit(main())
