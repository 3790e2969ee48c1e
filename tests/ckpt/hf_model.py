#!/usr/bin/env python3
"""hf_model.py -- Hugging Face models for tests/ckpt/test_hf.sh, written and
read with Python, numpy and json only (no weft code, no torch):

  write DIR --family gpt2|llama [--dtype F32|BF16|F16] [--shards N] [--seed S]
        [--no-prefix] [--tied-head] [shape options]
      random weights in Hugging Face's layout and names (GPT-2's Conv1D
      weights (in, out), its attn.bias / attn.masked_bias buffers, with or
      without the "transformer." prefix; Llama's model.* names), config.json,
      and model.safetensors or N shards + model.safetensors.index.json.
  logits DIR DUMP [--tol X]
      weft's logits (tests/model/ckpt_logits.c's DUMP of the imported
      checkpoint) against a float64 numpy forward of DIR's own files: GPT-2
      written here from Hugging Face's GPT2LMHeadModel, Llama by
      tests/model/llama_ref.py's forward. max |weft - ref| / max |ref| <= X.
      --break transposes one square weight in the reference: it must fail.
  same DIR EXPORTED
      EXPORTED (weft-ckpt export --format hf) holds the same tensors as DIR:
      byte for byte for F32 sources, value for value (exactly widened) for
      16-bit ones; GPT-2 names with "transformer.", no buffers, no tied head;
      its config.json has DIR's model fields.
  corrupt DIR KIND OUT
      a copy of the one-file model DIR with one fault (see KINDS).

Weights are drawn wider than a training initialisation (matrices N(0, 1/in),
embeddings N(0, 1), norm weights 1 + N(0, 0.2), biases N(0, 0.2)), so a
mistake anywhere moves the logits past the tolerance.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
import llama_ref  # noqa: E402  (the independent Llama forward)

ESIZE = {"F32": 4, "F16": 2, "BF16": 2}


# --- safetensors, independently ---------------------------------------------

def to_bytes(a, dtype):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    u = a.view(np.uint32).astype(np.uint64)  # BF16: round to nearest even
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()


def from_bytes(b, dtype, shape):
    if dtype == "F32":
        a = np.frombuffer(b, "<f4")
    elif dtype == "F16":
        a = np.frombuffer(b, "<f2").astype(np.float32)
    else:
        a = (np.frombuffer(b, "<u2").astype(np.uint32) << 16).view(np.float32)
    return a.reshape(shape)


def write_st(path, tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    hdr, off = {}, 0
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for name, dt, shape, b in tensors:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
    write_raw(path, json.dumps(hdr).encode(), b"".join(t[3] for t in tensors))


def write_raw(path, header, data):
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)


def read_st(path):
    """{name: (dtype, shape, bytes)} and the metadata."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    hdr = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = hdr.pop("__metadata__", None)
    out = {}
    for name, t in hdr.items():
        a, b = t["data_offsets"]
        out[name] = (t["dtype"], tuple(t["shape"]), body[a:b])
    return out, meta


