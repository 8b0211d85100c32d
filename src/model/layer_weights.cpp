#include "model/layer_weights.h"

#include "core/error.h"

namespace t6 {

ModelWeights model_weights(const ModelConfig& c, const ParameterLayout& L) {
    ModelWeights m;
    const std::string first = attention_projections(c)[0].name;
    for (int i = 0; i < c.n_layer; i++) {
        const std::string pre = cat("transformer.h.", i, ".");
        LayerWeights w;
        w.qkv = L.at(pre + "attn." + first + ".weight").offset;
        w.c_proj = L.at(pre + "attn.c_proj.weight").offset;
        w.fc1 = L.at(pre + "mlp.c_fc1.weight").offset;
        w.fc2 = L.at(pre + "mlp.c_fc2.weight").offset;
        w.mlp_proj = L.at(pre + "mlp.c_proj.weight").offset;
        if (c.norm_weights) {
            w.ln1 = L.at(pre + "ln_1.weight").offset;
            w.ln2 = L.at(pre + "ln_2.weight").offset;
        }
        if (c.qkv_bias) w.bias = L.at(pre + "attn." + first + ".bias").offset;
        w.core = attention_core_weights(c, L, i);
        m.layers.push_back(w);
    }
    m.wte = L.at(kEmbeddingName).offset;
    m.head = c.tied_embeddings ? m.wte : L.at(kLmHeadName).offset;
    if (c.norm_weights) m.lnf = L.at(kFinalNormName).offset;
    return m;
}

}  // namespace t6
