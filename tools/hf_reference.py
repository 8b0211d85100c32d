#!/usr/bin/python3
"""Tiny random Hugging Face LLaMA-layout models and their reference logits, for `t6 import hf`.

Writes, for each case, a folder as `save_pretrained` would (config.json, model.safetensors or two
shards with model.safetensors.index.json, tokenizer.json) plus reference.safetensors: the token
ids ("tokens", I32 [T]) and the logits ("logits", F32 [T, V]) of the forward pass below, computed
in float64 from the weights exactly as stored (bf16/f16 values widened).

The forward pass follows transformers' modeling_llama.py (and modeling_qwen2.py for the q/k/v
biases), written out in plain PyTorch (Debian's python3-torch; no transformers package):
  h = embed(ids); per layer: h += o_proj(attn(rmsnorm(h) * w1)); h += down(silu(gate(x)) * up(x))
  with x = rmsnorm(h) * w2; logits = lm_head(rmsnorm(h) * wf)   (lm_head = embed when tied)
  RoPE: q * cos + rotate_half(q) * sin, rotate_half(x) = cat(-x[d/2:], x[:d/2]),
  inv_freq = 1 / theta^(arange(0, d, 2) / d) (float32, then rope_scaling), angle = pos * inv_freq.
  GQA: KV head j serves query heads j*g .. j*g+g-1 (repeat_kv). Causal softmax(q k^T / sqrt(d)).

Also writes two hand-made tokenizers and the ids this script's own BPE gives for a few strings
(tokenizers.json): "byte_level" (GPT-2 / SmolLM / Qwen style: ByteLevel pre-tokenizer and
byte-to-unicode alphabet) and "sentencepiece" (Llama / TinyLlama style: "▁" for spaces, a
prepended "▁", byte fallback to <0xXX> tokens).

Usage: hf_reference.py OUT_DIR [CASE ...]   (cases: see CASES; default all)
"""
import json
import math
import os
import struct
import sys

import torch

CASES = {
    # name: (n_heads, n_kv_heads, tied, dtype, shards, extra)
    "mha_tied": (4, 4, True, "F32", 1, {}),
    "mha_untied": (4, 4, False, "BF16", 2, {"rope_scaling": {"type": "linear", "factor": 2.0}}),
    "gqa_tied": (4, 2, True, "F16", 1, {"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                                        "low_freq_factor": 1.0,
                                                        "high_freq_factor": 4.0,
                                                        "original_max_position_embeddings": 16}}),
    "gqa_untied": (4, 2, False, "F32", 2, {"rope_theta": 500000.0, "mistral": True}),
    "qwen2_bias": (4, 2, True, "F32", 1, {"qwen2": True, "rope_theta": 1000000.0}),
}

HIDDEN, INTER, LAYERS, HEAD_DIM, VOCAB, SEQ = 64, 96, 2, 16, 320, 24


# ---- safetensors (the format is a JSON header and raw little-endian data) ----

def tensor_bytes(t, dtype):
    if dtype == "F32":
        return t.to(torch.float32).contiguous().numpy().tobytes()
    if dtype == "F16":
        return t.to(torch.float16).contiguous().numpy().tobytes()
    if dtype == "BF16":
        return t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
    if dtype == "I32":
        return t.to(torch.int32).contiguous().numpy().tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        dt = "I32" if t.dtype == torch.int32 else dtype
        b = tensor_bytes(t, dt)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def as_stored(t, dtype):
    """The float64 values a reader gets back from `t` stored as `dtype`."""
    if dtype == "F16":
        t = t.to(torch.float16)
    elif dtype == "BF16":
        t = t.to(torch.bfloat16)
    return t.to(torch.float32).to(torch.float64)


# ---- the model ----

