// Presets <size>-<kind>.
//  * small/medium/large/xl: the paper's Table 10 sizes, with the head counts of the official
//    config files (config/train_*_{small,medium,large,xl}_adam*.py): d_h = 64, vocabulary 50304,
//    TPA R_Q = 6, R_K = R_V = 2, GQA with 2 KV heads, MQA with 1, block 1024. MLA uses
//    d'_c = 512, d_c = 256, d_h^R = 32, v_head_dim 64 at every size: the official train_adam.py
//    never passes the latent sizes its MLA config files name, so the official runs used the
//    GPTConfig defaults (docs/numerics.md §16) -- and only those give equal parameters.
//  * tiny: the CPU configuration the official code was benchmarked on for this project
//    (bench/official-pytorch-cpu.json; 4 layers, n_embd 256, d_h 64, MHA 4 heads, T6 5 heads); the
//    other kinds get the head count that best matches MHA's attention parameters (262,144 per
//    layer), by the same rule the paper uses for its larger sizes (MLA: 5 heads, d'_c = 128, d_c =
//    96).
#include <map>

#include "core/error.h"
#include "model/attn/kinds.h"
#include "model/config.h"
#include "model/equal_params.h"

namespace t6 {

namespace {

struct SizeSpec {
    int n_layer, n_embd;
    // Heads per kind (preset suffix) of the official configs; a kind not listed gets the
    // equal-parameter rule's head count (equal_params.h).
    std::map<std::string, int> heads;
    int q_lora, kv_lora;  // MLA d'_c, d_c
};

const std::map<std::string, SizeSpec>& sizes() {
    static const std::map<std::string, SizeSpec> s = {
        {"tiny",
         {4,
          256,
          {{"mha", 4}, {"mqa", 7}, {"gqa", 6}, {"mla", 5}, {"t6", 5}, {"t6-kvonly", 6}},
          128,
          96}},
        {"small",
         {12,
          768,
          {{"mha", 12}, {"mqa", 23}, {"gqa", 22}, {"mla", 13}, {"t6", 34}, {"t6-kvonly", 22}},
          512,
          256}},
        {"medium",
         {24,
          1024,
          {{"mha", 16}, {"mqa", 31}, {"gqa", 30}, {"mla", 23}, {"t6", 47}, {"t6-kvonly", 29}},
          512,
          256}},
        {"large",
         {36,
          1280,
          {{"mha", 20}, {"mqa", 39}, {"gqa", 38}, {"mla", 34}, {"t6", 61}, {"t6-kvonly", 37}},
          512,
          256}},
        {"xl",
         {48,
          1600,
          {{"mha", 25}, {"mqa", 49}, {"gqa", 48}, {"mla", 49}, {"t6", 78}, {"t6-kvonly", 47}},
          512,
          256}},
    };
    return s;
}

}  // namespace

std::vector<std::string> preset_names() {
    std::vector<std::string> names;
    for (const char* size : {"tiny", "small", "medium", "large", "xl"})
        for (const auto& kind : attention_kinds())
            names.push_back(std::string(size) + "-" + kind.preset_suffix);
    return names;
}

bool is_preset(const std::string& name) {
    for (const auto& n : preset_names())
        if (n == name) return true;
    return false;
}

ModelConfig preset_config(const std::string& name) {
    auto dash = name.find('-');
    std::string size = dash == std::string::npos ? name : name.substr(0, dash);
    std::string kind = dash == std::string::npos ? "" : name.substr(dash + 1);
    auto it = sizes().find(size);
    if (it == sizes().end() || !is_preset(name))
        fail("unknown preset '", name,
             "' (sizes: tiny, small, medium, large, xl; kinds: ", preset_suffix_list(),
             "; e.g. tiny-t6)");
    const SizeSpec& s = it->second;
    const AttentionKindInfo& k = *find_kind(kind);
    ModelConfig c;
    c.vocab_size = 50304;
    c.n_layer = s.n_layer;
    c.n_embd = s.n_embd;
    c.head_dim = 64;
    c.block_size = 1024;
    c.q_rank = 6;
    c.k_rank = c.v_rank = 2;
    c.attention = k.kind;
    if (k.equal_kv_heads > 0) c.n_kv_head = k.equal_kv_heads;  // MQA 1, GQA 2
    if (k.kind == AttentionKind::mla) {  // the latent sizes differ per size (comment above)
        c.q_lora_rank = s.q_lora;
        c.kv_lora_rank = s.kv_lora;
        c.qk_rope_head_dim = 32;
        c.v_head_dim = 64;
    }
    const auto h = s.heads.find(kind);
    c.n_head = h != s.heads.end() ? h->second : equal_param_heads(c, k.kind);
    c.validate("preset " + name);
    return c;
}

}  // namespace t6
