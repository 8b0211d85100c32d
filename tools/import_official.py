#!/usr/bin/env python3
"""Converts a checkpoint of the official T6 / TPA training code into a t6 checkpoint.

Input (one of):
  - ckpt.pt written by the official train script: a dict with 'model' (a state_dict, keys possibly
    prefixed '_orig_mod.' by torch.compile), 'model_args' (GPTConfig keyword arguments), 'config'
    (the training configuration, holding 'model_type') and 'iter_num';
  - a save_pretrained folder holding pytorch_model.bin (a state_dict) and config.json;
  - a folder holding ckpt.pt.
Output: one safetensors file (float32 tensors, sorted by name; the tied lm_head.weight stored once
as transformer.wte.weight) with t6's metadata: "format": "t6", "format_version": "1", "config":
the official GPTConfig JSON with its "model_type" (t6 reads that form; see src/model/config.cpp),
"tied", "tokenizer" (GPT-2 by default: the official code trains on GPT-2 tokens), "source",
"iter_num".

Needs PyTorch only to read the pickle: Debian's python3-torch (scripts/install-deps.sh import),
run with /usr/bin/python3. The safetensors file is written by the small writer below.

Usage: /usr/bin/python3 tools/import_official.py CKPT [-o OUT.safetensors] [--model-type T]
           [--tokenizer gpt2|none]
"""
import argparse
import json
import os
import struct
import sys

# GPTConfig keys of the official model files that t6 understands.
OFFICIAL_KEYS = {
    "model_type", "vocab_size", "n_layer", "n_head", "n_embd", "head_dim", "block_size", "rank",
    "q_rank", "group_size", "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "v_head_dim",
    "bias", "dropout", "scale_attn_by_inverse_layer_idx", "using_groupnorm",
}
MODEL_TYPES = {"T6", "T6_kvonly", "llama-mha", "llama", "llama-gqa", "llama-mla"}
EMBEDDING, TIED_ALIAS = "transformer.wte.weight", "lm_head.weight"
GPT2_SPEC = {"kind": "gpt2", "vocab_size": 50257, "eot": 50256}


def die(msg):
    print(f"import_official: error: {msg}", file=sys.stderr)
    sys.exit(1)


def load_source(path, model_type):
    """Returns (state_dict, official config dict, iter_num or None)."""
    try:
        import torch
    except ImportError:
        die("PyTorch is needed to read the checkpoint: run scripts/install-deps.sh import "
            "(Debian's python3-torch), then run this script with /usr/bin/python3")
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "ckpt.pt")):
            path = os.path.join(path, "ckpt.pt")
        elif os.path.exists(os.path.join(path, "pytorch_model.bin")):
            sd = torch.load(os.path.join(path, "pytorch_model.bin"), map_location="cpu")
            cfg_path = os.path.join(path, "config.json")
            if not os.path.exists(cfg_path):
                die(f"{path}: pytorch_model.bin without config.json")
            with open(cfg_path) as f:
                cfg = json.load(f)
            if model_type:
                cfg["model_type"] = model_type
            return sd, cfg, None
        else:
            die(f"{path}: folder has neither ckpt.pt nor pytorch_model.bin")
    if not os.path.exists(path):
        die(f"{path}: no such file")
    ckpt = torch.load(path, map_location="cpu")
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        die(f"{path}: not an official checkpoint (a dict with 'model' and 'model_args')")
    cfg = dict(ckpt.get("model_args") or {})
    train_cfg = ckpt.get("config") or {}
    if model_type:
        cfg["model_type"] = model_type
    elif "model_type" not in cfg and isinstance(train_cfg, dict) and "model_type" in train_cfg:
        cfg["model_type"] = train_cfg["model_type"]
    return ckpt["model"], cfg, ckpt.get("iter_num")


def clean_config(cfg, where):
    if "model_type" not in cfg:
        die(f"{where}: the checkpoint does not say its model_type; pass --model-type "
            f"({', '.join(sorted(MODEL_TYPES))})")
    if cfg["model_type"] not in MODEL_TYPES:
        die(f"{where}: model_type '{cfg['model_type']}' is not one of {sorted(MODEL_TYPES)}")
    dropped = sorted(k for k in cfg if k not in OFFICIAL_KEYS)
    if dropped:
        print(f"import_official: ignoring config keys {dropped}", file=sys.stderr)
    return {k: v for k, v in sorted(cfg.items()) if k in OFFICIAL_KEYS}


def clean_state_dict(sd, where):
    import torch
    out = {}
    for name, t in sd.items():
        if name.startswith("_orig_mod."):
            name = name[len("_orig_mod."):]
        if not torch.is_tensor(t):
            continue
        # Non-parameter buffers of the official modules (RoPE caches, causal masks).
        if name.endswith(("inv_freq", "cos_cached", "sin_cached", ".attn.bias", ".attn.masked_bias")):
            continue
        out[name] = t.detach().to(torch.float32).contiguous().cpu()
    if EMBEDDING not in out:
        die(f"{where}: no tensor '{EMBEDDING}'")
    if TIED_ALIAS in out:
        if not torch.equal(out[TIED_ALIAS], out[EMBEDDING]):
            die(f"{where}: lm_head.weight differs from transformer.wte.weight, but t6 models tie them")
        del out[TIED_ALIAS]
    return out


def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer: F32 tensors sorted by name, header padded to 8 bytes."""
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name]
        data = t.numpy().astype("<f4", copy=False).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * ((8 - len(hdr) % 8) % 8)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hdr)))
            f.write(hdr)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="ckpt.pt, or a folder with ckpt.pt or pytorch_model.bin")
    ap.add_argument("-o", "--out", help="output .safetensors (default: <input>.t6.safetensors)")
    ap.add_argument("--model-type", help="override/give the official model_type")
    ap.add_argument("--tokenizer", default="gpt2", choices=["gpt2", "none"],
                    help="tokenizer to record in the checkpoint (default gpt2)")
    args = ap.parse_args()
    sd, cfg, iter_num = load_source(args.checkpoint, args.model_type)
    cfg = clean_config(cfg, args.checkpoint)
    tensors = clean_state_dict(sd, args.checkpoint)
    out = args.out or os.path.splitext(args.checkpoint.rstrip("/"))[0] + ".t6.safetensors"
    meta = {
        "format": "t6",
        "format_version": "1",
        "config": json.dumps(cfg, sort_keys=True),
        "tied": f"{EMBEDDING},{TIED_ALIAS}",
        "source": f"tools/import_official.py {os.path.basename(args.checkpoint.rstrip('/'))}",
    }
    if iter_num is not None:
        meta["iter_num"] = str(int(iter_num))
    if args.tokenizer == "gpt2":
        meta["tokenizer"] = json.dumps(GPT2_SPEC, sort_keys=True)
    write_safetensors(out, tensors, meta)
    n = sum(t.numel() for t in tensors.values())
    print(f"wrote {out}: {len(tensors)} tensors, {n:,} parameters, model_type {cfg['model_type']}")


if __name__ == "__main__":
    main()
