#include "model/model_stats.h"

#include "model/attn/kinds.h"
#include "model/params.h"

namespace t6 {

ModelStats model_stats(const ModelConfig& c) {
    ModelStats s;
    for (const auto& p : build_parameter_layout(c).specs) {
        s.params_total += p.numel;
        s.params_by_component[p.component] += p.numel;
        if (p.shape.size() == 2) s.matmul_params += p.numel;  // wte counts once, as lm_head
    }
    s.kv_numbers_per_token_per_layer = size_t(kind_info(c).cache_numbers(c));
    return s;
}

double forward_flops_per_token(const ModelConfig& c, int T) {
    ModelStats s = model_stats(c);
    double f = 2.0 * double(s.matmul_params);
    const double H = c.n_head, L = c.n_layer;
    // Per-kind work beyond the matmuls (TPA: the factor contractions; kinds table).
    f += kind_info(c).extra_flops(c) * L;
    // Causal attention: QK^T and PV over (T+1)/2 keys on average.
    f += 2.0 * H * (c.qk_head_dim() + c.v_dim()) * ((double(T) + 1.0) / 2.0) * L;
    return f;
}

}  // namespace t6
