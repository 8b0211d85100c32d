// Tensor Product Attention (official T6.py / T6_kvonly.py; paper eq. (2)-(4); docs/numerics.md
// §5, §6):
//   Q_t = (1/R_Q) A_Q(x_t)^T B_Q(x_t), K_t = (1/R_K) A_K^T B_K, V_t = (1/R_V) A_V^T B_V,
// with A over heads (H x R) and B over the head dimension (R x d_h). RoPE rotates the B factors
// of q and k before the contraction (Theorem 3.1: rotating B_K rotates every head's key), so a
// cache of B_K can hold pre-rotated keys. T6_kvonly uses a plain query projection c_q, rotated
// per head. Training core, and the cached core over a factor cache (paper Sec. 3.3): each new
// token appends [A_K | A_V | B_K | B_V] with B_K rotated once at its position; decoding runs
// FlashTPA on the factors (never forming Q, K or V), chunks form K/V tiles from the factors per
// head.
#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/chunk_attention.h"
#include "kernels/tpa_contract.h"
#include "model/attn/cores.h"

namespace t6 {

namespace {

// The description of the layer's weights both cores read: column offsets of the factors inside
// the fused projection row (order of tpa_projections()). T6_kvonly has c_q (H*D) where T6 has
// A_q, and no B_q (B_q == B_k).
struct TpaOffsets {
    long A_q = 0, A_k, A_v, B_q, B_k, B_v, P;
    bool full_q;  // T6 (factorized q) rather than T6_kvonly (c_q)
    int Rq;       // q_rank (0 for T6_kvonly)
};

TpaOffsets tpa_offsets(const ModelConfig& c) {
    const long H = c.n_head, D = c.head_dim;
    TpaOffsets o;
    const bool fq = c.attention == AttentionKind::tpa;
    o.full_q = fq;
    o.Rq = fq ? c.q_rank : 0;
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
TpaCacheDims tpa_cache_dims(const ModelConfig& c) {
    return TpaCacheDims{c.n_head, c.k_rank, c.v_rank, c.head_dim};
}

float tpa_scale(const ModelConfig& c) {
    return 1.0f / std::sqrt(float(c.head_dim));
}

AttnDims tpa_dims(const ModelConfig& c, int B, int T, bool factorized_q, long P) {
    AttnDims d;
    d.B = B;
    d.T = T;
    d.Hq = d.Hkv = c.n_head;
    d.D = d.Dv = c.head_dim;
    d.q_stride = d.k_stride = d.v_stride = long(c.n_head) * c.head_dim;
    if (!factorized_q) d.q_stride = P;
    d.scale = tpa_scale(c);
    return d;
}

}  // namespace

// ---- facts (kinds table) ----

std::vector<ProjectionSpec> tpa_projections(const ModelConfig& c) {
    const int H = c.n_head, D = c.head_dim;
    if (c.attention == AttentionKind::tpa)
        // Paper eq. (2)-(4): A factors over heads, B factors over the head dimension.
        return {{"c_qkv.W_A_q", H * c.q_rank}, {"c_qkv.W_A_k", H * c.k_rank},
                {"c_qkv.W_A_v", H * c.v_rank}, {"c_qkv.W_B_q", c.q_rank * D},
                {"c_qkv.W_B_k", c.k_rank * D}, {"c_qkv.W_B_v", c.v_rank * D}};
    return {{"c_qkv.c_q", H * D},
            {"c_qkv.W_A_k", H * c.k_rank},
            {"c_qkv.W_A_v", H * c.v_rank},
            {"c_qkv.W_B_k", c.k_rank * D},
            {"c_qkv.W_B_v", c.v_rank * D}};
}

std::vector<CoreTensorSpec> tpa_core_tensors(const ModelConfig&) {
    return {};
}

// [A_K (H*R_K) | A_V (H*R_V) | B_K (R_K*D) | B_V (R_V*D)]: (R_K + R_V)(H + D) (TpaCacheDims).
long tpa_cache_numbers(const ModelConfig& c) {
    return tpa_cache_dims(c).rec();
}

Q8Layout tpa_cache_q8_layout(const ModelConfig& c) {
    return q8_layout(tpa_cache_dims(c));
}

// FlashTPA per cached token (paper Sec. 3.3): the Q_B.B_K^T products (R_Q*R_K*D, shared by the
// heads), then per head the A contractions of scores (R_Q*R_K) and of values (R_V*D); 2 FLOPs per
// multiply-add. T6_kvonly: per head q.(A_K^T B_K) via the B_K.q product (R_K*D) and values.
double tpa_decode_flops(const ModelConfig& c) {
    const double H = c.n_head, D = c.head_dim;
    if (c.attention == AttentionKind::tpa)
        return 2.0 * (double(c.q_rank) * c.k_rank * D + H * c.q_rank * c.k_rank + H * c.v_rank * D);
    return 2.0 * (H * c.k_rank * D + H * c.v_rank * D);
}

// Factor contractions (paper eq. (2)-(4)): 2*R*H*D per factorized q, k and v.
double tpa_extra_flops(const ModelConfig& c) {
    const double ranks = c.k_rank + c.v_rank + (c.attention == AttentionKind::tpa ? c.q_rank : 0);
    return 2.0 * ranks * c.n_head * c.head_dim;
}

size_t tpa_saved_per_token(const ModelConfig& c) {
    return size_t(3) * c.n_head * c.head_dim;
}
size_t tpa_scratch_per_token(const ModelConfig& c) {
    return tpa_saved_per_token(c);
}

// ---- training ----

void tpa_core_forward(const ModelConfig& c, const LayerParamRef&, const RopeTables& rope,
                      float* proj, float* saved, float* y, float* lse, int B, int T) {
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

void tpa_core_backward(const ModelConfig& c, const LayerParamRef&, const RopeTables& rope,
                       const float* proj, const float* saved, const float* y, const float* lse,
                       const float* dy, float* dproj, float* scratch, int B, int T) {
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

// ---- cached inference ----

void tpa_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef&,
                         const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                         std::vector<float>& scratch) {
    const TpaOffsets o = tpa_offsets(c);
    const int H = c.n_head, D = c.head_dim, Rk = c.k_rank, Rv = c.v_rank, Rq = o.Rq;
    const bool fq = o.full_q;
    const long oAk = o.A_k, oAv = o.A_v, oBq = o.B_q, oBk = o.B_k, oBv = o.B_v, P = o.P;
    const long HD = long(H) * D;
    // Records as built here and as the chunked prefill reads the history (with_history: B_K in
    // place); `cached`: as the decoding kernel reads the cache (float32: B_K grouped,
    // kernels/flash_decode.h).
    const TpaCacheDims dims = tpa_cache_dims(c);
    TpaCacheDims cached = dims;
    cached.group = cache.tpa_group();
    const long rec = dims.rec();
    const float scale = tpa_scale(c);
    std::vector<float> record(rec);
    for (int i = 0; i < t.n; i++) {
        float* row = proj + i * P;
        if (fq)
            rope_forward_inplace(row + oBq, 1, 1, Rq, D, P, D, rope, t.pos[i]);
        else
            rope_forward_inplace(row, 1, 1, H, D, P, D, rope, t.pos[i]);
        rope_forward_inplace(row + oBk, 1, 1, Rk, D, P, D, rope, t.pos[i]);
        // A_K, A_V come as (H, R) rows of the projection; the cache stores them rank-major.
        for (int h = 0; h < H; h++) {
            for (int s = 0; s < Rk; s++) record[dims.ak(h, s)] = row[oAk + h * Rk + s];
            for (int s = 0; s < Rv; s++) record[dims.av(h, s)] = row[oAv + h * Rv + s];
        }
        std::memcpy(&record[dims.off_BK()], row + oBk, sizeof(float) * Rk * D);
        std::memcpy(&record[dims.off_BV()], row + oBv, sizeof(float) * Rv * D);
        cache.store(layer, t.slot[i], t.pos[i], record.data());
    }
    if (t.chunk) {
        // Materialise the chunk's queries (n, H, D), then attend with factor-formed K/V tiles.
        scratch.resize(size_t(t.n) * HD);
        if (fq)
            tpa_contract_forward(scratch.data(), proj, P, proj + oBq, P, t.n, H, Rq, D,
                                 1.0f / float(Rq));
        else
            for (int i = 0; i < t.n; i++) std::memcpy(&scratch[i * HD], proj + i * P, HD * 4);
        with_history(cache, layer, t.slot[0], t.pos[0] + t.n, [&](const auto* hist) {
            tpa_chunk_attention(y, scratch.data(), hist, t.pos[0], t.n, dims, scale);
        });
        return;
    }
    std::vector<float*> outs(t.n);
    std::vector<TpaQuery> qs(t.n);
    std::vector<int> lens(t.n);
    for (int i = 0; i < t.n; i++) {
        float* row = proj + i * P;
        outs[i] = y + i * HD;
        qs[i] = fq ? TpaQuery{row, row + oBq, Rq} : TpaQuery{nullptr, row, 0};
        lens[i] = t.pos[i] + 1;
    }
    with_cache_blocks(cache, layer, t.slot, t.n, [&](const auto* caches) {
        flash_tpa_decode(outs.data(), qs.data(), caches, lens.data(), t.n, cached, scale);
    });
}

}  // namespace t6
