#include "model/attention_core.h"

#include "core/error.h"
#include "model/params.h"

namespace t6 {

int projection_width(const ModelConfig& c) {
    int P = 0;
    for (const auto& p : attention_projections(c)) P += p.rows;
    return P;
}

size_t attention_saved_per_token(const ModelConfig& c) {
    if (c.attention == AttentionKind::mla) return mla_saved_per_token(c);
    return c.is_tpa() ? size_t(3) * c.n_head * c.head_dim : 0;
}

size_t attention_scratch_per_token(const ModelConfig& c) {
    if (c.attention == AttentionKind::mla) return mla_scratch_per_token(c);
    return attention_saved_per_token(c);
}

size_t LayerParamRef::offset(const std::string& suffix) const {
    return layout->at(cat("transformer.h.", layer, ".", suffix)).offset;
}

void attention_core_forward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                            float* proj, float* saved, float* y, float* lse, int B, int T) {
    if (c.is_tpa()) return tpa_core_forward(c, rope, proj, saved, y, lse, B, T);
    if (c.attention == AttentionKind::mla)
        return mla_core_forward(c, w, rope, proj, saved, y, lse, B, T);
    gqa_core_forward(c, rope, proj, y, lse, B, T);
}

void attention_core_backward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                             const float* proj, const float* saved, const float* y,
                             const float* lse, const float* dy, float* dproj, float* scratch, int B,
                             int T) {
    if (c.is_tpa())
        return tpa_core_backward(c, rope, proj, saved, y, lse, dy, dproj, scratch, B, T);
    if (c.attention == AttentionKind::mla)
        return mla_core_backward(c, w, rope, proj, saved, y, lse, dy, dproj, scratch, B, T);
    gqa_core_backward(c, rope, proj, y, lse, dy, dproj, B, T);
}

}  // namespace t6
