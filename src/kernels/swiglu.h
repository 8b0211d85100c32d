// SwiGLU gate of the official MLP: c_proj(silu(c_fc1(x)) * c_fc2(x)).
#pragma once
#include <cstddef>

namespace t6 {

// out[i] = silu(a[i]) * b[i], silu(z) = z * sigmoid(z). n elements.
void swiglu_forward(float* out, const float* a, const float* b, size_t n);

// Writes (=) da, db from dout.
void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                     size_t n);

// Plain scalar loops (std::exp): the references the SIMD targets are tested against.
void swiglu_forward_reference(float* out, const float* a, const float* b, size_t n);
void swiglu_backward_reference(float* da, float* db, const float* dout, const float* a,
                               const float* b, size_t n);

}  // namespace t6
