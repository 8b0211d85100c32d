// t6 import hf DIR --out CKPT: a Hugging Face LLaMA-layout model folder (config.json,
// model.safetensors or its shards, tokenizer.json) -> one t6 checkpoint with its tokenizer
// (model/hf_import.h, docs/hf-import.md). Everything is read and checked before the checkpoint
// is written (atomically): a bad folder leaves nothing behind.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "core/error.h"
#include "core/timing.h"
#include "model/checkpoint.h"
#include "model/hf_import.h"

namespace t6::cli {

int cmd_import(int argc, char** argv) {
    ArgParser p("import", "hf DIR --out CKPT [options]",
                "Imports a Hugging Face model folder (LlamaForCausalLM, MistralForCausalLM or "
                "Qwen2ForCausalLM: config.json, model.safetensors or shards with "
                "model.safetensors.index.json in F32/BF16/F16, tokenizer.json) into one t6 "
                "checkpoint (float32, tokenizer stored with it) that generate, eval, serve, "
                "bench decode and train read. See docs/hf-import.md.");
    p.positional("SOURCE", "hf (the only source format)");
    p.positional("DIR", "the model folder, as save_pretrained writes it");
    p.option("out", "CKPT", "output .safetensors file (written atomically)");
    p.option("block-size", "N", "longest context (RoPE tables, default max_position_embeddings)");
    p.flag("no-tokenizer", "do not read tokenizer.json (pass --tokenizer to later commands)");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    if (p.positionals().size() != 2 || p.positionals()[0] != "hf")
        fail("t6 import: expected `t6 import hf DIR --out CKPT`");
    if (!p.has("out")) fail("t6 import: --out CKPT is required");
    const std::string dir = p.positionals()[1], out = p.get("out");
    if (std::filesystem::is_directory(out)) fail("t6 import: --out ", out, " is a folder");
    const int block = p.has("block-size") ? p.get_int("block-size") : 0;
    if (p.has("block-size") && block <= 0) fail("t6 import: --block-size must be positive");
    const auto t0 = std::chrono::steady_clock::now();
    HfImported im = import_hf(dir, block, !p.has("no-tokenizer"));
    std::map<std::string, std::string> meta = {{"source", "hf:" + im.architecture}};
    if (!im.tokenizer.is_null()) meta["tokenizer"] = im.tokenizer.dump();
    save_weights(out, *im.model, meta);
    const double secs = seconds_since(t0);
    const ModelConfig& c = im.model->config();
    std::printf("%s: %s (%s), %zu tensors (%s), %.1fM parameters, tokenizer %s, in %.1f s\n",
                out.c_str(), im.architecture.c_str(), c.describe().c_str(), im.tensors,
                im.dtypes.c_str(), double(im.model->num_params()) / 1e6,
                im.tokenizer.is_null() ? "none" : "hf", secs);
    if (p.has("json")) {
        nlohmann::json j = {{"out", out},
                            {"architecture", im.architecture},
                            {"config", c.to_json()},
                            {"tensors", im.tensors},
                            {"dtypes", im.dtypes},
                            {"params", im.model->num_params()},
                            {"tokenizer", !im.tokenizer.is_null()},
                            {"file_bytes", std::filesystem::file_size(out)},
                            {"elapsed_s", secs}};
        std::printf("%s\n", j.dump().c_str());
    }
    return 0;
}

}  // namespace t6::cli
