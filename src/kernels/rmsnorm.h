// RMSNorm (official: F.rms_norm(x, (C,)) without weight and eps = finfo(float32).eps for the
// block and final norms; MLA's RMSNorm modules have a weight and eps 1e-6).
//   out = inp * rstd [* weight],  rstd = 1 / sqrt(mean(inp^2) + eps)
#pragma once

namespace t6 {

// Float32 machine epsilon: the eps of the official weightless F.rms_norm (eps=None;
// docs/numerics.md §8).
inline constexpr float kRmsNormEpsF32 = 1.1920928955078125e-07f;

// inp, out: (N,C); weight: (C) or nullptr; rstd: (N), saved for the backward pass.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps);

// Accumulates dinp += d(out)/d(inp)^T dout, and dweight += (if weight and dweight non-null).
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C);

// Plain scalar loops: the references the SIMD targets are tested against.
void rmsnorm_forward_reference(float* out, float* rstd, const float* inp, const float* weight,
                               int N, int C, float eps);
void rmsnorm_backward_reference(float* dinp, float* dweight, const float* dout, const float* inp,
                                const float* weight, const float* rstd, int N, int C);

}  // namespace t6
