#!/usr/bin/env python3
"""Converts what the official T6 / TPA training code writes into a t6 checkpoint.

Input (no flags needed):
  - the official train_adam.py output folder: config.json (the official GPTConfig as Hugging Face
    writes it, "model_type": "gpt2" for every kind), pytorch_model.bin (torch.save of the state
    dict, official parameter names) and optimizer.pt (a dict: "optimizer" = AdamW state_dict,
    "iter_num", "best_val_loss"); or one of its checkpoint-<iter>/ subfolders (same three files).
    A folder holding only checkpoint-<iter>/ subfolders imports the highest <iter>;
  - ckpt.pt of nanoGPT-style scripts (a dict with "model", "model_args", "config", "iter_num"),
    or a folder holding it.

The attention kind (T6, T6_kvonly, llama-mha, llama-gqa, llama-mla) and every dimension are read
off the tensor names and shapes, then cross-checked against config.json / model_args: any
contradiction, unknown or missing tensor, or unreadable file is a one-line error and nothing is
written. --model-type is an override that must agree with the tensors (it can only choose
llama-gqa with group_size 1 over llama-mha, the one case the shapes leave open).

Output: one safetensors file (float32 tensors, sorted by name; the tied lm_head.weight stored once
as transformer.wte.weight) with t6's metadata: "format": "t6", "format_version": "1", "config":
the official GPTConfig JSON with the inferred "model_type" and dimensions (t6 reads that form; see
src/model/config.cpp), "tied", "tokenizer" (see --tokenizer), "source", "iter_num",
"best_val_loss", "official_config" (config.json / model_args as found), "official_train_config"
(ckpt.pt's "config", when present). When the input has AdamW state (optimizer.pt, or ckpt.pt's
"optimizer"), it is also written next to OUT as OUT-stem.adamw.safetensors in t6's optimizer
format ("t6-adamw": exp_avg.<param>, exp_avg_sq.<param>, metadata adam_step).

Tokenizer: vocabularies of 50257..50304 ids are GPT-2's (the official code trains on GPT-2
tokens); otherwise --tokenizer names it: gpt2, bytes, none, a `t6 tokenizer train` file, a
`t6 prepare` meta.json (or its folder), or nanoGPT's char-level meta.pkl (or its folder).

Needs PyTorch only to read the pickles: Debian's python3-torch (scripts/install-deps.sh import),
run with /usr/bin/python3. The safetensors files are written by the small writer below.

Usage: /usr/bin/python3 tools/import_official.py OUT_DIR|CKPT [-o OUT.safetensors]
           [--model-type T] [--tokenizer NAME|FILE]
"""
import argparse
import json
import math
import os
import re
import struct
import sys

MODEL_TYPES = ["T6", "T6_kvonly", "llama", "llama-gqa", "llama-mha", "llama-mla"]
EMBEDDING, TIED_ALIAS = "transformer.wte.weight", "lm_head.weight"
GPT2_SPEC = {"kind": "gpt2", "vocab_size": 50257, "eot": 50256}
# Non-parameter buffers some official modules register (RoPE caches, causal masks).
BUFFER_SUFFIXES = ("inv_freq", "cos_cached", "sin_cached", ".attn.bias", ".attn.masked_bias")
# Keys of the official GPTConfig that do not change the computation (docs/numerics.md §7).
UNUSED_KEYS = ("bias", "dropout", "scale_attn_by_inverse_layer_idx", "using_groupnorm")

# Per-layer tensors of each kind (suffixes after "transformer.h.<i>."), in the official modules'
# registration (named_parameters()) order: tools/export_official.py writes them in this order.
MLP = ["mlp.c_fc1.weight", "mlp.c_fc2.weight", "mlp.c_proj.weight"]
LAYER_TENSORS = {
    "T6": ["attn.c_qkv.W_A_q.weight", "attn.c_qkv.W_A_k.weight", "attn.c_qkv.W_A_v.weight",
           "attn.c_qkv.W_B_q.weight", "attn.c_qkv.W_B_k.weight", "attn.c_qkv.W_B_v.weight",
           "attn.c_proj.weight"] + MLP,
    "T6_kvonly": ["attn.c_qkv.c_q.weight", "attn.c_qkv.W_A_k.weight", "attn.c_qkv.W_A_v.weight",
                  "attn.c_qkv.W_B_k.weight", "attn.c_qkv.W_B_v.weight", "attn.c_proj.weight"] + MLP,
    "llama-mha": ["attn.c_q.weight", "attn.c_k.weight", "attn.c_v.weight",
                  "attn.c_proj.weight"] + MLP,
    "llama-mla": ["attn.q_a_proj.weight", "attn.q_a_layernorm.weight", "attn.q_b_proj.weight",
                  "attn.kv_a_layernorm.weight", "attn.kv_a_proj_with_mqa.weight",
                  "attn.kv_b_proj.weight", "attn.c_proj.weight"] + MLP,
}
LAYER_TENSORS["llama-gqa"] = LAYER_TENSORS["llama-mha"]


