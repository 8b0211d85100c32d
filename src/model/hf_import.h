// Hugging Face LLaMA-layout models -> t6 (`t6 import hf DIR --out CKPT`, docs/hf-import.md).
// DIR is what save_pretrained writes: config.json (architectures LlamaForCausalLM,
// MistralForCausalLM or Qwen2ForCausalLM), model.safetensors or shards listed in
// model.safetensors.index.json (F32/BF16/F16, widened to float32), and tokenizer.json.
// HF's q_proj/k_proj rows are already in the half-split order its rotate_half RoPE pairs (element
// i with i + d/2), the same pairing as t6's kernels, so weights are copied as they are; the
// convention difference (sign, float32 tables) is the config's rope_hf.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "model/model.h"

namespace t6 {

// The t6 config of an HF config.json (parsed; `where` names the file). block_size: 0 keeps
// max_position_embeddings (capped by a Mistral sliding_window), else this value.
ModelConfig hf_config_to_t6(const nlohmann::json& j, const std::string& where, int block_size = 0,
                            std::string* architecture = nullptr);

struct HfImported {
    std::unique_ptr<Model> model;
    std::string architecture;  // e.g. "LlamaForCausalLM"
    nlohmann::json tokenizer;  // a t6 tokenizer spec (format hf-tokenizer), or null
    size_t tensors = 0;        // tensors read
    std::string dtypes;        // e.g. "BF16" or "F32,BF16"
};

// Reads and checks the whole folder (every failure is a one-line error naming the file and what
// is wrong); writes nothing. with_tokenizer: read tokenizer.json when present.
HfImported import_hf(const std::string& dir, int block_size = 0, bool with_tokenizer = true);

// Maps an HF tensor name to t6's ("model.layers.3.self_attn.q_proj.weight" ->
// "transformer.h.3.attn.c_q.weight"); "" for names t6 does not know.
std::string hf_to_t6_name(const std::string& hf);

}  // namespace t6
