// Cross-entropy over logits with ignore_index = -1 (official: F.cross_entropy(...,
// ignore_index=-1), mean over non-ignored positions).
#pragma once
#include <cstdint>

namespace t6 {

// logits (N,V); targets (N), -1 = ignored. Returns the mean loss over non-ignored positions (0 if
// there are none). If dlogits is non-null it receives (=) grad_scale * d(mean loss)/d(logits),
// i.e. grad_scale * (softmax - onehot) / n_valid, zero rows for ignored positions; dlogits may
// alias logits (in place). If losses is non-null it receives the per-position loss (0 if ignored).
// Sums are accumulated in double.
float cross_entropy_forward_backward(float* dlogits, float* losses, const float* logits,
                                     const int32_t* targets, int N, int V, float grad_scale);

// The same with plain scalar loops (std::exp): the reference the SIMD targets are tested against.
float cross_entropy_forward_backward_reference(float* dlogits, float* losses, const float* logits,
                                               const int32_t* targets, int N, int V,
                                               float grad_scale);

}  // namespace t6
