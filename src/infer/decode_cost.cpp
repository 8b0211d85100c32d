#include "infer/decode_cost.h"

#include <algorithm>

#include "model/attn/kinds.h"
#include "model/kv_cache.h"
#include "model/model_stats.h"

namespace t6 {

double attention_flops_per_cached_token(const ModelConfig& c) {
    return kind_info(c).decode_flops(c);
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