def read_model(d):
    """config.json and every tensor of DIR as (dtype, shape, bytes)."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    tensors = {}
    for f in files:
        t, _ = read_st(os.path.join(d, f))
        tensors.update(t)
    return cfg, tensors


# --- random models in Hugging Face's layout ---------------------------------

def gpt2_tensors(a, rng):
    V, T, C, L = a.vocab, a.context, a.embd, a.layers
    mat = lambda i, o: rng.normal(0, 1 / np.sqrt(i), (i, o))  # Conv1D: (in, out)
    vec = lambda n, w=False: (1.0 if w else 0.0) + rng.normal(0, 0.2, n)
    p = "" if a.no_prefix else "transformer."
    t = {p + "wte.weight": rng.normal(0, 1, (V, C)), p + "wpe.weight": rng.normal(0, 0.5, (T, C))}
    for l in range(L):
        h = f"{p}h.{l}."
        t.update({h + "ln_1.weight": vec(C, True), h + "ln_1.bias": vec(C),
                  h + "attn.c_attn.weight": mat(C, 3 * C), h + "attn.c_attn.bias": vec(3 * C),
                  h + "attn.c_proj.weight": mat(C, C), h + "attn.c_proj.bias": vec(C),
                  h + "ln_2.weight": vec(C, True), h + "ln_2.bias": vec(C),
                  h + "mlp.c_fc.weight": mat(C, 4 * C), h + "mlp.c_fc.bias": vec(4 * C),
                  h + "mlp.c_proj.weight": mat(4 * C, C), h + "mlp.c_proj.bias": vec(C),
                  h + "attn.bias": np.tril(np.ones((T, T)))[None, None], h + "attn.masked_bias": np.array(-1e4)})
    t.update({p + "ln_f.weight": vec(C, True), p + "ln_f.bias": vec(C)})
    if a.tied_head:
        t["lm_head.weight"] = t[p + "wte.weight"]
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": V, "n_positions": T,
           "n_ctx": T, "n_embd": C, "n_layer": L, "n_head": a.heads, "n_inner": None,
           "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "torch_dtype": "float32"}
    return t, cfg


def llama_tensors(a, rng):
    V, C, L, NH, NKV, F = a.vocab, a.embd, a.layers, a.heads, a.kv_heads, a.ffn
    hs = C // NH
    mat = lambda o, i: rng.normal(0, 1 / np.sqrt(i), (o, i))  # nn.Linear: (out, in)
    t = {"model.embed_tokens.weight": rng.normal(0, 1, (V, C))}
    for l in range(L):
        h = f"model.layers.{l}."
        t.update({h + "input_layernorm.weight": 1 + rng.normal(0, 0.2, C),
                  h + "self_attn.q_proj.weight": mat(NH * hs, C), h + "self_attn.k_proj.weight": mat(NKV * hs, C),
                  h + "self_attn.v_proj.weight": mat(NKV * hs, C), h + "self_attn.o_proj.weight": mat(C, NH * hs),
                  h + "post_attention_layernorm.weight": 1 + rng.normal(0, 0.2, C),
                  h + "mlp.gate_proj.weight": mat(F, C), h + "mlp.up_proj.weight": mat(F, C),
                  h + "mlp.down_proj.weight": mat(C, F)})
    t["model.norm.weight"] = 1 + rng.normal(0, 0.2, C)
    if not a.tie:
        t["lm_head.weight"] = rng.normal(0, 1 / np.sqrt(C), (V, C))
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V, "hidden_size": C,
           "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": NH,
           "num_key_value_heads": NKV, "max_position_embeddings": a.context, "rms_norm_eps": a.eps,
           "rope_theta": a.theta, "tie_word_embeddings": bool(a.tie), "hidden_act": "silu",
           "attention_bias": False, "rope_scaling": None, "torch_dtype": "bfloat16"}
    return t, cfg


def cmd_write(a):
    rng = np.random.default_rng(a.seed)
    t, cfg = (gpt2_tensors if a.family == "gpt2" else llama_tensors)(a, rng)
    os.makedirs(a.dir, exist_ok=True)
    json.dump(cfg, open(os.path.join(a.dir, "config.json"), "w"), indent=2)
    names = list(t)
    rng.shuffle(names)  # Hugging Face's order is not weft's
    # Buffers stay F32 (as in the published gpt2 file); weights take --dtype.
    items = [(n, "F32" if "attn.bias" in n or "masked_bias" in n else a.dtype, t[n].shape) for n in names]
    items = [(n, dt, s, to_bytes(t[n], dt)) for n, dt, s in items]
    if a.shards <= 1:
        write_st(os.path.join(a.dir, "model.safetensors"), items, {"format": "pt"})
        return 0
    k = a.shards
    wmap, total = {}, 0
    for i in range(k):
        part = items[i::k]
        fn = f"model-{i + 1:05d}-of-{k:05d}.safetensors"
        write_st(os.path.join(a.dir, fn), part, {"format": "pt"})
        for n, _, _, b in part:
            wmap[n] = fn
            total += len(b)
    json.dump({"metadata": {"total_size": total}, "weight_map": wmap},
              open(os.path.join(a.dir, "model.safetensors.index.json"), "w"), indent=2)
    return 0


# --- the float64 forward -----------------------------------------------------

def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def layernorm(x, w, b, eps=1e-5):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def gpt2_forward(cfg, P, tokens):
    """Hugging Face's GPT2LMHeadModel: Conv1D is x @ W + b with W (in, out)."""
    B, T = tokens.shape
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    hs = C // NH
    p = "transformer." if "transformer.wte.weight" in P else ""
    h = P[p + "wte.weight"][tokens] + P[p + "wpe.weight"][np.arange(T)][None]
    mask = np.triu(np.ones((T, T), dtype=bool), k=1)
    for l in range(L):
        q = f"{p}h.{l}."
        x = layernorm(h, P[q + "ln_1.weight"], P[q + "ln_1.bias"])
        qkv = x @ P[q + "attn.c_attn.weight"] + P[q + "attn.c_attn.bias"]
        split = lambda z: z.reshape(B, T, NH, hs).transpose(0, 2, 1, 3)
        Q, K, Vv = split(qkv[..., :C]), split(qkv[..., C:2 * C]), split(qkv[..., 2 * C:])
        s = np.where(mask, -np.inf, Q @ K.transpose(0, 1, 3, 2) / np.sqrt(hs))
        s = np.exp(s - s.max(-1, keepdims=True))
        att = ((s / s.sum(-1, keepdims=True)) @ Vv).transpose(0, 2, 1, 3).reshape(B, T, C)
        h = h + att @ P[q + "attn.c_proj.weight"] + P[q + "attn.c_proj.bias"]
        x = layernorm(h, P[q + "ln_2.weight"], P[q + "ln_2.bias"])
        h = h + gelu_tanh(x @ P[q + "mlp.c_fc.weight"] + P[q + "mlp.c_fc.bias"]) @ P[q + "mlp.c_proj.weight"] \
            + P[q + "mlp.c_proj.bias"]
    return layernorm(h, P[p + "ln_f.weight"], P[p + "ln_f.bias"]) @ P[p + "wte.weight"].T


