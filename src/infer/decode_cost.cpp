#include "infer/decode_cost.h"

#include <algorithm>

#include "model/kv_cache.h"
#include "model/model_stats.h"

namespace t6 {

double attention_flops_per_cached_token(const ModelConfig& c) {
    const double H = c.n_head, D = c.head_dim;
    switch (c.attention) {
        case AttentionKind::mha:
        case AttentionKind::mqa:
        case AttentionKind::gqa:
            return 4.0 * H * D;
        case AttentionKind::tpa:
            return 2.0 *
                   (double(c.q_rank) * c.k_rank * D + H * c.q_rank * c.k_rank + H * c.v_rank * D);
        case AttentionKind::tpa_kvonly:
            return 2.0 * (H * c.k_rank * D + H * c.v_rank * D);
        case AttentionKind::mla:
            return 2.0 * H * (2.0 * c.kv_lora_rank + c.qk_rope_head_dim);
    }
    return 0;
}

double DecodeCost::floor_s(double bw, double fl) const {
    return std::max(bytes / bw, flops / fl);
}

DecodeCost decode_step_cost(const ModelConfig& c, int batch, long context, double weight_bytes,
                            double cache_elem_bytes) {
    const ModelStats s = model_stats(c);
    DecodeCost d;
    d.bytes = double(s.params_total) * weight_bytes +
              double(batch) * context * c.n_layer * kv_record_numbers(c) * cache_elem_bytes;
    d.flops = double(batch) * 2.0 * s.matmul_params +
              double(batch) * context * c.n_layer * attention_flops_per_cached_token(c);
    return d;
}

}  // namespace t6
