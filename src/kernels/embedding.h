// Token embedding lookup (the tied wte matrix).
#pragma once
#include <cstdint>

namespace t6 {

// out (N,C) = wte[tokens[n], :]; wte (V,C). Tokens are assumed to be in range (checked by callers).
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C);

// Accumulates dwte[tokens[n], :] += dout[n, :]. Deterministic (same result for any thread count).
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C, int V);

}  // namespace t6
