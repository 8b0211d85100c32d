#!/usr/bin/env python3
"""Writes a t6 checkpoint of an official kind as the official train_adam.py output folder.

Input: a t6 checkpoint whose model is one of the official kinds (T6, T6_kvonly, llama-mha,
llama-gqa incl. MQA, llama-mla with t6's default rope_theta/norm_eps/MLP width):
  - a .safetensors file (e.g. one tools/import_official.py wrote; its OUT-stem.adamw.safetensors,
    when present, becomes optimizer.pt), or
  - a `t6 train` checkpoint folder ckpt_<step>/ (model.safetensors, optimizer.safetensors,
    state.json: step and best_val_loss).
Output folder: config.json (the official GPTConfig as Hugging Face's save_pretrained writes it,
"model_type": "gpt2"), pytorch_model.bin (torch.save of the state dict with the official names,
lm_head.weight tied to transformer.wte.weight) and, with AdamW state, optimizer.pt ({"optimizer":
torch AdamW state_dict over the parameters in the official named_parameters() order, "iter_num",
"best_val_loss"}): what the official model classes and train_adam.py's resume read.

Needs PyTorch (Debian's python3-torch, scripts/install-deps.sh import; run with /usr/bin/python3).

Usage: /usr/bin/python3 tools/export_official.py CHECKPOINT -o OUT_DIR
"""
import argparse
import json
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The official names, per-layer tensors in registration order, shared with the importer.
from import_official import EMBEDDING, TIED_ALIAS, LAYER_TENSORS as LAYER_ORDER  # noqa: E402
DEFAULT_EPS = 1.1920928955078125e-07


class ExportError(Exception):
    pass


def die(msg):
    raise ExportError(msg)


def read_safetensors(path):
    import torch
    try:
        with open(path, "rb") as f:
            b = f.read()
        n = struct.unpack("<Q", b[:8])[0]
        h = json.loads(b[8:8 + n])
    except (OSError, ValueError, struct.error) as e:
        die(f"{path}: not a readable safetensors file ({e})")
    meta = h.pop("__metadata__", {}) or {}
    out = {}
    for k, v in h.items():
        if v.get("dtype") != "F32":
            die(f"{path}: tensor '{k}' is {v.get('dtype')}, expected F32")
        s, e = v["data_offsets"]
        if 8 + n + e > len(b):
            die(f"{path}: truncated (tensor '{k}' runs past the end)")
        out[k] = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]),
                                  dtype=torch.float32).reshape(v["shape"]).clone()
    return out, meta