def llama_forward(cfg, P, tokens):
    c = {"n_embd": cfg["hidden_size"], "n_head": cfg["num_attention_heads"],
         "n_kv_head": cfg.get("num_key_value_heads", cfg["num_attention_heads"]),
         "n_layer": cfg["num_hidden_layers"], "norm_eps": cfg.get("rms_norm_eps", 1e-6),
         "rope_theta": cfg.get("rope_theta", 10000.0)}
    return llama_ref.forward(c, P, tokens, None)


def read_dump(path):
    data = open(path, "rb").read()
    pos, arrays = data.index(b"\n") + 1, {}
    while pos < len(data):
        nl = data.index(b"\n", pos)
        w = data[pos:nl].decode().split()
        shape = tuple(int(x) for x in w[3:3 + int(w[2])])
        dt = np.dtype({"f32": "<f4", "i32": "<i4"}[w[1]])
        arrays[w[0]] = np.frombuffer(data, dt, int(np.prod(shape)), nl + 1).reshape(shape)
        pos = nl + 1 + int(np.prod(shape)) * dt.itemsize
    return arrays


def cmd_logits(a):
    cfg, tensors = read_model(a.dir)
    P = {n: from_bytes(b, dt, s).astype(np.float64) for n, (dt, s, b) in tensors.items()}
    if a.brk:  # an import that transposed one square matrix too many (or too few) must be caught
        sq = next(n for n in sorted(P) if n.endswith("attn.c_proj.weight") or n.endswith("self_attn.o_proj.weight"))
        P[sq] = P[sq].T.copy()
    d = read_dump(a.dump)
    tokens = d["tokens"].astype(np.int64)
    llama = cfg["model_type"] != "gpt2"
    ref = (llama_forward if llama else gpt2_forward)(cfg, P, tokens)
    weft = d["logits"].astype(np.float64)
    if weft.shape != ref.shape:
        print(f"FAIL: weft's logits have shape {weft.shape}, the reference {ref.shape}")
        return 1
    rel = np.abs(weft - ref).max() / np.abs(ref).max()
    what = " (reference broken: one square weight transposed)" if a.brk else ""
    print(f"logits max rel diff {rel:.1e}{what} (max |logit| {np.abs(ref).max():.3g}, {weft.size} logits)")
    if not rel <= a.tol:
        print(f"FAIL: beyond {a.tol:g}")
        return 1
    return 0


# --- export against the source ------------------------------------------------

def strip(name):
    return name[len("transformer."):] if name.startswith("transformer.") else name


