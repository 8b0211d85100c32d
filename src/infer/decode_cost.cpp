#include "infer/decode_cost.h"

#include <algorithm>

#include "model/attn/kinds.h"
#include "model/kv_cache.h"
#include "model/model_stats.h"

namespace t6 {

double attention_flops_per_cached_token(const ModelConfig& c) {
    return kind_info(c).decode_flops(c);
}

double DecodeCost::compute_s(double fl, double afl) const {
    if (!(afl > 0)) afl = fl;
    return (flops - attention_flops) / fl + attention_flops / afl;
}
double DecodeCost::floor_s(double bw, double fl, double afl) const {
    return std::max(bytes / bw, compute_s(fl, afl));
}
double DecodeCost::linear_floor_s(double bw, double fl) const {
    return std::max((weight_bytes - core_weight_bytes) / bw,
                    (weight_flops - core_weight_flops) / fl);
}
double DecodeCost::attention_floor_s(double bw, double fl, double afl) const {
    if (!(afl > 0)) afl = fl;
    return std::max((cache_bytes + core_weight_bytes) / bw,
                    attention_flops / afl + core_weight_flops / fl);
}
double DecodeCost::serial_floor_s(double bw, double fl, double afl) const {
    return linear_floor_s(bw, fl) + attention_floor_s(bw, fl, afl);
}

DecodeCost decode_step_cost(const ModelConfig& c, int batch, long context, double weight_bytes,
                            double cache_elem_bytes) {
    const ModelStats s = model_stats(c);
    DecodeCost d;
    d.weight_bytes = double(s.params_total) * weight_bytes;
    d.cache_bytes = double(batch) * context * c.n_layer * kv_record_numbers(c) * cache_elem_bytes;
    d.weight_flops = double(batch) * 2.0 * s.matmul_params;
    // The core's own matrices (2-D tensors; its norm gains are counted with the weights' bytes).
    double core = 0;
    for (const CoreTensorSpec& t : kind_info(c).core_tensors(c))
        if (t.shape.size() == 2) core += double(t.shape[0]) * double(t.shape[1]);
    d.core_weight_bytes = core * c.n_layer * weight_bytes;
    d.core_weight_flops = double(batch) * 2.0 * core * c.n_layer;
    d.attention_flops = double(batch) * context * c.n_layer * attention_flops_per_cached_token(c);
    d.bytes = d.weight_bytes + d.cache_bytes;
    d.flops = d.weight_flops + d.attention_flops;
    return d;
}

}  // namespace t6
