// SwiGLU gate of the official MLP: c_proj(silu(c_fc1(x)) * c_fc2(x)).
#pragma once
#include <cstddef>

namespace t6 {

// out[i] = silu(a[i]) * b[i], silu(z) = z * sigmoid(z). n elements.
void swiglu_forward(float* out, const float* a, const float* b, size_t n);

// Writes (=) da, db from dout.
void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                     size_t n);

}  // namespace t6