def rope_inv_freq(cfg, dim):
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    sc = cfg.get("rope_scaling")
    if not sc:
        return inv
    if sc.get("rope_type", sc.get("type")) == "linear":
        return inv / sc["factor"]
    # llama3 (transformers' _compute_llama3_parameters)
    factor, lo, hi = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"]
    old = sc["original_max_position_embeddings"]
    low_wl, high_wl = old / lo, old / hi
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wl, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
    return torch.where(medium, smoothed, inv_l)


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def forward(cfg, W, ids):
    T = ids.shape[0]
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    inv = rope_inv_freq(cfg, D)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]  # float32, like HF
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos().double(), emb.sin().double()
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    h = W["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rmsnorm(h, W[p + "input_layernorm.weight"], eps)

        def proj(n):
            y = x @ W[p + f"self_attn.{n}_proj.weight"].T
            if p + f"self_attn.{n}_proj.bias" in W:
                y = y + W[p + f"self_attn.{n}_proj.bias"]
            return y

        q = proj("q").view(T, H, D).transpose(0, 1)
        k = proj("k").view(T, KV, D).transpose(0, 1)
        v = proj("v").view(T, KV, D).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        g = H // KV
        k = k.repeat_interleave(g, dim=0)
        v = v.repeat_interleave(g, dim=0)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D) + mask, dim=-1) @ v
        h = h + a.transpose(0, 1).reshape(T, H * D) @ W[p + "self_attn.o_proj.weight"].T
        x = rmsnorm(h, W[p + "post_attention_layernorm.weight"], eps)
        gate = x @ W[p + "mlp.gate_proj.weight"].T
        up = x @ W[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(gate) * up) @ W[p + "mlp.down_proj.weight"].T
    h = rmsnorm(h, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return h @ head.T


def make_case(out, name):
    H, KV, tied, dtype, shards, extra = CASES[name]
    qwen = extra.get("qwen2", False)
    mistral = extra.get("mistral", False)
    cfg = {
        "architectures": ["Qwen2ForCausalLM" if qwen else "MistralForCausalLM" if mistral
                          else "LlamaForCausalLM"],
        "model_type": "qwen2" if qwen else "mistral" if mistral else "llama",
        "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": LAYERS,
        "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": HEAD_DIM,
        "rms_norm_eps": 1e-5, "rope_theta": extra.get("rope_theta", 10000.0),
        "tie_word_embeddings": tied, "vocab_size": VOCAB, "max_position_embeddings": 64,
        "hidden_act": "silu", "torch_dtype": {"F32": "float32", "BF16": "bfloat16",
                                              "F16": "float16"}[dtype],
        "bos_token_id": 1, "eos_token_id": 2, "attention_bias": False,
    }
    if "rope_scaling" in extra:
        cfg["rope_scaling"] = extra["rope_scaling"]
    if mistral:
        cfg["sliding_window"] = 4096  # longer than the context: plain causal attention
    if qwen:
        del cfg["head_dim"], cfg["attention_bias"]  # Qwen2 derives head_dim = hidden / heads
        cfg["use_sliding_window"] = False
    gen = torch.Generator().manual_seed(sum(map(ord, name)))

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=gen) * scale

    raw = {"model.embed_tokens.weight": rnd(VOCAB, HIDDEN, scale=1.0),
           "model.norm.weight": 1 + rnd(HIDDEN, scale=0.3)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        raw[p + "input_layernorm.weight"] = 1 + rnd(HIDDEN, scale=0.3)
        raw[p + "post_attention_layernorm.weight"] = 1 + rnd(HIDDEN, scale=0.3)
        raw[p + "self_attn.q_proj.weight"] = rnd(H * HEAD_DIM, HIDDEN)
        raw[p + "self_attn.k_proj.weight"] = rnd(KV * HEAD_DIM, HIDDEN)
        raw[p + "self_attn.v_proj.weight"] = rnd(KV * HEAD_DIM, HIDDEN)
        if qwen:
            raw[p + "self_attn.q_proj.bias"] = rnd(H * HEAD_DIM, scale=0.5)
            raw[p + "self_attn.k_proj.bias"] = rnd(KV * HEAD_DIM, scale=0.5)
            raw[p + "self_attn.v_proj.bias"] = rnd(KV * HEAD_DIM, scale=0.5)
        raw[p + "self_attn.o_proj.weight"] = rnd(HIDDEN, H * HEAD_DIM)
        raw[p + "mlp.gate_proj.weight"] = rnd(INTER, HIDDEN)
        raw[p + "mlp.up_proj.weight"] = rnd(INTER, HIDDEN)
        raw[p + "mlp.down_proj.weight"] = rnd(HIDDEN, INTER)
    if not tied:
        raw["lm_head.weight"] = rnd(VOCAB, HIDDEN, scale=0.5)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    names = list(raw)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), raw, dtype, {"format": "pt"})
    else:
        half = len(names) // 2
        parts = [names[:half], names[half:]]
        weight_map = {}
        for s, part in enumerate(parts):
            fn = f"model-{s + 1:05d}-of-{len(parts):05d}.safetensors"
            write_safetensors(os.path.join(d, fn), {n: raw[n] for n in part}, dtype,
                              {"format": "pt"})
            weight_map.update({n: fn for n in part})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=2)
    tok = byte_level_tokenizer() if qwen or name.startswith("mha") else sentencepiece_tokenizer()
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    W = {n: as_stored(t, dtype) for n, t in raw.items()}
    cfg_eff = dict(cfg)
    cfg_eff.setdefault("head_dim", HIDDEN // H)
    ids = torch.randint(0, VOCAB, (SEQ,), generator=gen)
    logits = forward(cfg_eff, W, ids)
    write_safetensors(os.path.join(d, "reference.safetensors"),
                      {"tokens": ids.to(torch.int32), "logits": logits.float()}, "F32")


# ---- tokenizers: two hand-made tokenizer.json files and a plain BPE to compute their ids ----

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ w", "Ġw o", "r l", "Ġwo rl",
               "Ġworl d", "l l", "e ll", "h ell", "hell o", "Ã ©"]
