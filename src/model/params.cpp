#include "model/params.h"

#include "model/attn/kinds.h"

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
    return kind_info(c).projections(c);
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
        // The core's own tensors (MLA: latent norms and up-projections), after the projections.
        for (const auto& t : kind_info(c).core_tensors(c))
            add(pre + "attn." + t.name, t.shape, "attention");
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
