#!/usr/bin/env python3
"""llama_ref.py DUMP [--tol X] [--break WHAT] -- weft's Llama forward
(tests/model/llama_dump.c) against an independent numpy float64 forward
written from Hugging Face's LlamaForCausalLM, sharing no code with weft.

The reference, for tokens (B, T):
  h = embed_tokens[tokens]
  per layer:
    x = rmsnorm(h, input_layernorm)          rmsnorm(x, w) = x / sqrt(mean(x^2) + eps) * w
    q, k, v = x q_proj^T, x k_proj^T, x v_proj^T as (B, heads, T, hs)
    q, k = rope(q), rope(k)                  x cos + rotate_half(x) sin, rotate_half(x) =
                                             [-x[hs/2:], x[:hs/2]]; angles pos * theta^(-2i/hs)
                                             for i < hs/2, concatenated twice
    k, v = repeat_kv(k), repeat_kv(v)        query head h uses kv head h // (NH / NKV)
    a = softmax(q k^T / sqrt(hs) + causal mask) v, heads concatenated
    h = h + a o_proj^T
    x = rmsnorm(h, post_attention_layernorm)
    h = h + (silu(x gate_proj^T) * x up_proj^T) down_proj^T
  logits = rmsnorm(h, norm) lm_head^T        (lm_head = embed_tokens when tied)
  loss = mean over targets >= 0 of logsumexp(logits) - logits[target]

Checks: the dump holds exactly Hugging Face's parameter names at their
shapes (lm_head.weight only when untied); the logits agree within TOL
(default 1e-6) as max |weft - ref| / max |ref|; the loss within TOL
relative. Prints the measured differences; exits 1 past TOL.

--break WHAT computes a deliberately wrong reference, to show that the
comparison can fail: rope (interleaved pairs 2i, 2i+1 instead of halves),
mask (no causal mask), kvmap (query head h uses kv head h % NKV), eps (ten
times the RMSNorm epsilon), untie (the embedding as the head even when
lm_head.weight exists) .
"""
import argparse
import sys

import numpy as np

DTYPES = {"f32": "<f4", "i32": "<i4", "f64": "<f8"}


def read_dump(path):
    data = open(path, "rb").read()
    nl = data.index(b"\n")
    words = data[:nl].decode().split()
    assert words[0] == "config", words
    cfg = {}
    for kv in words[1:]:
        k, v = kv.split("=")
        cfg[k] = float(v) if k in ("rope_theta", "norm_eps") else int(v) if v.lstrip("-").isdigit() else v
    pos, arrays = nl + 1, {}
    while pos < len(data):
        nl = data.index(b"\n", pos)
        words = data[pos:nl].decode().split()
        name, dtype, ndim = words[0], words[1], int(words[2])
        shape = tuple(int(d) for d in words[3:3 + ndim])
        count = int(np.prod(shape))
        dt = np.dtype(DTYPES[dtype])
        arrays[name] = np.frombuffer(data, dt, count, nl + 1).reshape(shape)
        pos = nl + 1 + count * dt.itemsize
    return cfg, arrays


def expected_shapes(c):
    V, C, F, NH, NKV, L = c["vocab"], c["n_embd"], c["ffn_dim"], c["n_head"], c["n_kv_head"], c["n_layer"]
    hs = C // NH
    want = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
    for l in range(L):
        p = f"model.layers.{l}."
        want.update({
            p + "input_layernorm.weight": (C,),
            p + "self_attn.q_proj.weight": (NH * hs, C),
            p + "self_attn.k_proj.weight": (NKV * hs, C),
            p + "self_attn.v_proj.weight": (NKV * hs, C),
            p + "self_attn.o_proj.weight": (C, NH * hs),
            p + "post_attention_layernorm.weight": (C,),
            p + "mlp.gate_proj.weight": (F, C),
            p + "mlp.up_proj.weight": (F, C),
            p + "mlp.down_proj.weight": (C, F),
        })
    if not c["tie"]:
        want["lm_head.weight"] = (V, C)
    return want


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate((-x[..., half:], x[..., :half]), axis=-1)


def rope_tables(T, hs, theta):
    inv_freq = 1.0 / theta ** (np.arange(0, hs, 2, dtype=np.float64) / hs)  # (hs/2)
    freqs = np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]    # (T, hs/2)
    return freqs


def rope(x, freqs, broken):
    """x (B, heads, T, hs)."""
    if broken:  # GPT-J / Meta's original complex layout: pairs (2i, 2i+1)
        cos, sin = np.cos(freqs), np.sin(freqs)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x1 * cos + x0 * sin
        return out
    emb = np.concatenate((freqs, freqs), axis=-1)  # (T, hs)
    return x * np.cos(emb) + rotate_half(x) * np.sin(emb)


