// MHA/MQA/GQA over a K/V cache: cache records [K | V] with K RoPE-rotated.
#include <cmath>
#include <cstring>

#include "infer/cache_attention.h"
#include "kernels/chunk_attention.h"

namespace t6 {

void gqa_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef&,
                         const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                         std::vector<float>& scratch) {
    const int H = c.n_head, Hkv = c.kv_heads(), D = c.head_dim;
    const long P = long(H + 2 * Hkv) * D, HD = long(H) * D;
    const KvCacheDims dims{H, Hkv, D};
    const float scale = 1.0f / std::sqrt(float(D));
    // RoPE on q and k of every new token at its own position, then append [K | V].
    for (int i = 0; i < t.n; i++) {
        float* row = proj + i * P;
        rope_forward_inplace(row, 1, 1, H, D, P, D, rope, t.pos[i]);
        rope_forward_inplace(row + HD, 1, 1, Hkv, D, P, D, rope, t.pos[i]);
        cache.store(layer, t.slot[i], t.pos[i], row + HD);  // K then V are adjacent in proj
    }
    const bool f32 = cache.type() == CacheType::f32, q8 = cache.type() == CacheType::q8;
    if (t.chunk) {
        scratch.resize(size_t(t.n) * HD);
        for (int i = 0; i < t.n; i++) std::memcpy(&scratch[i * HD], proj + i * P, HD * 4);
        // The history read contiguously (copied out of the blocks when it spans several).
        const int len = t.pos[0] + t.n;
        if (f32 || q8) {  // q8: the history dequantized to float32
            thread_local std::vector<float> hist;
            kv_chunk_attention(y, scratch.data(), cache.gather_f32(layer, t.slot[0], len, hist),
                               t.pos[0], t.n, dims, scale);
        } else {
            thread_local std::vector<uint16_t> hist;
            kv_chunk_attention(y, scratch.data(), cache.gather(layer, t.slot[0], len, hist),
                               t.pos[0], t.n, dims, scale);
        }
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
    if (f32) {
        std::vector<CacheBlocks<float>> caches(t.n);
        for (int i = 0; i < t.n; i++) caches[i] = cache.blocks<float>(layer, t.slot[i]);
        flash_kv_decode(outs.data(), qs.data(), caches.data(), lens.data(), t.n, dims, scale);
    } else if (q8) {
        std::vector<CacheBlocks<int8_t>> caches(t.n);
        for (int i = 0; i < t.n; i++) caches[i] = cache.blocks<int8_t>(layer, t.slot[i]);
        flash_kv_decode(outs.data(), qs.data(), caches.data(), lens.data(), t.n, dims, scale);
    } else {
        std::vector<CacheBlocks<uint16_t>> caches(t.n);
        for (int i = 0; i < t.n; i++) caches[i] = cache.blocks<uint16_t>(layer, t.slot[i]);
        flash_kv_decode(outs.data(), qs.data(), caches.data(), lens.data(), t.n, dims, scale);
    }
}

}  // namespace t6
