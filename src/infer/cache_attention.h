// The attention step of incremental inference, per kind: takes the fused input projections of
// some new tokens, rotates what RoPE rotates, appends the new tokens' records to the KV cache and
// attends from the cache. Two shapes of work:
//  * a chunk: n consecutive tokens of one sequence (prefill, scoring);
//  * a step: one new token for each of several sequences (batched decoding).
#pragma once
#include <vector>

#include "infer/kv_cache.h"
#include "kernels/rope.h"
#include "model/attention_core.h"
#include "model/config.h"

namespace t6 {

struct NewTokens {
    int n = 0;                  // rows of proj / y
    bool chunk = false;         // true: one sequence, consecutive positions
    const int* slot = nullptr;  // per row
    const int* pos = nullptr;   // per row
};

// proj: (n, P) raw projections (rotated in place). y: (n, H*Dv) attention outputs (before c_proj).
// w: the layer's parameters (read by kinds whose core owns weights beyond the fused projection,
// i.e. MLA's latent norms and up-projections; w.G is unused).
void cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef& w,
                     const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                     std::vector<float>& scratch);

void tpa_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef& w,
                         const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                         std::vector<float>& scratch);
void gqa_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef& w,
                         const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                         std::vector<float>& scratch);
// MLA from its latent cache, absorbed decoding (cache_attention_mla.cpp).
void mla_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef& w,
                         const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                         std::vector<float>& scratch);

}  // namespace t6
