#include "infer/cache_attention.h"

namespace t6 {

void cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef& w,
                     const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                     std::vector<float>& scratch) {
    switch (c.attention) {
        case AttentionKind::tpa:
        case AttentionKind::tpa_kvonly:
            return tpa_cache_attention(c, cache, layer, w, rope, proj, t, y, scratch);
        case AttentionKind::mha:
        case AttentionKind::mqa:
        case AttentionKind::gqa:
            return gqa_cache_attention(c, cache, layer, w, rope, proj, t, y, scratch);
        case AttentionKind::mla:
            return mla_cache_attention(c, cache, layer, w, rope, proj, t, y, scratch);
    }
}

}  // namespace t6