class ImportError_(Exception):
    pass


def die(msg):
    raise ImportError_(msg)


def need_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        die("PyTorch is needed to read the checkpoint: run scripts/install-deps.sh import "
            "(Debian's python3-torch), then run this script with /usr/bin/python3")
    import torch
    return torch


def torch_load(path):
    torch = need_torch()
    try:
        return torch.load(path, map_location="cpu")
    except Exception as e:  # truncated or not a torch file: torch raises many kinds
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        die(f"{path}: not a readable torch.save file (truncated or corrupt?): {first}")


def read_json(path):
    try:
        with open(path) as f:
            j = json.load(f)
    except (OSError, ValueError) as e:
        die(f"{path}: not valid JSON ({str(e).splitlines()[0]})")
    if not isinstance(j, dict):
        die(f"{path}: expected a JSON object")
    return j


# ---- reading the input -------------------------------------------------------------------------

def checkpoint_iters(folder):
    out = []
    for name in os.listdir(folder):
        m = re.fullmatch(r"checkpoint-(\d+)", name)
        if m and os.path.isdir(os.path.join(folder, name)):
            out.append((int(m.group(1)), os.path.join(folder, name)))
    return sorted(out)


def load_source(path):
    """Returns a dict: sd (state dict), cfg (official config or {}), cfg_where, iter_num,
    best_val_loss, optim (AdamW state_dict or None), train_cfg (or None)."""
    if not os.path.exists(path):
        die(f"{path}: no such file or folder")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "pytorch_model.bin")):
            return load_hf_folder(path)
        if os.path.exists(os.path.join(path, "ckpt.pt")):
            return load_ckpt_pt(os.path.join(path, "ckpt.pt"))
        its = checkpoint_iters(path)
        if its:
            print(f"import_official: {path} has no pytorch_model.bin; importing the newest "
                  f"save, {os.path.basename(its[-1][1])}/", file=sys.stderr)
            return load_hf_folder(its[-1][1])
        die(f"{path}: folder has neither pytorch_model.bin (official train_adam.py output) nor "
            f"ckpt.pt nor checkpoint-<iter>/ subfolders")
    return load_ckpt_pt(path)


def load_hf_folder(folder):
    cfg_path = os.path.join(folder, "config.json")
    if not os.path.exists(cfg_path):
        die(f"{folder}: pytorch_model.bin without config.json")
    cfg = read_json(cfg_path)
    sd = torch_load(os.path.join(folder, "pytorch_model.bin"))
    if not isinstance(sd, dict):
        die(f"{folder}/pytorch_model.bin: not a state dict (a dict of tensors)")
    src = {"sd": sd, "cfg": cfg, "cfg_where": cfg_path, "iter_num": None, "best_val_loss": None,
           "optim": None, "train_cfg": None, "sd_where": os.path.join(folder, "pytorch_model.bin")}
    opt_path = os.path.join(folder, "optimizer.pt")
    if os.path.exists(opt_path):
        o = torch_load(opt_path)
        if not isinstance(o, dict):
            die(f"{opt_path}: expected a dict with 'optimizer', 'iter_num', 'best_val_loss'")
        src["iter_num"] = o.get("iter_num")
        src["best_val_loss"] = o.get("best_val_loss")
        src["optim"] = o.get("optimizer")
        src["optim_where"] = opt_path
    return src