def repeat_kv(x, n_rep, broken):
    """(B, NKV, T, hs) -> (B, NKV * n_rep, T, hs): head h is kv head h // n_rep."""
    if broken:
        return np.tile(x, (1, n_rep, 1, 1))  # head h is kv head h % NKV
    return np.repeat(x, n_rep, axis=1)


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(c, P, tokens, brk):
    B, T = tokens.shape
    C, NH, NKV, L = c["n_embd"], c["n_head"], c["n_kv_head"], c["n_layer"]
    hs = C // NH
    eps = c["norm_eps"] * (10 if brk == "eps" else 1)
    freqs = rope_tables(T, hs, c["rope_theta"])
    mask = np.triu(np.ones((T, T), dtype=bool), k=1)  # True above the diagonal: the future
    h = P["model.embed_tokens.weight"][tokens]  # (B, T, C)
    for l in range(L):
        p = f"model.layers.{l}."
        x = rmsnorm(h, P[p + "input_layernorm.weight"], eps)
        heads = lambda w, n: (x @ P[p + w].T).reshape(B, T, n, hs).transpose(0, 2, 1, 3)
        q, k, v = heads("self_attn.q_proj.weight", NH), heads("self_attn.k_proj.weight", NKV), \
            heads("self_attn.v_proj.weight", NKV)
        q, k = rope(q, freqs, brk == "rope"), rope(k, freqs, brk == "rope")
        k, v = repeat_kv(k, NH // NKV, brk == "kvmap"), repeat_kv(v, NH // NKV, brk == "kvmap")
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hs)  # (B, NH, T, T)
        if brk != "mask":
            s = np.where(mask, -np.inf, s)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        a = (s / s.sum(axis=-1, keepdims=True)) @ v  # (B, NH, T, hs)
        h = h + a.transpose(0, 2, 1, 3).reshape(B, T, NH * hs) @ P[p + "self_attn.o_proj.weight"].T
        x = rmsnorm(h, P[p + "post_attention_layernorm.weight"], eps)
        g, u = x @ P[p + "mlp.gate_proj.weight"].T, x @ P[p + "mlp.up_proj.weight"].T
        h = h + (silu(g) * u) @ P[p + "mlp.down_proj.weight"].T
    head = P.get("lm_head.weight") if brk != "untie" else None
    if head is None:
        head = P["model.embed_tokens.weight"]
    return rmsnorm(h, P["model.norm.weight"], eps) @ head.T  # (B, T, V)


def xent(logits, targets):
    m = logits.max(axis=-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))[..., 0]
    keep = targets >= 0
    picked = np.take_along_axis(logits, np.where(keep, targets, 0)[..., None], axis=-1)[..., 0]
    return float(np.mean((lse - picked)[keep]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--break", dest="brk", choices=["rope", "mask", "kvmap", "eps", "untie"])
    args = ap.parse_args()
    c, arrays = read_dump(args.dump)

    want = expected_shapes(c)
    params = {k: v for k, v in arrays.items() if k not in ("tokens", "targets", "logits", "loss")}
    got = {k: v.shape for k, v in params.items()}
    if got != want:
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        shapes = sorted(k for k in set(want) & set(got) if want[k] != got[k])
        print(f"FAIL parameters: missing {missing}, unexpected {extra}, "
              f"wrong shape {[(k, got[k], want[k]) for k in shapes]}")
        return 1
    P = {k: v.astype(np.float64) for k, v in params.items()}
    tokens, targets = arrays["tokens"].astype(np.int64), arrays["targets"].astype(np.int64)

    ref = forward(c, P, tokens, args.brk)
    weft = arrays["logits"].astype(np.float64)
    scale = np.abs(ref).max()
    diff = np.abs(weft - ref)
    rel = diff.max() / scale
    worst = np.unravel_index(diff.argmax(), diff.shape)
    # Where it goes wrong first: the earliest position whose logits differ.
    per_t = diff.max(axis=(0, 2)) / scale
    first_bad = next((t for t in range(len(per_t)) if per_t[t] > args.tol), None)
    ref_loss = xent(ref, targets)
    weft_loss = float(arrays["loss"][0])
    loss_rel = abs(weft_loss - ref_loss) / abs(ref_loss)

    what = f" (reference broken: {args.brk})" if args.brk else ""
    print(f"logits max rel diff {rel:.1e}, loss rel diff {loss_rel:.1e}{what} (max |logit| {scale:.3g}, "
          f"worst at b,t,v = {tuple(int(i) for i in worst)}; loss {weft_loss:.9g}, reference {ref_loss:.9g})")
    if first_bad is not None:
        print(f"  first position over tolerance: t = {first_bad}; per-position max rel diff: "
              + " ".join(f"{d:.1e}" for d in per_t))
    if rel > args.tol or loss_rel > args.tol or not np.isfinite(rel):
        print(f"FAIL: beyond tolerance {args.tol:g}")
        if not args.brk:  # which known mistake would explain it
            for brk in ("rope", "mask", "kvmap", "eps", "untie"):
                alt = np.abs(weft - forward(c, P, tokens, brk)).max() / scale
                if alt <= args.tol:
                    print(f"  weft matches the reference broken with --break {brk} ({alt:.1e})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
