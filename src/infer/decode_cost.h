// What one decoding step costs, for the roofline: bytes read (weights once per step, plus every
// cached record of every sequence) and FLOPs (2 per weight per sequence, plus attention over the
// cache). Attention FLOPs per cached token and layer:
//   MHA/MQA/GQA  4*h*d_h                         (q.k and p*v per query head)
//   TPA          2*(R_Q R_K d_h + h R_Q R_K + h R_V d_h)   FlashTPA (paper Appendix A.4)
//   TPA-KVonly   2*(h R_K d_h + h R_V d_h)
//   MLA          2*h*(2 d_c + d_h^R)              absorbed (scores and values in the latent)
#pragma once
#include "model/config.h"

namespace t6 {

double attention_flops_per_cached_token(const ModelConfig& c);

struct DecodeCost {
    double bytes = 0, flops = 0;
    double floor_s(double bandwidth_bytes_per_s, double flops_per_s) const;
};

// One step of `batch` sequences each holding `context` cached tokens; weights and cache elements
// of the given sizes in bytes.
DecodeCost decode_step_cost(const ModelConfig& c, int batch, long context, double weight_bytes,
                            double cache_elem_bytes);

}  // namespace t6