SP_MERGES = ["▁ t", "h e", "▁t he", "i n", "▁ a", "e r", "o n", "▁ w", "▁w o", "r l", "▁wo rl",
             "▁worl d", "l l", "e ll", "h ell", "hell o", "▁ h", "▁h ell", "▁hell o"]


def byte_level_tokenizer():
    b2u = bytes_to_unicode()
    vocab = {}
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    for m in BYTE_MERGES:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    added = [{"id": len(vocab), "content": "<|endoftext|>", "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True,
                               "trim_offsets": False, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                        "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": "", "end_of_word_suffix": "",
                      "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                      "merges": BYTE_MERGES}}


def sentencepiece_tokenizer():
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in "▁abcdefghijklmnopqrstuvwxyzTHW,.!é":
        vocab.setdefault(ch, len(vocab))
    for m in SP_MERGES:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for c, i in
             (("<unk>", 0), ("<s>", 1), ("</s>", 2))]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
            "pre_tokenizer": None,
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [], "special_tokens": {}},
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": True, "byte_fallback": True, "vocab": vocab,
                      "merges": SP_MERGES}}


def bpe(symbols, merges):
    """Merges the adjacent pair of lowest rank (leftmost first) until none is a merge."""
    rank = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
    s = list(symbols)
    while True:
        best = None
        for i in range(len(s) - 1):
            r = rank.get((s[i], s[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return s
        i = best[1]
        s[i:i + 2] = [s[i] + s[i + 1]]


def gpt2_pieces(text):
    """GPT-2's pattern for the ASCII strings used here (letters, digits, spaces, punctuation)."""
    import re
    pat = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")
    return pat.findall(text)


def encode_byte_level(tok, text):
    b2u = bytes_to_unicode()
    ids = []
    for piece in gpt2_pieces(text):
        syms = [b2u[b] for b in piece.encode()]
        ids += [tok["model"]["vocab"][s] for s in bpe(syms, tok["model"]["merges"])]
    return ids


def encode_sentencepiece(tok, text):
    vocab = tok["model"]["vocab"]
    norm = "▁" + text.replace(" ", "▁")
    ids = []
    for s in bpe(list(norm), tok["model"]["merges"]):
        if s in vocab:
            ids.append(vocab[s])
        else:  # byte fallback
            ids += [vocab[f"<0x{b:02X}>"] for b in s.encode()]
    return ids


STRINGS = ["hello world", "the cat sat on the mat", "Hello  there, world!", "café naïve",
           "in the water", "x"]


def write_tokenizers(out):
    res = {}
    for kind, tok, enc in (("byte_level", byte_level_tokenizer(), encode_byte_level),
                           ("sentencepiece", sentencepiece_tokenizer(), encode_sentencepiece)):
        path = os.path.join(out, f"{kind}.tokenizer.json")
        with open(path, "w") as f:
            json.dump(tok, f, ensure_ascii=False, indent=1)
        res[kind] = {"path": path, "cases": [{"text": s, "ids": enc(tok, s)} for s in STRINGS]}
    with open(os.path.join(out, "tokenizers.json"), "w") as f:
        json.dump(res, f, ensure_ascii=False, indent=1)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name in sys.argv[2:] or list(CASES):
        if name not in CASES:
            sys.exit(f"hf_reference.py: unknown case {name!r}; cases: {', '.join(CASES)}")
        make_case(out, name)
    write_tokenizers(out)


if __name__ == "__main__":
    main()
