#include "model/quantize.h"

#include <cstring>

#include "core/error.h"
#include "model/attn/attention.h"
#include "model/attn/kinds.h"

namespace t6 {

std::vector<QuantTarget> quant_targets(const ModelConfig& c, const ParameterLayout& L) {
    std::vector<QuantTarget> t;
    auto single = [&](const std::string& name) {
        const ParamSpec& s = L.at(name);
        t.push_back({name, s.offset, int(s.shape[0]), int(s.shape[1]), {name}});
    };
    single(kEmbeddingName);
    const auto projections = attention_projections(c);
    for (int i = 0; i < c.n_layer; i++) {
        const std::string pre = cat("transformer.h.", i, ".");
        QuantTarget in;
        in.cols = c.n_embd;
        for (const auto& p : projections) {
            const std::string name = pre + "attn." + p.name + ".weight";
            if (in.parts.empty()) {
                in.name = name;
                in.offset = L.at(name).offset;
            }
            in.parts.push_back(name);
            in.rows += p.rows;
        }
        t.push_back(in);
        for (const char* m : {"attn.c_proj", "mlp.c_fc1", "mlp.c_fc2", "mlp.c_proj"})
            single(pre + m + ".weight");
    }
    // The attention core's own matrices (MLA: q_b_proj, kv_b_proj; not the latent norms).
    for (const auto& ct : kind_info(c).core_tensors(c))
        if (ct.shape.size() == 2)
            for (int i = 0; i < c.n_layer; i++) {
                single(cat("transformer.h.", i, ".attn.", ct.name));
                t.back().core = true;
            }
    if (!c.tied_embeddings) single(kLmHeadName);  // HF layout: the untied output matrix
    return t;
}

size_t QuantizedWeights::bytes() const {
    size_t b = 0;
    for (const auto& m : mats) b += m.bytes();
    return b;
}

int QuantizedWeights::find(size_t off) const {
    for (size_t i = 0; i < targets.size(); i++)
        if (targets[i].offset == off) return int(i);
    return -1;
}

QuantizedWeights quantize_model(const Model& model, QuantScheme s) {
    QuantizedWeights q;
    q.scheme = s;
    q.targets = quant_targets(model.config(), model.layout());
    q.mats.resize(q.targets.size());
    for (size_t i = 0; i < q.targets.size(); i++) {
        const QuantTarget& t = q.targets[i];
        quantize_matrix(q.mats[i], model.params() + t.offset, t.rows, t.cols, s);
    }
    return q;
}

void apply_dequantized(Model& model, const QuantizedWeights& q) {
    for (size_t i = 0; i < q.targets.size(); i++)
        dequantize_matrix(q.mats[i], model.params() + q.targets[i].offset);
}

std::vector<CoreQuant> core_quant(const ModelWeights& mw, const QuantizedWeights& q,
                                  bool int8_activations) {
    std::vector<CoreQuant> out(mw.layers.size());
    for (size_t l = 0; l < mw.layers.size(); l++) {
        out[l].int8_activations = int8_activations;
        const CoreWeights& core = mw.layers[l].core;
        for (size_t i = 0; i < core.size(); i++)
            if (core[i] != kNoWeight)
                if (const int k = q.find(core[i]); k >= 0) out[l].mat[i] = &q.mats[size_t(k)];
    }
    return out;
}

double quantized_weight_bytes(const ModelConfig& c, QuantScheme s) {
    const ParameterLayout L = build_parameter_layout(c);
    double quantized = 0, numel = 0;
    for (const auto& t : quant_targets(c, L)) {
        const double blocks = double(t.rows) * ((t.cols + kQuantBlock - 1) / kQuantBlock);
        quantized += blocks * kQuantBlock * quant_bytes_per_weight(s);
        numel += double(t.rows) * t.cols;
    }
    return quantized + (double(L.total) - numel) * 4.0;
}

}  // namespace t6
