// The wing's dispatcher: every entry point forwards to the kind's row of the kinds table.
#include "model/attn/attention.h"

#include "core/error.h"
#include "model/attn/kinds.h"

namespace t6 {

CoreWeights attention_core_weights(const ModelConfig& c, const ParameterLayout& layout, int layer) {
    CoreWeights w;
    w.fill(kNoWeight);
    const auto tensors = kind_info(c).core_tensors(c);
    T6_CHECK(tensors.size() <= w.size(), "attention kind owns more tensors than CoreWeights holds");
    for (size_t i = 0; i < tensors.size(); i++)
        w[i] = layout.at(cat("transformer.h.", layer, ".attn.", tensors[i].name)).offset;
    return w;
}

int projection_width(const ModelConfig& c) {
    int P = 0;
    for (const auto& p : kind_info(c).projections(c)) P += p.rows;
    return P;
}

size_t attention_saved_per_token(const ModelConfig& c) {
    return kind_info(c).saved_per_token(c);
}

size_t attention_scratch_per_token(const ModelConfig& c) {
    return kind_info(c).scratch_per_token(c);
}

void attention_core_forward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                            float* proj, float* saved, float* y, float* lse, int B, int T) {
    kind_info(c).forward(c, w, rope, proj, saved, y, lse, B, T);
}

void attention_core_backward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                             const float* proj, const float* saved, const float* y,
                             const float* lse, const float* dy, float* dproj, float* scratch, int B,
                             int T) {
    kind_info(c).backward(c, w, rope, proj, saved, y, lse, dy, dproj, scratch, B, T);
}

void cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef& w,
                     const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                     std::vector<float>& scratch) {
    kind_info(c).cache(c, cache, layer, w, rope, proj, t, y, scratch);
}

}  // namespace t6
