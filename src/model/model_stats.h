// Sizes a user plans with: parameters per component, FLOPs per token, KV cache per token.
#pragma once
#include <cstddef>
#include <map>
#include <string>

#include "model/config.h"

namespace t6 {

struct ModelStats {
    size_t params_total = 0;
    std::map<std::string, size_t> params_by_component;  // embedding, attention, mlp
    size_t matmul_params = 0;  // weights used as matrices per token (incl. the tied lm_head)
    // Numbers cached per token and layer for incremental decoding:
    //   MHA/MQA/GQA 2*h_kv*d_h; TPA (R_K+R_V)(h+d_h) (paper Sec. 3.3); MLA d_c + d_h^R.
    size_t kv_numbers_per_token_per_layer = 0;
};

ModelStats model_stats(const ModelConfig& c);

// Forward FLOPs per token when training on sequences of length T (causal attention attends on
// average to (T+1)/2 keys): 2*matmul_params + TPA factor contractions + attention (QK^T and PV).
// A training step (forward + backward) costs 3x this.
double forward_flops_per_token(const ModelConfig& c, int T);

}  // namespace t6