def load_ckpt_pt(path):
    ckpt = torch_load(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        die(f"{path}: not an official checkpoint (a dict with 'model' and 'model_args')")
    cfg = dict(ckpt.get("model_args") or {})
    train_cfg = ckpt.get("config")
    if "model_type" not in cfg and isinstance(train_cfg, dict) and "model_type" in train_cfg:
        cfg["model_type"] = train_cfg["model_type"]
    return {"sd": ckpt["model"], "cfg": cfg, "cfg_where": f"{path} (model_args)",
            "iter_num": ckpt.get("iter_num"), "best_val_loss": ckpt.get("best_val_loss"),
            "optim": ckpt.get("optimizer"), "optim_where": f"{path} (optimizer)",
            "train_cfg": train_cfg if isinstance(train_cfg, dict) else None, "sd_where": path}


def clean_state_dict(sd, where):
    """float32 tensors by official name, without torch.compile's prefix, buffers and the tied
    alias. Also returns the parameter order (the order AdamW's state indices refer to)."""
    torch = need_torch()
    out, order = {}, []
    for name, t in sd.items():
        if not isinstance(name, str):
            die(f"{where}: a state dict key is not a string ({name!r})")
        if name.startswith("_orig_mod."):
            name = name[len("_orig_mod."):]
        if not torch.is_tensor(t):
            die(f"{where}: '{name}' is not a tensor")
        if name.endswith(BUFFER_SUFFIXES):
            continue
        if not t.is_floating_point():
            die(f"{where}: tensor '{name}' has dtype {t.dtype}, expected a float type")
        out[name] = t.detach().to(torch.float32).contiguous().cpu()
        if name != TIED_ALIAS:
            order.append(name)
    if EMBEDDING not in out:
        die(f"{where}: no tensor '{EMBEDDING}' (not an official GPT state dict)")
    if TIED_ALIAS in out:
        if not torch.equal(out[TIED_ALIAS], out[EMBEDDING]):
            die(f"{where}: lm_head.weight differs from transformer.wte.weight, but t6 models tie "
                f"them")
        del out[TIED_ALIAS]
    return out, order


# ---- the kind and the dimensions, from the tensors ---------------------------------------------

def shape_of(tensors, name):
    return list(tensors[name].shape)


def exact_sqrt(x):
    r = int(round(math.sqrt(x)))
    return r if r * r == x else None


def infer_config(tensors, where, cfg, cfg_where, override):
    """The official GPTConfig of the tensors: kind and every dimension; cross-checked against cfg
    (config.json / model_args) and the --model-type override."""
    def bad(msg):
        die(f"{where}: {msg}")

    emb = shape_of(tensors, EMBEDDING)
    if len(emb) != 2:
        bad(f"{EMBEDDING} has shape {emb}, expected [vocab_size, n_embd]")
    V, C = emb
    layers = set()
    for name in tensors:
        m = re.match(r"transformer\.h\.(\d+)\.", name)
        if m:
            layers.add(int(m.group(1)))
        elif name != EMBEDDING:
            bad(f"unknown tensor '{name}' (not a parameter of an official T6/llama model)")
    L = len(layers)
    if L == 0 or layers != set(range(L)):
        bad(f"layers {sorted(layers)} are not 0..n-1")
    h0 = "transformer.h.0."
    have = lambda s: (h0 + s) in tensors  # noqa: E731
    if have("attn.c_qkv.W_A_q.weight"):
        kind = "T6"
    elif have("attn.c_qkv.c_q.weight"):
        kind = "T6_kvonly"
    elif have("attn.q_a_proj.weight"):
        kind = "llama-mla"
    elif have("attn.c_q.weight") and have("attn.c_k.weight"):
        kind = "llama-mha"  # or llama-gqa: decided from the shapes below
    else:
        bad("cannot tell the attention kind: layer 0 has none of attn.c_qkv.W_A_q (T6), "
            "attn.c_qkv.c_q (T6_kvonly), attn.c_q (llama-mha/gqa), attn.q_a_proj (llama-mla)")

    # Every tensor of every layer, nothing else.
    expected = {EMBEDDING}
    for i in range(L):
        for s in LAYER_TENSORS[kind]:
            expected.add(f"transformer.h.{i}.{s}")
    for name in sorted(tensors):
        if name not in expected:
            bad(f"unknown tensor '{name}' for a {kind} model")
    for name in sorted(expected):
        if name not in tensors:
            bad(f"missing tensor '{name}' of a {kind} model")

    rows = lambda s: shape_of(tensors, h0 + s)[0]  # noqa: E731
    cols = lambda s: shape_of(tensors, h0 + s)[-1]  # noqa: E731
    inferred = {"vocab_size": V, "n_embd": C, "n_layer": L}
    # Keys config.json must supply because the shapes cannot (checked for presence below).
    from_cfg = []
    if kind == "T6":
        P = cols("attn.c_proj.weight")  # n_head * head_dim
        qr = exact_sqrt(rows("attn.c_qkv.W_A_q.weight") * rows("attn.c_qkv.W_B_q.weight") // P)
        r = exact_sqrt(rows("attn.c_qkv.W_A_k.weight") * rows("attn.c_qkv.W_B_k.weight") // P)
        if not qr or not r or rows("attn.c_qkv.W_A_q.weight") % qr:
            bad("the W_A/W_B factor shapes of layer 0 do not fit n_head*q_rank, q_rank*head_dim")
        H = rows("attn.c_qkv.W_A_q.weight") // qr
        inferred.update(n_head=H, head_dim=P // H, q_rank=qr, rank=r)
    elif kind == "T6_kvonly":
        P = rows("attn.c_qkv.c_q.weight")
        r = exact_sqrt(rows("attn.c_qkv.W_A_k.weight") * rows("attn.c_qkv.W_B_k.weight") // P)
        if not r or rows("attn.c_qkv.W_A_k.weight") % r:
            bad("the W_A_k/W_B_k factor shapes of layer 0 do not fit n_head*rank, rank*head_dim")
        H = rows("attn.c_qkv.W_A_k.weight") // r
        inferred.update(n_head=H, head_dim=P // H, rank=r)
    elif kind == "llama-mla":
        ql, kvl = rows("attn.q_a_proj.weight"), cols("attn.kv_b_proj.weight")
        rope = rows("attn.kv_a_proj_with_mqa.weight") - kvl
        qb, kvb, pc = rows("attn.q_b_proj.weight"), rows("attn.kv_b_proj.weight"), cols(
            "attn.c_proj.weight")
        # q_b = H*(nope+rope), kv_b = H*(nope+v), c_proj in = H*v  =>  H*rope = q_b - kv_b + c_proj
        if rope <= 0 or (qb - kvb + pc) % rope:
            bad("the MLA projection shapes of layer 0 do not fit the official llama-mla layout")
        H = (qb - kvb + pc) // rope
        if H <= 0 or pc % H or (kvb - pc) % H:
            bad("the MLA projection shapes of layer 0 do not fit the official llama-mla layout")
        inferred.update(n_head=H, head_dim=(kvb - pc) // H, v_head_dim=pc // H,
                        q_lora_rank=ql, kv_lora_rank=kvl, qk_rope_head_dim=rope)
    else:
        qrows, krows = rows("attn.c_q.weight"), rows("attn.c_k.weight")
        if krows != rows("attn.c_v.weight") or qrows % krows:
            bad(f"attn.c_q rows {qrows}, c_k rows {krows}, c_v rows "
                f"{rows('attn.c_v.weight')} do not fit n_head*head_dim, n_kv_head*head_dim")
        group = qrows // krows
        want_gqa = override == "llama-gqa" or (override is None and cfg.get("model_type") ==
                                               "llama-gqa")
        if group > 1 or qrows != C or want_gqa:
            kind = "llama-gqa"
            inferred["group_size"] = group
            from_cfg = ["n_head"]
            if "n_head" in cfg:
                H = cfg["n_head"]
                if not isinstance(H, int) or H <= 0 or qrows % H:
                    die(f"{cfg_where}: n_head {H!r} does not divide attn.c_q's {qrows} rows")
                inferred.update(n_head=H, head_dim=qrows // H)
        else:
            from_cfg = ["n_head"]  # MHA: head_dim = n_embd // n_head (docs/numerics.md §15)
            if "n_head" in cfg:
                H = cfg["n_head"]
                if not isinstance(H, int) or H <= 0 or C % H:
                    die(f"{cfg_where}: n_head {H!r} does not divide n_embd {C}")
                inferred["n_head"] = H
    for key in from_cfg:
        if key not in cfg:
            die(f"{cfg_where}: no '{key}', and the {kind} tensor shapes do not determine it")

    # Shapes of every tensor against the dimensions (catches layers that disagree with layer 0).
    H, hid = inferred["n_head"], math.floor(8 / 3 * C)
    want = {"mlp.c_fc1.weight": [hid, C], "mlp.c_fc2.weight": [hid, C], "mlp.c_proj.weight": [C, hid]}
    if kind in ("T6", "T6_kvonly"):
        hd, r = inferred["head_dim"], inferred["rank"]
        want.update({"attn.c_qkv.W_A_k.weight": [H * r, C], "attn.c_qkv.W_A_v.weight": [H * r, C],
                     "attn.c_qkv.W_B_k.weight": [r * hd, C], "attn.c_qkv.W_B_v.weight": [r * hd, C],
                     "attn.c_proj.weight": [C, H * hd]})
        if kind == "T6":
            qr = inferred["q_rank"]
            want.update({"attn.c_qkv.W_A_q.weight": [H * qr, C],
                         "attn.c_qkv.W_B_q.weight": [qr * hd, C]})
        else:
            want["attn.c_qkv.c_q.weight"] = [H * hd, C]
    elif kind == "llama-mla":
        d = inferred
        nope, rope, v = d["head_dim"], d["qk_rope_head_dim"], d["v_head_dim"]
        want.update({"attn.q_a_proj.weight": [d["q_lora_rank"], C],
                     "attn.q_a_layernorm.weight": [d["q_lora_rank"]],
                     "attn.q_b_proj.weight": [H * (nope + rope), d["q_lora_rank"]],
                     "attn.kv_a_proj_with_mqa.weight": [d["kv_lora_rank"] + rope, C],
                     "attn.kv_a_layernorm.weight": [d["kv_lora_rank"]],
                     "attn.kv_b_proj.weight": [H * (nope + v), d["kv_lora_rank"]],
                     "attn.c_proj.weight": [C, H * v]})
    else:
        qrows, krows = rows("attn.c_q.weight"), rows("attn.c_k.weight")
        want.update({"attn.c_q.weight": [qrows, C], "attn.c_k.weight": [krows, C],
                     "attn.c_v.weight": [krows, C], "attn.c_proj.weight": [C, qrows]})
    for i in range(L):
        for s, shp in want.items():
            name = f"transformer.h.{i}.{s}"
            if shape_of(tensors, name) != shp:
                bad(f"tensor '{name}' has shape {shape_of(tensors, name)}, expected {shp} for "
                    f"the {kind} model the other tensors describe")

    # The model_type: config.json's "gpt2" (what every official run writes) says nothing; an
    # official name there, or --model-type, must agree with the tensors.
    claims = [(override, "--model-type")] if override else [(cfg.get("model_type"), cfg_where)]
    for claim, src in claims:
        if claim is None or (claim == "gpt2" and src != "--model-type"):
            continue
        if claim not in MODEL_TYPES:
            die(f"{src}: model_type '{claim}' is not one of {', '.join(MODEL_TYPES)}")
        same = claim == kind or (claim == "llama" and kind == "llama-mha")
        if not same:
            die(f"{src}: model_type '{claim}' contradicts the tensors, which are a {kind} model "
                f"(layer 0 has {LAYER_TENSORS[kind][0]})")

    # Cross-check every dimension config.json states. Keys the kind's model file does not read
    # (T6_kvonly's q_rank, llama's ranks, MHA's head_dim) are left as they are.
    for key, val in inferred.items():
        if key in cfg and cfg[key] != val:
            die(f"{cfg_where}: {key} = {cfg[key]!r} contradicts the tensors, which give {val} "
                f"({where})")
    out = {k: v for k, v in cfg.items() if k in UNUSED_KEYS or k in ("block_size",) or
           (k in ("q_rank", "rank", "head_dim", "group_size") and k not in inferred)}
    if "block_size" not in out:
        die(f"{cfg_where}: no 'block_size' (the context length; the tensors do not give it)")
    if kind != "llama-gqa":
        out.pop("group_size", None)
    out.update(inferred)
    out["model_type"] = kind
    return dict(sorted(out.items()))


# ---- tokenizer ---------------------------------------------------------------------------------

def tokenizer_spec(arg, vocab_size):
    """The tokenizer JSON spec to record, or None."""
    if arg is None:
        if 50257 <= vocab_size <= 50304:
            return GPT2_SPEC
        if vocab_size != 256:  # t6 reads a 256-id vocabulary as bytes
            print(f"import_official: note: a vocabulary of {vocab_size} ids is not GPT-2's; no "
                  f"tokenizer recorded (pass --tokenizer FILE to record one)", file=sys.stderr)
        return None
    if arg == "none":
        return None
    if arg == "gpt2":
        spec = GPT2_SPEC
    elif arg == "bytes":
        spec = {"kind": "bytes"}
    else:
        path = arg
        if os.path.isdir(path):
            for name in ("meta.json", "meta.pkl"):
                if os.path.exists(os.path.join(path, name)):
                    path = os.path.join(path, name)
                    break
            else:
                die(f"--tokenizer {arg}: folder has neither meta.json (t6 prepare) nor meta.pkl "
                    f"(nanoGPT)")
        if not os.path.isfile(path):
            die(f"--tokenizer {arg}: neither gpt2, bytes, none nor a file or folder")
        if path.endswith(".pkl"):
            spec = char_spec_from_meta_pkl(path)
        else:
            j = read_json(path)
            spec = j["tokenizer"] if "tokenizer" in j else j
            if isinstance(spec, str) and spec in ("gpt2", "bytes"):
                spec = GPT2_SPEC if spec == "gpt2" else {"kind": "bytes"}
            if not isinstance(spec, dict) or not (spec.get("format") in ("t6-bpe", "t6-char") or
                                                  spec.get("kind") in ("gpt2", "bytes")):
                die(f"{path}: not a t6 tokenizer (format t6-bpe / t6-char, kind gpt2 / bytes) "
                    f"nor a t6 prepare meta.json")
    n = 256 if spec.get("kind") == "bytes" else spec.get("vocab_size")
    if isinstance(n, int) and n > vocab_size:
        die(f"--tokenizer {arg}: {n} ids, more than the model's vocabulary of {vocab_size}")
    return spec


def char_spec_from_meta_pkl(path):
    """nanoGPT's data/<name>/meta.pkl ({'vocab_size', 'itos', 'stoi'}) as a t6-char spec."""
    import pickle
    try:
        with open(path, "rb") as f:
            meta = pickle.load(f)
        itos = meta["itos"]
        chars = "".join(itos[i] for i in range(len(itos)))
    except Exception as e:
        die(f"{path}: not a nanoGPT char meta.pkl with 'itos' ({type(e).__name__}: {e})")
    if len(chars) != len(itos) or sorted(chars) != list(chars):
        die(f"{path}: itos is not a sorted list of single characters")
    return {"format": "t6-char", "version": 1, "vocab_size": len(chars), "chars": chars}


# ---- AdamW state -------------------------------------------------------------------------------

def adamw_moments(optim, order, tensors, where):
    """exp_avg.<name>, exp_avg_sq.<name> and the step count from a torch AdamW state_dict whose
    single param group lists the model's unique parameters in named_parameters() order (what
    train_adam.py builds). Returns (moments, step) or None when there is no state to map."""
    torch = need_torch()
    if not isinstance(optim, dict) or "state" not in optim or "param_groups" not in optim:
        die(f"{where}: not a torch optimizer state_dict (no 'state' / 'param_groups')")
    ids = [i for g in optim["param_groups"] for i in g.get("params", [])]
    if len(ids) != len(order):
        die(f"{where}: the optimizer holds {len(ids)} parameters, the model {len(order)}")
    state = optim["state"]
    if not state:
        return None
    moments, steps = {}, set()
    for pid, name in zip(ids, order):
        s = state.get(pid)
        if s is None or "exp_avg" not in s or "exp_avg_sq" not in s:
            die(f"{where}: no exp_avg/exp_avg_sq for parameter {pid} ('{name}')")
        for k in ("exp_avg", "exp_avg_sq"):
            t = s[k]
            if list(t.shape) != list(tensors[name].shape):
                die(f"{where}: {k} of parameter {pid} has shape {list(t.shape)}, but '{name}' "
                    f"has {list(tensors[name].shape)} (the parameter order differs from "
                    f"named_parameters())")
            moments[f"{k}.{name}"] = t.detach().to(torch.float32).contiguous()
        st = s.get("step", 0)
        steps.add(int(st.item() if torch.is_tensor(st) else st))
    if len(steps) != 1:
        die(f"{where}: the parameters have different AdamW step counts {sorted(steps)}")
    return moments, steps.pop()


# ---- writing -----------------------------------------------------------------------------------

def safetensors_bytes(tensors, metadata):
    """Minimal safetensors writer: F32 tensors sorted by name, header padded to 8 bytes."""
    header = {"__metadata__": metadata}
    offset, blobs = 0, []
    for name in sorted(tensors):
        t = tensors[name]
        data = t.numpy().astype("<f4", copy=False).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    return [struct.pack("<Q", len(hdr)), hdr] + blobs


def write_all(files):
    """Writes every (path, chunks) to a temporary file, then renames them all into place."""
    tmps = []
    try:
        for path, chunks in files:
            tmp = f"{path}.tmp-{os.getpid()}"
            tmps.append(tmp)
            with open(tmp, "wb") as f:
                for c in chunks:
                    f.write(c)
                f.flush()
                os.fsync(f.fileno())
        for (path, _), tmp in zip(files, tmps):
            os.replace(tmp, path)
    except BaseException:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="See the module docstring (head of this file) for the "
                                 "formats read and written.")
    ap.add_argument("checkpoint", help="official output folder (config.json, pytorch_model.bin, "
                    "optimizer.pt), a checkpoint-<iter>/ subfolder, or ckpt.pt")
    ap.add_argument("-o", "--out", help="output .safetensors (default: <input>.t6.safetensors)")
    ap.add_argument("--model-type", help="official model_type (T6, T6_kvonly, llama-mha, "
                    "llama-gqa, llama-mla); must agree with the tensors")
    ap.add_argument("--tokenizer", help="gpt2, bytes, none, a t6 tokenizer file, a t6 prepare "
                    "meta.json or nanoGPT meta.pkl (or their folder); default: gpt2 for a "
                    "GPT-2-sized vocabulary, else none")
    args = ap.parse_args()
    try:
        if args.model_type is not None and args.model_type not in MODEL_TYPES:
            die(f"--model-type '{args.model_type}' is not one of {', '.join(MODEL_TYPES)}")
        src = load_source(args.checkpoint)
        tensors, order = clean_state_dict(src["sd"], src["sd_where"])
        cfg = infer_config(tensors, src["sd_where"], src["cfg"], src["cfg_where"],
                           args.model_type)
        tok = tokenizer_spec(args.tokenizer, cfg["vocab_size"])
        moments = None
        if src["optim"] is not None:
            moments = adamw_moments(src["optim"], order, tensors, src["optim_where"])
        base = args.checkpoint.rstrip("/")
        out = args.out or os.path.splitext(base)[0] + ".t6.safetensors"
        if not out.endswith(".safetensors"):
            die(f"-o {out}: the output name must end in .safetensors")
        meta = {
            "format": "t6",
            "format_version": "1",
            "config": json.dumps(cfg, sort_keys=True),
            "tied": f"{EMBEDDING},{TIED_ALIAS}",
            "source": f"tools/import_official.py {os.path.basename(base)}",
            "official_config": json.dumps(src["cfg"], sort_keys=True, default=str),
        }
        if src["iter_num"] is not None:
            meta["iter_num"] = str(int(src["iter_num"]))
        if src["best_val_loss"] is not None:
            b = src["best_val_loss"]
            meta["best_val_loss"] = repr(float(b.item() if hasattr(b, "item") else b))
        if src["train_cfg"] is not None:
            meta["official_train_config"] = json.dumps(src["train_cfg"], sort_keys=True,
                                                       default=str)
        if tok is not None:
            meta["tokenizer"] = json.dumps(tok, sort_keys=True)
        files = [(out, safetensors_bytes(tensors, meta))]
        opt_out = None
        if moments is not None:
            opt_out = out[:-len(".safetensors")] + ".adamw.safetensors"
            m, step = moments
            files.append((opt_out, safetensors_bytes(m, {
                "format": "t6-adamw", "format_version": "1", "adam_step": str(step),
                "source": meta["source"] + " (optimizer state)"})))
        out_dir = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(out_dir):
            die(f"-o {out}: folder {out_dir} does not exist")
        write_all(files)
    except ImportError_ as e:
        print(f"import_official: error: {e}", file=sys.stderr)
        sys.exit(1)
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {out}: {len(tensors)} tensors, {n:,} parameters, model_type "
          f"{cfg['model_type']}" + (f", iter_num {meta['iter_num']}" if "iter_num" in meta else "")
          + (f"; AdamW state (step {moments[1]}) in {opt_out}" if opt_out else ""))


if __name__ == "__main__":
    main()