def official_config(meta, where):
    """The official GPTConfig keys of a t6 checkpoint's config metadata."""
    if "config" not in meta:
        die(f"{where}: no 'config' metadata (not a t6 checkpoint)")
    c = json.loads(meta["config"])
    if "model_type" in c:  # already the official form (what the importer writes)
        return dict(c)
    kind = c.get("attention")
    C, H = c["n_embd"], c["n_head"]
    if c.get("rope_theta", 10000.0) != 10000.0 or c.get("norm_eps", DEFAULT_EPS) != DEFAULT_EPS \
            or c.get("mlp_hidden", math.floor(8 / 3 * C)) != math.floor(8 / 3 * C):
        die(f"{where}: rope_theta/norm_eps/mlp_hidden differ from the official model files' "
            f"(10000, float32 eps, floor(8/3 n_embd)): no official kind computes this model")
    out = {k: c[k] for k in ("vocab_size", "n_layer", "n_embd", "n_head", "head_dim",
                             "block_size")}
    if kind == "tpa":
        if c["k_rank"] != c["v_rank"]:
            die(f"{where}: k_rank {c['k_rank']} != v_rank {c['v_rank']}: the official T6 ties them")
        out.update(model_type="T6", q_rank=c["q_rank"], rank=c["k_rank"])
    elif kind == "tpa_kvonly":
        if c["k_rank"] != c["v_rank"]:
            die(f"{where}: k_rank {c['k_rank']} != v_rank {c['v_rank']}: the official T6 ties them")
        out.update(model_type="T6_kvonly", rank=c["k_rank"])
    elif kind == "mha":
        if H * c["head_dim"] != C:
            die(f"{where}: mha with n_head*head_dim != n_embd: the official llama-mha uses "
                f"head_dim = n_embd / n_head")
        out.update(model_type="llama-mha")
    elif kind in ("gqa", "mqa"):
        kv = 1 if kind == "mqa" else c["n_kv_head"]
        out.update(model_type="llama-gqa", group_size=H // kv)
    elif kind == "mla":
        out.update(model_type="llama-mla", **{k: c[k] for k in (
            "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "v_head_dim")})
    else:
        die(f"{where}: attention '{kind}' has no official model file")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="t6 .safetensors, or a t6 train ckpt_<step>/ folder")
    ap.add_argument("-o", "--out", required=True, help="output folder (created; must be empty)")
    args = ap.parse_args()
    try:
        try:
            import torch
        except ImportError:
            die("PyTorch is needed: run scripts/install-deps.sh import (Debian's python3-torch), "
                "then run this script with /usr/bin/python3")
        src = args.checkpoint
        iter_num, best, opt_path = None, None, None
        if os.path.isdir(src):
            weights = os.path.join(src, "model.safetensors")
            if not os.path.exists(weights):
                die(f"{src}: no model.safetensors (not a t6 checkpoint folder)")
            if os.path.exists(os.path.join(src, "optimizer.safetensors")):
                opt_path = os.path.join(src, "optimizer.safetensors")
            if os.path.exists(os.path.join(src, "state.json")):
                with open(os.path.join(src, "state.json")) as f:
                    st = json.load(f)
                iter_num, best = st.get("step"), st.get("best_val_loss")
        else:
            weights = src
            side = src[:-len(".safetensors")] + ".adamw.safetensors" \
                if src.endswith(".safetensors") else None
            if side and os.path.exists(side):
                opt_path = side
        tensors, meta = read_safetensors(weights)
        cfg = official_config(meta, weights)
        if iter_num is None and "iter_num" in meta:
            iter_num = int(meta["iter_num"])
        if iter_num is None and "step" in meta:
            iter_num = int(meta["step"])
        if best is None and "best_val_loss" in meta:
            best = float(meta["best_val_loss"])
        kind = cfg["model_type"]
        kind = "llama-mha" if kind == "llama" else kind
        order = [EMBEDDING] + [f"transformer.h.{i}.{s}" for i in range(cfg["n_layer"])
                               for s in LAYER_ORDER[kind]]
        missing = [n for n in order if n not in tensors]
        extra = sorted(set(tensors) - set(order) - {TIED_ALIAS})
        if missing or extra:
            die(f"{weights}: tensors do not match a {kind} model (missing {missing[:3]}, "
                f"unexpected {extra[:3]})")
        sd = {n: tensors[n] for n in order}
        sd[TIED_ALIAS] = sd[EMBEDDING]  # the same tensor, as the tied official Parameter
        optim = None
        if opt_path:
            m, om = read_safetensors(opt_path)
            if om.get("format") != "t6-adamw":
                die(f"{opt_path}: not a t6-adamw optimizer file")
            step = float(om.get("adam_step", "0"))
            state = {}
            for i, n in enumerate(order):
                if f"exp_avg.{n}" not in m or f"exp_avg_sq.{n}" not in m:
                    die(f"{opt_path}: no exp_avg/exp_avg_sq for '{n}'")
                state[i] = {"step": torch.tensor(step), "exp_avg": m[f"exp_avg.{n}"],
                            "exp_avg_sq": m[f"exp_avg_sq.{n}"]}
            # train_adam.py's AdamW: one group over every parameter (hyper-parameters of its
            # defaults; the official resume re-reads them from its config anyway).
            optim = {"state": state, "param_groups": [{
                "lr": 6e-4, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1,
                "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                "params": list(range(len(order)))}]}
        hf = {"architectures": ["GPT"], "bias": False, "dropout": 0.0,
              "scale_attn_by_inverse_layer_idx": True, "using_groupnorm": False,
              "torch_dtype": "float32", "transformers_version": "4.44.2"}
        hf.update({k: v for k, v in cfg.items() if k != "model_type"})
        hf["model_type"] = "gpt2"  # what save_pretrained writes for the official GPTConfig
        out = args.out
        if os.path.exists(out) and os.listdir(out):
            die(f"-o {out}: folder exists and is not empty")
        tmp = out.rstrip("/") + f".tmp-{os.getpid()}"
        os.makedirs(tmp)
        try:
            with open(os.path.join(tmp, "config.json"), "w") as f:
                json.dump(dict(sorted(hf.items())), f, indent=2)
                f.write("\n")
            torch.save(sd, os.path.join(tmp, "pytorch_model.bin"))
            if optim is not None:
                torch.save({"optimizer": optim, "iter_num": iter_num or 0,
                            "best_val_loss": torch.tensor(best if best is not None else 1e9)},
                           os.path.join(tmp, "optimizer.pt"))
            if os.path.exists(out):
                os.rmdir(out)
            os.replace(tmp, out)
        except BaseException:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except ExportError as e:
        print(f"export_official: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"wrote {out}: config.json, pytorch_model.bin" +
          (", optimizer.pt" if optim is not None else "") + f" ({kind})")


if __name__ == "__main__":
    main()
