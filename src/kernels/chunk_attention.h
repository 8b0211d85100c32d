// Prefill / scoring attention over a KV cache: a chunk of n consecutive query tokens of one
// sequence (positions p0 .. p0+n-1, already appended to the cache) attends causally to cache
// records 0 .. p0+n-1. Tiled like flash attention (online softmax over key blocks). For a TPA
// cache each key/value tile is formed from the cached factors on the fly, one head at a time
// (K_h = 1/R_K sum_s A_K[.,h,s] B_K[.,s]), so the cost of forming it is shared by the whole
// query chunk; decoding single tokens should use flash_decode.h instead.
#pragma once
#include "kernels/flash_decode.h"

namespace t6 {

// q: (n, H, D) rotated queries (TPA: the contracted q); out: (n, H, D).
template <typename T>
void tpa_chunk_attention(float* out, const float* q, const T* cache, int p0, int n,
                         const TpaCacheDims& dims, float scale);

// q: (n, Hq, D) rotated; out: (n, Hq, D).
template <typename T>
void kv_chunk_attention(float* out, const float* q, const T* cache, int p0, int n,
                        const KvCacheDims& dims, float scale);

}  // namespace t6
