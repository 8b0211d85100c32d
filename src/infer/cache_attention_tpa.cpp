// TPA over a factor cache (paper Sec. 3.3): each new token appends [A_K | B_K | A_V | B_V] with
// B_K rotated once at its position; decoding runs FlashTPA on the factors (never forming Q, K or
// V), chunks form K/V tiles from the factors per head.
#include <cmath>
#include <cstring>

#include "infer/cache_attention.h"
#include "kernels/chunk_attention.h"
#include "kernels/tpa_contract.h"

namespace t6 {

void tpa_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef&,
                         const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                         std::vector<float>& scratch) {
    const int H = c.n_head, D = c.head_dim, Rk = c.k_rank, Rv = c.v_rank;
    const bool fq = c.attention == AttentionKind::tpa;
    const int Rq = fq ? c.q_rank : 0;
    // Column offsets in the fused projection row (order of attention_projections()).
    const long q_cols = fq ? long(H) * Rq : long(H) * D;
    const long oAk = q_cols, oAv = oAk + long(H) * Rk, oBq = oAv + long(H) * Rv;
    const long oBk = oBq + long(Rq) * D, oBv = oBk + long(Rk) * D, P = oBv + long(Rv) * D;
    const long HD = long(H) * D;
    const TpaCacheDims dims{H, Rk, Rv, D};
    const long rec = dims.rec();
    const float scale = 1.0f / std::sqrt(float(D));
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
    const bool f32 = cache.type() == CacheType::f32, q8 = cache.type() == CacheType::q8;
    if (t.chunk) {
        // Materialise the chunk's queries (n, H, D), then attend with factor-formed K/V tiles.
        scratch.resize(size_t(t.n) * HD);
        if (fq)
            tpa_contract_forward(scratch.data(), proj, P, proj + oBq, P, t.n, H, Rq, D,
                                 1.0f / float(Rq));
        else
            for (int i = 0; i < t.n; i++) std::memcpy(&scratch[i * HD], proj + i * P, HD * 4);
        // The history read contiguously (copied out of the blocks when it spans several).
        const int len = t.pos[0] + t.n;
        if (f32 || q8) {  // q8: the history dequantized to float32
            thread_local std::vector<float> hist;
            tpa_chunk_attention(y, scratch.data(), cache.gather_f32(layer, t.slot[0], len, hist),
                                t.pos[0], t.n, dims, scale);
        } else {
            thread_local std::vector<uint16_t> hist;
            tpa_chunk_attention(y, scratch.data(), cache.gather(layer, t.slot[0], len, hist),
                                t.pos[0], t.n, dims, scale);
        }
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
    if (f32) {
        std::vector<CacheBlocks<float>> caches(t.n);
        for (int i = 0; i < t.n; i++) caches[i] = cache.blocks<float>(layer, t.slot[i]);
        flash_tpa_decode(outs.data(), qs.data(), caches.data(), lens.data(), t.n, dims, scale);
    } else if (q8) {
        std::vector<CacheBlocks<int8_t>> caches(t.n);
        for (int i = 0; i < t.n; i++) caches[i] = cache.blocks<int8_t>(layer, t.slot[i]);
        flash_tpa_decode(outs.data(), qs.data(), caches.data(), lens.data(), t.n, dims, scale);
    } else {
        std::vector<CacheBlocks<uint16_t>> caches(t.n);
        for (int i = 0; i < t.n; i++) caches[i] = cache.blocks<uint16_t>(layer, t.slot[i]);
        flash_tpa_decode(outs.data(), qs.data(), caches.data(), lens.data(), t.n, dims, scale);
    }
}

}  // namespace t6
