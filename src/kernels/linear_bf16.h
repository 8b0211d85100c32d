// Linear layers over bf16 weights (the upper halves of float32, round to nearest even), float32
// inputs, outputs and arithmetic: the weights are widened to float32 in registers, so the only
// difference from the float32 layer is the rounding of the weights. At decoding time (a few
// rows) a linear layer is a matrix-vector product bound by the bytes of its weights; bf16
// halves them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/bf16.h"  // to_bf16

namespace t6 {

// out[N,OC] = beta * out + inp[N,C] @ W[OC,C]^T, W in bf16 (PyTorch layout). beta is 0 or 1.
void linear_bf16(float* out, const float* inp, const uint16_t* W, int N, int C, int OC, float beta);

// The same kernel over float32 weights: for a few rows (decoding a batch) it streams the weights
// once at memory speed, where the BLAS GEMM runs small-M shapes several times slower.
void linear_f32_few_rows(float* out, const float* inp, const float* W, int N, int C, int OC,
                         float beta);
// Rows up to which decoding's float32 linear layers take linear_f32_few_rows instead of the GEMM.
inline constexpr int kFewRowsF32 = 16;

}  // namespace t6
