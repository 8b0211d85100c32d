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
    double bytes = 0, flops = 0;  // the whole step
    // The parts: every weight streamed once (weight_*: 2 FLOPs per matrix weight per sequence),
    // every cached record read once (cache_bytes, attention_flops). core_weight_* is the share of
    // the weights that the attention core reads itself (MLA's q_b_proj and kv_b_proj, used in the
    // absorbed products; 0 for the other kinds). bytes = weight_bytes + cache_bytes, flops =
    // weight_flops + attention_flops.
    double weight_bytes = 0, cache_bytes = 0, core_weight_bytes = 0;
    double weight_flops = 0, attention_flops = 0, core_weight_flops = 0;
    // attention_flops_per_s: the rate of the attention FLOPs over the cache where the kernel that
    // runs them is faster than the fp32 FMA rate (the bf16 dot-product paths, vdpbf16ps: twice
    // the multiply-adds per instruction); 0: flops_per_s. The core's own weights and the linear
    // layers stay at flops_per_s.
    // The roofline floor max(bytes / bandwidth, FLOPs / FMA rate) of the whole step.
    double floor_s(double bandwidth_bytes_per_s, double flops_per_s,
                   double attention_flops_per_s = 0) const;
    // The FLOPs' share of floor_s: the seconds of the FLOPs at those rates.
    double compute_s(double flops_per_s, double attention_flops_per_s = 0) const;
    // The floors of a step's two phases, one after the other in every layer: attention (the cache
    // and the core's own weights) and the linear layers (the other weights); and their sum, the
    // floor of a step that runs its phases one after the other, as a batch-1 step must (each
    // layer's attention needs the layer's projections, and the next linear layer needs the
    // attention's output). With a memory-bound phase (the weights) and a compute-bound one
    // (attention over a long cache) it is above floor_s, which assumes the two overlap perfectly.
    double linear_floor_s(double bandwidth_bytes_per_s, double flops_per_s) const;
    double attention_floor_s(double bandwidth_bytes_per_s, double flops_per_s,
                             double attention_flops_per_s = 0) const;
    double serial_floor_s(double bandwidth_bytes_per_s, double flops_per_s,
                          double attention_flops_per_s = 0) const;
};

// One step of `batch` sequences each holding `context` cached tokens; weights and cache elements
// of the given sizes in bytes.
DecodeCost decode_step_cost(const ModelConfig& c, int batch, long context, double weight_bytes,
                            double cache_elem_bytes);

}  // namespace t6
