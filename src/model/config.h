// Model configuration: one type for every attention kind, read from JSON files (t6's own keys or
// an official GPTConfig config.json), presets named <size>-<kind>, and key=value overrides.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace t6 {

enum class AttentionKind { mha, mqa, gqa, tpa, tpa_kvonly, mla };

const char* attention_kind_name(AttentionKind k);  // "mha", ..., "tpa", "tpa_kvonly", "mla"
AttentionKind parse_attention_kind(const std::string& s, const std::string& where);

struct ModelConfig {
    AttentionKind attention = AttentionKind::tpa;
    int vocab_size = 50304;
    int n_layer = 12;
    int n_embd = 768;
    int n_head = 12;
    int head_dim = 64;  // per-head q/k/v width (MLA: the no-RoPE part, docs/numerics.md §16)
    int n_kv_head = 0;  // gqa/mqa: KV heads; mha: = n_head (official group_size = n_head/n_kv_head)
    int q_rank = 6;     // TPA: R_Q
    int k_rank = 2;     // TPA: R_K
    int v_rank = 2;     // TPA: R_V (the official code ties R_K = R_V = rank)
    int q_lora_rank = 512;      // MLA: d'_c
    int kv_lora_rank = 256;     // MLA: d_c
    int qk_rope_head_dim = 32;  // MLA: d_h^R
    int v_head_dim = 64;        // MLA
    int block_size = 1024;      // longest context (RoPE tables, KV caches)
    int mlp_hidden = 0;         // 0: floor(8/3 * n_embd), as the official MLP
    float rope_theta = 10000.0f;
    float norm_eps = 1.1920928955078125e-07f;  // official weightless F.rms_norm: finfo(f32).eps

    // Options of Hugging Face LLaMA-layout models (t6 import hf, docs/hf-import.md). The defaults
    // are the official T6 models' choices; a config that keeps them all is format version 1.
    bool norm_weights = false;    // RMSNorm gains ln_1, ln_2 (per layer) and ln_f (HF: true)
    bool tied_embeddings = true;  // lm_head = wte; false: a separate lm_head.weight (V, C)
    bool qkv_bias = false;        // biases on c_q, c_k, c_v (Qwen2); mha/mqa/gqa only
    bool rope_hf = false;         // RoPE as HF's rotate_half, float32 tables (docs/hf-import.md)
    std::string rope_scaling;     // "" (none), "linear" or "llama3" (HF rope_scaling.rope_type)
    float rope_factor = 1.0f;     // linear / llama3: factor
    float rope_low_freq_factor = 1.0f;       // llama3
    float rope_high_freq_factor = 4.0f;      // llama3
    int rope_original_max_positions = 8192;  // llama3: original_max_position_embeddings

    // Derived sizes.
    int hidden_dim() const;         // MLP hidden width
    int kv_heads() const;           // KV heads of mha/mqa/gqa (n_head for mha)
    int qk_head_dim() const;        // q/k width per head in attention (MLA: head_dim + rope dim)
    int v_dim() const;              // v width per head (MLA: v_head_dim)
    int rope_dim() const;           // rotated width (MLA: qk_rope_head_dim)
    bool uses_hf_features() const;  // any option above away from its default (format version 2)
    bool is_tpa() const {
        return attention == AttentionKind::tpa || attention == AttentionKind::tpa_kvonly;
    }

    // Checks every size is positive and the shapes fit; fails naming `where` and the key.
    void validate(const std::string& where) const;

    nlohmann::json to_json() const;
    std::string describe() const;  // one line: "tpa L=4 C=256 H=5 D=64 R=6/2/2 V=50304"
};

// Parses t6's config keys (the fields above; README.md "Models and presets", configs/README.md),
// or an official config.json when it has a "model_type" key. Unknown keys and wrong types are
// errors naming `where` and the key.
ModelConfig config_from_json(const nlohmann::json& j, const std::string& where);
ModelConfig load_config_file(const std::string& path);

// Applies "key=value" (t6 keys) to cfg; fails on an unknown key or a value of the wrong type.
void apply_override(ModelConfig& cfg, const std::string& assignment);

// Presets <size>-<kind>, size tiny|small|medium|large|xl, kind mha|mqa|gqa|mla|t6|t6-kvonly.
std::vector<std::string> preset_names();
bool is_preset(const std::string& name);
ModelConfig preset_config(const std::string& name);

// A preset name, or a path to a JSON config file, or a checkpoint (folder or .safetensors).
ModelConfig resolve_model_config(const std::string& name_or_path);

}  // namespace t6
