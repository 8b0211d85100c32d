// The entry points of each kind's file, referenced by its row of the kinds table (kinds.cpp).
// Internal to the wing: everything else calls attention.h or reads kinds.h.
#pragma once
#include "model/attn/kinds.h"

namespace t6 {

// Signatures shared by every kind (attention.h has the contracts).
#define T6_ATTN_KIND_DECLS(k)                                                                      \
    std::vector<ProjectionSpec> k##_projections(const ModelConfig& c);                             \
    std::vector<CoreTensorSpec> k##_core_tensors(const ModelConfig& c);                            \
    long k##_cache_numbers(const ModelConfig& c);                                                  \
    Q8Layout k##_cache_q8_layout(const ModelConfig& c);                                            \
    double k##_decode_flops(const ModelConfig& c);                                                 \
    double k##_extra_flops(const ModelConfig& c);                                                  \
    size_t k##_saved_per_token(const ModelConfig& c);                                              \
    size_t k##_scratch_per_token(const ModelConfig& c);                                            \
    void k##_core_forward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,    \
                          float* proj, float* saved, float* y, float* lse, int B, int T);          \
    void k##_core_backward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,   \
                           const float* proj, const float* saved, const float* y,                  \
                           const float* lse, const float* dy, float* dproj, float* scratch, int B, \
                           int T);                                                                 \
    void k##_cache_attention(const ModelConfig& c, KVCache& cache, int layer,                      \
                             const LayerParamRef& w, const RopeTables& rope, float* proj,          \
                             const NewTokens& t, float* y, std::vector<float>& scratch);

T6_ATTN_KIND_DECLS(gqa)  // attn/gqa.cpp: MHA, MQA, GQA
T6_ATTN_KIND_DECLS(tpa)  // attn/tpa.cpp: T6 and T6_kvonly
T6_ATTN_KIND_DECLS(mla)  // attn/mla.cpp

#undef T6_ATTN_KIND_DECLS

// The cache reads every cached core makes, in the cache's element type:
// f(const CacheBlocks<T>* caches): the n sequences' blocks of `layer` (decoding steps; T float,
// uint16_t bf16 or int8_t q8, which the kernels read in place).
template <class F>
void with_cache_blocks(const KVCache& cache, int layer, const int* slots, int n, F&& f) {
    auto run = [&](auto zero) {
        using T = decltype(zero);
        std::vector<CacheBlocks<T>> caches(static_cast<size_t>(n));
        for (int i = 0; i < n; i++) caches[size_t(i)] = cache.blocks<T>(layer, slots[i]);
        f(caches.data());
    };
    if (cache.type() == CacheType::f32)
        run(float{});
    else if (cache.type() == CacheType::q8)
        run(int8_t{});
    else
        run(uint16_t{});
}

// f(const T* history): records [0, len) of (layer, slot) contiguous (chunks: copied out of the
// blocks when they span several), as float32 for f32 and q8 (dequantized), as bf16 otherwise.
template <class F>
void with_history(const KVCache& cache, int layer, int slot, int len, F&& f) {
    if (cache.type() == CacheType::f32 || cache.type() == CacheType::q8) {
        thread_local std::vector<float> hist;
        f(cache.gather_f32(layer, slot, len, hist));
    } else {
        thread_local std::vector<uint16_t> hist;
        f(cache.gather(layer, slot, len, hist));
    }
}

}  // namespace t6
