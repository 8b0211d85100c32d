// MHA, MQA and GQA (official llama-mha.py / llama-gqa.py): q = c_q(x), k = c_k(x), v = c_v(x),
// RoPE on q and k per head, KV head j serves query heads j*g .. j*g+g-1 (repeat_interleave;
// docs/numerics.md §14).
#include "kernels/attention.h"
#include "model/attention_core.h"

#include <cmath>

namespace t6 {

namespace {

AttnDims gqa_dims(const ModelConfig& c, int B, int T) {
    const int P = c.n_head * c.head_dim + 2 * c.kv_heads() * c.head_dim;
    AttnDims d;
    d.B = B;
    d.T = T;
    d.Hq = c.n_head;
    d.Hkv = c.kv_heads();
    d.D = d.Dv = c.head_dim;
    d.q_stride = d.k_stride = d.v_stride = P;
    d.scale = 1.0f / std::sqrt(float(c.head_dim));
    return d;
}

}  // namespace

void gqa_core_forward(const ModelConfig& c, const RopeTables& rope, float* proj, float* y,
                      float* lse, int B, int T) {
    const AttnDims d = gqa_dims(c, B, T);
    float* q = proj;
    float* k = proj + c.n_head * c.head_dim;
    float* v = k + c.kv_heads() * c.head_dim;
    rope_forward_inplace(q, B, T, d.Hq, d.D, d.q_stride, d.D, rope);
    rope_forward_inplace(k, B, T, d.Hkv, d.D, d.k_stride, d.D, rope);
    attention_forward(y, lse, q, k, v, d);
}

void gqa_core_backward(const ModelConfig& c, const RopeTables& rope, const float* proj,
                       const float* y, const float* lse, const float* dy, float* dproj, int B,
                       int T) {
    const AttnDims d = gqa_dims(c, B, T);
    const size_t ko = size_t(c.n_head) * c.head_dim, vo = ko + size_t(c.kv_heads()) * c.head_dim;
    attention_backward(dproj, dproj + ko, dproj + vo, dy, y, lse, proj, proj + ko, proj + vo, d);
    rope_backward_inplace(dproj, B, T, d.Hq, d.D, d.q_stride, d.D, rope);
    rope_backward_inplace(dproj + ko, B, T, d.Hkv, d.D, d.k_stride, d.D, rope);
}

}  // namespace t6
