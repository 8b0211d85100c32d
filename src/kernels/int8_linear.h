// q8 / q4 weights x int8 activations (llama.cpp's Q8_0 x Q8_0 and Q4_1 x Q8_1 vec_dot): the
// activations of a linear layer are quantized on the fly, per row and per block of 32, exactly
// like q8 weights (kernels/quant.h: d = max|x| / 127, q = round(x / d) in [-127, 127], ties away
// from zero), and each block's dot product is summed in int32 from the codes:
//     q8: y[n,o] = sum_b (dw[o,b] dx[n,b]) sum_{j<32} qw[o,b,j] qx[n,b,j]
//     q4: the same plus sum_b m[o,b] dx[n,b] sum_j qx[n,b,j]     (w' = qw dw + m)
// The int32 block sums are exact; the scaled block sums are added in float32. This equals, up to
// float32 rounding and summation order, the float32 product x' . w' of the dequantized
// activations x' = qx * dx and the dequantized weights w': the reference (linear_a8_reference,
// and linear_quant_reference over x'). Codes past `cols` are zero in the activations (and
// never multiply anything else), so a partial last block needs no tail code.
#pragma once
#include "kernels/quant.h"

namespace t6 {

// Quantizes rows x[N, C] into X (a q8 QuantMatrix of N rows; storage reused when the shape
// matches). A block holding a non-finite number gets a NaN scale (the NaN reaches the output,
// as in the float32 layer).
void quantize_activations_q8(QuantMatrix& X, const float* x, int N, int C);

// out[N, W.rows] = beta * out + X' @ W'^T for pre-quantized activations X (N = X.rows, X.cols ==
// W.cols, W q8 or q4), on the SIMD target in force: hand-written vpdpbusd (AVX-512 VNNI) or
// vpmaddubsw (AVX2) kernels, else Highway (int8 codes widened to int16, pairwise multiply-add into
// int32 (vpmaddwd), one float32 scale multiply-add per block).
void linear_a8_codes(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta);
// The int8 kernel linear_a8_codes runs now: "avx512-vnni" (hand-written vpdpbusd, on the
// avx512 targets of CPUs with AVX-512 VNNI), "avx2-maddubs" (hand-written vpmaddubsw, avx2
// target), "highway" (the Highway kernel above: AVX-512 without VNNI, NEON) or "scalar".
const char* int8_kernel_name();
// Tests: whether the hand-written kernels may run (default true; false runs the Highway kernel on
// every target). Returns the previous setting. Not to be called while kernels run.
bool set_int8_hand_kernels(bool enabled);
// The plain scalar loop over the same codes (the tests' reference; HWY_SCALAR runs it too).
void linear_a8_reference(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta);
// The layer: quantizes inp[N, W.cols] (a per-thread buffer) and runs linear_a8_codes for a few
// rows; above 16 rows (chunked prefill) the float32 GEMM over the dequantized activations x' and
// bands of dequantized weights (the same product, computed in float32).
void linear_a8(float* out, const float* inp, const QuantMatrix& W, int N, float beta);

}  // namespace t6
