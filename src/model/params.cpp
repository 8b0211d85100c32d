#include "model/params.h"

#include "core/error.h"

namespace t6 {

const ParamSpec* ParameterLayout::find(const std::string& name) const {
    for (const auto& s : specs)
        if (s.name == name) return &s;
    return nullptr;
}

const ParamSpec& ParameterLayout::at(const std::string& name) const {
    const ParamSpec* s = find(name);
    T6_CHECK(s != nullptr, "no parameter ", name);
    return *s;
}

std::vector<ProjectionSpec> attention_projections(const ModelConfig& c) {
    const int H = c.n_head, D = c.head_dim;
    switch (c.attention) {
        case AttentionKind::tpa:
            // Paper eq. (2)-(4): A factors over heads, B factors over the head dimension.
            return {{"c_qkv.W_A_q", H * c.q_rank}, {"c_qkv.W_A_k", H * c.k_rank},
                    {"c_qkv.W_A_v", H * c.v_rank}, {"c_qkv.W_B_q", c.q_rank * D},
                    {"c_qkv.W_B_k", c.k_rank * D}, {"c_qkv.W_B_v", c.v_rank * D}};
        case AttentionKind::tpa_kvonly:
            return {{"c_qkv.c_q", H * D},
                    {"c_qkv.W_A_k", H * c.k_rank},
                    {"c_qkv.W_A_v", H * c.v_rank},
                    {"c_qkv.W_B_k", c.k_rank * D},
                    {"c_qkv.W_B_v", c.v_rank * D}};
        case AttentionKind::mha:
        case AttentionKind::mqa:
        case AttentionKind::gqa:
            return {{"c_q", H * D}, {"c_k", c.kv_heads() * D}, {"c_v", c.kv_heads() * D}};
        case AttentionKind::mla:
            // The two projections of x (official llama-mla.py); the up-projections and the
            // latent norms follow them in the layout (build_parameter_layout).
            return {{"q_a_proj", c.q_lora_rank},
                    {"kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim}};
    }
    return {};
}

ParameterLayout build_parameter_layout(const ModelConfig& c) {
    ParameterLayout L;
    auto add = [&](std::string name, std::vector<int64_t> shape, const char* component) {
        ParamSpec s;
        s.name = std::move(name);
        s.shape = std::move(shape);
        s.numel = 1;
        for (auto d : s.shape) s.numel *= size_t(d);
        s.offset = L.total;
        s.component = component;
        L.total += s.numel;
        L.specs.push_back(std::move(s));
    };
    const int C = c.n_embd, F = c.hidden_dim();
    add(kEmbeddingName, {c.vocab_size, C}, "embedding");
    for (int i = 0; i < c.n_layer; i++) {
        std::string pre = cat("transformer.h.", i, ".");
        if (c.norm_weights) add(pre + "ln_1.weight", {C}, "norm");
        for (const auto& p : attention_projections(c))
            add(pre + "attn." + p.name + ".weight", {p.rows, C}, "attention");
        if (c.qkv_bias)  // adjacent, in projection order: one vector added to the fused output
            for (const auto& p : attention_projections(c))
                add(pre + "attn." + p.name + ".bias", {p.rows}, "attention");
        if (c.attention == AttentionKind::mla) {
            const int64_t H = c.n_head;
            add(pre + "attn.q_a_layernorm.weight", {c.q_lora_rank}, "attention");
            add(pre + "attn.q_b_proj.weight",
                {H * (c.head_dim + c.qk_rope_head_dim), c.q_lora_rank}, "attention");
            add(pre + "attn.kv_a_layernorm.weight", {c.kv_lora_rank}, "attention");
            add(pre + "attn.kv_b_proj.weight", {H * (c.head_dim + c.v_head_dim), c.kv_lora_rank},
                "attention");
        }
        add(pre + "attn.c_proj.weight", {C, int64_t(c.n_head) * c.v_dim()}, "attention");
        if (c.norm_weights) add(pre + "ln_2.weight", {C}, "norm");
        add(pre + "mlp.c_fc1.weight", {F, C}, "mlp");
        add(pre + "mlp.c_fc2.weight", {F, C}, "mlp");
        add(pre + "mlp.c_proj.weight", {C, F}, "mlp");
    }
    if (c.norm_weights) add(kFinalNormName, {C}, "norm");
    if (!c.tied_embeddings) add(kLmHeadName, {c.vocab_size, C}, "embedding");
    return L;
}

}  // namespace t6
