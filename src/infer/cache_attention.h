// The attention step of incremental inference, per kind: takes the fused input projections of
// some new tokens, rotates what RoPE rotates, appends the new tokens' records to the KV cache and
// attends from the cache. Two shapes of work:
//  * a chunk: n consecutive tokens of one sequence (prefill, scoring);
//  * a step: one new token for each of several sequences (batched decoding).
#pragma once
#include <vector>

#include "infer/kv_cache.h"
#include "kernels/rope.h"
#include "model/config.h"

namespace t6 {

struct NewTokens {
    int n = 0;                  // rows of proj / y
    bool chunk = false;         // true: one sequence, consecutive positions
    const int* slot = nullptr;  // per row
    const int* pos = nullptr;   // per row
};

// proj: (n, P) raw projections (rotated in place). y: (n, H*Dv) attention outputs (before c_proj).
void cache_attention(const ModelConfig& c, KVCache& cache, int layer, const RopeTables& rope,
                     float* proj, const NewTokens& t, float* y, std::vector<float>& scratch);

void tpa_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const RopeTables& rope,
                         float* proj, const NewTokens& t, float* y, std::vector<float>& scratch);
void gqa_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const RopeTables& rope,
                         float* proj, const NewTokens& t, float* y, std::vector<float>& scratch);

}  // namespace t6
