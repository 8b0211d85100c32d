// MHA, MQA and GQA (official llama-mha.py / llama-gqa.py): q = c_q(x), k = c_k(x), v = c_v(x),
// RoPE on q and k per head, KV head j serves query heads j*g .. j*g+g-1 (repeat_interleave;
// docs/numerics.md §14). Training core, and cached core over records [K | V] with K rotated.
#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/chunk_attention.h"
#include "model/attn/cores.h"

namespace t6 {

namespace {

// The description of the layer's weights both cores read: the fused projection row
// [q (H*D) | k (Hkv*D) | v (Hkv*D)], k and v adjacent (so the cache record is one copy).
struct GqaLayout {
    int H, Hkv, D;
    long k, v, P;  // column offsets of k and v, row width
};

GqaLayout gqa_layout(const ModelConfig& c) {
    GqaLayout o;
    o.H = c.n_head;
    o.Hkv = c.kv_heads();
    o.D = c.head_dim;
    o.k = long(o.H) * o.D;
    o.v = o.k + long(o.Hkv) * o.D;
    o.P = o.v + long(o.Hkv) * o.D;
    return o;
}

float gqa_scale(const GqaLayout& o) {
    return 1.0f / std::sqrt(float(o.D));
}

AttnDims gqa_dims(const GqaLayout& o, int B, int T) {
    AttnDims d;
    d.B = B;
    d.T = T;
    d.Hq = o.H;
    d.Hkv = o.Hkv;
    d.D = d.Dv = o.D;
    d.q_stride = d.k_stride = d.v_stride = o.P;
    d.scale = gqa_scale(o);
    return d;
}

}  // namespace

// ---- facts (kinds table) ----

std::vector<ProjectionSpec> gqa_projections(const ModelConfig& c) {
    const int H = c.n_head, D = c.head_dim;
    return {{"c_q", H * D}, {"c_k", c.kv_heads() * D}, {"c_v", c.kv_heads() * D}};
}

std::vector<CoreTensorSpec> gqa_core_tensors(const ModelConfig&) {
    return {};
}

long gqa_cache_numbers(const ModelConfig& c) {
    return 2L * c.kv_heads() * c.head_dim;
}

Q8Layout gqa_cache_q8_layout(const ModelConfig& c) {
    return q8_layout(KvCacheDims{c.n_head, c.kv_heads(), c.head_dim});
}

// Per cached token and query head: q.k (2D) and p*v (2D).
double gqa_decode_flops(const ModelConfig& c) {
    return 4.0 * c.n_head * c.head_dim;
}

double gqa_extra_flops(const ModelConfig&) {
    return 0.0;
}

size_t gqa_saved_per_token(const ModelConfig&) {
    return 0;
}
size_t gqa_scratch_per_token(const ModelConfig&) {
    return 0;
}

// ---- training ----

void gqa_core_forward(const ModelConfig& c, const LayerParamRef&, const RopeTables& rope,
                      float* proj, float*, float* y, float* lse, int B, int T) {
    const GqaLayout o = gqa_layout(c);
    const AttnDims d = gqa_dims(o, B, T);
    float* q = proj;
    float* k = proj + o.k;
    float* v = proj + o.v;
    rope_forward_inplace(q, B, T, d.Hq, d.D, d.q_stride, d.D, rope);
    rope_forward_inplace(k, B, T, d.Hkv, d.D, d.k_stride, d.D, rope);
    attention_forward(y, lse, q, k, v, d);
}

void gqa_core_backward(const ModelConfig& c, const LayerParamRef&, const RopeTables& rope,
                       const float* proj, const float*, const float* y, const float* lse,
                       const float* dy, float* dproj, float*, int B, int T) {
    const GqaLayout o = gqa_layout(c);
    const AttnDims d = gqa_dims(o, B, T);
    attention_backward(dproj, dproj + o.k, dproj + o.v, dy, y, lse, proj, proj + o.k, proj + o.v,
                       d);
    rope_backward_inplace(dproj, B, T, d.Hq, d.D, d.q_stride, d.D, rope);
    rope_backward_inplace(dproj + o.k, B, T, d.Hkv, d.D, d.k_stride, d.D, rope);
}

// ---- cached inference ----

void gqa_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef&,
                         const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                         std::vector<float>& scratch) {
    const GqaLayout o = gqa_layout(c);
    const int H = o.H, Hkv = o.Hkv, D = o.D;
    const long P = o.P, HD = o.k;
    const KvCacheDims dims{H, Hkv, D};
    const float scale = gqa_scale(o);
    // RoPE on q and k of every new token at its own position, then append [K | V].
    for (int i = 0; i < t.n; i++) {
        float* row = proj + i * P;
        rope_forward_inplace(row, 1, 1, H, D, P, D, rope, t.pos[i]);
        rope_forward_inplace(row + o.k, 1, 1, Hkv, D, P, D, rope, t.pos[i]);
        cache.store(layer, t.slot[i], t.pos[i], row + o.k);  // K then V are adjacent in proj
    }
    if (t.chunk) {
        scratch.resize(size_t(t.n) * HD);
        for (int i = 0; i < t.n; i++) std::memcpy(&scratch[i * HD], proj + i * P, HD * 4);
        with_history(cache, layer, t.slot[0], t.pos[0] + t.n, [&](const auto* hist) {
            kv_chunk_attention(y, scratch.data(), hist, t.pos[0], t.n, dims, scale);
        });
        return;
    }
    std::vector<float*> outs(t.n);
    std::vector<const float*> qs(t.n);
    std::vector<int> lens(t.n);
    for (int i = 0; i < t.n; i++) {
        outs[i] = y + i * HD;
        qs[i] = proj + i * P;
        lens[i] = t.pos[i] + 1;
    }
    with_cache_blocks(cache, layer, t.slot, t.n, [&](const auto* caches) {
        flash_kv_decode(outs.data(), qs.data(), caches, lens.data(), t.n, dims, scale);
    });
}

}  // namespace t6
