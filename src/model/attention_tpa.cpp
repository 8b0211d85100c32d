// Tensor Product Attention (official T6.py / T6_kvonly.py; paper eq. (2)-(4); docs/numerics.md
// §5, §6):
//   Q_t = (1/R_Q) A_Q(x_t)^T B_Q(x_t), K_t = (1/R_K) A_K^T B_K, V_t = (1/R_V) A_V^T B_V,
// with A over heads (H x R) and B over the head dimension (R x d_h). RoPE rotates the B factors
// of q and k before the contraction (Theorem 3.1: rotating B_K rotates every head's key), so a
// cache of B_K can hold pre-rotated keys. T6_kvonly uses a plain query projection c_q, rotated
// per head.
#include <cmath>

#include "kernels/attention.h"
#include "kernels/tpa_contract.h"
#include "model/attention_core.h"

namespace t6 {

namespace {

// Column offsets of the factors inside the fused projection row (order of
// attention_projections()).
struct TpaOffsets {
    long A_q = 0, A_k, A_v, B_q, B_k, B_v, P;
};

TpaOffsets tpa_offsets(const ModelConfig& c) {
    const long H = c.n_head, D = c.head_dim;
    TpaOffsets o;
    const bool fq = c.attention == AttentionKind::tpa;
    const long q_cols = fq ? H * c.q_rank : H * D;  // A_q, or c_q for T6_kvonly
    o.A_k = q_cols;
    o.A_v = o.A_k + H * c.k_rank;
    o.B_q = o.A_v + H * c.v_rank;  // unused for T6_kvonly
    o.B_k = o.B_q + (fq ? long(c.q_rank) * D : 0);
    o.B_v = o.B_k + long(c.k_rank) * D;
    o.P = o.B_v + long(c.v_rank) * D;
    return o;
}

// T6 attends with the contracted q (N,H,D); T6_kvonly reads q straight from the projection row.
AttnDims tpa_dims(const ModelConfig& c, int B, int T, bool factorized_q, long P) {
    AttnDims d;
    d.B = B;
    d.T = T;
    d.Hq = d.Hkv = c.n_head;
    d.D = d.Dv = c.head_dim;
    d.q_stride = d.k_stride = d.v_stride = long(c.n_head) * c.head_dim;
    if (!factorized_q) d.q_stride = P;
    d.scale = 1.0f / std::sqrt(float(c.head_dim));
    return d;
}

}  // namespace

void tpa_core_forward(const ModelConfig& c, const RopeTables& rope, float* proj, float* saved,
                      float* y, float* lse, int B, int T) {
    const TpaOffsets o = tpa_offsets(c);
    const int N = B * T, H = c.n_head, D = c.head_dim;
    const size_t HD = size_t(H) * D;
    const bool full_q = c.attention == AttentionKind::tpa;
    float* q = saved;
    float* k = saved + size_t(N) * HD;
    float* v = k + size_t(N) * HD;
    if (full_q) {
        rope_forward_inplace(proj + o.B_q, B, T, c.q_rank, D, o.P, D, rope);
        tpa_contract_forward(q, proj + o.A_q, o.P, proj + o.B_q, o.P, N, H, c.q_rank, D,
                             1.0f / float(c.q_rank));
    } else {
        rope_forward_inplace(proj, B, T, H, D, o.P, D, rope);  // c_q, per head
    }
    rope_forward_inplace(proj + o.B_k, B, T, c.k_rank, D, o.P, D, rope);
    tpa_contract_forward(k, proj + o.A_k, o.P, proj + o.B_k, o.P, N, H, c.k_rank, D,
                         1.0f / float(c.k_rank));
    tpa_contract_forward(v, proj + o.A_v, o.P, proj + o.B_v, o.P, N, H, c.v_rank, D,
                         1.0f / float(c.v_rank));
    attention_forward(y, lse, full_q ? q : proj, k, v, tpa_dims(c, B, T, full_q, o.P));
}

void tpa_core_backward(const ModelConfig& c, const RopeTables& rope, const float* proj,
                       const float* saved, const float* y, const float* lse, const float* dy,
                       float* dproj, float* scratch, int B, int T) {
    const TpaOffsets o = tpa_offsets(c);
    const int N = B * T, H = c.n_head, D = c.head_dim;
    const size_t HD = size_t(H) * D;
    const float* q = saved;
    const float* k = saved + size_t(N) * HD;
    const float* v = k + size_t(N) * HD;
    const bool full_q = c.attention == AttentionKind::tpa;
    float* dq = full_q ? scratch : dproj;
    float* dk = scratch + size_t(N) * HD;
    float* dv = dk + size_t(N) * HD;
    attention_backward(dq, dk, dv, dy, y, lse, full_q ? q : proj, k, v,
                       tpa_dims(c, B, T, full_q, o.P));
    if (full_q) {
        tpa_contract_backward(dproj + o.A_q, dproj + o.B_q, dq, proj + o.A_q, o.P, proj + o.B_q,
                              o.P, N, H, c.q_rank, D, 1.0f / float(c.q_rank));
        rope_backward_inplace(dproj + o.B_q, B, T, c.q_rank, D, o.P, D, rope);
    } else {
        rope_backward_inplace(dproj, B, T, H, D, o.P, D, rope);
    }
    tpa_contract_backward(dproj + o.A_k, dproj + o.B_k, dk, proj + o.A_k, o.P, proj + o.B_k, o.P, N,
                          H, c.k_rank, D, 1.0f / float(c.k_rank));
    rope_backward_inplace(dproj + o.B_k, B, T, c.k_rank, D, o.P, D, rope);
    tpa_contract_backward(dproj + o.A_v, dproj + o.B_v, dv, proj + o.A_v, o.P, proj + o.B_v, o.P, N,
                          H, c.v_rank, D, 1.0f / float(c.v_rank));
}

}  // namespace t6