def cmd_same(a):
    cfg, src = read_model(a.dir)
    out, meta = read_st(os.path.join(a.exported, "model.safetensors"))
    gpt2 = cfg["model_type"] == "gpt2"
    buffers = lambda n: n.endswith(".attn.bias") or n.endswith(".attn.masked_bias")
    tied = gpt2 or cfg.get("tie_word_embeddings", False)
    want = {strip(n) if gpt2 else n: v for n, v in src.items()
            if not (gpt2 and buffers(n)) and not (tied and n == "lm_head.weight")}
    if gpt2 and any(not n.startswith("transformer.") for n in out):
        print("FAIL: GPT-2 names without transformer.:", [n for n in out if not n.startswith("transformer.")][:3])
        return 1
    have = {strip(n) if gpt2 else n: v for n, v in out.items()}
    if set(have) != set(want):
        print(f"FAIL: names differ: missing {sorted(set(want) - set(have))[:5]}, "
              f"extra {sorted(set(have) - set(want))[:5]}")
        return 1
    bad = []
    for n, (dt, shape, b) in want.items():
        odt, oshape, ob = have[n]
        if odt != "F32" or oshape != shape:
            bad.append(f"{n}: {odt} {oshape}, source {dt} {shape}")
        elif dt == "F32" and ob != b:
            bad.append(f"{n}: bytes differ")
        elif dt != "F32" and not np.array_equal(from_bytes(ob, "F32", oshape), from_bytes(b, dt, shape)):
            bad.append(f"{n}: values differ")
    ocfg = json.load(open(os.path.join(a.exported, "config.json")))
    keys = (["vocab_size", "n_positions", "n_embd", "n_layer", "n_head"] if gpt2 else
            ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings"])
    bad += [f"config.json {k}: {ocfg.get(k)!r}, source {cfg.get(k)!r}" for k in keys if ocfg.get(k) != cfg.get(k)]
    if ocfg.get("model_type") != cfg["model_type"] or ocfg.get("architectures") != cfg["architectures"]:
        bad.append(f"config.json names {ocfg.get('architectures')} / {ocfg.get('model_type')}")
    if bad:
        print("FAIL: " + "; ".join(bad[:6]))
        return 1
    kind = "byte for byte" if all(v[0] == "F32" for v in want.values()) else "values exactly widened to F32"
    print(f"{len(want)} tensors equal ({kind}), config.json agrees")
    return 0


# --- faults -------------------------------------------------------------------

def header_of(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:], data


def same_size_pair(hdr):
    """Two tensors of the same byte length (for overlapping offsets)."""
    seen = {}
    for n, t in hdr.items():
        if n == "__metadata__":
            continue
        ln = t["data_offsets"][1] - t["data_offsets"][0]
        if ln in seen:
            return seen[ln], n
        seen[ln] = n
    raise SystemExit("no two tensors of one size")


def weight(hdr):
    """A 2-D weight (not a buffer), the last in the data area."""
    cands = [n for n, t in hdr.items() if n != "__metadata__" and len(t["shape"]) == 2]
    return max(cands, key=lambda n: hdr[n]["data_offsets"][1])


KINDS = ["truncated", "header-past-eof", "header-huge", "not-json", "overlap", "out-of-file", "dtype-size",
         "dtype-f64", "shape-bytes", "offsets-bytes", "missing-tensor", "extra-tensor", "arch-unknown", "arch-qwen2",
         "config-shape", "index-unmapped", "index-missing"]


def cmd_corrupt(a):
    shutil.copytree(a.dir, a.out)
    st = os.path.join(a.out, "model.safetensors")
    cfgp = os.path.join(a.out, "config.json")
    k = a.kind
    if k.startswith("index-"):  # a sharded DIR
        ip = os.path.join(a.out, "model.safetensors.index.json")
        idx = json.load(open(ip))
        name = sorted(idx["weight_map"])[0]
        if k == "index-unmapped":  # a shard's tensor the map does not name
            del idx["weight_map"][name]
        else:  # the map names a tensor its shard lacks
            idx["weight_map"]["model.layers.9.mlp.up_proj.weight"] = idx["weight_map"][name]
        json.dump(idx, open(ip, "w"))
        return 0
    hdr, body, data = header_of(st)
    if k == "truncated":
        open(st, "wb").write(data[:len(data) // 2])
    elif k == "header-past-eof":
        open(st, "wb").write(struct.pack("<Q", len(data)) + data[8:])
    elif k == "header-huge":
        open(st, "wb").write(struct.pack("<Q", 2 ** 63) + data[8:])
    elif k == "not-json":
        write_raw(st, json.dumps(hdr).encode()[:-1] + b",}", body)
    elif k == "overlap":
        x, y = same_size_pair(hdr)
        hdr[y]["data_offsets"] = list(hdr[x]["data_offsets"])
        write_raw(st, json.dumps(hdr).encode(), body)
    elif k == "out-of-file":
        n = weight(hdr)
        o = hdr[n]["data_offsets"]
        hdr[n]["data_offsets"] = [o[0] + len(body), o[1] + len(body)]
        write_raw(st, json.dumps(hdr).encode(), body)
    elif k == "dtype-size":  # F32 bytes declared F16: the byte length no longer matches
        n = weight(hdr)
        hdr[n]["dtype"] = "F16" if hdr[n]["dtype"] == "F32" else "F32"
        write_raw(st, json.dumps(hdr).encode(), body)
    elif k == "dtype-f64":
        hdr[weight(hdr)]["dtype"] = "F64"
        write_raw(st, json.dumps(hdr).encode(), body)
    elif k == "shape-bytes":
        n = weight(hdr)
        hdr[n]["shape"] = [hdr[n]["shape"][0] + 1, hdr[n]["shape"][1]]
        write_raw(st, json.dumps(hdr).encode(), body)
    elif k == "offsets-bytes":
        n = weight(hdr)
        hdr[n]["data_offsets"][1] -= 4
        write_raw(st, json.dumps(hdr).encode(), body)
    elif k == "missing-tensor":
        del hdr[weight(hdr)]
        write_raw(st, json.dumps(hdr).encode(), body)
    elif k == "extra-tensor":
        hdr["model.layers.0.self_attn.q_proj.bias"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
        write_raw(st, json.dumps(hdr).encode(), body)
    elif k in ("arch-unknown", "arch-qwen2", "config-shape"):
        cfg = json.load(open(cfgp))
        if k == "arch-unknown":
            cfg["architectures"], cfg["model_type"] = ["BertModel"], "bert"
        elif k == "arch-qwen2":
            cfg["architectures"], cfg["model_type"] = ["Qwen2ForCausalLM"], "qwen2"
        else:
            key = "n_embd" if "n_embd" in cfg else "hidden_size"
            cfg[key] *= 2
        json.dump(cfg, open(cfgp, "w"))
    else:
        raise SystemExit(f"unknown kind {k}")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("dir")
    w.add_argument("--family", choices=["gpt2", "llama"], required=True)
    w.add_argument("--dtype", choices=["F32", "BF16", "F16"], default="F32")
    w.add_argument("--shards", type=int, default=1)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--no-prefix", action="store_true")
    w.add_argument("--tied-head", action="store_true", help="GPT-2: also store lm_head.weight (= wte)")
    w.add_argument("--vocab", type=int, default=256)
    w.add_argument("--context", type=int, default=32)
    w.add_argument("--embd", type=int, default=32)
    w.add_argument("--layers", type=int, default=2)
    w.add_argument("--heads", type=int, default=4)
    w.add_argument("--kv-heads", type=int, default=2)
    w.add_argument("--ffn", type=int, default=80)
    w.add_argument("--tie", type=int, default=0)
    w.add_argument("--eps", type=float, default=1e-6)
    w.add_argument("--theta", type=float, default=10000.0)
    lg = sub.add_parser("logits")
    lg.add_argument("dir")
    lg.add_argument("dump")
    lg.add_argument("--tol", type=float, default=1e-5)
    lg.add_argument("--break", dest="brk", action="store_true",
                    help="transpose the first attention output projection in the reference: must fail")
    sm = sub.add_parser("same")
    sm.add_argument("dir")
    sm.add_argument("exported")
    co = sub.add_parser("corrupt")
    co.add_argument("dir")
    co.add_argument("kind", choices=KINDS)
    co.add_argument("out")
    a = ap.parse_args()
    return {"write": cmd_write, "logits": cmd_logits, "same": cmd_same, "corrupt": cmd_corrupt}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
