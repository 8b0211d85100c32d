#!/usr/bin/env python3
"""Test helper of tests/test_cli_import.cpp (one python + torch start-up for every case).

Writes, from the conformance weights, the folders the official train_adam.py writes -- config.json
as Hugging Face's save_pretrained writes the official GPTConfig ("model_type": "gpt2"),
pytorch_model.bin (torch.save of the state dict, both tied names), optimizer.pt ({"optimizer":
AdamW state_dict after one real torch AdamW step on the conformance gradients, "iter_num",
"best_val_loss"}) and a checkpoint-<iter>/ subfolder with the same three files -- plus a
nanoGPT-style ckpt.pt and broken folders; then runs tools/import_official.py on each, exactly as
its command line does (runpy, __main__, sys.argv), and tools/export_official.py on each imported
model (then imports that folder again: the round trip), recording exit status, stdout and stderr
in OUT/results.json.

Usage: official_import_cases.py CONFORMANCE_DIR OUT_DIR IMPORTER MODEL...
"""
import contextlib
import io
import json
import os
import runpy
import shutil
import struct
import sys

import torch

ITER = 7


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        dt = {"F32": torch.float32, "I32": torch.int32}[v["dtype"]]
        out[k] = torch.frombuffer(bytearray(b[8 + n + s:8 + n + e]), dtype=dt).reshape(v["shape"])
    return out


def official_state_dict(w):
    """The official state_dict: the conformance names, lm_head.weight the same tensor as wte."""
    sd = {k: v.clone() for k, v in w.items() if k != "lm_head.weight"}
    # Registration order of the official GPT: wte, the blocks, then lm_head (tied).
    ordered = {"transformer.wte.weight": sd.pop("transformer.wte.weight")}
    ordered.update(sorted(sd.items(), key=lambda kv: [int(p) if p.isdigit() else p
                                                       for p in kv[0].split(".")]))
    ordered["lm_head.weight"] = ordered["transformer.wte.weight"]
    return ordered


def optimizer_state(sd, grads):
    """torch AdamW (train_adam.py's hyper-parameters) after one step on the conformance grads,
    over the unique parameters in named_parameters() order."""
    names = [k for k in sd if k != "lm_head.weight"]
    params = [torch.nn.Parameter(sd[k].clone()) for k in names]
    for p, k in zip(params, names):
        p.grad = grads[k].clone()
    opt = torch.optim.AdamW(params, lr=6e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    opt.step()
    return opt.state_dict()


def write_official_folder(folder, cfg, sd, optim):
    os.makedirs(folder, exist_ok=True)
    hf = dict(cfg)
    hf.update({"architectures": ["GPT"], "model_type": "gpt2", "torch_dtype": "float32",
               "transformers_version": "4.44.2"})
    for d in (folder, os.path.join(folder, f"checkpoint-{ITER}")):
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(dict(sorted(hf.items())), f, indent=2)
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
        torch.save({"optimizer": optim, "iter_num": ITER, "best_val_loss": torch.tensor(5.25)},
                   os.path.join(d, "optimizer.pt"))


def run_importer(importer, args):
    out, err = io.StringIO(), io.StringIO()
    rc = 0
    saved = sys.argv
    sys.argv = [importer] + args
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(importer, run_name="__main__")
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # a crash is a test failure, reported as such
        rc, err = 99, io.StringIO(f"CRASH {type(e).__name__}: {e}\n")
    finally:
        sys.argv = saved
    return {"rc": rc, "out": out.getvalue(), "err": err.getvalue()}


def main():
    conf, out, importer, models = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    exporter = os.path.join(os.path.dirname(importer), "export_official.py")
    results = {}
    for m in models:
        src = os.path.join(conf, m)
        cfg = json.load(open(os.path.join(src, "config.json")))
        cfg.pop("model_type")  # the official folder says "gpt2": the importer must infer it
        sd = official_state_dict(read_safetensors(os.path.join(src, "weights.safetensors")))
        optim = optimizer_state(sd, read_safetensors(os.path.join(src, "grads.safetensors")))
        write_official_folder(os.path.join(out, m), cfg, sd, optim)
        results[m] = run_importer(importer, [os.path.join(out, m), "-o",
                                             os.path.join(out, m + ".safetensors")])
        # Round trip: the imported checkpoint exported as an official folder, imported again.
        results[m + ":export"] = run_importer(exporter, [os.path.join(out, m + ".safetensors"),
                                                         "-o", os.path.join(out, m + "_export")])
        results[m + ":roundtrip"] = run_importer(importer, [
            os.path.join(out, m + "_export"), "-o", os.path.join(out, m + "_rt.safetensors")])
        if m != "t6":
            continue
        t6 = os.path.join(out, "t6")
        results["t6_checkpoint"] = run_importer(
            importer, [os.path.join(t6, f"checkpoint-{ITER}"), "-o",
                       os.path.join(out, "t6_checkpoint.safetensors")])
        # nanoGPT-style ckpt.pt: torch.compile's prefix, model_type in the training config.
        torch.save({"model": {"_orig_mod." + k: v for k, v in sd.items()}, "model_args": cfg,
                    "config": {"model_type": "T6", "learning_rate": 6e-4}, "iter_num": 11},
                   os.path.join(out, "ckpt.pt"))
        results["ckpt_pt"] = run_importer(importer, [os.path.join(out, "ckpt.pt"), "-o",
                                                     os.path.join(out, "ckpt_pt.safetensors")])
        # Broken inputs; each must fail with one line and write nothing.
        bad = {}
        bad["bad_config"] = os.path.join(out, "bad_config")
        shutil.copytree(t6, bad["bad_config"])
        c = json.load(open(os.path.join(t6, "config.json")))
        c["n_head"] = 2 * c["n_head"]
        json.dump(c, open(os.path.join(bad["bad_config"], "config.json"), "w"))
        bad["truncated"] = os.path.join(out, "truncated")
        shutil.copytree(t6, bad["truncated"])
        p = os.path.join(bad["truncated"], "pytorch_model.bin")
        data = open(p, "rb").read()
        open(p, "wb").write(data[:len(data) // 2])
        bad["unknown_tensor"] = os.path.join(out, "unknown_tensor")
        shutil.copytree(t6, bad["unknown_tensor"])
        sd2 = dict(sd)
        sd2["transformer.h.0.attn.c_qkv.W_C_q.weight"] = torch.zeros(4, 4)
        torch.save(sd2, os.path.join(bad["unknown_tensor"], "pytorch_model.bin"))
        for name, folder in bad.items():
            results[name] = run_importer(importer, [folder, "-o",
                                                    os.path.join(out, name + ".safetensors")])
        # nanoGPT's char-level meta.pkl as the tokenizer (shakespeare_char's 65 characters).
        import pickle
        chars = sorted(set("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
        with open(os.path.join(out, "meta.pkl"), "wb") as f:
            pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)),
                         "stoi": {c: i for i, c in enumerate(chars)}}, f)
        results["tokenizer_meta_pkl"] = run_importer(
            importer, [t6, "--tokenizer", os.path.join(out, "meta.pkl"), "-o",
                       os.path.join(out, "tokenizer_meta_pkl.safetensors")])
        results["tokenizer_missing"] = run_importer(
            importer, [t6, "--tokenizer", os.path.join(out, "no-such-tokenizer.json"), "-o",
                       os.path.join(out, "tokenizer_missing.safetensors")])
        results["wrong_model_type"] = run_importer(
            importer, [t6, "--model-type", "llama-mla", "-o",
                       os.path.join(out, "wrong_model_type.safetensors")])
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
